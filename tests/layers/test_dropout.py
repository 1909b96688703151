import keras
import numpy as np
import pytest

from kzoo.layers import Dropout
from kzoo.layers.hash_random import hash_bits24
from kzoo.testing import run_layer_test, to_numpy

ONES = np.ones((64, 4096), "float32")


def _kept(layer, inputs=ONES):
    return to_numpy(layer(inputs, training=True)) != 0


def _within(observed, expected, count, sigmas=5):
    """A Bernoulli frequency over `count` draws lies within `sigmas` standard errors."""
    return abs(observed - expected) <= sigmas * np.sqrt(expected * (1 - expected) / count)


def test_is_the_identity_outside_training_and_round_trips():
    x = np.random.default_rng(0).normal(size=(2, 5, 8)).astype("float32")
    _, out = run_layer_test(Dropout, {"rate": 0.3, "seed": 2}, x, expected_output_shape=x.shape)
    np.testing.assert_array_equal(to_numpy(out), x)
    np.testing.assert_array_equal(to_numpy(Dropout(0.0)(x, training=True)), x)


@pytest.mark.parametrize("rate", [0.1, 0.5, 0.9])
def test_drops_at_the_rate_and_scales_the_rest(rate):
    x = np.random.default_rng(1).uniform(1, 2, ONES.shape).astype("float32")
    out = to_numpy(Dropout(rate, seed=0)(x, training=True))
    kept = out != 0
    assert _within(1 - kept.mean(), rate, kept.size), kept.mean()
    np.testing.assert_allclose(out[kept], x[kept] / (1 - rate), rtol=1e-6)


def test_masks_are_independent_between_neighbours_and_between_calls():
    layer = Dropout(0.5, seed=0)
    first, second = _kept(layer), _kept(layer)
    count = first[:, 1:].size
    # P(both kept) = 0.25 for neighbours along either axis and for the same
    # element in two successive calls (a mask is not a shifted copy of the last).
    assert _within((first[:, 1:] & first[:, :-1]).mean(), 0.25, count)
    assert _within((first[1:] & first[:-1]).mean(), 0.25, count)
    assert _within((first & second).mean(), 0.25, first.size)


def test_the_seed_fixes_the_masks():
    np.testing.assert_array_equal(_kept(Dropout(0.5, seed=7)), _kept(Dropout(0.5, seed=7)))
    assert (_kept(Dropout(0.5, seed=7)) != _kept(Dropout(0.5, seed=8))).mean() > 0.4
    keras.utils.set_random_seed(3)
    unseeded = _kept(Dropout(0.5))
    keras.utils.set_random_seed(3)
    np.testing.assert_array_equal(_kept(Dropout(0.5)), unseeded)


def test_noise_shape_broadcasts_the_mask():
    kept = (
        to_numpy(
            Dropout(0.5, noise_shape=(None, 1, 16), seed=0)(
                np.ones((4, 3, 16), "float32"), training=True
            )
        )
        != 0
    )
    assert np.all(kept == kept[:, :1, :])
    assert 0 < kept.mean() < 1


def test_rate_one_drops_everything():
    np.testing.assert_array_equal(to_numpy(Dropout(1.0)(ONES[:2], training=True)), 0.0)


def test_gradient_is_the_scaled_mask():
    layer = Dropout(0.25, seed=0)
    x = keras.Variable(np.ones((8, 32), "float32"))
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            out = layer(x, training=True)
            total = keras.ops.sum(out)
        grad = tape.gradient(total, x)
    else:
        import jax

        with keras.StatelessScope():  # One call: its output and its gradient.
            out, pullback = jax.vjp(lambda v: layer(v, training=True), x.value)
            (grad,) = pullback(keras.ops.ones_like(out))
    np.testing.assert_allclose(to_numpy(grad), to_numpy(out))


def test_hash_bits_are_uniform_over_24_bits():
    bits = to_numpy(hash_bits24(np.array([5, 9], "uint32"), (256, 1024)))
    assert bits.min() >= 0 and bits.max() < 1 << 24
    counts = np.bincount(bits.ravel() >> 20, minlength=16)  # 16 equal bins
    expected = bits.size / 16
    assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected)), counts


def test_every_model_family_draws_its_masks_with_the_hash():
    from kzoo.models import BertBackbone, GPTBackbone, Seq2SeqBackbone, T5Backbone

    sizes = dict(vocabulary_size=32, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16)
    for backbone in (
        GPTBackbone(**sizes, max_sequence_length=8, dropout=0.1),
        BertBackbone(**sizes, max_sequence_length=8),
        Seq2SeqBackbone(**sizes, max_sequence_length=8),
        T5Backbone(**sizes),
    ):
        dropouts = [
            layer for layer in backbone._flatten_layers() if isinstance(layer, keras.layers.Dropout)
        ]
        assert dropouts, type(backbone).__name__
        assert all(isinstance(layer, Dropout) for layer in dropouts), [
            type(layer) for layer in dropouts
        ]
