"""The key/value cache buffers of decoding: made and written in one place, so that
an exporter can store them differently.

Every decoding loop (GPT, Llama, seq2seq, T5) makes its caches with
`empty_cache` and every `MultiHeadAttention` writes its new keys/values with
`write_cache`. By default these are `ops.zeros` and `write_at`: functional
tensors, on every backend. Inside `stored_with(storage)` they call `storage`
instead. The TensorFlow SavedModel export traces its decoding without XLA that
way (`kzoo.export.in_place_cache`), so that each token's write updates the cache
in place instead of copying it, which only the export can promise: it owns the
whole decoding loop, and nothing else reads a cache after the loop writes it.
"""

import contextlib
import contextvars

from keras import ops

from kzoo.layers.write_at import write_at


class CacheStorage:
    """How decoding makes and writes its caches (the default: functional
    tensors). Subclasses override both methods together."""

    def zeros(self, shape, dtype):
        """A zero cache of `shape` and `dtype`."""
        return ops.zeros(shape, dtype)

    def write(self, cache, update, index, axis):
        """`cache` with `update` written at position `index` of `axis` (see
        `kzoo.layers.write_at.write_at`)."""
        return write_at(cache, update, index, axis=axis)


_DEFAULT = CacheStorage()
_STORAGE = contextvars.ContextVar("kzoo_cache_storage", default=None)


def empty_cache(shape, dtype):
    """A zero key/value cache of `shape` and `dtype`, made by the storage in use."""
    return (_STORAGE.get() or _DEFAULT).zeros(shape, dtype)


def write_cache(cache, update, index, axis):
    """Writes `update` into `cache` at `index` of `axis` with the storage in use.

    Example:
    >>> import numpy as np
    >>> cache = empty_cache((1, 2, 4, 1, 1), "float32")
    >>> update = np.ones((1, 2, 1, 1, 1), "float32")
    >>> np.asarray(write_cache(cache, update, 1, axis=2))[0, 0, :, 0, 0].tolist()
    [0.0, 1.0, 0.0, 0.0]
    """
    return (_STORAGE.get() or _DEFAULT).write(cache, update, index, axis)


@contextlib.contextmanager
def stored_with(storage):
    """Makes and writes the caches of decoding traced inside the block with
    `storage` (a `CacheStorage`)."""
    token = _STORAGE.set(storage)
    try:
        yield storage
    finally:
        _STORAGE.reset(token)
