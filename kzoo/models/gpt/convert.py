"""Weight mapping from KerasHub's `GPT2Backbone` to `kzoo.models.GPTBackbone`."""

from kzoo.models.gpt.gpt_backbone import GPTBackbone
from kzoo.models.keras_hub_weights import copy_transformer_block, copy_weights, hyperparameters


def from_keras_hub_gpt2(source):
    """Returns a `GPTBackbone` with the weights of a KerasHub `GPT2Backbone`."""
    backbone = GPTBackbone(**hyperparameters(source, "max_sequence_length"))
    copy_weights(backbone.token_embedding, source.token_embedding)
    copy_weights(backbone.position_embedding, source.position_embedding)
    for block, hub in zip(backbone.transformer_layers, source.transformer_layers):
        copy_transformer_block(block, hub)
    copy_weights(backbone.layer_norm, source.layer_norm)
    return backbone
