"""Backend-agnostic Transformer layers (`keras.ops` only; no TensorFlow)."""

import keras

from kzoo.layers.attention import MultiHeadAttention, causal_mask, merge_masks
from kzoo.layers.dropout import Dropout
from kzoo.layers.feedforward import FeedForward
from kzoo.layers.normalization import RMSNorm
from kzoo.layers.position import (
    PositionEmbedding,
    RelativePositionBias,
    RotaryEmbedding,
    SinusoidalPositionEncoding,
    relative_position_bucket,
)
from kzoo.layers.transformer import TransformerDecoderBlock, TransformerEncoderBlock

# Token embedding whose `reverse=True` call is the tied output projection.
ReversibleEmbedding = keras.layers.ReversibleEmbedding

__all__ = [
    "Dropout",
    "FeedForward",
    "MultiHeadAttention",
    "PositionEmbedding",
    "RMSNorm",
    "RelativePositionBias",
    "ReversibleEmbedding",
    "RotaryEmbedding",
    "SinusoidalPositionEncoding",
    "TransformerDecoderBlock",
    "TransformerEncoderBlock",
    "causal_mask",
    "merge_masks",
    "relative_position_bucket",
]
