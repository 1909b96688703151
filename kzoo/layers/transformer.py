"""Transformer encoder and decoder blocks, pre-norm or post-norm, with a KV cache."""

import keras

from kzoo.layers.attention import MultiHeadAttention
from kzoo.layers.dropout import Dropout
from kzoo.layers.feedforward import FeedForward
from kzoo.layers.initializers import (
    ATTENTION_INITIALIZERS,
    kernel_initializers,
    serialized_initializers,
)
from kzoo.layers.normalization import make_norm


class _TransformerBlock(keras.layers.Layer):
    """Configuration and sublayers shared by the encoder and decoder blocks."""

    def __init__(
        self,
        num_heads,
        intermediate_dim,
        key_dim=None,
        activation="relu",
        dropout=0.0,
        attention_dropout=None,
        norm_first=False,
        normalization="layer_norm",
        norm_epsilon=1e-5,
        use_bias=True,
        attention_scale=None,
        rotary_max_wavelength=None,
        kernel_initializer="glorot_uniform",
        output_kernel_initializer=None,
        query_kernel_initializer=None,
        feedforward_dropout=0.0,
        num_key_value_heads=None,
        attention_bias=None,
        attention_output_bias=None,
        sliding_window=None,
        rotary_scaling=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.num_heads = num_heads
        self.intermediate_dim = intermediate_dim
        self.key_dim = key_dim
        self.activation = activation
        self.dropout = dropout
        self.attention_dropout = dropout if attention_dropout is None else attention_dropout
        self.norm_first = norm_first
        self.normalization = normalization
        self.norm_epsilon = norm_epsilon
        self.use_bias = use_bias
        self.attention_scale = attention_scale
        self.rotary_max_wavelength = rotary_max_wavelength
        self.kernel_initializer, self.output_kernel_initializer, self.query_kernel_initializer = (
            kernel_initializers(
                kernel_initializer, output_kernel_initializer, query_kernel_initializer
            )
        )
        self.feedforward_dropout = feedforward_dropout
        self.num_key_value_heads = num_key_value_heads
        self.attention_bias = use_bias if attention_bias is None else attention_bias
        self.attention_output_bias = (
            self.attention_bias if attention_output_bias is None else attention_output_bias
        )
        self.sliding_window = sliding_window
        self.rotary_scaling = rotary_scaling
        self.dropout_layer = Dropout(dropout, dtype=self.dtype_policy)

    def _attention(self, hidden_dim, name, rotary=None, **self_attention_options):
        return MultiHeadAttention(
            num_heads=self.num_heads,
            num_key_value_heads=self.num_key_value_heads,
            key_dim=self.key_dim or hidden_dim // self.num_heads,
            dropout=self.attention_dropout,
            use_bias=self.attention_bias,
            output_bias=self.attention_output_bias,
            scale=self.attention_scale,
            rotary_max_wavelength=rotary,
            kernel_initializer=self.kernel_initializer.clone(),
            output_kernel_initializer=self.output_kernel_initializer.clone(),
            query_kernel_initializer=self.query_kernel_initializer.clone(),
            dtype=self.dtype_policy,
            name=name,
            **self_attention_options,
        )

    def _norm(self, name):
        return make_norm(self.normalization, self.norm_epsilon, self.dtype_policy, name)

    def _build_common(self, input_shape):
        hidden_dim = input_shape[-1]
        self.self_attention = self._attention(
            hidden_dim,
            "self_attention",
            self.rotary_max_wavelength,
            sliding_window=self.sliding_window,
            rotary_scaling=self.rotary_scaling,
        )
        self.self_attention.build(input_shape)
        self.self_attention_norm = self._norm("self_attention_norm")
        self.self_attention_norm.build(input_shape)
        self.feedforward = FeedForward(
            self.intermediate_dim,
            activation=self.activation,
            dropout=self.feedforward_dropout,
            use_bias=self.use_bias,
            kernel_initializer=self.kernel_initializer.clone(),
            output_kernel_initializer=self.output_kernel_initializer.clone(),
            dtype=self.dtype_policy,
            name="feedforward",
        )
        self.feedforward.build(input_shape)
        self.feedforward_norm = self._norm("feedforward_norm")
        self.feedforward_norm.build(input_shape)

    def _residual(self, x, norm, sublayer, training):
        """`x + dropout(f(norm(x)))` (pre-norm) or `norm(x + dropout(f(x)))`.

        `sublayer` returns `(output, extra)`; `extra` (a cache) is passed through.
        """
        inputs = norm(x) if self.norm_first else x
        output, extra = sublayer(inputs)
        x = x + self.dropout_layer(output, training=training)
        return (x if self.norm_first else norm(x)), extra

    def _feedforward(self, x, training):
        x, _ = self._residual(
            x,
            self.feedforward_norm,
            lambda h: (self.feedforward(h, training=training), None),
            training,
        )
        return x

    def compute_output_shape(self, input_shape, *args, **kwargs):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "intermediate_dim": self.intermediate_dim,
                "key_dim": self.key_dim,
                "activation": self.activation,
                "dropout": self.dropout,
                "attention_dropout": self.attention_dropout,
                "norm_first": self.norm_first,
                "normalization": self.normalization,
                "norm_epsilon": self.norm_epsilon,
                "use_bias": self.use_bias,
                "attention_scale": self.attention_scale,
                "rotary_max_wavelength": self.rotary_max_wavelength,
                **serialized_initializers(self, *ATTENTION_INITIALIZERS),
                "feedforward_dropout": self.feedforward_dropout,
                "num_key_value_heads": self.num_key_value_heads,
                "attention_bias": self.attention_bias,
                "attention_output_bias": self.attention_output_bias,
                "sliding_window": self.sliding_window,
                "rotary_scaling": self.rotary_scaling,
            }
        )
        return config


