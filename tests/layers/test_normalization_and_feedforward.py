import numpy as np
import pytest

from kzoo.layers import FeedForward, RMSNorm
from kzoo.testing import run_layer_test, to_numpy

X = np.random.default_rng(0).normal(size=(2, 5, 8)).astype("float32")


def test_rms_norm_matches_formula():
    layer, out = run_layer_test(RMSNorm, {"epsilon": 1e-6}, X, expected_output_shape=X.shape)
    expected = X / np.sqrt(np.mean(X**2, axis=-1, keepdims=True) + 1e-6)
    np.testing.assert_allclose(to_numpy(out), expected, rtol=1e-5, atol=1e-6)


def test_rms_norm_is_float32_inside_under_float16():
    # Squares of 1000 overflow float16 (max 65504) unless computed in float32.
    big = np.full((1, 2, 64), 1000.0, "float32")
    out = to_numpy(RMSNorm(dtype="mixed_float16")(big))
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out, 1.0, rtol=1e-3)


def _gelu(x, approximate):
    if approximate:
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))
    from math import erf

    return 0.5 * x * (1 + np.vectorize(erf)(x / np.sqrt(2)))


@pytest.mark.parametrize(
    "activation", ["relu", "gelu", "gelu_approximate", "gated-gelu", "gated-silu"]
)
def test_feedforward_variants_match_numpy(activation):
    layer, out = run_layer_test(
        FeedForward,
        {"intermediate_dim": 16, "activation": activation},
        X,
        expected_output_shape=X.shape,
    )
    w_in, b_in = (to_numpy(w) for w in layer.intermediate_dense.weights)
    hidden = X @ w_in + b_in
    act = {
        "relu": lambda h: np.maximum(h, 0),
        "gelu": lambda h: _gelu(h, False),
        "gelu_approximate": lambda h: _gelu(h, True),
        "gated-gelu": lambda h: _gelu(h, True),
        "gated-silu": lambda h: h / (1 + np.exp(-h)),
    }[activation]
    if activation.startswith("gated"):
        w_g, b_g = (to_numpy(w) for w in layer.gate_dense.weights)
        hidden = act(X @ w_g + b_g) * hidden
    else:
        hidden = act(hidden)
    w_out, b_out = (to_numpy(w) for w in layer.output_dense.weights)
    np.testing.assert_allclose(to_numpy(out), hidden @ w_out + b_out, rtol=1e-4, atol=1e-5)


def test_feedforward_without_bias_and_bad_activation():
    layer = FeedForward(16, activation="gated-gelu", use_bias=False)
    layer(X)
    assert len(layer.weights) == 3
    with pytest.raises(ValueError, match="activation must be one of .* received 'swish'"):
        FeedForward(16, activation="swish")
