"""The base of kzoo's preprocessors: raw text in, a model's input dict out."""

import keras


@keras.saving.register_keras_serializable(package="kzoo")
class Preprocessor(keras.layers.Layer):
    """A tokenizer and the settings that turn raw text into a model's inputs.

    A task model carries its preprocessor (`model.preprocessor`, saved inside
    `model.keras`, as KerasHub's tasks do), so the training pipelines and the
    serving signatures read one object instead of the recipe. Subclasses list
    their settings in `CONFIG_KEYS` (stored as attributes of the same names) and
    turn a batch of strings into model inputs in `call`; the steps of `call` are
    public methods too, for pipelines and signatures that need one of them.
    Everything runs in the graph (TensorFlow ops), inside `tf.data` and exported
    functions alike.

    Args:
        tokenizer: A kzoo tokenizer layer (`SentencePieceTokenizer`,
            `WordPieceTokenizer`), serialized with the preprocessor.
        **kwargs: Base `keras.layers.Layer` arguments (e.g. `name`).
    """

    CONFIG_KEYS = ()

    def __init__(self, tokenizer, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        # Strings in, ids out: nothing to convert to the layer's float dtype.
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        self.tokenizer = tokenizer
        self.built = True

    def get_config(self):
        return {
            **super().get_config(),
            "tokenizer": keras.saving.serialize_keras_object(self.tokenizer),
            **{key: getattr(self, key) for key in self.CONFIG_KEYS},
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("tokenizer"), dict):
            config["tokenizer"] = keras.saving.deserialize_keras_object(config["tokenizer"])
        return cls(**config)