@keras.saving.register_keras_serializable(package="kzoo")
class TransformerEncoderBlock(_TransformerBlock):
    """Bidirectional self-attention followed by a feed-forward network.

    Post-norm (`norm_first=False`) is BERT and the original Transformer; pre-norm
    is GPT-2 and T5. Each sublayer's output passes dropout before the residual add.

    Args:
        num_heads: Number of attention heads.
        intermediate_dim: Width of the feed-forward hidden layer.
        key_dim: Size of each head; defaults to `hidden_dim // num_heads`.
        activation: Feed-forward activation (see `kzoo.layers.FeedForward`).
        dropout: Dropout rate on sublayer outputs.
        attention_dropout: Dropout rate on attention probabilities; defaults to
            `dropout`.
        norm_first: Pre-norm placement when true.
        normalization: `"layer_norm"` or `"rms_norm"`.
        norm_epsilon: Epsilon of the normalization layers.
        use_bias: Whether dense layers have biases.
        attention_scale: Logit scale; defaults to `1 / sqrt(key_dim)`.
        rotary_max_wavelength: If set, rotary positions in self-attention.
        kernel_initializer: Initializer of the dense kernels.
        output_kernel_initializer: Initializer of the kernels that write into the
            residual stream (attention output, feed-forward output).
        query_kernel_initializer: Initializer of the attention query kernels;
            defaults to `kernel_initializer` (T5 folds the logit scale into it).
        feedforward_dropout: Dropout rate on the feed-forward hidden layer (T5).
        num_key_value_heads: Key/value heads of grouped-query attention;
            defaults to `num_heads`.
        attention_bias: Whether the attention's query/key/value projections
            have biases; defaults to `use_bias` (Qwen2: yes, with no others).
        attention_output_bias: Whether the attention's output projection has a
            bias; defaults to `attention_bias`.
        sliding_window: How many keys each causal self-attention query sees at
            most (Mistral); None: all before it.
        rotary_scaling: A Hugging Face `rope_scaling` dict for the rotary
            frequencies (linear, llama3, yarn).

    Example:
    >>> import numpy as np
    >>> block = TransformerEncoderBlock(num_heads=2, intermediate_dim=16)
    >>> x = np.random.rand(2, 5, 8).astype("float32")
    >>> tuple(block(x, padding_mask=np.array([[1] * 5, [1, 1, 1, 0, 0]])).shape)
    (2, 5, 8)
    """

    def build(self, inputs_shape):
        self._build_common(inputs_shape)

    def call(
        self, inputs, padding_mask=None, attention_mask=None, attention_bias=None, training=None
    ):
        x, _ = self._residual(
            inputs,
            self.self_attention_norm,
            lambda h: (
                self.self_attention(
                    h,
                    padding_mask=padding_mask,
                    attention_mask=attention_mask,
                    attention_bias=attention_bias,
                    training=training,
                ),
                None,
            ),
            training,
        )
        return self._feedforward(x, training)


