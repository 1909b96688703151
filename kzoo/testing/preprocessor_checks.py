"""`run_preprocessor_test`: the checks every kzoo preprocessor must pass, inside
the task model that carries it."""

import os
import tempfile

import keras
import numpy as np


def _arrays(outputs):
    return {key: np.asarray(value) for key, value in outputs.items()}


def assert_same_inputs(actual, expected):
    """Two model input dicts hold the same keys and exactly the same values."""
    actual, expected = _arrays(actual), _arrays(expected)
    assert sorted(actual) == sorted(expected), (sorted(actual), sorted(expected))
    for key in expected:
        np.testing.assert_array_equal(actual[key], expected[key], err_msg=key)


def run_preprocessor_test(model, *texts):
    """Checks that `model.preprocessor` travels with `model`.

    1. The preprocessor turns `texts` into a dict of the model's inputs (every
       key one of `model.input`'s, the model runs on them).
    2. `get_config` -> `from_config` gives the same inputs for the same text.
    3. `model.save` (`.keras`) and `load_model(safe_mode=True)`: the loaded model
       has a preprocessor of the same class and config, `loaded.tokenizer` is its
       tokenizer, and it gives the same inputs for the same text.

    Args:
        model: A task model with a `preprocessor`.
        *texts: The preprocessor's arguments (lists of strings).

    Returns:
        The model inputs (a dict of NumPy arrays).
    """
    import kzoo.preprocessing  # noqa: F401  (registers the preprocessors)

    preprocessor = model.preprocessor
    assert preprocessor is not None, f"{type(model).__name__} has no preprocessor"
    inputs = preprocessor(*texts)
    assert set(inputs) <= set(model.input), (sorted(inputs), sorted(model.input))
    model(inputs)

    restored = type(preprocessor).from_config(preprocessor.get_config())
    assert_same_inputs(restored(*texts), inputs)

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "round_trip.keras")
        model.save(path)
        loaded = keras.saving.load_model(path, safe_mode=True, compile=False)
    assert type(loaded.preprocessor) is type(preprocessor)
    config = {k: v for k, v in preprocessor.get_config().items() if k != "tokenizer"}
    loaded_config = loaded.preprocessor.get_config()
    assert {k: loaded_config[k] for k in config} == config
    assert loaded.tokenizer is loaded.preprocessor.tokenizer
    assert_same_inputs(loaded.preprocessor(*texts), inputs)
    return _arrays(inputs)
