"""BERT's masked-LM head: gather the masked positions, transform, tied decoder."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kzoo")
class BertMaskedLMHead(keras.layers.Layer):
    """Predicts the tokens at masked positions, decoding with the token embedding.

    Gathers `sequence_output` at `mask_positions`, applies a dense layer of the
    hidden width, a layer norm, then the token embedding in reverse (its
    transposed table: tied weights) plus a learned output bias of one value per
    token, as in BERT and KerasHub's `MaskedLMHead`. Returns float32 logits
    `(batch, num_positions, vocabulary_size)`.

    The config leaves out `token_embedding`: the layer does not own it, and the
    model that owns both rebuilds the head from its backbone.

    Args:
        token_embedding: The backbone's `keras.layers.ReversibleEmbedding`.
        activation: Activation of the dense transform; BERT's is exact `"gelu"`;
            `"gelu_approximate"` (tanh GELU, as converted KerasHub BERTs) is accepted.
        layer_norm_epsilon: Epsilon of the layer norm.
        kernel_initializer: Initializer of the dense kernel; defaults to
            `TruncatedNormal(stddev=0.02)`.

    Example:
    >>> import numpy as np
    >>> import keras
    >>> embedding = keras.layers.ReversibleEmbedding(30, 8)
    >>> head = BertMaskedLMHead(embedding)
    >>> sequence_output = np.zeros((2, 6, 8), "float32")
    >>> logits = head(sequence_output, np.array([[1, 4], [0, 5]], "int32"))
    >>> tuple(logits.shape), keras.backend.standardize_dtype(logits.dtype)
    ((2, 2, 30), 'float32')
    """

    def __init__(
        self,
        token_embedding,
        activation="gelu",
        layer_norm_epsilon=1e-12,
        kernel_initializer=None,
        **kwargs,
    ):
        # The output bias is added in float32 to float32 logits, so it must not be
        # autocast to the compute dtype.
        super().__init__(autocast=False, **kwargs)
        if not isinstance(token_embedding, keras.layers.ReversibleEmbedding):
            raise ValueError(
                "token_embedding must be a keras.layers.ReversibleEmbedding (the "
                f"backbone's token_embedding); received {token_embedding!r}"
            )
        if kernel_initializer is None:
            kernel_initializer = keras.initializers.TruncatedNormal(stddev=0.02)
        self.token_embedding = token_embedding
        # "gelu_approximate" (tanh GELU, as converted KerasHub BERTs use) is not a
        # Keras activation name.
        self.activation = (
            activation if activation == "gelu_approximate" else keras.activations.get(activation)
        )
        self.layer_norm_epsilon = layer_norm_epsilon
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.vocabulary_size = token_embedding.input_dim
        hidden_dim = token_embedding.output_dim
        self.dense = keras.layers.Dense(
            hidden_dim,
            activation=_gelu_approximate if activation == "gelu_approximate" else self.activation,
            kernel_initializer=self.kernel_initializer,
            dtype=self.dtype_policy,
            name="dense",
        )
        self.layer_norm = keras.layers.LayerNormalization(
            epsilon=layer_norm_epsilon, dtype=self.dtype_policy, name="layer_norm"
        )

    def build(self, sequence_output_shape, mask_positions_shape=None):
        gathered_shape = (sequence_output_shape[0], None, sequence_output_shape[-1])
        self.dense.build(gathered_shape)
        self.layer_norm.build(gathered_shape[:-1] + (self.token_embedding.output_dim,))
        self.output_bias = self.add_weight(
            name="output_bias", shape=(self.vocabulary_size,), initializer="zeros"
        )

    def call(self, sequence_output, mask_positions):
        positions = ops.cast(mask_positions, "int32")[..., None]
        x = ops.take_along_axis(sequence_output, positions, axis=1)
        x = self.layer_norm(self.dense(x))
        logits = ops.cast(self.token_embedding(x, reverse=True), "float32")
        return logits + ops.cast(self.output_bias, "float32")

    def get_config(self):
        config = super().get_config()
        config.update(
            activation=self.activation
            if isinstance(self.activation, str)
            else keras.activations.serialize(self.activation),
            layer_norm_epsilon=self.layer_norm_epsilon,
            kernel_initializer=keras.initializers.serialize(self.kernel_initializer),
        )
        return config


def _gelu_approximate(x):
    return keras.activations.gelu(x, approximate=True)
