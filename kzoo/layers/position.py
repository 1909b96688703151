"""Position information: sinusoidal, learned, rotary and T5 relative position bias.

Every layer takes a `start_index` (or `query_start`) so that cached decoding, which
feeds one token at a time, sees the same positions as a full forward pass.
"""

import math

import keras
from keras import ops

from kzoo.layers.initializers import serialized_initializers
from kzoo.layers.rope_scaling import rope_type, rotary_frequencies


@keras.saving.register_keras_serializable(package="kzoo")
class SinusoidalPositionEncoding(keras.layers.Layer):
    """Fixed sine/cosine position encoding of "Attention Is All You Need".

    `PE[p, 2i] = sin(p / w^(2i/d))`, `PE[p, 2i+1] = cos(p / w^(2i/d))`.
    Returns the encoding broadcast to the input's shape (add it to the input).

    Args:
        max_wavelength: The largest wavelength `w`.

    Example:
    >>> import numpy as np
    >>> tuple(SinusoidalPositionEncoding()(np.zeros((2, 5, 8), "float32")).shape)
    (2, 5, 8)
    """

    def __init__(self, max_wavelength=10000, **kwargs):
        super().__init__(**kwargs)
        self.max_wavelength = max_wavelength

    def call(self, inputs, start_index=0):
        shape = ops.shape(inputs)
        length, hidden_dim = shape[-2], inputs.shape[-1]
        positions = ops.cast(ops.arange(length) + start_index, "float32")
        even_dims = ops.cast(ops.arange(hidden_dim) // 2 * 2, "float32")
        timescales = ops.power(float(self.max_wavelength), -even_dims / float(hidden_dim))
        angles = positions[:, None] * timescales[None, :]
        is_even = ops.arange(hidden_dim) % 2 == 0
        encoding = ops.where(is_even[None, :], ops.sin(angles), ops.cos(angles))
        return ops.broadcast_to(ops.cast(encoding, self.compute_dtype), shape)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"max_wavelength": self.max_wavelength})
        return config


@keras.saving.register_keras_serializable(package="kzoo")
class PositionEmbedding(keras.layers.Layer):
    """A learned embedding per position (BERT, GPT-2).

    Returns the embeddings of positions `start_index .. start_index + T - 1`
    broadcast to the input's shape.

    Args:
        sequence_length: The number of positions with an embedding.
        initializer: Initializer of the embedding table.

    Example:
    >>> import numpy as np
    >>> tuple(PositionEmbedding(sequence_length=16)(np.zeros((2, 5, 8), "float32")).shape)
    (2, 5, 8)
    """

    def __init__(self, sequence_length, initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.sequence_length = sequence_length
        self.initializer = keras.initializers.get(initializer)

    def build(self, input_shape):
        self.position_embeddings = self.add_weight(
            name="embeddings",
            shape=(self.sequence_length, input_shape[-1]),
            initializer=self.initializer,
        )

    def call(self, inputs, start_index=0):
        shape = ops.shape(inputs)
        length = shape[-2]
        embeddings = ops.slice(
            ops.convert_to_tensor(self.position_embeddings),
            (start_index, 0),
            (length, inputs.shape[-1]),
        )
        return ops.broadcast_to(ops.cast(embeddings, self.compute_dtype), shape)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "sequence_length": self.sequence_length,
                **serialized_initializers(self, "initializer"),
            }
        )
        return config


@keras.saving.register_keras_serializable(package="kzoo")
class RotaryEmbedding(keras.layers.Layer):
    """Rotary position embedding (RoPE), "rotate half" convention (GPT-NeoX, LLaMA).

    Rotates pairs of features `(x[i], x[i + H/2])` of a `(batch, length, heads,
    head_dim)` tensor by the angle `p * f_i`, `f_i = 1 / w^(2i/H)`, so that the dot
    product of a rotated query and key depends only on their relative position.
    Long-context checkpoints rescale the frequencies as their `rope_scaling`
    says (`kzoo.layers.rope_scaling`: linear, Llama 3, YaRN).

    Args:
        max_wavelength: The largest wavelength `w` (`rope_theta`).
        scaling_factor: Positions are divided by it (linear position scaling).
        scaling: A Hugging Face `rope_scaling` dict (`rope_type` `"linear"`,
            `"llama3"` or `"yarn"` and its keys), or None.

    Example:
    >>> import numpy as np
    >>> tuple(RotaryEmbedding()(np.ones((2, 5, 4, 8), "float32")).shape)
    (2, 5, 4, 8)

    References:
        Su et al., "RoFormer: Enhanced Transformer with Rotary Position
        Embedding", 2021.
    """

    def __init__(self, max_wavelength=10000, scaling_factor=1.0, scaling=None, **kwargs):
        super().__init__(**kwargs)
        self.max_wavelength = max_wavelength
        self.scaling_factor = scaling_factor
        rope_type(scaling)  # a bad `rope_scaling` fails here, not at the first call
        self.scaling = None if scaling is None else dict(scaling)
        # No weights: built from the start, so `Model.quantize` (which refuses an
        # unbuilt layer) passes over it in a reloaded model.
        self.built = True

    def call(self, inputs, start_index=0):
        length, head_dim = ops.shape(inputs)[1], inputs.shape[-1]
        inverse_freq, attention_factor = rotary_frequencies(
            head_dim, self.max_wavelength, self.scaling
        )
        positions = ops.cast(ops.arange(length) + start_index, "float32")
        angles = positions[:, None] / self.scaling_factor * ops.convert_to_tensor(inverse_freq)
        angles = ops.concatenate([angles, angles], axis=-1)[None, :, None, :]
        cos, sin = ops.cos(angles), ops.sin(angles)
        if attention_factor != 1.0:  # YaRN scales cos and sin (so the logits)
            cos, sin = cos * attention_factor, sin * attention_factor
        x = ops.cast(inputs, "float32")
        first, second = ops.split(x, 2, axis=-1)
        rotated = ops.concatenate([-second, first], axis=-1)
        out = x * cos + rotated * sin
        return ops.cast(out, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "max_wavelength": self.max_wavelength,
                "scaling_factor": self.scaling_factor,
                "scaling": self.scaling,
            }
        )
        return config


