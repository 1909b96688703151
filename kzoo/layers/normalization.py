"""Root-mean-square layer normalization (T5, LLaMA)."""

import keras
from keras import ops

from kzoo.layers.initializers import serialized_initializers


@keras.saving.register_keras_serializable(package="kzoo")
class RMSNorm(keras.layers.Layer):
    """Scales by the root mean square of the features; no centring, no bias.

    `y = x / sqrt(mean(x^2) + epsilon) * scale`, computed in float32 whatever the
    compute dtype, so it is safe under mixed precision.

    Args:
        epsilon: Added to the mean square before the square root.
        scale_initializer: Initializer of the per-feature scale.

    Example:
    >>> import numpy as np
    >>> norm = RMSNorm()
    >>> tuple(norm(np.ones((2, 3, 8), "float32")).shape)
    (2, 3, 8)

    References:
        Zhang and Sennrich, "Root Mean Square Layer Normalization", 2019.
    """

    def __init__(self, epsilon=1e-6, scale_initializer="ones", **kwargs):
        super().__init__(**kwargs)
        self.epsilon = epsilon
        self.scale_initializer = keras.initializers.get(scale_initializer)
        self.supports_masking = True

    def build(self, input_shape):
        self.scale = self.add_weight(
            name="scale", shape=(input_shape[-1],), initializer=self.scale_initializer
        )

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        variance = ops.mean(ops.square(x), axis=-1, keepdims=True)
        x = x * ops.rsqrt(variance + self.epsilon)
        return ops.cast(x * ops.cast(self.scale, "float32"), self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {"epsilon": self.epsilon, **serialized_initializers(self, "scale_initializer")}
        )
        return config


def make_norm(normalization, epsilon, dtype, name):
    """Returns the normalization layer a Transformer block asks for by name."""
    if normalization == "layer_norm":
        return keras.layers.LayerNormalization(epsilon=epsilon, dtype=dtype, name=name)
    if normalization == "rms_norm":
        return RMSNorm(epsilon=epsilon, dtype=dtype, name=name)
    raise ValueError(
        f"normalization must be 'layer_norm' or 'rms_norm'; received {normalization!r}"
    )
