"""The encoder-decoder Transformer of "Attention Is All You Need"."""

import math

import keras
from keras import ops

from kzoo.layers import (
    Dropout,
    ReversibleEmbedding,
    SinusoidalPositionEncoding,
    TransformerDecoderBlock,
    TransformerEncoderBlock,
)
from kzoo.models.decoder_cache import decode_blocks_with_cache, encoder_decoder_cache
from kzoo.models.functional_model import ENCODER_DECODER_INPUTS, FunctionalModel, token_inputs

# Named sizes (architectures only, no weights). `base` and `big` are the paper's.
SEQ2SEQ_SIZES = {
    "tiny": dict(num_layers=2, num_heads=2, hidden_dim=128, intermediate_dim=512),
    "small": dict(num_layers=3, num_heads=4, hidden_dim=256, intermediate_dim=1024),
    "base": dict(num_layers=6, num_heads=8, hidden_dim=512, intermediate_dim=2048),
    "big": dict(num_layers=6, num_heads=16, hidden_dim=1024, intermediate_dim=4096, dropout=0.3),
}


@keras.saving.register_keras_serializable(package="kzoo")
class Seq2SeqBackbone(FunctionalModel):
    """Transformer encoder-decoder: sinusoidal positions, shared vocabulary.

    Takes KerasHub's T5 input dict `{"encoder_token_ids", "encoder_padding_mask",
    "decoder_token_ids", "decoder_padding_mask"}` and returns
    `{"encoder_sequence_output", "decoder_sequence_output"}`. Source and target
    share one `ReversibleEmbedding` (initialised with std `hidden_dim ** -0.5` and
    scaled by `sqrt(hidden_dim)`, as in the paper), so a task head can tie the
    output projection to it. Blocks are post-norm as in the paper, or pre-norm
    with a final norm on each stack (`norm_first=True`, more stable when deep).

    For decoding, `encode` runs the encoder once, `decoder_cache` projects the
    cross-attention keys/values of every decoder block once, and
    `decode_with_cache` feeds target tokens against that cache.

    Args:
        vocabulary_size: Number of tokens (source and target).
        num_layers: Blocks per stack, unless the two below are given.
        num_heads: Attention heads per block.
        hidden_dim: Width of the residual stream.
        intermediate_dim: Width of the feed-forward hidden layer.
        num_encoder_layers: Encoder blocks; defaults to `num_layers`.
        num_decoder_layers: Decoder blocks; defaults to `num_layers`.
        dropout: Dropout on embeddings, attention and residual branches.
        max_sequence_length: Longest source or target sequence that `generate`
            accepts (sinusoidal positions themselves have no limit).
        norm_first: Pre-norm blocks (and a final norm per stack) when true.
        layer_norm_epsilon: Epsilon of every layer norm.
        dtype: Dtype policy, e.g. `"mixed_bfloat16"`.

    Example:
    >>> import numpy as np
    >>> backbone = Seq2SeqBackbone(vocabulary_size=50, num_layers=1, num_heads=2,
    ...                            hidden_dim=16, intermediate_dim=32)
    >>> out = backbone({
    ...     "encoder_token_ids": np.ones((1, 7), "int32"),
    ...     "encoder_padding_mask": np.ones((1, 7), "int32"),
    ...     "decoder_token_ids": np.ones((1, 5), "int32"),
    ...     "decoder_padding_mask": np.ones((1, 5), "int32")})
    >>> tuple(out["encoder_sequence_output"].shape), tuple(out["decoder_sequence_output"].shape)
    ((1, 7, 16), (1, 5, 16))

    References:
        Vaswani et al., "Attention Is All You Need", 2017.
    """

    CONFIG_KEYS = (
        "vocabulary_size",
        "num_heads",
        "hidden_dim",
        "intermediate_dim",
        "num_encoder_layers",
        "num_decoder_layers",
        "dropout",
        "max_sequence_length",
        "norm_first",
        "layer_norm_epsilon",
    )

    def __init__(
        self,
        vocabulary_size,
        num_layers=None,
        num_heads=8,
        hidden_dim=512,
        intermediate_dim=2048,
        num_encoder_layers=None,
        num_decoder_layers=None,
        dropout=0.1,
        max_sequence_length=512,
        norm_first=False,
        layer_norm_epsilon=1e-5,
        dtype=None,
        **kwargs,
    ):
        num_encoder_layers = num_layers if num_encoder_layers is None else num_encoder_layers
        num_decoder_layers = num_layers if num_decoder_layers is None else num_decoder_layers
        if num_encoder_layers is None or num_decoder_layers is None:
            raise ValueError(
                "Seq2SeqBackbone needs num_layers, or both num_encoder_layers and "
                f"num_decoder_layers; received num_layers={num_layers}, "
                f"num_encoder_layers={num_encoder_layers}, "
                f"num_decoder_layers={num_decoder_layers}"
            )
        if hidden_dim % num_heads:
            raise ValueError(
                f"hidden_dim must be divisible by num_heads; received "
                f"hidden_dim={hidden_dim}, num_heads={num_heads}"
            )

        # === Layers ===
        self.token_embedding = ReversibleEmbedding(
            vocabulary_size,
            hidden_dim,
            embeddings_initializer=keras.initializers.RandomNormal(stddev=hidden_dim**-0.5),
            dtype=dtype,
            name="token_embedding",
        )
        self.position_encoding = SinusoidalPositionEncoding(dtype=dtype, name="position_encoding")
        self.embeddings_dropout = Dropout(dropout, dtype=dtype, name="embeddings_dropout")
        block_kwargs = dict(
            num_heads=num_heads,
            intermediate_dim=intermediate_dim,
            dropout=dropout,
            norm_first=norm_first,
            norm_epsilon=layer_norm_epsilon,
            dtype=dtype,
        )
        self.encoder_layers = [
            TransformerEncoderBlock(**block_kwargs, name=f"encoder_layer_{i}")
            for i in range(num_encoder_layers)
        ]
        self.decoder_layers = [
            TransformerDecoderBlock(**block_kwargs, cross_attention=True, name=f"decoder_layer_{i}")
            for i in range(num_decoder_layers)
        ]
        # Pre-norm leaves the residual stream unnormalised: each stack ends with a norm.
        self.encoder_norm = self.decoder_norm = None
        if norm_first:
            self.encoder_norm = keras.layers.LayerNormalization(
                epsilon=layer_norm_epsilon, dtype=dtype, name="encoder_norm"
            )
            self.decoder_norm = keras.layers.LayerNormalization(
                epsilon=layer_norm_epsilon, dtype=dtype, name="decoder_norm"
            )

        # === Functional Model ===
        inputs = token_inputs(*ENCODER_DECODER_INPUTS)
        encoder_output = self.encode(inputs["encoder_token_ids"], inputs["encoder_padding_mask"])
        x = self.embed(inputs["decoder_token_ids"])
        for block in self.decoder_layers:
            x = block(
                x,
                encoder_output,
                decoder_padding_mask=inputs["decoder_padding_mask"],
                encoder_padding_mask=inputs["encoder_padding_mask"],
            )
        decoder_output = self._final_norm(self.decoder_norm, x)
        super().__init__(
            inputs=inputs,
            outputs={
                "encoder_sequence_output": encoder_output,
                "decoder_sequence_output": decoder_output,
            },
            dtype=dtype,
            **kwargs,
        )

        # === Config ===
        self._store_config(locals())

    @staticmethod
    def _final_norm(norm, x):
        return x if norm is None else norm(x)

    @property
    def head_dim(self):
        return self.hidden_dim // self.num_heads

    def embed(self, token_ids, start_index=0, training=None):
        """Scaled token embeddings plus sinusoidal positions `start_index..`."""
        tokens = self.token_embedding(token_ids)
        tokens = tokens * ops.cast(math.sqrt(tokens.shape[-1]), tokens.dtype)
        x = tokens + self.position_encoding(tokens, start_index=start_index)
        return self.embeddings_dropout(x, training=training)

    def encode(self, encoder_token_ids, encoder_padding_mask, training=None):
        """The encoder's output `(batch, source_length, hidden_dim)`."""
        x = self.embed(encoder_token_ids, training=training)
        for block in self.encoder_layers:
            x = block(x, padding_mask=encoder_padding_mask, training=training)
        return self._final_norm(self.encoder_norm, x)

    def decoder_cache(self, encoder_output, encoder_padding_mask, max_length):
        """The decoding cache of `max_length` target positions (see
        `kzoo.models.decoder_cache`), cross-attention keys/values projected once."""
        return encoder_decoder_cache(
            self.decoder_layers,
            encoder_output,
            encoder_padding_mask,
            max_length,
            (self.num_heads, self.head_dim),
            self.compute_dtype,
        )

    def logits(self, decoder_sequence_output):
        """The output head: the shared token embedding used in reverse."""
        return self.token_embedding(decoder_sequence_output, reverse=True)

    def decode_with_cache(self, token_ids, cache, index):
        """Runs target `token_ids` at positions `index..` against `cache`.

        Returns `(decoder_hidden_states, cache)` with the self-attention cache
        updated at those positions.
        """
        x = self.embed(token_ids, start_index=index)
        x, cache = decode_blocks_with_cache(self.decoder_layers, x, cache, index)
        return self._final_norm(self.decoder_norm, x), cache
