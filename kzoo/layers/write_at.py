"""Writing a slice of a fixed-size buffer at a position, on any backend and server."""

import keras
from keras import ops


def write_at(buffer, update, index, axis=1):
    """Returns `buffer` with `update` written at position `index` of `axis`.

    The KV caches and the token buffers of every decoding loop are updated this
    way, once per generated token, so the write should cost what the update
    costs, not what the buffer costs. JAX gets `dynamic_update_slice`. On
    TensorFlow, `keras.ops.slice_update` lowers to `XlaDynamicUpdateSlice`, which
    has no kernel outside XLA (TF Serving runs without XLA by default), so
    TensorFlow gets a scatter of the update's elements (`TensorScatterUpdate`: an
    ordinary kernel; in place when XLA compiles a decoding loop, at most one
    buffer copy without XLA). An earlier gather-and-select computed every element
    of the buffer at every write, which made the per-token cost of cached
    decoding grow with the buffer's length.

    Args:
        buffer: Tensor with at least `axis + 1` dimensions.
        update: Tensor shaped like `buffer` except along `axis`, where it has
            `update_length <= buffer.shape[axis]` entries.
        index: Scalar position of the update's first entry along `axis`; the
            caller keeps `index + update_length <= buffer.shape[axis]`.
        axis: The axis written along (1 for `(batch, length, ...)` buffers, 2
            for `(batch, 2, length, heads, head_dim)` key/value caches).

    Example:
    >>> import numpy as np
    >>> buffer = np.zeros((1, 5), "int32")
    >>> np.asarray(write_at(buffer, np.array([[7, 8]], "int32"), 2)).tolist()
    [[0, 0, 7, 8, 0]]
    """
    update = ops.cast(update, buffer.dtype)
    if keras.backend.backend() == "jax":
        start = [0] * len(buffer.shape)
        start[axis] = index
        return ops.slice_update(buffer, tuple(start), update)
    # One index row (i_0, .., i_axis) per written slice of the trailing dims.
    leading = ops.shape(update)[: axis + 1]
    grids = ops.meshgrid(*[ops.arange(size) for size in leading], indexing="ij")
    grids[axis] = grids[axis] + ops.cast(index, grids[axis].dtype)
    indices = ops.stack([ops.reshape(grid, (-1,)) for grid in grids], axis=1)
    trailing = tuple(update.shape[axis + 1 :])
    return ops.scatter_update(buffer, indices, ops.reshape(update, (-1,) + trailing))