def relative_position_bucket(
    relative_position, bidirectional=True, num_buckets=32, max_distance=128
):
    """Maps `key_position - query_position` to a T5 bucket id (int32).

    Small distances get a bucket each; larger ones share logarithmically wider
    buckets up to `max_distance`, beyond which all land in the last bucket. When
    `bidirectional`, half the buckets are for keys after the query; otherwise
    (causal) keys after the query all map to bucket 0.
    """
    relative_position = ops.convert_to_tensor(relative_position, "int32")
    buckets = ops.zeros_like(relative_position)
    n = -relative_position
    if bidirectional:
        num_buckets //= 2
        buckets = buckets + ops.cast(n < 0, "int32") * num_buckets
        n = ops.abs(n)
    else:
        n = ops.maximum(n, 0)
    max_exact = num_buckets // 2
    is_small = n < max_exact
    # log() of 0 is never selected below; clamp so no inf reaches the cast.
    scaled = ops.log(ops.cast(ops.maximum(n, 1), "float32") / max_exact) / math.log(
        max_distance / max_exact
    )
    large = max_exact + ops.cast(scaled * (num_buckets - max_exact), "int32")
    large = ops.minimum(large, num_buckets - 1)
    return buckets + ops.where(is_small, n, large)


@keras.saving.register_keras_serializable(package="kzoo")
class RelativePositionBias(keras.layers.Layer):
    """T5's learned, bucketed relative position bias, added to attention logits.

    Computed once per stack and shared by its layers. Returns a float tensor of
    shape `(1, num_heads, query_length, key_length)`.

    Args:
        num_heads: Number of attention heads (one bias per head and bucket).
        num_buckets: Number of relative position buckets.
        max_distance: Distances beyond this share the last bucket.
        bidirectional: `True` for encoders, `False` for causal decoders.
        embeddings_initializer: Initializer of the bias table.

    Example:
    >>> import numpy as np
    >>> bias = RelativePositionBias(num_heads=2)
    >>> tuple(bias(np.zeros((1, 5, 8)), np.zeros((1, 7, 8))).shape)
    (1, 2, 5, 7)

    References:
        Raffel et al., "Exploring the Limits of Transfer Learning with a Unified
        Text-to-Text Transformer", 2020.
    """

    def __init__(
        self,
        num_heads,
        num_buckets=32,
        max_distance=128,
        bidirectional=True,
        embeddings_initializer="glorot_uniform",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.num_buckets = num_buckets
        self.max_distance = max_distance
        self.bidirectional = bidirectional
        self.embeddings_initializer = keras.initializers.get(embeddings_initializer)

    def build(self, query_shape=None, key_shape=None):
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(self.num_buckets, self.num_heads),
            initializer=self.embeddings_initializer,
        )

    def call(self, query, key=None, query_start=0):
        """Bias for `query` positions `query_start..` against all `key` positions."""
        query_length = ops.shape(query)[1]
        key_length = ops.shape(query if key is None else key)[1]
        query_positions = ops.arange(query_length) + query_start
        key_positions = ops.arange(key_length)
        buckets = relative_position_bucket(
            key_positions[None, :] - query_positions[:, None],
            bidirectional=self.bidirectional,
            num_buckets=self.num_buckets,
            max_distance=self.max_distance,
        )
        values = ops.take(ops.convert_to_tensor(self.embeddings), buckets, axis=0)
        bias = ops.transpose(values, (2, 0, 1))[None]
        return ops.cast(bias, self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "num_buckets": self.num_buckets,
                "max_distance": self.max_distance,
                "bidirectional": self.bidirectional,
                **serialized_initializers(self, "embeddings_initializer"),
            }
        )
        return config
