"""The attention computations `MultiHeadAttention` picks between: batched matmuls
(TensorFlow), one decoding step over the cache's own layout, and the repetition of
grouped key/value heads."""

from keras import ops

# Keras' TensorFlow `dot_product_attention` fills masked logits with this.
_LARGE_NEGATIVE = -0.7 * 3.38953e38


def matmul_attention(queries, keys, values, bias, mask, scale):
    """`keras.ops.dot_product_attention` as the TensorFlow backend computes it
    (float32 logits and softmax, masked logits at a large negative, bias in the
    compute dtype), with batched matmuls on head-major layouts instead of its two
    einsums: without XLA, oneDNN's einsum costs about twice the transposes and
    matmuls (measured on decoding steps of the exported `generate`); under XLA
    both compile to the same dots."""
    logits = ops.matmul(ops.transpose(queries, (0, 2, 1, 3)), ops.transpose(keys, (0, 2, 3, 1)))
    logits = ops.cast(logits, "float32") * ops.cast(scale, "float32")
    if bias is not None:
        logits = logits + ops.cast(ops.cast(bias, queries.dtype), "float32")
    if mask is not None:
        logits = ops.where(mask, logits, _LARGE_NEGATIVE)
    probabilities = ops.cast(ops.softmax(logits, axis=-1), values.dtype)
    output = ops.matmul(probabilities, ops.transpose(values, (0, 2, 1, 3)))
    return ops.transpose(output, (0, 2, 1, 3))


def repeat_heads(x, groups):
    """`(batch, length, kv_heads, dim)` -> `(batch, length, kv_heads * groups, dim)`,
    each head repeated `groups` times in place (Llama's `repeat_kv`)."""
    return x if groups == 1 else ops.repeat(x, groups, axis=2)


def single_query_attention(queries, keys, values, bias, mask, scale):
    """Attention of one query position (a decoding step) as products and sums
    over the keys' and values' own `(batch, length, kv_heads, head_dim)` layout.

    Batched matmuls want head-major operands, so they transpose the whole KV
    cache, a copy of every layer's cache at every generated token (XLA
    materializes it); here the cache is read once, by reductions that XLA fuses
    with the products. Grouped query heads are a reshape of the query, so the
    cache's key/value heads are never repeated. Float32 throughout (the matmul
    path rounds the probabilities to the compute dtype first); same masking and
    bias as `matmul_attention`.
    """
    batch, num_heads, head_dim = ops.shape(queries)[0], queries.shape[2], queries.shape[3]
    kv_heads = keys.shape[2]
    groups = num_heads // kv_heads
    grouped = ops.reshape(ops.cast(queries, "float32"), (batch, 1, kv_heads, groups, head_dim))
    keys = ops.cast(keys, "float32")[:, :, :, None, :]
    logits = ops.sum(grouped * keys, axis=-1)  # (batch, key, kv_heads, groups)
    logits = ops.reshape(logits, (batch, -1, num_heads))
    logits = ops.transpose(logits, (0, 2, 1))[:, :, None, :] * ops.cast(scale, "float32")
    if bias is not None:
        logits = logits + ops.cast(ops.cast(bias, queries.dtype), "float32")
    if mask is not None:
        logits = ops.where(mask, logits, _LARGE_NEGATIVE)
    probabilities = ops.softmax(logits, axis=-1)  # (batch, heads, 1, key)
    weights = ops.transpose(probabilities[:, :, 0, :], (0, 2, 1))
    weights = ops.reshape(weights, (batch, -1, kv_heads, groups, 1))
    values = ops.cast(values, "float32")[:, :, :, None, :]
    output = ops.sum(weights * values, axis=1)  # (batch, kv_heads, groups, value_dim)
    output = ops.reshape(output, (batch, 1, num_heads, values.shape[-1]))
    return ops.cast(output, queries.dtype)
