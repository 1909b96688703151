import itertools

import numpy as np
import pytest

from kzoo.layers import MultiHeadAttention, TransformerDecoderBlock
from kzoo.layers.attention import record_attention
from kzoo.testing import assert_all_close, run_layer_test, to_numpy

BATCH, QUERY_LEN, KEY_LEN, HIDDEN, HEADS, HEAD_DIM = 2, 5, 7, 8, 2, 4


def numpy_attention(layer, query, value, bias=None, mask=None):
    """softmax(Q K^T / sqrt(d) + bias, masked) V with the layer's weights, in NumPy."""

    def project(dense, x, heads=HEADS):
        kernel, bias_ = (to_numpy(w) for w in dense.weights)
        y = x @ kernel + bias_
        return y.reshape(y.shape[:-1] + (heads, -1))

    q = project(layer.query_dense, query)
    k = project(layer.key_dense, value)
    v = project(layer.value_dense, value)
    logits = np.einsum("btnh,bsnh->bnts", q, k) / np.sqrt(q.shape[-1])
    if bias is not None:
        logits = logits + bias
    if mask is not None:
        logits = np.where(mask[:, None], logits, -np.inf)
    logits = logits - logits.max(-1, keepdims=True)
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    out = np.einsum("bnts,bsnh->btnh", probs, v).reshape(query.shape[0], query.shape[1], -1)
    kernel, out_bias = (to_numpy(w) for w in layer.output_dense.weights)
    return out @ kernel + out_bias


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    return {
        "query": rng.normal(size=(BATCH, QUERY_LEN, HIDDEN)).astype("float32"),
        "value": rng.normal(size=(BATCH, KEY_LEN, HIDDEN)).astype("float32"),
        "bias": rng.normal(size=(1, HEADS, QUERY_LEN, QUERY_LEN)).astype("float32"),
        # Second sequence has two padded positions at the end.
        "padding": np.array([[1] * QUERY_LEN, [1] * (QUERY_LEN - 2) + [0, 0]], bool),
        "explicit": rng.random((BATCH, QUERY_LEN, QUERY_LEN)) > 0.3,
    }


@pytest.mark.parametrize(
    "causal,padding,bias,explicit", list(itertools.product([False, True], repeat=4))
)
def test_self_attention_matches_numpy_reference(data, causal, padding, bias, explicit):
    layer = MultiHeadAttention(num_heads=HEADS, key_dim=HEAD_DIM)
    x = data["query"]
    kwargs = {"use_causal_mask": causal}
    mask = np.ones((BATCH, QUERY_LEN, QUERY_LEN), bool)
    # Keep the diagonal visible so no query row is fully masked.
    explicit_mask = data["explicit"] | np.eye(QUERY_LEN, dtype=bool)
    if causal:
        mask &= np.tril(np.ones((QUERY_LEN, QUERY_LEN), bool))
    if padding:
        kwargs["padding_mask"] = data["padding"]
        mask &= data["padding"][:, None, :]
        mask[1, :, 0] = True  # the first key is real, so padded query rows stay defined
    if explicit:
        kwargs["attention_mask"] = explicit_mask
        mask &= explicit_mask
    if bias:
        kwargs["attention_bias"] = data["bias"]
    outputs = layer(x, **kwargs)
    expected = numpy_attention(layer, x, x, data["bias"] if bias else None, mask)
    assert_all_close(outputs, expected, atol=1e-5)


def test_cross_attention_matches_numpy_reference(data):
    layer = MultiHeadAttention(num_heads=HEADS, key_dim=HEAD_DIM)
    padding = np.ones((BATCH, KEY_LEN), bool)
    padding[0, -3:] = False
    outputs = layer(data["query"], value=data["value"], padding_mask=padding)
    mask = np.broadcast_to(padding[:, None, :], (BATCH, QUERY_LEN, KEY_LEN))
    expected = numpy_attention(layer, data["query"], data["value"], mask=mask)
    assert_all_close(outputs, expected, atol=1e-5)


def test_layer_contract_self_attention(data):
    run_layer_test(
        MultiHeadAttention,
        {"num_heads": HEADS, "key_dim": HEAD_DIM, "rotary_max_wavelength": 100},
        data["query"],
        call_kwargs={"use_causal_mask": True},
        expected_output_shape=(BATCH, QUERY_LEN, HIDDEN),
    )


