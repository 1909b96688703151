"""Dropout whose mask comes from a counter-based integer hash."""

import keras
from keras import ops

from kzoo.layers.hash_random import hash_bits24

_BITS = 1 << 24


@keras.saving.register_keras_serializable(package="kzoo")
class Dropout(keras.layers.Dropout):
    """`keras.layers.Dropout` with a cheaper random mask.

    Same arguments, config, seeding and semantics as the Keras layer (in training
    each element is zeroed with probability `rate` and the rest are scaled by
    `1 / (1 - rate)`; outside training it is the identity). Only the mask's
    random source differs: instead of `keras.random.dropout` (Philox on
    TensorFlow, ThreeFry on JAX) each element hashes its position with a key
    drawn from the layer's `SeedGenerator` (`kzoo.layers.hash_random`). Under
    XLA on the 2-core CPU a GPT training step with dropout 0.1 took 34 ms with
    it against 47 ms with Keras' dropout (BENCHMARKS.md); the masks are as random for dropout's purpose (tests check the rate,
    independence between neighbours and between calls) but are a different
    stream from Keras', so a seed gives different masks than
    `keras.layers.Dropout` would.

    Args:
        rate: Fraction of the inputs to drop, in `[0, 1]`.
        noise_shape: As in `keras.layers.Dropout`: the mask's shape, broadcast
            against the inputs (`None` entries take the input's size).
        seed: Seed of the layer's `SeedGenerator`.

    Example:
    >>> import numpy as np
    >>> layer = Dropout(0.5, seed=1)
    >>> out = keras.ops.convert_to_numpy(layer(np.ones((4, 1000)), training=True))
    >>> sorted(set(out.ravel().tolist()))
    [0.0, 2.0]
    >>> bool(0.45 < (out == 0).mean() < 0.55)
    True
    """

    def call(self, inputs, training=False):
        if not (training and self.rate > 0):
            return inputs
        if self.rate >= 1:
            return ops.zeros_like(inputs)
        shape = self._mask_shape(inputs)
        drop_below = min(int(round(self.rate * _BITS)), _BITS - 1)
        keep = hash_bits24(self.seed_generator.next(), shape) >= drop_below
        scale = ops.cast(1.0 / (1.0 - self.rate), inputs.dtype)
        return ops.where(keep, inputs * scale, ops.zeros_like(inputs))

    def _mask_shape(self, inputs):
        shape = ops.shape(inputs)
        if self.noise_shape is None:
            return shape
        return tuple(
            size if size is not None else shape[axis] for axis, size in enumerate(self.noise_shape)
        )
