"""Position-wise feed-forward network with plain and gated activations."""

import keras
from keras import ops

from kzoo.layers.dense import Dense
from kzoo.layers.dropout import Dropout
from kzoo.layers.initializers import kernel_initializers, serialized_initializers

ACTIVATIONS = (
    "relu",
    "gelu",
    "gelu_approximate",
    "gated-gelu",
    "gated-gelu_exact",
    "gated-relu",
    "gated-silu",
)


@keras.saving.register_keras_serializable(package="kzoo")
class FeedForward(keras.layers.Layer):
    """The two-layer MLP of a Transformer block.

    Plain variants compute `W_o act(W_i x)`; gated variants (T5 v1.1, LLaMA)
    compute `W_o (act(W_g x) * W_i x)`.

    Args:
        intermediate_dim: Width of the hidden layer.
        activation: `"relu"`, `"gelu"` (exact, BERT), `"gelu_approximate"`
            (tanh, GPT-2), `"gated-gelu"` (tanh gelu gate, T5 v1.1),
            `"gated-gelu_exact"` (exact gelu gate, KerasHub's gated `"gelu"`),
            `"gated-relu"` or `"gated-silu"` (SwiGLU).
        dropout: Dropout rate on the hidden activations.
        use_bias: Whether the dense layers have biases (T5 has none).
        kernel_initializer: Initializer of the input kernels.
        output_kernel_initializer: Initializer of the output kernel; defaults to
            `kernel_initializer`. GPT-2 scales it down with depth.
        output_dim: Width of the output; defaults to the input width.

    Example:
    >>> import numpy as np
    >>> ffn = FeedForward(intermediate_dim=32, activation="gated-gelu")
    >>> tuple(ffn(np.ones((2, 3, 8), "float32")).shape)
    (2, 3, 8)
    """

    def __init__(
        self,
        intermediate_dim,
        activation="relu",
        dropout=0.0,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        output_kernel_initializer=None,
        output_dim=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {ACTIVATIONS}; received {activation!r}")
        self.intermediate_dim = intermediate_dim
        self.activation = activation
        self.dropout = dropout
        self.use_bias = use_bias
        self.kernel_initializer, self.output_kernel_initializer = kernel_initializers(
            kernel_initializer, output_kernel_initializer
        )
        self.output_dim = output_dim
        self.gated = activation.startswith("gated-")
        dense = dict(use_bias=use_bias, dtype=self.dtype_policy)
        self.intermediate_dense = Dense(
            intermediate_dim,
            kernel_initializer=self.kernel_initializer.clone(),
            name="intermediate_dense",
            **dense,
        )
        if self.gated:
            self.gate_dense = Dense(
                intermediate_dim,
                kernel_initializer=self.kernel_initializer.clone(),
                name="gate_dense",
                **dense,
            )
        self.dropout_layer = Dropout(dropout, dtype=self.dtype_policy)

    def build(self, input_shape):
        self.intermediate_dense.build(input_shape)
        if self.gated:
            self.gate_dense.build(input_shape)
        self.output_dense = Dense(
            self.output_dim or input_shape[-1],
            use_bias=self.use_bias,
            kernel_initializer=self.output_kernel_initializer.clone(),
            dtype=self.dtype_policy,
            name="output_dense",
        )
        self.output_dense.build(tuple(input_shape[:-1]) + (self.intermediate_dim,))

    def _activate(self, x):
        name = self.activation.removeprefix("gated-")
        if name == "relu":
            return ops.relu(x)
        if name == "silu":
            return ops.silu(x)
        # T5 v1.1's gated-gelu uses the tanh approximation ("gelu_new").
        approximate = name == "gelu_approximate" or (name == "gelu" and self.gated)
        return ops.gelu(x, approximate=approximate)

    def call(self, inputs, training=None):
        hidden = self.intermediate_dense(inputs)
        if self.gated:
            hidden = self._activate(self.gate_dense(inputs)) * hidden
        else:
            hidden = self._activate(hidden)
        hidden = self.dropout_layer(hidden, training=training)
        return self.output_dense(hidden)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.output_dim or input_shape[-1],)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "intermediate_dim": self.intermediate_dim,
                "activation": self.activation,
                "dropout": self.dropout,
                "use_bias": self.use_bias,
                **serialized_initializers(self, "kernel_initializer", "output_kernel_initializer"),
                "output_dim": self.output_dim,
            }
        )
        return config