def test_layer_contract_cross_attention_with_padding(data):
    run_layer_test(
        MultiHeadAttention,
        {"num_heads": HEADS, "key_dim": HEAD_DIM, "output_dim": 6, "dropout": 0.1},
        {
            "query": data["query"],
            "value": data["value"],
            "padding_mask": np.ones((BATCH, KEY_LEN), bool),
        },
        expected_output_shape=(BATCH, QUERY_LEN, 6),
    )


@pytest.mark.parametrize("rotary", [None, 100])
def test_causality(data, rotary):
    layer = MultiHeadAttention(HEADS, HEAD_DIM, rotary_max_wavelength=rotary)
    x = data["query"]
    base = to_numpy(layer(x, use_causal_mask=True))
    for t in range(QUERY_LEN - 1):
        changed = x.copy()
        changed[:, t + 1 :] = np.random.default_rng(t).normal(size=changed[:, t + 1 :].shape)
        out = to_numpy(layer(changed, use_causal_mask=True))
        np.testing.assert_allclose(out[:, : t + 1], base[:, : t + 1], atol=1e-6)
        assert not np.allclose(out[:, t + 1 :], base[:, t + 1 :])


def test_padded_positions_do_not_change_real_positions(data):
    layer = MultiHeadAttention(HEADS, HEAD_DIM)
    x, padding = data["query"], data["padding"]
    base = to_numpy(layer(x, padding_mask=padding))
    noisy = x.copy()
    noisy[1, -2:] = 100.0
    out = to_numpy(layer(noisy, padding_mask=padding))
    np.testing.assert_allclose(out[1, :-2], base[1, :-2], atol=1e-5)
    # Without the mask the change would leak into real positions.
    assert not np.allclose(to_numpy(layer(noisy))[1, :-2], to_numpy(layer(x))[1, :-2])


@pytest.mark.parametrize("rotary", [None, 100])
def test_kv_cache_equals_full_pass(data, rotary):
    layer = MultiHeadAttention(HEADS, HEAD_DIM, rotary_max_wavelength=rotary)
    x = data["query"]
    full = to_numpy(layer(x, use_causal_mask=True))
    cache = np.zeros((BATCH, 2, QUERY_LEN, HEADS, HEAD_DIM), "float32")
    # A two-token prefill, then one token at a time.
    out, cache = layer(x[:, :2], use_causal_mask=True, cache=cache, cache_update_index=0)
    steps = [to_numpy(out)]
    for t in range(2, QUERY_LEN):
        out, cache = layer(x[:, t : t + 1], use_causal_mask=True, cache=cache, cache_update_index=t)
        steps.append(to_numpy(out))
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-5)


def test_precomputed_cross_attention_cache(data):
    layer = MultiHeadAttention(HEADS, HEAD_DIM)
    expected = layer(data["query"], value=data["value"])
    cache = layer.compute_key_value_cache(data["value"])
    assert tuple(cache.shape) == (BATCH, 2, KEY_LEN, HEADS, HEAD_DIM)
    out, same_cache = layer(data["query"], cache=cache)
    assert_all_close(out, expected)
    assert_all_close(same_cache, cache)


def test_attention_dropout_is_active_only_in_training(data):
    layer = MultiHeadAttention(HEADS, HEAD_DIM, dropout=0.5)
    x = data["query"]
    inference = to_numpy(layer(x))
    assert_all_close(layer(x, training=False), inference)
    assert not np.allclose(to_numpy(layer(x, training=True)), inference)


def _recorded(layer, *args, **kwargs):
    """`(output, probabilities)` of one eager call under `record_attention`."""
    with record_attention(layer) as records:
        output = layer(*args, **kwargs)
    (probabilities,) = records[layer]
    return to_numpy(output), to_numpy(probabilities)


