"""The serialization every kzoo functional model shares."""

import inspect

import keras

# The inputs of every encoder-decoder backbone (KerasHub's T5 names).
ENCODER_DECODER_INPUTS = (
    "encoder_token_ids",
    "encoder_padding_mask",
    "decoder_token_ids",
    "decoder_padding_mask",
)


def token_inputs(*names):
    """One `(batch, length)` int32 `keras.Input` per name, in a dict keyed by name.

    Example:
    >>> sorted(token_inputs("token_ids", "padding_mask"))
    ['padding_mask', 'token_ids']
    """
    return {name: keras.Input(shape=(None,), dtype="int32", name=name) for name in names}


class FunctionalModel(keras.Model):
    """A functional `keras.Model` whose config is its constructor's hyperparameters.

    `CONFIG_KEYS` names those hyperparameters: by default every argument of the
    subclass's `__init__` but `dtype` and `**kwargs` (a subclass whose config
    differs from its arguments sets `CONFIG_KEYS` itself). `__init__` stores them
    as attributes with `_store_config(locals())` at its end; `get_config` returns
    them with the name and dtype policy, and `from_config` rebuilds the model.
    Those of `NESTED_KEYS` are Keras objects (e.g. a preprocessor, or None):
    saved serialized, rebuilt on loading.
    """

    CONFIG_KEYS = ()
    NESTED_KEYS = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "CONFIG_KEYS" not in cls.__dict__:
            parameters = inspect.signature(cls.__init__).parameters.values()
            cls.CONFIG_KEYS = tuple(
                p.name
                for p in parameters
                if p.kind == p.POSITIONAL_OR_KEYWORD and p.name not in ("self", "dtype")
            )

    def __init__(self, *args, dtype=None, **kwargs):
        super().__init__(*args, **kwargs)
        # Functional models drop `dtype`; without this the config would say
        # float32 and a mixed-precision model would reload as float32.
        if isinstance(dtype, keras.dtype_policies.DTypePolicyMap):
            self._resolve_policy_map(dtype)
        elif dtype is not None:
            self.dtype_policy = keras.dtype_policies.get(dtype)

    def _resolve_policy_map(self, policy_map):
        """Gives each layer built under a `DTypePolicyMap` (a quantized model's
        config) its own policy from the map, and the model the map's default:
        Keras' quantized layers read `self.dtype_policy.quantization_mode` when
        they save, which a map (rather than its entry) answers with None."""
        for layer in self._flatten_layers(include_self=False):
            if isinstance(layer._dtype_policy, keras.dtype_policies.DTypePolicyMap):
                path = layer.path  # None for a layer never built (unused)
                layer._dtype_policy = policy_map[path] if path else policy_map.default_policy
        self._dtype_policy = policy_map.default_policy

    def _store_config(self, values):
        """Sets each of `CONFIG_KEYS` as an attribute, from `values` (the
        constructor's `locals()`, after it has resolved any defaults)."""
        for key in self.CONFIG_KEYS:
            setattr(self, key, values[key])

    def get_config(self):
        config = {key: getattr(self, key) for key in self.CONFIG_KEYS}
        for key in self.NESTED_KEYS:
            config[key] = keras.saving.serialize_keras_object(config[key])
        config.update(
            name=self.name,
            trainable=self.trainable,
            dtype=keras.dtype_policies.serialize(self._policy_with_quantized_layers()),
        )
        return config

    def _policy_with_quantized_layers(self):
        """The model's dtype policy; once quantized (`keras.Model.quantize`), a
        `DTypePolicyMap` of each quantized layer's policy by path (KerasHub's way):
        passed down as `dtype`, it rebuilds those layers quantized on loading."""
        policy = self.dtype_policy  # Never a map: `__init__` resolves one.
        quantized = keras.dtype_policies.DTypePolicyMap(default_policy=policy)
        for layer in self._flatten_layers():
            if layer.quantization_mode is not None:
                quantized[layer.path] = layer.dtype_policy
        return quantized if len(quantized) else policy

    # A decoder-only backbone: `embed(token_ids)`, then `transformer_layers`, each
    # taking the hidden states alone (causal). Keras' GPTQ calibrates it block by
    # block (`get_quantization_layer_structure`).
    CALIBRATES_BY_BLOCKS = False

    def get_quantization_layer_structure(self, mode=None):
        """Keras' hook for calibrated quantization (`quantize("gptq", ...)`): the
        layers before the blocks and the blocks, for a decoder-only backbone
        (`CALIBRATES_BY_BLOCKS`); None otherwise."""
        if not self.CALIBRATES_BY_BLOCKS:
            return None
        return {"pre_block_layers": [self.embed], "sequential_blocks": self.transformer_layers}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("dtype"), dict):
            config["dtype"] = keras.dtype_policies.deserialize(config["dtype"])
        for key in cls.NESTED_KEYS:
            if isinstance(config.get(key), dict):
                config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)
