"""The base of task models: a head on a backbone, with an optional tokenizer."""

import keras


class TaskModel(keras.Model):
    """Config handling shared by every task model (`GPTCausalLM`, the BERT tasks).

    `get_config` holds the serialized `backbone` and `tokenizer` (any Keras layer,
    or None) and the attributes named in `CONFIG_KEYS`; `from_config` rebuilds them.
    Subclasses build their functional graph in `__init__` and set those attributes.

    The task model takes its backbone's dtype policy (a functional model would take
    the global one), so a `mixed_float16` model reports it and `compile` wraps the
    optimizer in a `LossScaleOptimizer`.
    """

    CONFIG_KEYS = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.dtype_policy = self.backbone.dtype_policy

    def get_config(self):
        return {
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "tokenizer": keras.saving.serialize_keras_object(self.tokenizer),
            **{key: getattr(self, key) for key in self.CONFIG_KEYS},
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("backbone", "tokenizer"):
            if config.get(key) is not None:
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
