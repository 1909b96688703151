"""`run_layer_test`: the checks every kzoo layer must pass, in the spirit of
KerasHub's `run_layer_test` (keras + numpy only, so they run on TensorFlow and JAX)."""

import os
import tempfile

import keras
import numpy as np

from kzoo.testing.outputs import assert_all_close, to_numpy


def _call(layer, inputs, call_kwargs):
    if isinstance(inputs, dict):
        return layer(**inputs, **call_kwargs)
    return layer(inputs, **call_kwargs)


def _symbolic_inputs(inputs):
    def symbolic(array, name=None):
        return keras.Input(
            shape=array.shape[1:], batch_size=array.shape[0], dtype=str(array.dtype), name=name
        )

    if isinstance(inputs, dict):
        return {name: symbolic(array, name) for name, array in inputs.items()}
    return symbolic(inputs)


def run_layer_test(
    layer_cls,
    init_kwargs,
    inputs,
    call_kwargs=None,
    expected_output_shape=None,
    run_mixed_precision=True,
    mixed_precision_atol=5e-2,
):
    """Runs the checks every kzoo layer must pass.

    1. It builds and runs; output shapes match `expected_output_shape` (a shape, or a
       structure of shapes matching the output).
    2. `get_config` -> `from_config` gives the same config and, with the same
       weights, the same outputs.
    3. A functional model around it saves to `.keras` and loads back with
       `safe_mode=True`, giving the same outputs.
    4. Under the `mixed_bfloat16` policy, with the same weights, it returns
       bfloat16 outputs close to the float32 ones (softmax and norms stay float32).

    Args:
        layer_cls: The layer class.
        init_kwargs: Constructor arguments.
        inputs: A NumPy array, or a dict of call-argument name -> array.
        call_kwargs: Non-tensor call arguments (flags, indices).
        expected_output_shape: Expected shape(s) of the output.
        run_mixed_precision: Whether to run check 4.
        mixed_precision_atol: Tolerance of check 4 (relative, and absolute per unit
            of the largest float32 output value).

    Returns:
        The layer and its float32 outputs, for further assertions.
    """
    call_kwargs = call_kwargs or {}
    layer = layer_cls(**init_kwargs)
    outputs = _call(layer, inputs, call_kwargs)
    if expected_output_shape is not None:
        shapes = keras.tree.map_structure(lambda t: tuple(t.shape), outputs)
        assert shapes == expected_output_shape, (shapes, expected_output_shape)

    config = layer.get_config()
    restored = layer_cls.from_config(config)
    _call(restored, inputs, call_kwargs)
    assert restored.get_config() == config
    restored.set_weights(layer.get_weights())
    assert_all_close(_call(restored, inputs, call_kwargs), outputs)

    symbolic = _symbolic_inputs(inputs)
    model = keras.Model(symbolic, _call(layer, symbolic, call_kwargs))
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "round_trip.keras")
        model.save(path)
        loaded = keras.saving.load_model(path, safe_mode=True)
    assert_all_close(loaded(inputs), outputs)

    if run_mixed_precision:
        mixed = layer_cls(**init_kwargs, dtype="mixed_bfloat16")
        _call(mixed, inputs, call_kwargs)
        mixed.set_weights(layer.get_weights())
        assert all(w.dtype == "float32" for w in mixed.weights)
        mixed_outputs = _call(mixed, inputs, call_kwargs)
        # The main output (the first; caches may follow) is in the compute dtype.
        main = keras.tree.flatten(mixed_outputs)[0]
        assert keras.backend.standardize_dtype(main.dtype) == "bfloat16", main.dtype
        # bfloat16 keeps ~3 significant digits of every intermediate, so its
        # absolute error grows with the values' scale (a small output next to
        # large ones, after a norm, can be off by a step of the large ones).
        scale = max(1.0, *(float(np.max(np.abs(to_numpy(t)))) for t in keras.tree.flatten(outputs)))
        assert_all_close(
            mixed_outputs, outputs, atol=mixed_precision_atol * scale, rtol=mixed_precision_atol
        )
    return layer, outputs
