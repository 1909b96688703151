"""The BERT encoder: token + position + segment embeddings, post-norm blocks, pooler."""

import keras
from keras import ops

from kzoo.layers import Dropout, PositionEmbedding, ReversibleEmbedding, TransformerEncoderBlock
from kzoo.models.functional_model import FunctionalModel, token_inputs


def _truncated_normal():
    return keras.initializers.TruncatedNormal(stddev=0.02)


def dense_head(units, backbone, name):
    """A BERT task's output layer on `backbone`: a dense layer with BERT's
    initializer (truncated normal, stddev 0.02) and the backbone's dtype policy."""
    return keras.layers.Dense(
        units, kernel_initializer=_truncated_normal(), dtype=backbone.dtype_policy, name=name
    )


@keras.saving.register_keras_serializable(package="kzoo")
class BertBackbone(FunctionalModel):
    """BERT: summed token, learned position and segment embeddings, embedding layer
    norm, post-norm encoder blocks with exact gelu, and a tanh pooler over [CLS].

    Takes KerasHub's BERT input dict (`token_ids`, `segment_ids`, `padding_mask`)
    and returns `{"sequence_output": (batch, length, hidden_dim), "pooled_output":
    (batch, hidden_dim)}`. The token embedding is a `ReversibleEmbedding`, so an
    MLM head can tie its decoder to it.

    Args:
        vocabulary_size: Number of tokens.
        num_layers: Number of encoder blocks.
        num_heads: Attention heads per block.
        hidden_dim: Width of the hidden states.
        intermediate_dim: Width of the feed-forward hidden layer.
        dropout: Dropout on embeddings, attention and residual branches.
        max_sequence_length: Number of learned positions.
        num_segments: Number of segment (token type) ids.
        activation: Feed-forward activation; BERT's is exact `"gelu"`.
        layer_norm_epsilon: Epsilon of every layer norm.
        dtype: Dtype policy.

    Example:
    >>> import numpy as np
    >>> backbone = BertBackbone(vocabulary_size=30, num_layers=2, num_heads=2,
    ...                         hidden_dim=16, intermediate_dim=32)
    >>> out = backbone({"token_ids": np.ones((1, 6), "int32"),
    ...                 "segment_ids": np.zeros((1, 6), "int32"),
    ...                 "padding_mask": np.ones((1, 6), "int32")})
    >>> tuple(out["sequence_output"].shape), tuple(out["pooled_output"].shape)
    ((1, 6, 16), (1, 16))

    References:
        Devlin et al., "BERT: Pre-training of Deep Bidirectional Transformers for
        Language Understanding", 2019.
    """

    def __init__(
        self,
        vocabulary_size,
        num_layers,
        num_heads,
        hidden_dim,
        intermediate_dim,
        dropout=0.1,
        max_sequence_length=512,
        num_segments=2,
        activation="gelu",
        layer_norm_epsilon=1e-12,
        dtype=None,
        **kwargs,
    ):
        # === Layers ===
        self.token_embedding = ReversibleEmbedding(
            vocabulary_size,
            hidden_dim,
            embeddings_initializer=_truncated_normal(),
            dtype=dtype,
            name="token_embedding",
        )
        self.position_embedding = PositionEmbedding(
            max_sequence_length,
            initializer=_truncated_normal(),
            dtype=dtype,
            name="position_embedding",
        )
        self.segment_embedding = keras.layers.Embedding(
            num_segments,
            hidden_dim,
            embeddings_initializer=_truncated_normal(),
            dtype=dtype,
            name="segment_embedding",
        )
        self.embeddings_layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=dtype, name="embeddings_layer_norm"
        )
        self.embeddings_dropout = Dropout(dropout, dtype=dtype, name="embeddings_dropout")
        self.transformer_layers = [
            TransformerEncoderBlock(
                num_heads=num_heads,
                intermediate_dim=intermediate_dim,
                activation=activation,
                dropout=dropout,
                norm_first=False,
                norm_epsilon=layer_norm_epsilon,
                kernel_initializer=_truncated_normal(),
                dtype=dtype,
                name=f"transformer_layer_{i}",
            )
            for i in range(num_layers)
        ]
        self.pooled_dense = keras.layers.Dense(
            hidden_dim,
            activation="tanh",
            kernel_initializer=_truncated_normal(),
            dtype=dtype,
            name="pooled_dense",
        )

        # === Functional Model ===
        inputs = token_inputs("token_ids", "segment_ids", "padding_mask")
        tokens = self.token_embedding(inputs["token_ids"])
        x = tokens + self.position_embedding(tokens)
        x = x + self.segment_embedding(inputs["segment_ids"])
        x = self.embeddings_dropout(self.embeddings_layer_norm(x))
        for block in self.transformer_layers:
            x = block(x, padding_mask=inputs["padding_mask"])
        pooled = self.pooled_dense(ops.take(x, 0, axis=1))
        super().__init__(
            inputs=inputs,
            outputs={"sequence_output": x, "pooled_output": pooled},
            dtype=dtype,
            **kwargs,
        )

        # === Config ===
        self._store_config(locals())
