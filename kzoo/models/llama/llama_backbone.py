"""The Llama backbone: rotary positions, RMSNorm pre-norm blocks, SwiGLU, grouped-query
attention (also Mistral's sliding window and Qwen2's query/key/value biases)."""

import math

import keras

from kzoo.layers import Dropout, ReversibleEmbedding, RMSNorm, TransformerDecoderBlock
from kzoo.layers.cache_buffers import empty_cache
from kzoo.layers.rope_scaling import rope_type
from kzoo.models.functional_model import FunctionalModel, token_inputs


def _normal(stddev):
    return keras.initializers.RandomNormal(stddev=stddev)


@keras.saving.register_keras_serializable(package="kzoo")
class LlamaBackbone(FunctionalModel):
    """A modern decoder: Llama 2/3, Mistral and Qwen2 in one backbone.

    Token embeddings (no position embedding: rotary positions inside attention),
    then pre-norm blocks of RMSNorm, causal self-attention with
    `num_key_value_heads` key/value heads and a SwiGLU feed-forward network
    (`silu(x W_gate) * (x W_up)`, then `W_down`), and a final RMSNorm. Takes
    `{"token_ids", "padding_mask"}` and returns the final hidden states `(batch,
    length, hidden_dim)`, like `GPTBackbone`, and has the same cached decoding
    (`call_with_cache`, `empty_cache`), so `LlamaCausalLM` generates, trains
    and exports as a GPT does. The cache holds the key/value heads only:
    `num_heads / num_key_value_heads` times less than full multi-head attention.
    Initialisation is GPT-2's (normal(0.02), residual projections scaled by `1 /
    sqrt(2 * num_layers)`), so the two families compare at equal size.

    Args:
        vocabulary_size: Number of tokens.
        num_layers: Number of decoder blocks.
        num_heads: Query heads per block.
        hidden_dim: Width of the residual stream.
        intermediate_dim: Width of the SwiGLU hidden layer.
        num_key_value_heads: Key/value heads (grouped-query attention; 1 is
            multi-query); defaults to `num_heads`. Must divide it.
        head_dim: Features per head; defaults to `hidden_dim // num_heads`.
        rope_theta: The rotary base wavelength.
        rope_scaling: A Hugging Face `rope_scaling` dict (`rope_type` `"linear"`,
            `"llama3"` or `"yarn"` with its keys; `kzoo.layers.rope_scaling`), or None.
        layer_norm_epsilon: Epsilon of every RMSNorm (`rms_norm_eps`).
        dropout: Dropout on embeddings, attention and residual branches.
        max_sequence_length: Longest sequence decoded (the generation buffer).
        tie_embedding_weights: Whether the output projection is the token
            embedding or a separate matrix (`token_embedding`'s
            `reverse_embeddings`, Hugging Face's `lm_head`).
        attention_bias: Whether the query/key/value projections have biases
            (Qwen2).
        attention_output_bias: Whether the attention output projection has a
            bias; defaults to `attention_bias`; Qwen2 has none.
        feedforward_bias: Whether the feed-forward projections have biases.
        sliding_window: How many keys (itself included) each query sees at
            most (Mistral); None: all before it.
        dtype: Dtype policy, e.g. `"mixed_bfloat16"`.

    Example:
    >>> import numpy as np
    >>> backbone = LlamaBackbone(vocabulary_size=50, num_layers=2, num_heads=4,
    ...                          num_key_value_heads=2, hidden_dim=16,
    ...                          intermediate_dim=32, max_sequence_length=8)
    >>> out = backbone({"token_ids": np.ones((1, 8), "int32"),
    ...                 "padding_mask": np.ones((1, 8), "int32")})
    >>> tuple(out.shape)
    (1, 8, 16)
    >>> [tuple(c.shape) for c in backbone.empty_cache(batch_size=1, max_length=8)][0]
    (1, 2, 8, 2, 4)

    References:
        Touvron et al., "Llama 2: Open Foundation and Fine-Tuned Chat Models", 2023;
        Ainslie et al., "GQA: Training Generalized Multi-Query Transformer Models
        from Multi-Head Checkpoints", 2023; Shazeer, "GLU Variants Improve
        Transformer", 2020.
    """

    CALIBRATES_BY_BLOCKS = True  # `kzoo quantize --calibration` (GPTQ)

    def __init__(
        self,
        vocabulary_size,
        num_layers,
        num_heads,
        hidden_dim,
        intermediate_dim,
        num_key_value_heads=None,
        head_dim=None,
        rope_theta=10000.0,
        rope_scaling=None,
        layer_norm_epsilon=1e-6,
        dropout=0.0,
        max_sequence_length=2048,
        tie_embedding_weights=True,
        attention_bias=False,
        attention_output_bias=None,
        feedforward_bias=False,
        sliding_window=None,
        dtype=None,
        **kwargs,
    ):
        num_key_value_heads = num_key_value_heads or num_heads
        head_dim = head_dim or hidden_dim // num_heads
        if attention_output_bias is None:
            attention_output_bias = attention_bias
        rope_type(rope_scaling)  # one clear error for a bad `rope_scaling`
        rope_scaling = None if rope_scaling is None else dict(rope_scaling)

        # === Layers ===
        self.token_embedding = ReversibleEmbedding(
            vocabulary_size,
            hidden_dim,
            tie_weights=tie_embedding_weights,
            embeddings_initializer=_normal(0.02),
            dtype=dtype,
            name="token_embedding",
        )
        self.embeddings_dropout = Dropout(dropout, dtype=dtype, name="embeddings_dropout")
        self.transformer_layers = [
            TransformerDecoderBlock(
                num_heads=num_heads,
                num_key_value_heads=num_key_value_heads,
                key_dim=head_dim,
                intermediate_dim=intermediate_dim,
                activation="gated-silu",
                dropout=dropout,
                norm_first=True,
                normalization="rms_norm",
                norm_epsilon=layer_norm_epsilon,
                use_bias=feedforward_bias,
                attention_bias=attention_bias,
                attention_output_bias=attention_output_bias,
                rotary_max_wavelength=rope_theta,
                rotary_scaling=rope_scaling,
                sliding_window=sliding_window,
                kernel_initializer=_normal(0.02),
                output_kernel_initializer=_normal(0.02 / math.sqrt(2 * num_layers)),
                dtype=dtype,
                name=f"transformer_layer_{i}",
            )
            for i in range(num_layers)
        ]
        self.layer_norm = RMSNorm(epsilon=layer_norm_epsilon, dtype=dtype, name="layer_norm")

        # === Functional Model ===
        inputs = token_inputs("token_ids", "padding_mask")
        x = self.embed(inputs["token_ids"])
        for block in self.transformer_layers:
            x = block(x, decoder_padding_mask=inputs["padding_mask"])
        super().__init__(inputs=inputs, outputs=self.layer_norm(x), dtype=dtype, **kwargs)

        # === Config ===
        self._store_config(locals())

    def embed(self, token_ids, start_index=0, training=None):
        """The token embeddings (positions enter attention as rotations);
        `start_index` is accepted for the interface `GPTBackbone` shares."""
        return self.embeddings_dropout(self.token_embedding(token_ids), training=training)

    def call_with_cache(self, token_ids, cache, cache_update_index):
        """Runs `token_ids` at positions `cache_update_index..` against `cache`.

        Args:
            token_ids: `(batch, length)` int tokens.
            cache: The list of `empty_cache()` (or of a previous call): one
                `(batch, 2, max_length, num_key_value_heads, head_dim)` tensor
                per layer.
            cache_update_index: Position of the first token.

        Returns:
            `(hidden_states, cache)` with the cache updated at those positions.
        """
        x = self.embed(token_ids)
        layer_caches = []
        for block, layer_cache in zip(self.transformer_layers, cache):
            x, layer_cache = block(
                x,
                self_attention_cache=layer_cache,
                self_attention_cache_update_index=cache_update_index,
            )
            layer_caches.append(layer_cache)
        return self.layer_norm(x), layer_caches

    def empty_cache(self, batch_size, max_length):
        """One zero key/value cache per layer, `(batch, 2, max_length,
        num_key_value_heads, head_dim)`: the key/value heads only, one tensor per
        layer so that each decoding step writes in place."""
        shape = (batch_size, 2, max_length, self.num_key_value_heads, self.head_dim)
        return [empty_cache(shape, self.compute_dtype) for _ in range(self.num_layers)]
