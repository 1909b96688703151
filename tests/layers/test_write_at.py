import numpy as np
import pytest

from kzoo.layers.write_at import write_at
from kzoo.testing import to_numpy


@pytest.mark.parametrize("index, update_length", [(0, 2), (3, 2), (4, 1), (0, 5)])
def test_write_at_matches_numpy(index, update_length):
    buffer = np.arange(2 * 5 * 3, dtype="float32").reshape(2, 5, 3)
    update = -np.arange(1, 2 * update_length * 3 + 1, dtype="float32").reshape(2, update_length, 3)
    expected = buffer.copy()
    expected[:, index : index + update_length] = update
    np.testing.assert_array_equal(to_numpy(write_at(buffer, update, index)), expected)


def test_write_at_casts_to_the_buffer_dtype():
    out = write_at(np.zeros((1, 3), "int32"), np.array([[2.0]], "float32"), 1)
    assert to_numpy(out).tolist() == [[0, 2, 0]] and to_numpy(out).dtype == np.int32


@pytest.mark.parametrize("index", [0, 2, 4])
def test_write_at_along_axis_2_matches_numpy(index):
    # A key/value cache (batch, 2, length, heads, head_dim) gets both halves at once.
    buffer = np.arange(2 * 2 * 6 * 2 * 3, dtype="float32").reshape(2, 2, 6, 2, 3)
    update = -np.arange(1, 2 * 2 * 2 * 2 * 3 + 1, dtype="float32").reshape(2, 2, 2, 2, 3)
    expected = buffer.copy()
    expected[:, :, index : index + 2] = update
    np.testing.assert_array_equal(to_numpy(write_at(buffer, update, index, axis=2)), expected)


def test_write_at_needs_no_xla_kernel_on_tensorflow():
    # TF Serving runs exported decoding loops without XLA: no Xla* op may appear.
    import keras

    if keras.backend.backend() != "tensorflow":
        pytest.skip("TensorFlow graphs only")
    import tensorflow as tf

    fn = tf.function(
        lambda b, u, i: write_at(b, u, i, axis=2),
        input_signature=[
            tf.TensorSpec([None, 2, 6, 3]),
            tf.TensorSpec([None, 2, None, 3]),
            tf.TensorSpec([], tf.int32),
        ],
    )
    graph = fn.get_concrete_function().graph
    ops_used = {op.type for op in graph.get_operations()}
    assert "TensorScatterUpdate" in ops_used
    assert not [op for op in ops_used if op.startswith("Xla")]
    buffer, update = np.zeros((1, 2, 6, 3), "float32"), np.ones((1, 2, 2, 3), "float32")
    expected = buffer.copy()
    expected[:, :, 3:5] = 1
    np.testing.assert_array_equal(fn(buffer, update, tf.constant(3)).numpy(), expected)
