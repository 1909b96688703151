"""Multi-head attention: masks, additive bias, rotary positions and a KV cache."""

import contextlib
import contextvars

import keras
from keras import ops

from kzoo.layers.dropout import Dropout
from kzoo.layers.initializers import (
    ATTENTION_INITIALIZERS,
    kernel_initializers,
    serialized_initializers,
)
from kzoo.layers.position import RotaryEmbedding
from kzoo.layers.write_at import write_at


def causal_mask(query_length, key_length, query_start=0):
    """Boolean `(query_length, key_length)`: key `j` is visible to query `i` iff
    `j <= query_start + i`."""
    query_positions = ops.arange(query_length) + query_start
    return ops.arange(key_length)[None, :] <= query_positions[:, None]


def merge_masks(
    query_length,
    key_length,
    padding_mask=None,
    attention_mask=None,
    use_causal_mask=False,
    query_start=0,
):
    """Combines padding, explicit and causal masks into one boolean mask.

    Args:
        padding_mask: `(batch, key_length)`, true for real key tokens.
        attention_mask: `(batch, query_length, key_length)`, true where allowed.
        use_causal_mask: Whether queries may only see keys at or before them.
        query_start: Absolute position of the first query (cached decoding).

    Returns:
        `None` when nothing is masked, else a boolean tensor broadcastable to
        `(batch, query_length, key_length)`.
    """
    mask = None
    if padding_mask is not None:
        mask = ops.cast(padding_mask, "bool")[:, None, :]
    if attention_mask is not None:
        explicit = ops.cast(attention_mask, "bool")
        mask = explicit if mask is None else ops.logical_and(mask, explicit)
    if use_causal_mask:
        causal = causal_mask(query_length, key_length, query_start)[None]
        mask = causal if mask is None else ops.logical_and(mask, causal)
    return mask


