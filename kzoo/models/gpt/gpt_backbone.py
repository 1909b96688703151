"""The GPT-2 backbone: token + learned position embeddings, pre-norm decoder blocks."""

import math

import keras

from kzoo.layers import Dropout, PositionEmbedding, ReversibleEmbedding, TransformerDecoderBlock
from kzoo.layers.cache_buffers import empty_cache
from kzoo.models.functional_model import FunctionalModel, token_inputs


def _normal(stddev):
    return keras.initializers.RandomNormal(stddev=stddev)


@keras.saving.register_keras_serializable(package="kzoo")
class GPTBackbone(FunctionalModel):
    """GPT-2: learned positions, pre-norm blocks, tanh-gelu, final layer norm.

    Takes KerasHub's GPT-2 input dict `{"token_ids", "padding_mask"}` and returns the
    final hidden states `(batch, length, hidden_dim)`. The token embedding is a
    `ReversibleEmbedding`, so a task head can tie the output projection to it.
    Initialisation follows GPT-2: normal(0.02) everywhere, with the projections that
    write into the residual stream scaled by `1 / sqrt(2 * num_layers)`.

    Args:
        vocabulary_size: Number of tokens.
        num_layers: Number of decoder blocks.
        num_heads: Attention heads per block.
        hidden_dim: Width of the residual stream.
        intermediate_dim: Width of the feed-forward hidden layer.
        dropout: Dropout on embeddings, attention and residual branches.
        max_sequence_length: Number of learned positions.
        layer_norm_epsilon: Epsilon of every layer norm.
        activation: Feed-forward activation: GPT-2's tanh `"gelu_approximate"`,
            or `"gelu"` (exact) or `"relu"` (checkpoints that say so).
        tie_embedding_weights: Whether the output projection is the token
            embedding (GPT-2) or a separate matrix (`token_embedding`'s
            `reverse_embeddings`).
        dtype: Dtype policy, e.g. `"mixed_bfloat16"`.

    Example:
    >>> import numpy as np
    >>> backbone = GPTBackbone(vocabulary_size=50, num_layers=2, num_heads=2,
    ...                        hidden_dim=16, intermediate_dim=32,
    ...                        max_sequence_length=8)
    >>> out = backbone({"token_ids": np.ones((1, 8), "int32"),
    ...                 "padding_mask": np.ones((1, 8), "int32")})
    >>> tuple(out.shape)
    (1, 8, 16)

    References:
        Radford et al., "Language Models are Unsupervised Multitask Learners", 2019.
    """

    CALIBRATES_BY_BLOCKS = True  # `kzoo quantize --calibration` (GPTQ)

    def __init__(
        self,
        vocabulary_size,
        num_layers,
        num_heads,
        hidden_dim,
        intermediate_dim,
        dropout=0.0,
        max_sequence_length=1024,
        layer_norm_epsilon=1e-5,
        activation="gelu_approximate",
        tie_embedding_weights=True,
        dtype=None,
        **kwargs,
    ):
        # === Layers ===
        self.token_embedding = ReversibleEmbedding(
            vocabulary_size,
            hidden_dim,
            tie_weights=tie_embedding_weights,
            embeddings_initializer=_normal(0.02),
            dtype=dtype,
            name="token_embedding",
        )
        self.position_embedding = PositionEmbedding(
            max_sequence_length, initializer=_normal(0.02), dtype=dtype, name="position_embedding"
        )
        self.embeddings_dropout = Dropout(dropout, dtype=dtype, name="embeddings_dropout")
        self.transformer_layers = [
            TransformerDecoderBlock(
                num_heads=num_heads,
                intermediate_dim=intermediate_dim,
                activation=activation,
                dropout=dropout,
                norm_first=True,
                norm_epsilon=layer_norm_epsilon,
                kernel_initializer=_normal(0.02),
                output_kernel_initializer=_normal(0.02 / math.sqrt(2 * num_layers)),
                dtype=dtype,
                name=f"transformer_layer_{i}",
            )
            for i in range(num_layers)
        ]
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=dtype, name="layer_norm"
        )

        # === Functional Model ===
        inputs = token_inputs("token_ids", "padding_mask")
        x = self.embed(inputs["token_ids"])
        for block in self.transformer_layers:
            x = block(x, decoder_padding_mask=inputs["padding_mask"])
        super().__init__(inputs=inputs, outputs=self.layer_norm(x), dtype=dtype, **kwargs)

        # === Config ===
        self._store_config(locals())

    def embed(self, token_ids, start_index=0, training=None):
        """Token plus position embeddings for positions `start_index..`."""
        tokens = self.token_embedding(token_ids)
        x = tokens + self.position_embedding(tokens, start_index=start_index)
        return self.embeddings_dropout(x, training=training)

    @property
    def head_dim(self):
        return self.hidden_dim // self.num_heads

    def call_with_cache(self, token_ids, cache, cache_update_index):
        """Runs `token_ids` at positions `cache_update_index..` against `cache`.

        Args:
            token_ids: `(batch, length)` int tokens.
            cache: The list of `empty_cache()` (or of a previous call): one
                `(batch, 2, max_length, num_heads, head_dim)` tensor per layer.
            cache_update_index: Position of the first token.

        Returns:
            `(hidden_states, cache)` with the cache updated at those positions.
        """
        x = self.embed(token_ids, start_index=cache_update_index)
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
        """One zero key/value cache per layer, `(batch, 2, max_length, num_heads,
        head_dim)`. Separate tensors (not one stacked tensor) let every decoding
        step write its new entries in place instead of re-stacking the layers."""
        shape = (batch_size, 2, max_length, self.num_heads, self.head_dim)
        return [empty_cache(shape, self.compute_dtype) for _ in range(self.num_layers)]
