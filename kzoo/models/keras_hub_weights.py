"""Copying KerasHub layer weights into kzoo layers, shared by every family's converter."""

import numpy as np

# What every KerasHub transformer backbone and its kzoo twin both take.
_SHARED_HYPERPARAMETERS = (
    "vocabulary_size",
    "num_layers",
    "num_heads",
    "hidden_dim",
    "intermediate_dim",
    "dropout",
)


def hyperparameters(source, *names):
    """The KerasHub backbone `source`'s values of the transformer sizes, dropout and
    `names`, as keyword arguments for the kzoo backbone of the same family."""
    return {name: getattr(source, name) for name in _SHARED_HYPERPARAMETERS + names}


def _numpy(variable):
    return np.asarray(variable.numpy() if hasattr(variable, "numpy") else variable)


def copy_attention(target, source):
    """KerasHub/Keras `MultiHeadAttention` (EinsumDense kernels `(D, N, H)`) into
    a `kzoo.layers.MultiHeadAttention` (dense kernels `(D, N*H)`)."""
    pairs = [
        (target.query_dense, source._query_dense),
        (target.key_dense, source._key_dense),
        (target.value_dense, source._value_dense),
    ]
    for dense, einsum in pairs:
        weights = [_numpy(w) for w in einsum.weights]
        weights[0] = weights[0].reshape(weights[0].shape[0], -1)
        if len(weights) > 1:
            weights[1] = weights[1].reshape(-1)
        dense.set_weights(weights)
    weights = [_numpy(w) for w in source._output_dense.weights]
    weights[0] = weights[0].reshape(-1, weights[0].shape[-1])
    target.output_dense.set_weights(weights)


def copy_weights(target, source):
    target.set_weights([_numpy(w) for w in source.weights])


def copy_transformer_block(block, hub):
    """A KerasHub `TransformerEncoder`/`TransformerDecoder` (self-attention only)
    into a `kzoo.layers.TransformerEncoderBlock`/`TransformerDecoderBlock`."""
    copy_attention(block.self_attention, hub._self_attention_layer)
    copy_weights(block.self_attention_norm, hub._self_attention_layer_norm)
    copy_weights(block.feedforward.intermediate_dense, hub._feedforward_intermediate_dense)
    copy_weights(block.feedforward.output_dense, hub._feedforward_output_dense)
    copy_weights(block.feedforward_norm, hub._feedforward_layer_norm)