@keras.saving.register_keras_serializable(package="kzoo")
class MultiHeadAttention(keras.layers.Layer):
    """Multi-head scaled dot-product attention, self or cross.

    Computes `softmax(Q K^T * scale + bias + mask) V` per head, with the logits and
    softmax in float32 under mixed precision. Without attention dropout it calls
    `keras.ops.dot_product_attention`, so JAX on GPU gets the fused kernel; on
    TensorFlow the same math runs as batched matmuls (faster than that op's
    einsums without XLA). A single query position (a decoding step) attends with
    products and sums over the cache's own layout, which reads the cache once
    instead of transposing all of it for a matmul.

    Incremental decoding uses a fixed-size cache of shape
    `(batch, 2, max_length, num_heads, key_dim)` (keys, then values). With
    `cache_update_index`, the new keys/values are written at that index and the
    query sees all cached positions up to its own (the causal mask is offset by the
    index). With a cache but no index, the cache is read as is: precomputed
    cross-attention keys/values (see `compute_key_value_cache`). Fixed shapes keep
    the decoding loop compilable under XLA and exportable.

    Args:
        num_heads: Number of attention heads.
        key_dim: Size of each head for queries and keys.
        value_dim: Size of each head for values; defaults to `key_dim`.
        output_dim: Width of the output; defaults to the query's width.
        dropout: Dropout rate on the attention probabilities.
        use_bias: Whether the projections have biases (T5 has none).
        scale: Logit scale; defaults to `1 / sqrt(key_dim)` (T5 uses 1.0).
        rotary_max_wavelength: If set, rotary position embedding is applied to
            queries and keys of self-attention.
        kernel_initializer: Initializer of the query/key/value kernels.
        output_kernel_initializer: Initializer of the output kernel; defaults to
            `kernel_initializer`.
        query_kernel_initializer: Initializer of the query kernel; defaults to
            `kernel_initializer`. T5 folds the logit scale into it.

    Example:
    >>> import numpy as np
    >>> attention = MultiHeadAttention(num_heads=2, key_dim=4)
    >>> x = np.random.rand(2, 5, 8).astype("float32")
    >>> tuple(attention(x, use_causal_mask=True).shape)
    (2, 5, 8)
    """

    def __init__(
        self,
        num_heads,
        key_dim,
        value_dim=None,
        output_dim=None,
        dropout=0.0,
        use_bias=True,
        scale=None,
        rotary_max_wavelength=None,
        kernel_initializer="glorot_uniform",
        output_kernel_initializer=None,
        query_kernel_initializer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.key_dim = key_dim
        self.value_dim = value_dim or key_dim
        self.output_dim = output_dim
        self.dropout = dropout
        self.use_bias = use_bias
        self.scale = scale
        self.rotary_max_wavelength = rotary_max_wavelength
        self.kernel_initializer, self.output_kernel_initializer, self.query_kernel_initializer = (
            kernel_initializers(
                kernel_initializer, output_kernel_initializer, query_kernel_initializer
            )
        )

        self.query_dense = self._make_dense(
            num_heads * key_dim, self.query_kernel_initializer, "query"
        )
        self.key_dense = self._make_dense(num_heads * key_dim, self.kernel_initializer, "key")
        self.value_dense = self._make_dense(
            num_heads * self.value_dim, self.kernel_initializer, "value"
        )
        self.dropout_layer = Dropout(dropout, dtype=self.dtype_policy)
        self.rotary = None
        if rotary_max_wavelength:
            self.rotary = RotaryEmbedding(
                rotary_max_wavelength, dtype=self.dtype_policy, name="rotary"
            )

    def _make_dense(self, units, initializer, name):
        return keras.layers.Dense(
            units,
            use_bias=self.use_bias,
            kernel_initializer=initializer.clone(),
            dtype=self.dtype_policy,
            name=name,
        )

    def build(self, query_shape, value_shape=None, key_shape=None):
        value_shape = value_shape or query_shape
        key_shape = key_shape or value_shape
        self.query_dense.build(query_shape)
        self.key_dense.build(key_shape)
        self.value_dense.build(value_shape)
        self.output_dense = self._make_dense(
            self.output_dim or query_shape[-1], self.output_kernel_initializer, "output"
        )
        self.output_dense.build(tuple(query_shape[:-1]) + (self.num_heads * self.value_dim,))

    def _split_heads(self, x, head_dim):
        return ops.reshape(x, ops.shape(x)[:-1] + (self.num_heads, head_dim))

    def compute_key_value_cache(self, value, key=None):
        """Projects `key`/`value` once: `(batch, 2, length, num_heads, key_dim)`.

        Cross-attention in a decoding loop reads this instead of re-projecting
        the encoder output at every step.
        """
        key = value if key is None else key
        keys = self._split_heads(self.key_dense(key), self.key_dim)
        values = self._split_heads(self.value_dense(value), self.value_dim)
        return ops.stack([keys, values], axis=1)

    def call(
        self,
        query,
        value=None,
        key=None,
        padding_mask=None,
        attention_mask=None,
        use_causal_mask=False,
        attention_bias=None,
        cache=None,
        cache_update_index=None,
        training=None,
    ):
        """Attends from `query` to `value` (self-attention when `value` is None).

        Returns the output, or `(output, cache)` when a cache is passed.
        `padding_mask` masks keys (`(batch, key_length)`); with a cache it covers
        all cache positions.
        """
        reads_cache = cache is not None and cache_update_index is None
        is_self_attention = value is None and not reads_cache
        start = 0 if cache_update_index is None else cache_update_index
        queries = self._split_heads(self.query_dense(query), self.key_dim)
        if reads_cache:
            keys, values = cache[:, 0], cache[:, 1]
        else:
            source = query if value is None else value
            keys = self._split_heads(self.key_dense(source if key is None else key), self.key_dim)
            values = self._split_heads(self.value_dense(source), self.value_dim)
        if self.rotary is not None and is_self_attention:
            queries = self.rotary(queries, start_index=start)
            keys = self.rotary(keys, start_index=start)
        if cache is not None and cache_update_index is not None:
            # One write of the new entries (the cache itself is never copied).
            cache = write_at(cache, ops.stack([keys, values], axis=1), cache_update_index, axis=2)
            keys, values = cache[:, 0], cache[:, 1]

        mask = merge_masks(
            ops.shape(queries)[1],
            ops.shape(keys)[1],
            padding_mask=padding_mask,
            attention_mask=attention_mask,
            use_causal_mask=use_causal_mask,
            query_start=start,
        )
        output = self._attend(queries, keys, values, mask, attention_bias, training)
        output = self.output_dense(ops.reshape(output, ops.shape(output)[:-2] + (-1,)))
        return output if cache is None else (output, cache)

    def _attend(self, queries, keys, values, mask, bias, training):
        scale = self.scale if self.scale is not None else self.key_dim**-0.5
        mask = None if mask is None else mask[:, None, :, :]
        keys = ops.cast(keys, queries.dtype)
        values = ops.cast(values, queries.dtype)
        recording = [records[self] for records in _RECORDS.get() if self in records]
        if recording:  # Beside the output, which stays exactly what it would be.
            probabilities = self._probabilities(queries, keys, mask, bias, scale)
            for calls in recording:
                calls.append(probabilities)
        if not (training and self.dropout > 0):
            if queries.shape[1] == 1:  # A decoding step.
                return _single_query_attention(queries, keys, values, bias, mask, scale)
            if keras.backend.backend() == "tensorflow":
                return _matmul_attention(queries, keys, values, bias, mask, scale)
            return ops.dot_product_attention(
                queries, keys, values, bias=bias, mask=mask, scale=scale
            )
        # Dropout on the probabilities needs the explicit form; same float32 math.
        probs = self._probabilities(queries, keys, mask, bias, scale)
        probs = self.dropout_layer(ops.cast(probs, queries.dtype), training=training)
        return ops.einsum("bnts,bsnh->btnh", probs, values)

    @staticmethod
    def _probabilities(queries, keys, mask, bias, scale):
        """float32 `softmax(Q K^T * scale + bias, masked)`: `(batch, heads, query, key)`."""
        logits = ops.einsum("btnh,bsnh->bnts", queries, keys)
        logits = ops.cast(logits, "float32") * scale
        if bias is not None:
            logits = logits + ops.cast(bias, "float32")
        if mask is not None:
            logits = ops.where(mask, logits, -1e9)
        return ops.softmax(logits, axis=-1)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "key_dim": self.key_dim,
                "value_dim": self.value_dim,
                "output_dim": self.output_dim,
                "dropout": self.dropout,
                "use_bias": self.use_bias,
                "scale": self.scale,
                "rotary_max_wavelength": self.rotary_max_wavelength,
                **serialized_initializers(self, *ATTENTION_INITIALIZERS),
            }
        )
        return config


