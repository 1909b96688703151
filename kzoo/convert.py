"""Turns reference implementations' models into kzoo models with identical outputs.

`from_keras_hub(backbone)` takes a KerasHub backbone (for example one loaded from
weights on disk with `keras_hub.models.GPT2Backbone.from_preset("/path/to/dir")`)
and returns the kzoo backbone of the same family. Dispatch is by class name, so
importing this module does not import KerasHub.
"""

from kzoo.models.bert.convert import from_keras_hub_bert
from kzoo.models.gpt.convert import from_keras_hub_gpt2
from kzoo.models.t5.convert import from_keras_hub_t5

_CONVERTERS = {
    "BertBackbone": from_keras_hub_bert,
    "GPT2Backbone": from_keras_hub_gpt2,
    "T5Backbone": from_keras_hub_t5,
}


def from_keras_hub(backbone):
    """Returns the kzoo equivalent of a KerasHub backbone.

    Args:
        backbone: A `keras_hub.models.GPT2Backbone`, `BertBackbone` or
            `T5Backbone` (more
            families as they land).

    Raises:
        TypeError: For a backbone kzoo cannot convert, naming the supported ones.
    """
    name = type(backbone).__name__
    from_hub = type(backbone).__module__.startswith("keras_hub")
    if name not in _CONVERTERS or not from_hub:
        raise TypeError(
            f"from_keras_hub: cannot convert {type(backbone).__module__}.{name}; "
            f"supported: keras_hub.models.{{{', '.join(sorted(_CONVERTERS))}}}"
        )
    return _CONVERTERS[name](backbone)
