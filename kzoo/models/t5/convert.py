"""Weight mapping from KerasHub's `T5Backbone` to `kzoo.models.T5Backbone`."""

import keras

from kzoo.models.keras_hub_weights import copy_weights, hyperparameters
from kzoo.models.t5.t5_backbone import ACTIVATIONS, T5Backbone


def _activation_name(activation):
    """`"relu"`, `"gelu"` or `"gelu_approximate"` for a KerasHub activation."""
    name = keras.activations.serialize(activation)
    if isinstance(name, dict):  # a registered function, e.g. keras_hub>gelu_approximate
        name = name.get("config")
    name = str(name).split(">")[-1]
    if name not in ACTIVATIONS:
        raise ValueError(
            f"from_keras_hub_t5: activation must be one of {ACTIVATIONS}; received {name!r}"
        )
    return name


def _copy_attention(target, source):
    """A KerasHub `T5MultiHeadAttention` into a `kzoo.layers.MultiHeadAttention`
    (both keep `(hidden_dim, num_heads * head_dim)` kernels without biases)."""
    copy_weights(target.query_dense, source.query_projector)
    copy_weights(target.key_dense, source.key_projector)
    copy_weights(target.value_dense, source.value_projector)
    copy_weights(target.output_dense, source.output_projector)


def _copy_layer(block, hub):
    _copy_attention(block.self_attention, hub.self_attention)
    copy_weights(block.self_attention_norm, hub.self_attention_layer_norm)
    if hub.is_decoder:
        _copy_attention(block.cross_attention_layer, hub.cross_attention)
        copy_weights(block.cross_attention_norm, hub.cross_attention_layer_norm)
    # KerasHub activates `input_projector` and gates with the linear
    # `gate_projector`; kzoo activates `gate_dense` and multiplies `intermediate_dense`.
    feedforward = block.feedforward
    if hub.use_gated_activation:
        copy_weights(feedforward.gate_dense, hub.input_projector)
        copy_weights(feedforward.intermediate_dense, hub.gate_projector)
    else:
        copy_weights(feedforward.intermediate_dense, hub.input_projector)
    copy_weights(feedforward.output_dense, hub.output_projector)
    copy_weights(block.feedforward_norm, hub.layer_norm)


def from_keras_hub_t5(source):
    """Returns a `T5Backbone` with the weights of a KerasHub `T5Backbone`.

    The relative position bias of each stack lives in its first layer in
    KerasHub and in the backbone in kzoo.
    """
    backbone = T5Backbone(
        **hyperparameters(
            source,
            "key_value_dim",
            "use_gated_activation",
            "layer_norm_epsilon",
            "tie_embedding_weights",
        ),
        activation=_activation_name(source.activation),
    )
    copy_weights(backbone.token_embedding, source.token_embedding)
    stacks = [
        (
            backbone.encoder_relative_position_bias,
            backbone.encoder_transformer_layers,
            backbone.encoder_layer_norm,
            source.encoder_transformer_layers,
            source.encoder_layer_norm,
        ),
        (
            backbone.decoder_relative_position_bias,
            backbone.decoder_transformer_layers,
            backbone.decoder_layer_norm,
            source.decoder_transformer_layers,
            source.decoder_layer_norm,
        ),
    ]
    for bias, blocks, norm, hub_layers, hub_norm in stacks:
        bias.embeddings.assign(hub_layers[0].self_attention.relative_attention_bias)
        for block, hub in zip(blocks, hub_layers):
            _copy_layer(block, hub)
        copy_weights(norm, hub_norm)
    return backbone