def test_record_attention_gives_the_probabilities_and_leaves_outputs_unchanged(data):
    layer = MultiHeadAttention(HEADS, HEAD_DIM)
    x, padding = data["query"], data["padding"]
    plain = to_numpy(layer(x, padding_mask=padding, use_causal_mask=True))
    output, probabilities = _recorded(layer, x, padding_mask=padding, use_causal_mask=True)
    np.testing.assert_array_equal(output, plain)
    assert probabilities.shape == (BATCH, HEADS, QUERY_LEN, QUERY_LEN)
    assert probabilities.dtype == np.float32
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-6)
    above_diagonal = ~np.tril(np.ones((QUERY_LEN, QUERY_LEN), bool))
    assert np.all(probabilities[:, :, above_diagonal] == 0.0)
    assert np.all(probabilities[1, :, :, -2:] == 0.0)  # padded keys
    # The reference: softmax of the scaled logits, computed in NumPy.
    q = x @ to_numpy(layer.query_dense.kernel) + to_numpy(layer.query_dense.bias)
    k = x @ to_numpy(layer.key_dense.kernel) + to_numpy(layer.key_dense.bias)
    q, k = (a.reshape(BATCH, QUERY_LEN, HEADS, HEAD_DIM) for a in (q, k))
    logits = np.einsum("btnh,bsnh->bnts", q, k) / np.sqrt(HEAD_DIM)
    mask = ~above_diagonal[None] & padding[:, None, :]
    logits = np.where(mask[:, None], logits, -np.inf)
    expected = np.exp(logits - logits.max(-1, keepdims=True))
    np.testing.assert_allclose(probabilities, expected / expected.sum(-1, keepdims=True), atol=1e-6)


def test_record_attention_finds_every_layer_of_a_block_and_nests(data):
    block = TransformerDecoderBlock(num_heads=HEADS, intermediate_dim=16, cross_attention=True)
    encoder_padding = np.ones((BATCH, KEY_LEN), bool)
    encoder_padding[0, -3:] = False
    block(data["query"], data["value"])  # Built: its attention layers exist.
    with record_attention(block) as outer:
        with record_attention(block.self_attention) as inner:
            block(data["query"], data["value"], encoder_padding_mask=encoder_padding)
    assert list(outer) == [block.self_attention, block.cross_attention_layer]
    assert list(inner) == [block.self_attention]
    assert inner[block.self_attention] == outer[block.self_attention]
    (cross,) = (to_numpy(p) for p in outer[block.cross_attention_layer])
    assert cross.shape == (BATCH, HEADS, QUERY_LEN, KEY_LEN)
    np.testing.assert_allclose(cross.sum(-1), 1.0, atol=1e-6)
    assert np.all(cross[0, :, :, -3:] == 0.0) and np.all(cross[1] > 0.0)
    block(data["query"], data["value"])  # Outside the `with`: not recorded.
    assert len(outer[block.self_attention]) == 1


# (function name, query length, whether it is bit-identical to the op on TensorFlow
# in float32, bfloat16 tolerance): the TensorFlow path of the layer, and the
# decoding-step path (one query position, the cache read in its own layout, float32
# throughout). In bfloat16 the op's einsum and the batched matmul round their
# bfloat16 products alike on some CPUs, not on all (oneDNN picks the kernel by the
# instruction set): within the tolerance, not bit for bit.
ATTENTION_PATHS = [("matmul_attention", 5, True, 2e-2), ("single_query_attention", 1, False, 3e-2)]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("name, query_length, exact_on_tensorflow, bfloat16_atol", ATTENTION_PATHS)
def test_attention_paths_equal_keras_dot_product_attention(
    name, query_length, exact_on_tensorflow, bfloat16_atol, dtype
):
    import keras

    from kzoo.layers import attention_kernels

    rng = np.random.default_rng(1)
    q, k, v = (
        keras.ops.cast(rng.normal(size=(3, length, 4, 8)), dtype) for length in (query_length, 9, 9)
    )
    bias = keras.ops.cast(rng.normal(size=(1, 4, query_length, 9)), dtype)
    mask = rng.random((3, 1, query_length, 9)) > 0.4
    mask[1, 0, 0] = False  # A query that sees no key.
    exact = exact_on_tensorflow and dtype == "float32" and keras.backend.backend() == "tensorflow"
    for b, m in itertools.product((None, bias), (None, mask)):
        expected = keras.ops.dot_product_attention(q, k, v, bias=b, mask=m, scale=0.3)
        actual = getattr(attention_kernels, name)(q, k, v, b, m, 0.3)
        assert keras.backend.standardize_dtype(actual.dtype) == dtype
        expected, actual = (to_numpy(keras.ops.cast(x, "float32")) for x in (expected, actual))
        if exact:
            np.testing.assert_array_equal(actual, expected)
        else:
            atol = 1e-6 if dtype == "float32" else bfloat16_atol
            np.testing.assert_allclose(actual, expected, atol=atol)
