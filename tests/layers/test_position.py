import math

import numpy as np
import pytest

from kzoo.layers import (
    PositionEmbedding,
    RelativePositionBias,
    RotaryEmbedding,
    SinusoidalPositionEncoding,
    relative_position_bucket,
)
from kzoo.testing import assert_all_close, run_layer_test, to_numpy

X = np.random.default_rng(0).normal(size=(2, 6, 8)).astype("float32")


def test_sinusoidal_matches_formula():
    layer, out = run_layer_test(SinusoidalPositionEncoding, {}, X, expected_output_shape=(2, 6, 8))
    out = to_numpy(out)[0]
    for pos in range(6):
        for i in range(4):
            angle = pos / 10000 ** (2 * i / 8)
            assert out[pos, 2 * i] == pytest.approx(math.sin(angle), abs=1e-5)
            assert out[pos, 2 * i + 1] == pytest.approx(math.cos(angle), abs=1e-5)
    shifted = to_numpy(layer(X[:, :2], start_index=3))[0]
    np.testing.assert_allclose(shifted, out[3:5], atol=1e-5)


def test_position_embedding_start_index():
    layer, out = run_layer_test(
        PositionEmbedding, {"sequence_length": 10}, X, expected_output_shape=(2, 6, 8)
    )
    table = to_numpy(layer.position_embeddings)
    np.testing.assert_allclose(to_numpy(out)[1], table[:6])
    np.testing.assert_allclose(to_numpy(layer(X[:, :1], start_index=7))[0, 0], table[7])


def test_rotary_preserves_norm_and_depends_on_relative_position():
    x = np.random.default_rng(1).normal(size=(1, 8, 2, 4)).astype("float32")
    layer, out = run_layer_test(
        RotaryEmbedding, {"max_wavelength": 100}, x, expected_output_shape=(1, 8, 2, 4)
    )
    out = to_numpy(out)
    np.testing.assert_allclose(np.linalg.norm(out, axis=-1), np.linalg.norm(x, axis=-1), rtol=1e-5)
    # Same query/key vectors at every position: <q_m, k_n> depends on m - n only.
    q = np.broadcast_to(x[:, :1], x.shape).copy()
    rq = to_numpy(layer(q))[0, :, 0]
    scores = rq @ rq.T
    np.testing.assert_allclose(np.diag(scores, 1), np.full(7, scores[0, 1]), rtol=1e-4)
    np.testing.assert_allclose(np.diag(scores, 3), np.full(5, scores[0, 3]), rtol=1e-4)
    # Position 0 is not rotated; start_index shifts positions.
    np.testing.assert_allclose(out[:, 0], x[:, 0], atol=1e-6)
    np.testing.assert_allclose(to_numpy(layer(x[:, 3:5], start_index=3)), out[:, 3:5], atol=1e-5)


# (key_position - query_position) -> bucket, computed by hand from the T5 formula:
# bucket = max_exact + floor(log(n / max_exact) / log(max_distance / max_exact)
#          * (num_buckets - max_exact)) for n = distance >= max_exact.
BIDIRECTIONAL_32_128 = {
    0: 0,
    -1: 1,
    -7: 7,
    -8: 8,
    -15: 9,
    -16: 10,
    -127: 15,
    -128: 15,
    -1000: 15,
    1: 17,
    7: 23,
    8: 24,
    15: 25,
    128: 31,
    1000: 31,
}
CAUSAL_32_128 = {0: 0, 5: 0, 100: 0, -1: 1, -15: 15, -16: 16, -20: 17, -64: 26, -127: 31, -200: 31}


@pytest.mark.parametrize(
    "bidirectional,table", [(True, BIDIRECTIONAL_32_128), (False, CAUSAL_32_128)]
)
def test_relative_position_buckets_hand_checked(bidirectional, table):
    positions = np.array(list(table), "int32")
    buckets = to_numpy(relative_position_bucket(positions, bidirectional, 32, 128))
    assert dict(zip(table, buckets.tolist())) == table


def test_relative_position_bias_layer():
    query, key = X[:, :4], X
    layer, out = run_layer_test(
        RelativePositionBias,
        {"num_heads": 3, "num_buckets": 8, "max_distance": 16},
        {"query": query, "key": key},
        expected_output_shape=(1, 3, 4, 6),
    )
    table = to_numpy(layer.embeddings)
    buckets = to_numpy(
        relative_position_bucket(np.arange(6)[None] - np.arange(4)[:, None], True, 8, 16)
    )
    np.testing.assert_allclose(to_numpy(out)[0], np.transpose(table[buckets], (2, 0, 1)))
    # A query at position 2 of a cached decoder sees row 2 of the full bias.
    assert_all_close(layer(query[:, :1], key, query_start=2), to_numpy(out)[:, :, 2:3])