# Keras' TensorFlow `dot_product_attention` fills masked logits with this.
_LARGE_NEGATIVE = -0.7 * 3.38953e38


def _matmul_attention(queries, keys, values, bias, mask, scale):
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


def _single_query_attention(queries, keys, values, bias, mask, scale):
    """Attention of one query position (a decoding step) as products and sums
    over the keys' and values' own `(batch, length, heads, head_dim)` layout.

    Batched matmuls want head-major operands, so they transpose the whole KV
    cache, a copy of every layer's cache at every generated token (XLA
    materializes it); here the cache is read once, by reductions that XLA fuses
    with the products. Float32 throughout (the matmul path rounds the
    probabilities to the compute dtype first); same masking and bias as
    `_matmul_attention`.
    """
    keys = ops.cast(keys, "float32")
    logits = ops.sum(ops.cast(queries, "float32") * keys, axis=-1)  # (batch, key, heads)
    logits = ops.transpose(logits, (0, 2, 1))[:, :, None, :] * ops.cast(scale, "float32")
    if bias is not None:
        logits = logits + ops.cast(ops.cast(bias, queries.dtype), "float32")
    if mask is not None:
        logits = ops.where(mask, logits, _LARGE_NEGATIVE)
    probabilities = ops.softmax(logits, axis=-1)  # (batch, heads, 1, key)
    weights = ops.transpose(probabilities[:, :, 0, :], (0, 2, 1))[..., None]
    output = ops.sum(weights * ops.cast(values, "float32"), axis=1, keepdims=True)
    return ops.cast(output, queries.dtype)


# The `{layer: [probabilities, ...]}` of each active `record_attention`.
_RECORDS = contextvars.ContextVar("kzoo_attention_records", default=())


def attention_layers(layer):
    """Every `MultiHeadAttention` under `layer` (itself included), in build order."""
    return [
        sublayer
        for sublayer in layer._flatten_layers(include_self=True)
        if isinstance(sublayer, MultiHeadAttention)
    ]


@contextlib.contextmanager
def record_attention(layer):
    """Records the attention probabilities of every `MultiHeadAttention` under
    `layer` (a built layer or model) while the block runs.

    Yields `{attention_layer: [probabilities, ...]}`, one entry per layer found,
    with one float32 tensor of shape `(batch, num_heads, query_length,
    key_length)` appended per call: `softmax(Q K^T * scale + bias)` with masked
    keys at exactly 0, before attention dropout. Outputs are unchanged (computed
    exactly as without recording); the probabilities are computed beside them,
    so recording costs one more attention per layer. Record
    eager calls only: a call traced inside `tf.function` or `jax.jit` would
    record symbolic tensors.

    Example:
    >>> import numpy as np
    >>> attention = MultiHeadAttention(num_heads=2, key_dim=4)
    >>> x = np.random.rand(1, 3, 8).astype("float32")
    >>> with record_attention(attention) as records:
    ...     _ = attention(x, use_causal_mask=True)
    >>> probabilities = keras.ops.convert_to_numpy(records[attention][0])
    >>> probabilities.shape
    (1, 2, 3, 3)
    >>> bool(np.allclose(probabilities.sum(-1), 1.0)), float(probabilities[0, 0, 0, 2])
    (True, 0.0)
    """
    records = {sublayer: [] for sublayer in attention_layers(layer)}
    token = _RECORDS.set(_RECORDS.get() + (records,))
    try:
        yield records
    finally:
        _RECORDS.reset(token)