@keras.saving.register_keras_serializable(package="kzoo")
class TransformerDecoderBlock(_TransformerBlock):
    """Causal self-attention, optional cross-attention, then a feed-forward network.

    For incremental decoding pass `self_attention_cache` (shape `(batch, 2,
    max_length, num_key_value_heads, key_dim)`) and
    `self_attention_cache_update_index`; the block returns `(outputs, self_attention_cache)`. Cross-attention keys/values
    are computed once with `compute_cross_attention_cache(encoder_sequence)` and
    passed as `cross_attention_cache`.

    Args:
        cross_attention: Whether the block attends to an encoder sequence.
        **kwargs: As for `TransformerEncoderBlock`.

    Example:
    >>> import numpy as np
    >>> block = TransformerDecoderBlock(
    ...     num_heads=2, intermediate_dim=16, cross_attention=True)
    >>> x = np.random.rand(2, 5, 8).astype("float32")
    >>> memory = np.random.rand(2, 7, 8).astype("float32")
    >>> tuple(block(x, memory).shape)
    (2, 5, 8)
    """

    def __init__(self, num_heads, intermediate_dim, cross_attention=False, **kwargs):
        super().__init__(num_heads, intermediate_dim, **kwargs)
        self.cross_attention = cross_attention

    def build(self, decoder_sequence_shape, encoder_sequence_shape=None):
        self._build_common(decoder_sequence_shape)
        if self.cross_attention:
            encoder_sequence_shape = encoder_sequence_shape or decoder_sequence_shape
            self.cross_attention_layer = self._attention(
                decoder_sequence_shape[-1], "cross_attention"
            )
            self.cross_attention_layer.build(decoder_sequence_shape, encoder_sequence_shape)
            self.cross_attention_norm = self._norm("cross_attention_norm")
            self.cross_attention_norm.build(decoder_sequence_shape)

    def compute_cross_attention_cache(self, encoder_sequence):
        """Cross-attention keys/values of `encoder_sequence`, computed once."""
        return self.cross_attention_layer.compute_key_value_cache(encoder_sequence)

    def call(
        self,
        decoder_sequence,
        encoder_sequence=None,
        decoder_padding_mask=None,
        decoder_attention_mask=None,
        encoder_padding_mask=None,
        self_attention_bias=None,
        cross_attention_bias=None,
        self_attention_cache=None,
        self_attention_cache_update_index=None,
        cross_attention_cache=None,
        use_causal_mask=True,
        training=None,
    ):
        """Returns the outputs, or `(outputs, self_attention_cache)` with a cache."""
        if self_attention_cache is not None and self_attention_cache_update_index is None:
            raise ValueError(
                "self_attention_cache needs self_attention_cache_update_index "
                "(the position of the first new token)."
            )
        x, cache = self._residual(
            decoder_sequence,
            self.self_attention_norm,
            lambda h: self._self_attend(
                h,
                decoder_padding_mask,
                decoder_attention_mask,
                self_attention_bias,
                self_attention_cache,
                self_attention_cache_update_index,
                use_causal_mask,
                training,
            ),
            training,
        )
        if self.cross_attention:
            if encoder_sequence is None and cross_attention_cache is None:
                raise ValueError(
                    "This block has cross_attention=True: pass encoder_sequence "
                    "or cross_attention_cache."
                )
            x, _ = self._residual(
                x,
                self.cross_attention_norm,
                lambda h: self._cross_attend(
                    h,
                    encoder_sequence,
                    encoder_padding_mask,
                    cross_attention_bias,
                    cross_attention_cache,
                    training,
                ),
                training,
            )
        x = self._feedforward(x, training)
        return x if cache is None else (x, cache)

    def _self_attend(
        self, h, padding_mask, attention_mask, bias, cache, cache_index, causal, training
    ):
        result = self.self_attention(
            h,
            padding_mask=padding_mask,
            attention_mask=attention_mask,
            use_causal_mask=causal,
            attention_bias=bias,
            cache=cache,
            cache_update_index=cache_index,
            training=training,
        )
        return result if cache is not None else (result, None)

    def _cross_attend(self, h, encoder_sequence, padding_mask, bias, cache, training):
        result = self.cross_attention_layer(
            h,
            value=encoder_sequence if cache is None else None,
            padding_mask=padding_mask,
            attention_bias=bias,
            cache=cache,
            training=training,
        )
        # A read-only cache comes back unchanged; only the output matters.
        return (result[0] if cache is not None else result), None

    def get_config(self):
        config = super().get_config()
        config.update({"cross_attention": self.cross_attention})
        return config
