"""Multi-head attention: masks, additive bias, rotary positions, grouped key/value
heads and a KV cache."""

import contextlib
import contextvars

import keras
from keras import ops

from kzoo.layers.attention_kernels import matmul_attention, repeat_heads, single_query_attention
from kzoo.layers.attention_masks import causal_mask, merge_masks  # noqa: F401 (re-exported)
from kzoo.layers.cache_buffers import write_cache
from kzoo.layers.dense import Dense
from kzoo.layers.dropout import Dropout
from kzoo.layers.initializers import (
    ATTENTION_INITIALIZERS,
    kernel_initializers,
    serialized_initializers,
)
from kzoo.layers.position import RotaryEmbedding
from kzoo.layers.rope_scaling import rope_type


@keras.saving.register_keras_serializable(package="kzoo")
class MultiHeadAttention(keras.layers.Layer):
    """Multi-head scaled dot-product attention, self or cross, with grouped
    key/value heads.

    Computes `softmax(Q K^T * scale + bias + mask) V` per head, with the logits and
    softmax in float32 under mixed precision. Without attention dropout it calls
    `keras.ops.dot_product_attention`, so JAX on GPU gets the fused kernel; on
    TensorFlow the same math runs as batched matmuls (faster than that op's
    einsums without XLA). A single query position (a decoding step) attends with
    products and sums over the cache's own layout, which reads the cache once
    instead of transposing all of it for a matmul.

    With `num_key_value_heads` below `num_heads` (grouped-query attention; 1 is
    multi-query), each key/value head serves `num_heads // num_key_value_heads`
    consecutive query heads (Llama's `repeat_kv`), and only the key/value heads
    are projected, cached and read.

    Incremental decoding uses a fixed-size cache of shape
    `(batch, 2, max_length, num_key_value_heads, key_dim)` (keys, then values). With
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
        use_bias: Whether the query/key/value projections have biases (T5 and
            Llama have none, Qwen2 has them).
        scale: Logit scale; defaults to `1 / sqrt(key_dim)` (T5 uses 1.0).
        rotary_max_wavelength: If set, rotary position embedding is applied to
            queries and keys of self-attention.
        num_key_value_heads: Key/value heads; defaults to `num_heads`. Must
            divide `num_heads`.
        output_bias: Whether the output projection has a bias; defaults to
            `use_bias` (Qwen2: biased query/key/value, unbiased output).
        sliding_window: With a causal mask, how many keys (itself included)
            each query sees at most (Mistral); None: all before it.
        rotary_scaling: A Hugging Face `rope_scaling` dict for the rotary
            frequencies (see `kzoo.layers.RotaryEmbedding`).
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
    >>> grouped = MultiHeadAttention(num_heads=4, key_dim=2, num_key_value_heads=1)
    >>> tuple(grouped(x, use_causal_mask=True).shape), tuple(grouped.key_dense.kernel.shape)
    ((2, 5, 8), (8, 2))
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
        num_key_value_heads=None,
        output_bias=None,
        sliding_window=None,
        rotary_scaling=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        num_key_value_heads = num_key_value_heads or num_heads
        if num_heads % num_key_value_heads:
            raise ValueError(
                f"num_key_value_heads: {num_key_value_heads} must divide num_heads {num_heads}"
            )
        self.num_heads = num_heads
        self.num_key_value_heads = num_key_value_heads
        self.output_bias = use_bias if output_bias is None else output_bias
        self.sliding_window = sliding_window
        rope_type(rotary_scaling)  # one clear error for a bad `rope_scaling`
        self.rotary_scaling = None if rotary_scaling is None else dict(rotary_scaling)
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
        self.key_dense = self._make_dense(
            num_key_value_heads * key_dim, self.kernel_initializer, "key"
        )
        self.value_dense = self._make_dense(
            num_key_value_heads * self.value_dim, self.kernel_initializer, "value"
        )
        self.dropout_layer = Dropout(dropout, dtype=self.dtype_policy)
        self.rotary = None
        if rotary_max_wavelength:
            self.rotary = RotaryEmbedding(
                rotary_max_wavelength,
                scaling=self.rotary_scaling,
                dtype=self.dtype_policy,
                name="rotary",
            )

    def _make_dense(self, units, initializer, name, use_bias=None):
        return Dense(
            units,
            use_bias=self.use_bias if use_bias is None else use_bias,
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
            self.output_dim or query_shape[-1],
            self.output_kernel_initializer,
            "output",
            use_bias=self.output_bias,
        )
        self.output_dense.build(tuple(query_shape[:-1]) + (self.num_heads * self.value_dim,))

    def _split_heads(self, x, head_dim, num_heads=None):
        return ops.reshape(x, ops.shape(x)[:-1] + (num_heads or self.num_heads, head_dim))

    def compute_key_value_cache(self, value, key=None):
        """Projects `key`/`value` once: `(batch, 2, length, num_key_value_heads,
        key_dim)`.

        Cross-attention in a decoding loop reads this instead of re-projecting
        the encoder output at every step.
        """
        key = value if key is None else key
        keys = self._split_heads(self.key_dense(key), self.key_dim, self.num_key_value_heads)
        values = self._split_heads(
            self.value_dense(value), self.value_dim, self.num_key_value_heads
        )
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
            heads = self.num_key_value_heads
            keys = self._split_heads(
                self.key_dense(source if key is None else key), self.key_dim, heads
            )
            values = self._split_heads(self.value_dense(source), self.value_dim, heads)
        if self.rotary is not None and is_self_attention:
            queries = self.rotary(queries, start_index=start)
            keys = self.rotary(keys, start_index=start)
        if cache is not None and cache_update_index is not None:
            # One write of the new entries (the cache itself is never copied).
            cache = write_cache(
                cache, ops.stack([keys, values], axis=1), cache_update_index, axis=2
            )
            keys, values = cache[:, 0], cache[:, 1]

        mask = merge_masks(
            ops.shape(queries)[1],
            ops.shape(keys)[1],
            padding_mask=padding_mask,
            attention_mask=attention_mask,
            use_causal_mask=use_causal_mask,
            query_start=start,
            sliding_window=self.sliding_window,
        )
        output = self._attend(queries, keys, values, mask, attention_bias, training)
        output = self.output_dense(ops.reshape(output, ops.shape(output)[:-2] + (-1,)))
        return output if cache is None else (output, cache)

    def _attend(self, queries, keys, values, mask, bias, training):
        scale = self.scale if self.scale is not None else self.key_dim**-0.5
        mask = None if mask is None else mask[:, None, :, :]
        keys = ops.cast(keys, queries.dtype)
        values = ops.cast(values, queries.dtype)
        groups = self.num_heads // self.num_key_value_heads
        recording = self._recorded()
        if recording:  # Beside the output, which stays exactly what it would be.
            probabilities = self._probabilities(
                queries, repeat_heads(keys, groups), mask, bias, scale
            )
            for calls in recording:
                calls.append(probabilities)
        dropout = training and self.dropout > 0
        if not dropout and queries.shape[1] == 1:  # A decoding step.
            return single_query_attention(queries, keys, values, bias, mask, scale)
        # Query head h reads key/value head h // groups.
        keys, values = repeat_heads(keys, groups), repeat_heads(values, groups)
        if not dropout:
            if keras.backend.backend() == "tensorflow":
                return matmul_attention(queries, keys, values, bias, mask, scale)
            return ops.dot_product_attention(
                queries, keys, values, bias=bias, mask=mask, scale=scale
            )
        # Dropout on the probabilities needs the explicit form; same float32 math.
        probs = self._probabilities(queries, keys, mask, bias, scale)
        probs = self.dropout_layer(ops.cast(probs, queries.dtype), training=training)
        return ops.einsum("bnts,bsnh->btnh", probs, values)

    def _recorded(self):
        """The probability lists of the active `record_attention`s of this layer."""
        return [records[self] for records in _RECORDS.get() if self in records]

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
                "num_key_value_heads": self.num_key_value_heads,
                "output_bias": self.output_bias,
                "sliding_window": self.sliding_window,
                "rotary_scaling": self.rotary_scaling,
            }
        )
        return config


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
