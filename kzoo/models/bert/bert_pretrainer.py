"""BERT pretraining: masked-LM and next-sentence-prediction heads on a backbone."""

import keras
from keras import ops

from kzoo.models.bert.bert_backbone import (
    BertBackbone,  # noqa: F401 (docstring example)
    dense_head,
)
from kzoo.models.bert.bert_masked_lm_head import BertMaskedLMHead
from kzoo.models.task_model import TaskModel


@keras.saving.register_keras_serializable(package="kzoo")
class BertPretrainer(TaskModel):
    """BERT's two pretraining tasks on a `BertBackbone`.

    Takes the backbone's inputs plus `mask_positions` (`(batch, num_positions)`
    int32 indices of the masked tokens) and returns float32 logits
    `{"mlm": (batch, num_positions, vocabulary_size), "nsp": (batch, 2)}`: the
    masked tokens, decoded with the tied token embedding
    (`BertMaskedLMHead`), and whether segment B follows segment A, from the
    pooled output. Train with a loss per output; weight the `mlm` loss with
    `sample_weight={"mlm": mask_weights, "nsp": ones}` so padded mask slots
    count for nothing. Fine-tune from `pretrainer.backbone`.

    Args:
        backbone: A `kzoo.models.BertBackbone`.
        tokenizer, preprocessor: Optional, saved with the model (see
            `kzoo.models.task_model.TaskModel`).

    Example:
    >>> import numpy as np
    >>> backbone = BertBackbone(vocabulary_size=30, num_layers=2, num_heads=2,
    ...                         hidden_dim=8, intermediate_dim=16)
    >>> pretrainer = BertPretrainer(backbone)
    >>> out = pretrainer({"token_ids": np.ones((1, 6), "int32"),
    ...                   "segment_ids": np.zeros((1, 6), "int32"),
    ...                   "padding_mask": np.ones((1, 6), "int32"),
    ...                   "mask_positions": np.array([[2, 4]], "int32")})
    >>> tuple(out["mlm"].shape), tuple(out["nsp"].shape)
    ((1, 2, 30), (1, 2))
    """

    CONFIG_KEYS = ()

    def __init__(self, backbone, tokenizer=None, preprocessor=None, **kwargs):
        # === Layers ===
        self.backbone = backbone
        self._set_preprocessing(tokenizer, preprocessor)
        self.mlm_head = BertMaskedLMHead(
            backbone.token_embedding,
            activation=backbone.activation,
            layer_norm_epsilon=backbone.layer_norm_epsilon,
            dtype=backbone.dtype_policy,
            name="mlm_head",
        )
        self.nsp_head = dense_head(2, backbone, name="nsp_head")

        # === Functional Model ===
        mask_positions = keras.Input(shape=(None,), dtype="int32", name="mask_positions")
        inputs = {**backbone.input, "mask_positions": mask_positions}
        outputs = backbone(backbone.input)
        mlm = self.mlm_head(outputs["sequence_output"], mask_positions)
        nsp = ops.cast(self.nsp_head(outputs["pooled_output"]), "float32")
        super().__init__(inputs=inputs, outputs={"mlm": mlm, "nsp": nsp}, **kwargs)
