from kzoo.models.t5.t5_backbone import T5Backbone
from kzoo.models.t5.t5_presets import T5_SIZES
