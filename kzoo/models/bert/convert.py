"""Weight mapping from KerasHub's `BertBackbone` to `kzoo.models.BertBackbone`."""

from kzoo.models.bert.bert_backbone import BertBackbone
from kzoo.models.keras_hub_weights import copy_transformer_block, copy_weights, hyperparameters


def from_keras_hub_bert(source):
    """Returns a `BertBackbone` with the weights of a KerasHub `BertBackbone`.

    KerasHub's BERT uses the tanh approximation of gelu, so the converted model
    does too (`activation="gelu_approximate"`): outputs stay identical.
    """
    backbone = BertBackbone(
        **hyperparameters(source, "max_sequence_length", "num_segments"),
        activation="gelu_approximate",
    )
    for name in (
        "token_embedding",
        "position_embedding",
        "segment_embedding",
        "embeddings_layer_norm",
        "pooled_dense",
    ):
        copy_weights(getattr(backbone, name), getattr(source, name))
    for block, hub in zip(backbone.transformer_layers, source.transformer_layers):
        copy_transformer_block(block, hub)
    return backbone
