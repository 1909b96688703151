"""Outputs as NumPy and Python values, compared structure by structure.

Backend-agnostic (keras + numpy only), so the same checks run on TensorFlow and JAX.
"""

import keras
import numpy as np


def to_numpy(structure):
    """Converts every tensor in a (nested) structure to a NumPy array.

    Example:
    >>> to_numpy({"x": keras.ops.ones((2,))})
    {'x': array([1., 1.], dtype=float32)}
    """
    return keras.tree.map_structure(keras.ops.convert_to_numpy, structure)


def strings(values):
    """A string output (a tensor or array of UTF-8 bytes, any shape) as a flat list
    of `str`.

    Example:
    >>> strings(np.array([[b"caf\\xc3\\xa9"], [b""]]))
    ['café', '']
    """
    return [v.decode("utf-8") for v in np.asarray(values).ravel().tolist()]


def assert_all_close(actual, expected, atol=1e-5, rtol=1e-5):
    """`np.testing.assert_allclose` over matching nested structures.

    Example:
    >>> assert_all_close({"x": np.array([1.0, 2.0])}, {"x": np.array([1.0, 2.0 + 1e-7])})
    """
    actual, expected = to_numpy(actual), to_numpy(expected)
    keras.tree.assert_same_structure(actual, expected)
    for a, e in zip(keras.tree.flatten(actual), keras.tree.flatten(expected)):
        np.testing.assert_allclose(
            np.asarray(a, "float64"), np.asarray(e, "float64"), atol=atol, rtol=rtol
        )
