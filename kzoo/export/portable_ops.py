"""Export-time lowering of `keras.ops.slice_update` to ops TF Serving runs without XLA.

On the TensorFlow backend `ops.slice_update` (the KV-cache write and the token
buffer write of every decoding loop) becomes `XlaDynamicUpdateSlice`. That op has
no ordinary CPU/GPU kernel: TensorFlow compiles it with XLA on demand, and TF
Serving disables XLA compilation unless started with
`--xla_cpu_compilation_enabled=true`, so `generate` fails there with "XLA
compilation disabled" (`kzoo check-serving` reproduces that). While the signatures
are traced, `portable_slice_update()` makes `ops.slice_update` a Pad + Select with
the same values (no arithmetic: outputs are bit-identical) and core kernels only.

The patch is process-wide while the context is open: do not trace other Keras
code in other threads meanwhile.
"""

import contextlib

import tensorflow as tf
from keras.src.backend.tensorflow import core as tensorflow_backend


def slice_update(inputs, start_indices, updates):
    """`inputs` with `updates` written at `start_indices`, clamped like XLA's
    dynamic-update-slice so the update always fits.

    Example:
    >>> slice_update(tf.zeros((2, 4), tf.int32), (0, 1), tf.ones((2, 2), tf.int32)).numpy()
    array([[0, 1, 1, 0],
           [0, 1, 1, 0]], dtype=int32)
    >>> slice_update(tf.zeros((1, 3)), (0, 5), tf.ones((1, 2))).numpy()  # Clamped.
    array([[0., 1., 1.]], dtype=float32)
    """
    inputs = tf.convert_to_tensor(inputs)
    updates = tf.cast(updates, inputs.dtype)
    if isinstance(start_indices, (list, tuple)):
        start = tf.stack([tf.cast(index, tf.int32) for index in start_indices])
    else:
        start = tf.cast(start_indices, tf.int32)
    shape, size = tf.shape(inputs), tf.shape(updates)
    start = tf.clip_by_value(start, 0, shape - size)
    paddings = tf.stack([start, shape - size - start], axis=1)
    written = tf.pad(tf.ones_like(updates, tf.bool), paddings)
    return tf.where(written, tf.pad(updates, paddings), inputs)


@contextlib.contextmanager
def portable_slice_update():
    """Within the context, `keras.ops.slice_update` lowers to Pad + Select."""
    original = tensorflow_backend.slice_update
    tensorflow_backend.slice_update = slice_update
    try:
        yield
    finally:
        tensorflow_backend.slice_update = original
