"""The serialization every kzoo functional model shares."""

import keras


class FunctionalModel(keras.Model):
    """A functional `keras.Model` whose config is its constructor's hyperparameters.

    Subclasses list those in `CONFIG_KEYS` and store each as an attribute of the
    same name; `get_config` returns them with the name and dtype policy, and
    `from_config` rebuilds the model from them.
    """

    CONFIG_KEYS = ()

    def __init__(self, *args, dtype=None, **kwargs):
        super().__init__(*args, **kwargs)
        # Functional models drop `dtype`; without this the config would say
        # float32 and a mixed-precision model would reload as float32.
        if dtype is not None:
            self.dtype_policy = keras.dtype_policies.get(dtype)

    def get_config(self):
        config = {key: getattr(self, key) for key in self.CONFIG_KEYS}
        config.update(
            name=self.name,
            trainable=self.trainable,
            dtype=keras.dtype_policies.serialize(self.dtype_policy),
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        return cls(**config)
