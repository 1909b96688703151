"""Writing a slice of a fixed-size buffer at a position, on any backend and server."""

import keras
from keras import ops


def write_at(buffer, update, index):
    """Returns `buffer` with `update` written at position `index` of axis 1.

    The KV cache and the token buffers of every decoding loop are updated this
    way. `keras.ops.slice_update` would be the obvious op, but on TensorFlow it
    lowers to `XlaDynamicUpdateSlice`, which has no kernel outside XLA: TF Serving
    (XLA off by default) could not run an exported `generate`. Here TensorFlow
    gets a gather and a select (ordinary kernels, same values); JAX keeps
    `dynamic_update_slice`, which it compiles natively.

    Args:
        buffer: `(batch, length, ...)` tensor.
        update: `(batch, update_length, ...)` tensor, `update_length <= length`.
        index: Scalar position of `update[:, 0]` in the buffer; the caller keeps
            `index + update_length <= length`.

    Example:
    >>> import numpy as np
    >>> buffer = np.zeros((1, 5), "int32")
    >>> np.asarray(write_at(buffer, np.array([[7, 8]], "int32"), 2)).tolist()
    [[0, 0, 7, 8, 0]]
    """
    update = ops.cast(update, buffer.dtype)
    if keras.backend.backend() == "jax":
        start = (0, index) + (0,) * (len(buffer.shape) - 2)
        return ops.slice_update(buffer, start, update)
    length, update_length = ops.shape(buffer)[1], ops.shape(update)[1]
    offsets = ops.arange(length) - index
    inside = ops.logical_and(offsets >= 0, offsets < update_length)
    gathered = ops.take(update, ops.clip(offsets, 0, update_length - 1), axis=1)
    inside = ops.reshape(inside, (1, -1) + (1,) * (len(buffer.shape) - 2))
    return ops.where(inside, gathered, buffer)
