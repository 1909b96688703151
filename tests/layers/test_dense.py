"""kzoo's `Dense`: a kernel stored by rows for serving computes what Keras' does."""

import numpy as np
import pytest

from kzoo.layers.dense import Dense


@pytest.mark.parametrize("shape", [(3, 5), (2, 4, 5), (1, 1, 5)])
def test_a_kernel_stored_by_rows_gives_the_same_outputs(shape):
    layer = Dense(7, activation="gelu")
    inputs = np.random.default_rng(0).normal(size=shape).astype("float32")
    expected = np.asarray(layer(inputs))
    kernel = np.asarray(layer.kernel)
    assert layer.store_kernel_by_rows()
    assert tuple(layer.kernel.shape) == kernel.shape  # the same variable, reshaped
    np.testing.assert_array_equal(np.asarray(layer.kernel).reshape(7, 5), kernel.T)
    np.testing.assert_allclose(np.asarray(layer(inputs)), expected, rtol=1e-6, atol=1e-6)
    assert layer.store_kernel_by_rows()  # a second call changes nothing
    np.testing.assert_allclose(np.asarray(layer(inputs)), expected, rtol=1e-6, atol=1e-6)


def test_a_kernel_stored_by_rows_is_not_saved(tmp_path):
    import keras

    model = keras.Sequential([keras.Input((5,)), Dense(3)])
    model.layers[0].store_kernel_by_rows()
    with pytest.raises(ValueError, match="stored by rows for serving"):
        model.save(tmp_path / "rows.keras")


@pytest.mark.parametrize("variant", ["int8", "lora"])
def test_quantized_and_lora_layers_keep_their_kernels(variant):
    layer = Dense(4)
    layer.build((None, 6))
    if variant == "int8":
        layer.quantize("int8")
    else:
        layer.enable_lora(2)
    inputs = np.ones((2, 6), "float32")
    expected = np.asarray(layer(inputs))
    assert not layer.store_kernel_by_rows()
    np.testing.assert_array_equal(np.asarray(layer(inputs)), expected)
