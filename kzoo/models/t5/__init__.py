from kzoo.models.t5.t5_backbone import T5Backbone
