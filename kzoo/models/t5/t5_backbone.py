"""The T5 encoder-decoder: shared embedding, relative position bias, RMS pre-norm."""

import keras
from keras import ops

from kzoo.layers import (
    Dropout,
    RelativePositionBias,
    ReversibleEmbedding,
    RMSNorm,
    TransformerDecoderBlock,
    TransformerEncoderBlock,
)
from kzoo.models.decoder_cache import decode_blocks_with_cache, encoder_decoder_cache
from kzoo.models.functional_model import ENCODER_DECODER_INPUTS, FunctionalModel, token_inputs

ACTIVATIONS = ("relu", "gelu", "gelu_approximate")
# The kzoo.layers.FeedForward name of each activation when gated.
_GATED = {"relu": "gated-relu", "gelu": "gated-gelu_exact", "gelu_approximate": "gated-gelu"}


def _fan_in_normal(scale=1.0):
    """normal(0, sqrt(scale / fan_in)): T5's initialisation of every kernel."""
    return keras.initializers.VarianceScaling(scale, "fan_in", "untruncated_normal")


@keras.saving.register_keras_serializable(package="kzoo")
class T5Backbone(FunctionalModel):
    """T5: a pre-norm encoder-decoder with relative position bias and no biases.

    Encoder and decoder share one token embedding. Each stack computes its
    relative position bias once (bidirectional buckets in the encoder, causal in
    the decoder) and adds it to the self-attention logits of all its layers.
    Norms are RMS norms (no centring, no bias) before each sublayer, plus one
    after each stack. Attention logits are not scaled: as in T5, the
    `1 / sqrt(key_value_dim)` lives in the query initialisation. The feed-forward
    network is `relu` (T5 v1.0) or gated (`use_gated_activation`, T5 v1.1).

    Takes KerasHub's T5 input dict (`encoder_token_ids`, `encoder_padding_mask`,
    `decoder_token_ids`, `decoder_padding_mask`) and returns, like KerasHub,
    `{"encoder_sequence_output", "decoder_sequence_output"}`, both
    `(batch, length, hidden_dim)`. `logits()` applies the language-model head:
    the reversed token embedding, on outputs scaled by `hidden_dim ** -0.5` when
    tied. For generation, `encode()` runs the encoder once, `decoder_cache()`
    projects the cross-attention keys/values once, and `decode_with_cache()`
    feeds new decoder tokens.

    Args:
        vocabulary_size: Number of tokens.
        num_layers: Number of blocks in each of the encoder and the decoder.
        num_heads: Attention heads per block.
        hidden_dim: Width of the residual stream (`d_model`).
        intermediate_dim: Width of the feed-forward hidden layer (`d_ff`).
        key_value_dim: Size of each head (`d_kv`); defaults to
            `hidden_dim // num_heads`.
        dropout: Dropout on embeddings, attention, feed-forward, residual
            branches and stack outputs.
        activation: `"relu"`, `"gelu"` (exact, as Keras's `"gelu"`) or
            `"gelu_approximate"` (tanh; T5 v1.1's `gated-gelu`).
        use_gated_activation: Whether the feed-forward network is gated.
        layer_norm_epsilon: Epsilon of every RMS norm.
        tie_embedding_weights: Whether the output projection is the token
            embedding (T5 v1.0) or a separate matrix (T5 v1.1).
        relative_attention_num_buckets: Number of relative position buckets.
        relative_attention_max_distance: Distances beyond this share a bucket.
        max_sequence_length: Longest source or target `Seq2SeqLM.generate`
            accepts (relative positions themselves have no limit).
        dtype: Dtype policy.

    Example:
    >>> import numpy as np
    >>> backbone = T5Backbone(vocabulary_size=40, num_layers=2, num_heads=2,
    ...                       hidden_dim=16, intermediate_dim=32)
    >>> out = backbone({
    ...     "encoder_token_ids": np.ones((1, 6), "int32"),
    ...     "encoder_padding_mask": np.ones((1, 6), "int32"),
    ...     "decoder_token_ids": np.ones((1, 4), "int32"),
    ...     "decoder_padding_mask": np.ones((1, 4), "int32")})
    >>> tuple(out["encoder_sequence_output"].shape)
    (1, 6, 16)
    >>> tuple(backbone.logits(out["decoder_sequence_output"]).shape)
    (1, 4, 40)

    References:
        Raffel et al., "Exploring the Limits of Transfer Learning with a Unified
        Text-to-Text Transformer", 2020.
    """

    def __init__(
        self,
        vocabulary_size,
        num_layers,
        num_heads,
        hidden_dim,
        intermediate_dim,
        key_value_dim=None,
        dropout=0.1,
        activation="relu",
        use_gated_activation=True,
        layer_norm_epsilon=1e-6,
        tie_embedding_weights=True,
        relative_attention_num_buckets=32,
        relative_attention_max_distance=128,
        max_sequence_length=512,
        dtype=None,
        **kwargs,
    ):
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"T5Backbone: activation must be one of {ACTIVATIONS}; received {activation!r}"
            )
        head_dim = key_value_dim or hidden_dim // num_heads

        # === Layers ===
        self.token_embedding = ReversibleEmbedding(
            vocabulary_size,
            hidden_dim,
            tie_weights=tie_embedding_weights,
            embeddings_initializer=keras.initializers.RandomNormal(stddev=1.0),
            dtype=dtype,
            name="token_embedding",
        )
        block_kwargs = dict(
            num_heads=num_heads,
            intermediate_dim=intermediate_dim,
            key_dim=head_dim,
            activation=_GATED[activation] if use_gated_activation else activation,
            dropout=dropout,
            feedforward_dropout=dropout,
            norm_first=True,
            normalization="rms_norm",
            norm_epsilon=layer_norm_epsilon,
            use_bias=False,
            attention_scale=1.0,
            kernel_initializer=_fan_in_normal(),
            query_kernel_initializer=_fan_in_normal(1.0 / head_dim),
            dtype=dtype,
        )

        def relative_position_bias(bidirectional, name):
            return RelativePositionBias(
                num_heads,
                num_buckets=relative_attention_num_buckets,
                max_distance=relative_attention_max_distance,
                bidirectional=bidirectional,
                embeddings_initializer=keras.initializers.RandomNormal(stddev=hidden_dim**-0.5),
                dtype=dtype,
                name=name,
            )

        def dropout_layer(name):
            return Dropout(dropout, dtype=dtype, name=name)

        self.encoder_embedding_dropout = dropout_layer("encoder_embedding_dropout")
        self.encoder_relative_position_bias = relative_position_bias(
            True, "encoder_relative_position_bias"
        )
        self.encoder_transformer_layers = [
            TransformerEncoderBlock(**block_kwargs, name=f"transformer_encoder_layer_{i}")
            for i in range(num_layers)
        ]
        self.encoder_layer_norm = RMSNorm(
            layer_norm_epsilon, dtype=dtype, name="encoder_output_layer_norm"
        )
        self.encoder_dropout = dropout_layer("encoder_output_dropout")
        self.decoder_embedding_dropout = dropout_layer("decoder_embedding_dropout")
        self.decoder_relative_position_bias = relative_position_bias(
            False, "decoder_relative_position_bias"
        )
        self.decoder_transformer_layers = [
            TransformerDecoderBlock(
                **block_kwargs, cross_attention=True, name=f"transformer_decoder_layer_{i}"
            )
            for i in range(num_layers)
        ]
        self.decoder_layer_norm = RMSNorm(
            layer_norm_epsilon, dtype=dtype, name="decoder_output_layer_norm"
        )
        self.decoder_dropout = dropout_layer("decoder_output_dropout")

        # === Functional Model ===
        inputs = token_inputs(*ENCODER_DECODER_INPUTS)
        encoder_output = self.encode(inputs["encoder_token_ids"], inputs["encoder_padding_mask"])
        decoder_output = self.decode(
            inputs["decoder_token_ids"],
            encoder_output,
            inputs["encoder_padding_mask"],
            inputs["decoder_padding_mask"],
        )
        super().__init__(
            inputs=inputs,
            outputs={
                "encoder_sequence_output": encoder_output,
                "decoder_sequence_output": decoder_output,
            },
            dtype=dtype,
            **kwargs,
        )

        head = None if tie_embedding_weights else self.token_embedding.reverse_embeddings
        if head is not None and keras.backend.is_float_dtype(head.dtype):
            # An untied head is a dense layer: fan-in init (std hidden_dim**-0.5),
            # as Mesh TensorFlow's T5 v1.1; the embedding's std of 1 would start
            # with logits of std sqrt(hidden_dim) and a loss of tens of nats.
            # A quantized head (rebuilt by `load_model`) holds integers that
            # loading fills: there is nothing to initialize.
            head.assign(_fan_in_normal()(head.shape, head.dtype))

        # === Config ===
        self._store_config(locals())

    @property
    def head_dim(self):
        return self.key_value_dim or self.hidden_dim // self.num_heads

    def encode(self, token_ids, padding_mask, training=None):
        """The encoder's output `(batch, length, hidden_dim)`."""
        x = self.token_embedding(token_ids)
        x = self.encoder_embedding_dropout(x, training=training)
        bias = self.encoder_relative_position_bias(x)
        for block in self.encoder_transformer_layers:
            x = block(x, padding_mask=padding_mask, attention_bias=bias, training=training)
        return self.encoder_dropout(self.encoder_layer_norm(x), training=training)

    def decode(
        self, token_ids, encoder_output, encoder_padding_mask, padding_mask=None, training=None
    ):
        """The decoder's output for a whole target sequence (teacher forcing)."""
        x = self.token_embedding(token_ids)
        x = self.decoder_embedding_dropout(x, training=training)
        bias = self.decoder_relative_position_bias(x)
        for block in self.decoder_transformer_layers:
            x = block(
                x,
                encoder_output,
                decoder_padding_mask=padding_mask,
                encoder_padding_mask=encoder_padding_mask,
                self_attention_bias=bias,
                training=training,
            )
        return self.decoder_dropout(self.decoder_layer_norm(x), training=training)

    def decoder_cache(self, encoder_output, encoder_padding_mask, max_length):
        """The decoding state for `max_length` target tokens (see
        `kzoo.models.decoder_cache`), cross-attention keys/values computed once."""
        return encoder_decoder_cache(
            self.decoder_transformer_layers,
            encoder_output,
            encoder_padding_mask,
            max_length,
            (self.num_heads, self.head_dim),
            self.compute_dtype,
        )

    def decode_with_cache(self, token_ids, cache, cache_update_index):
        """Runs `token_ids` at positions `cache_update_index..` of the target.

        Args:
            token_ids: `(batch, length)` int tokens.
            cache: The dict of `decoder_cache()` (or of a previous call).
            cache_update_index: Position of the first token.

        Returns:
            `(decoder_sequence_output, cache)` with the self-attention cache
            updated at those positions.
        """
        x = self.decoder_embedding_dropout(self.token_embedding(token_ids))
        # Bias of the new queries against every cache position.
        bias = self.decoder_relative_position_bias(
            x, cache["self_attention"][0][:, 0], query_start=cache_update_index
        )
        x, cache = decode_blocks_with_cache(
            self.decoder_transformer_layers, x, cache, cache_update_index, self_attention_bias=bias
        )
        return self.decoder_dropout(self.decoder_layer_norm(x)), cache

    def logits(self, decoder_sequence_output):
        """The language-model head: vocabulary logits of decoder outputs.

        A tied head rescales by `hidden_dim ** -0.5` first, as T5 and KerasHub's
        `T5Seq2SeqLM` do.
        """
        x = decoder_sequence_output
        if self.tie_embedding_weights:
            x = x * ops.cast(self.hidden_dim**-0.5, x.dtype)
        return self.token_embedding(x, reverse=True)
