"""Rotary frequencies under `rope_scaling`, against Hugging Face `transformers`
(`ROPE_INIT_FUNCTIONS` of transformers 5.25 for a 16-wide head, printed once and
committed here), and the rotation that applies them."""

import numpy as np
import pytest

from kzoo.layers import RotaryEmbedding
from kzoo.layers.rope_scaling import rotary_frequencies
from kzoo.testing import run_layer_test, to_numpy

LLAMA3 = {
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 64,
}
YARN = {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 64}
YARN_MSCALE = {**YARN, "beta_fast": 16, "beta_slow": 2, "mscale": 1.0, "mscale_all_dim": 0.5}
# (theta, rope_scaling) -> transformers' (inv_freq, attention_factor). The Llama 3
# case has a frequency in each band (kept, blended, divided by the factor); the
# YaRN ones one kept, one on the ramp, the rest interpolated.
TRANSFORMERS = [
    (
        10000.0,
        {"rope_type": "linear", "factor": 4.0},
        [0.25, 0.07905694097280502, 0.02500000037252903, 0.007905694656074047,
         0.0024999999441206455, 0.0007905694656074047, 0.0002500000118743628,
         7.905694656074047e-05],
        1.0,
    ),
    (
        500000.0,
        LLAMA3,
        [1.0, 0.07940301299095154, 0.004700753837823868, 0.0009115831344388425,
         0.00017677668074611574, 3.428102354519069e-05, 6.647869668086059e-06,
         1.289173155782919e-06],
        1.0,
    ),
    (
        10000.0,
        YARN,
        [1.0, 0.23717081546783447, 0.04999999701976776, 0.007905694656074047,
         0.0024999999441206455, 0.0007905694656074047, 0.0002500000118743628,
         7.905694656074047e-05],
        1.138629436111989,
    ),
    (
        10000.0,
        YARN_MSCALE,
        [1.0, 0.19764235615730286, 0.02500000037252903, 0.007905694656074047,
         0.0024999999441206455, 0.0007905694656074047, 0.0002500000118743628,
         7.905694656074047e-05],
        1.0648216253695715,
    ),
]  # fmt: skip


@pytest.mark.parametrize("theta,scaling,expected,attention_factor", TRANSFORMERS)
def test_frequencies_match_transformers(theta, scaling, expected, attention_factor):
    inverse_freq, factor = rotary_frequencies(16, theta, scaling)
    np.testing.assert_allclose(inverse_freq, expected, rtol=1e-6)
    assert factor == pytest.approx(attention_factor, rel=1e-12)


def test_unscaled_frequencies_are_the_rope_formula():
    inverse_freq, factor = rotary_frequencies(16, 10000.0, None)
    np.testing.assert_allclose(inverse_freq, 10000.0 ** -(np.arange(0, 16, 2) / 16), rtol=1e-6)
    assert factor == 1.0
    assert rotary_frequencies(16, 10000.0, {"rope_type": "default"})[1] == 1.0


@pytest.mark.parametrize("scaling", [LLAMA3, YARN])
def test_rotation_uses_the_scaled_frequencies_and_factor(scaling):
    """Output = (x cos(p f) + rotate_half(x) sin(p f)) * attention_factor."""
    x = np.random.default_rng(0).normal(size=(2, 5, 3, 16)).astype("float32")
    layer = RotaryEmbedding(max_wavelength=10000.0, scaling=scaling)
    out = to_numpy(layer(x, start_index=3))
    inverse_freq, factor = rotary_frequencies(16, 10000.0, scaling)
    angles = np.arange(3, 8)[:, None] * inverse_freq[None, :].astype("float64")
    angles = np.concatenate([angles, angles], -1)[None, :, None, :]
    rotated = np.concatenate([-x[..., 8:], x[..., :8]], -1)
    expected = (x * np.cos(angles) + rotated * np.sin(angles)) * factor
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_scaled_rotary_round_trips_its_config():
    x = np.ones((1, 4, 2, 8), "float32")
    run_layer_test(RotaryEmbedding, {"max_wavelength": 500000.0, "scaling": LLAMA3}, x)


@pytest.mark.parametrize(
    "scaling,message",
    [
        ({"rope_type": "dynamic", "factor": 2.0}, r"rope_type: must be one of .*'yarn'"),
        ({"rope_type": "llama3", "factor": 8.0}, r"'llama3' needs \['low_freq_factor'"),
        ({"type": "yarn", "factor": 4.0}, r"'yarn' needs \['original_max_position_embeddings'\]"),
        ("linear", "must be a dict or None"),
    ],
)
def test_bad_scaling_is_one_clear_error(scaling, message):
    with pytest.raises(ValueError, match=message):
        RotaryEmbedding(scaling=scaling)
