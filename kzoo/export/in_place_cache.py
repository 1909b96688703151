"""Key/value caches written in place by the SavedModel's decoding without XLA.

Without XLA, TensorFlow cannot update a loop-carried tensor in place: the `While`
loop keeps a reference to it, so `TensorScatterUpdate` (what
`kzoo.layers.write_at` lowers to) copies the layer's whole cache to write one
token. At GPT-2-small size that copy was 15% of the no-XLA export's decoding
time (BENCHMARKS.md, "Where the no-XLA SavedModel's time goes"). XLA makes the
same write in place, so the `--xla` export keeps the functional writes.

`InPlaceCacheStorage` (see `kzoo.layers.cache_buffers`) makes each cache with
the stateful `Empty` op, a buffer of its own per call (never a constant that
grappler could fold, nor one shared by two layers), and writes it with
`InplaceUpdate`, which writes into its input's buffer. That is safe for a cache
of the decoding loop because every read of a cache follows the write that made
it, and the next write depends on the token those reads produced: the only
readers of a cache are the attention layers of the same step.
"""

import functools

import tensorflow as tf

from kzoo.layers.cache_buffers import CacheStorage, stored_with


class InPlaceCacheStorage(CacheStorage):
    """Caches made by `Empty` and written by `InplaceUpdate` (TensorFlow, no XLA).

    Example:
    >>> storage = InPlaceCacheStorage()
    >>> cache = storage.zeros((1, 2, 3, 1, 1), "float32")
    >>> cache = storage.write(cache, tf.ones((1, 2, 1, 1, 1)), 2, axis=2)
    >>> cache[0, :, :, 0, 0].numpy().tolist()
    [[0.0, 0.0, 1.0], [0.0, 0.0, 1.0]]
    """

    def zeros(self, shape, dtype):
        cache = tf.raw_ops.Empty(shape=tf.stack(shape), dtype=tf.as_dtype(dtype), init=True)
        cache.set_shape([d if isinstance(d, int) else None for d in shape])
        return cache

    def write(self, cache, update, index, axis):
        # Rows of the cache seen as (prod(shape[:axis + 1]), *shape[axis + 1:]):
        # a reshape shares the buffer, so the update lands in `cache` itself.
        shape = tf.shape(cache)
        update = tf.cast(update, cache.dtype)
        length = tf.shape(update)[axis]
        leading = tf.reduce_prod(shape[:axis])
        starts = tf.range(leading) * shape[axis] + tf.cast(index, tf.int32)
        rows = tf.reshape(starts[:, None] + tf.range(length)[None, :], [-1])
        trailing = shape[axis + 1 :]
        flat = tf.reshape(cache, tf.concat([[-1], trailing], 0))
        values = tf.reshape(update, tf.concat([[-1], trailing], 0))
        written = tf.reshape(tf.raw_ops.InplaceUpdate(x=flat, i=rows, v=values), shape)
        written.set_shape(cache.shape)
        return written


def with_in_place_cache(fn):
    """`fn`, tracing its decoding with `InPlaceCacheStorage` (wrap it before
    `tf.function` without XLA)."""

    @functools.wraps(fn)
    def traced(*args, **kwargs):
        with stored_with(InPlaceCacheStorage()):
            return fn(*args, **kwargs)

    return traced
