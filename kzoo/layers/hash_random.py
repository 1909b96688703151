"""Counter-based random numbers from an integer hash, in `keras.ops` only.

A random value here is a pure function of a key and the element's position, so
the same key gives the same numbers on every backend, under XLA, in an exported
SavedModel and after a resume. They cost a few integer operations per element,
which XLA fuses into the neighbouring kernels; the Philox generator behind
`keras.random` on TensorFlow runs as separate kernels (12.6 ms of a 45 ms
profiled GPT step with dropout 0.1 on the 2-core CPU; see `kzoo.layers.Dropout`).
"""

import math

from keras import ops


def hash_uint32(x):
    """lowbias32: a well-mixed 32-bit integer hash of a `uint32` tensor."""
    x = ops.bitwise_xor(x, ops.right_shift(x, ops.cast(16, "uint32")))
    x = x * ops.cast(0x7FEB352D, "uint32")
    x = ops.bitwise_xor(x, ops.right_shift(x, ops.cast(15, "uint32")))
    x = x * ops.cast(0x846CA68B, "uint32")
    return ops.bitwise_xor(x, ops.right_shift(x, ops.cast(16, "uint32")))


def mix(x, multiplier, offset):
    """Spreads small integers over 32 bits before hashing (the hash alone maps
    0 to 0 and keeps small neighbours correlated)."""
    return hash_uint32(
        ops.cast(x, "uint32") * ops.cast(multiplier, "uint32") + ops.cast(offset, "uint32")
    )


def hash_uniform(seed, step, shape):
    """Uniform floats in (0, 1) of a 2-D `shape`, a pure function of (seed, step)."""
    key = mix(mix(seed, 0x9E3779B9, 0x632BE5AB) + mix(step, 0x85EBCA6B, 0x2545F491), 1, 0)
    rows = mix(ops.arange(shape[0]), 0xC2B2AE35, 0x27D4EB2F)[:, None]
    cols = mix(ops.arange(shape[1]), 0x165667B1, 0x9E3779B1)[None, :]
    bits = hash_uint32(hash_uint32(key + rows) ^ cols)
    bits = ops.cast(ops.right_shift(bits, ops.cast(8, "uint32")), "float32")
    return (bits + 0.5) / float(1 << 24)


def hash_bits24(seed, shape):
    """Independent uniform integers in `[0, 2**24)` (int32) of any `shape`.

    Args:
        seed: Two integers (a `keras.random.SeedGenerator` state): the key.
        shape: The output shape; dimensions may be tensors (dynamic shapes on
            TensorFlow).

    Each element hashes its flat position plus one key, then that hash xor the
    other key, so masks drawn with different seeds are not shifted copies of
    each other. Positions repeat after `2**31` elements. The two keys come
    from one vector operation on `seed` (few kernels: without XLA each
    operation is one).
    """
    keys = mix(seed, (0x9E3779B9, 0x85EBCA6B), (0x632BE5AB, 0x2545F491))
    positions = ops.reshape(ops.arange(math.prod(shape), dtype="int32"), shape)
    bits = hash_uint32(hash_uint32(ops.cast(positions, "uint32") + keys[0]) ^ keys[1])
    return ops.cast(ops.right_shift(bits, ops.cast(8, "uint32")), "int32")
