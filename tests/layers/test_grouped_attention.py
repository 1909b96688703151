"""Grouped-query attention, separate output bias and sliding windows in
`MultiHeadAttention` and `TransformerDecoderBlock`."""

import numpy as np
import pytest

from kzoo.layers import MultiHeadAttention, TransformerDecoderBlock, causal_mask
from kzoo.layers.attention import record_attention
from kzoo.testing import run_layer_test, to_numpy

HIDDEN, HEADS, HEAD_DIM, LENGTH = 16, 4, 4, 6
RNG = np.random.default_rng(0)
X = RNG.normal(size=(2, LENGTH, HIDDEN)).astype("float32")


def grouped_and_repeated(num_key_value_heads, **options):
    """A grouped layer, and a full multi-head one whose key/value heads are the
    grouped layer's heads repeated (query head h gets key/value head h // groups)."""
    grouped = MultiHeadAttention(
        HEADS, HEAD_DIM, num_key_value_heads=num_key_value_heads, **options
    )
    full = MultiHeadAttention(HEADS, HEAD_DIM, **options)
    grouped(X), full(X)
    groups = HEADS // num_key_value_heads
    for name in ("query_dense", "key_dense", "value_dense", "output_dense"):
        weights = []
        for w in getattr(grouped, name).weights:
            w = to_numpy(w)
            if name in ("key_dense", "value_dense"):  # (..., kv_heads * dim) -> repeated
                w = w.reshape(w.shape[:-1] + (num_key_value_heads, HEAD_DIM))
                w = np.repeat(w, groups, axis=-2).reshape(w.shape[:-2] + (-1,))
            weights.append(w)
        getattr(full, name).set_weights(weights)
    return grouped, full


@pytest.mark.parametrize("num_key_value_heads", [1, 2])
def test_grouped_heads_equal_full_attention_with_repeated_heads(num_key_value_heads):
    grouped, full = grouped_and_repeated(num_key_value_heads)
    assert tuple(grouped.key_dense.kernel.shape) == (HIDDEN, num_key_value_heads * HEAD_DIM)
    np.testing.assert_allclose(
        to_numpy(grouped(X, use_causal_mask=True)),
        to_numpy(full(X, use_causal_mask=True)),
        atol=1e-5,
    )
    # Decoding steps read the cache's key/value heads without repeating them.
    cache = np.zeros((2, 2, LENGTH, num_key_value_heads, HEAD_DIM), "float32")
    steps = []
    for t in range(LENGTH):
        out, cache = grouped(X[:, t : t + 1], cache=cache, cache_update_index=t,
                             use_causal_mask=True)  # fmt: skip
        steps.append(to_numpy(out))
    assert tuple(cache.shape) == (2, 2, LENGTH, num_key_value_heads, HEAD_DIM)
    np.testing.assert_allclose(
        np.concatenate(steps, 1), to_numpy(full(X, use_causal_mask=True)), atol=1e-5
    )


def test_grouped_attention_records_one_map_per_query_head():
    grouped, _ = grouped_and_repeated(1)
    with record_attention(grouped) as records:
        grouped(X, use_causal_mask=True)
    assert tuple(records[grouped][0].shape) == (2, HEADS, LENGTH, LENGTH)


def test_grouped_attention_round_trips_and_rejects_uneven_groups():
    run_layer_test(
        MultiHeadAttention,
        {"num_heads": HEADS, "key_dim": HEAD_DIM, "num_key_value_heads": 2, "sliding_window": 3},
        X,
        call_kwargs={"use_causal_mask": True},
        expected_output_shape=(2, LENGTH, HIDDEN),
    )
    with pytest.raises(ValueError, match="num_key_value_heads: 3 must divide num_heads 4"):
        MultiHeadAttention(HEADS, HEAD_DIM, num_key_value_heads=3)


def test_query_key_value_biases_without_an_output_bias():
    """Qwen2's layout: biased query/key/value projections, unbiased output."""
    layer = MultiHeadAttention(HEADS, HEAD_DIM, use_bias=True, output_bias=False)
    layer(X)
    projections = (layer.query_dense, layer.key_dense, layer.value_dense)
    assert [len(dense.weights) for dense in projections] == [2, 2, 2]
    assert len(layer.output_dense.weights) == 1
    llama = MultiHeadAttention(HEADS, HEAD_DIM, use_bias=False)
    llama(X)
    assert len(llama.weights) == 4  # four kernels
    block = TransformerDecoderBlock(
        HEADS, 32, use_bias=False, attention_bias=True, attention_output_bias=False
    )
    block(X)
    assert block.self_attention.use_bias and not block.self_attention.output_bias
    assert not block.feedforward.use_bias


def test_sliding_window_mask():
    mask = to_numpy(causal_mask(5, 5, sliding_window=3)).astype(int)
    expected = np.array([[int(0 <= q - k < 3) for k in range(5)] for q in range(5)])
    np.testing.assert_array_equal(mask, expected)
    # A decoding step at position 6 of an 8-position cache sees keys 4, 5 and 6.
    step = to_numpy(causal_mask(1, 8, query_start=6, sliding_window=3)).astype(int)
    np.testing.assert_array_equal(step, [[0, 0, 0, 0, 1, 1, 1, 0]])


def test_sliding_window_attention_ignores_keys_outside_the_window():
    layer = MultiHeadAttention(HEADS, HEAD_DIM, num_key_value_heads=2, sliding_window=2)
    with record_attention(layer) as records:
        out = to_numpy(layer(X, use_causal_mask=True))
    probabilities = to_numpy(records[layer][0])
    allowed = np.tril(np.ones((LENGTH, LENGTH))) * np.triu(np.ones((LENGTH, LENGTH)), -1)
    assert np.all(probabilities[..., allowed == 0] == 0)
    assert np.all(probabilities[..., allowed == 1] > 0)
    # Changing the tokens out of the window of the last position leaves it unchanged.
    changed = X.copy()
    changed[:, : LENGTH - 2] = 0.0
    np.testing.assert_allclose(
        to_numpy(layer(changed, use_causal_mask=True))[:, -1], out[:, -1], atol=1e-5
    )
    # The cached decoding steps see the same window.
    cache = np.zeros((2, 2, LENGTH, 2, HEAD_DIM), "float32")
    steps = []
    for t in range(LENGTH):
        step, cache = layer(X[:, t : t + 1], cache=cache, cache_update_index=t,
                            use_causal_mask=True)  # fmt: skip
        steps.append(to_numpy(step))
    np.testing.assert_allclose(np.concatenate(steps, 1), out, atol=1e-5)
