"""The base of task models: a head on a backbone, with an optional preprocessor."""

import keras


class TaskModel(keras.Model):
    """Config handling shared by every task model (`GPTCausalLM`, the BERT tasks).

    A task model has a `backbone` and a `preprocessor` (the KerasHub pattern): the
    preprocessor (a `kzoo.preprocessing` layer, or None) holds the tokenizer and
    every setting that turns raw text into the model's inputs, and is saved with
    the model. `tokenizer` is the preprocessor's; a model given only a
    `tokenizer` (or loaded from a `model.keras` written before preprocessors
    existed) keeps that one. Subclasses build their functional graph in
    `__init__`, call `_set_preprocessing` and set the attributes named in
    `CONFIG_KEYS`; `get_config` holds the serialized `backbone` and
    `preprocessor` (or `tokenizer`) and those attributes, and `from_config`
    rebuilds them. The preprocessor is deserialized by its registered Keras name,
    so `kzoo.models` never imports `kzoo.preprocessing` (the loader does).

    The task model takes its backbone's dtype policy (a functional model would take
    the global one), so a `mixed_float16` model reports it and `compile` wraps the
    optimizer in a `LossScaleOptimizer`.
    """

    CONFIG_KEYS = ()

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.dtype_policy = self.backbone.dtype_policy

    def _set_preprocessing(self, tokenizer=None, preprocessor=None):
        """Attaches `preprocessor`, or a bare `tokenizer` when there is none."""
        if preprocessor is not None and tokenizer not in (None, preprocessor.tokenizer):
            raise ValueError(
                "tokenizer: pass the tokenizer inside the preprocessor, not both "
                "(the model's tokenizer is preprocessor.tokenizer)"
            )
        self.preprocessor = preprocessor
        self._tokenizer = tokenizer

    @property
    def tokenizer(self):
        """The preprocessor's tokenizer, else the one given (None: ids only)."""
        preprocessor = getattr(self, "preprocessor", None)
        if preprocessor is not None:
            return preprocessor.tokenizer
        return getattr(self, "_tokenizer", None)

    def get_config(self):
        preprocessing = (
            {"preprocessor": keras.saving.serialize_keras_object(self.preprocessor)}
            if self.preprocessor is not None
            else {"tokenizer": keras.saving.serialize_keras_object(self.tokenizer)}
        )
        return {
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            **preprocessing,
            **{key: getattr(self, key) for key in self.CONFIG_KEYS},
            "name": self.name,
            "trainable": self.trainable,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        # "tokenizer" alone: a model saved before preprocessors existed.
        for key in ("backbone", "preprocessor", "tokenizer"):
            if config.get(key) is not None:
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
