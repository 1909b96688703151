"""BERT sequence classification: a dense layer on the pooled [CLS] output."""

import keras
from keras import ops

from kzoo.layers import Dropout
from kzoo.models.bert.bert_backbone import (
    BertBackbone,  # noqa: F401 (docstring example)
    dense_head,
)
from kzoo.models.task_model import TaskModel


class LabelledOutputModel(TaskModel):
    """Dropout and a dense layer over one backbone output, with named labels.

    The shared body of `BertClassifier` (over `pooled_output`) and
    `BertTokenClassifier` (over `sequence_output`); `labels` are saved with the
    model, so `model.labels[i]` names output `i`.
    """

    CONFIG_KEYS = ("labels", "dropout")
    BACKBONE_OUTPUT = "pooled_output"

    def __init__(self, backbone, labels, dropout=0.1, tokenizer=None, preprocessor=None, **kwargs):
        if isinstance(labels, (str, int)) or len(labels) == 0:
            raise ValueError(f"labels must be a non-empty list of names; received {labels!r}")

        # === Layers ===
        self.backbone = backbone
        self._set_preprocessing(tokenizer, preprocessor)
        self.output_dropout = Dropout(dropout, dtype=backbone.dtype_policy, name="output_dropout")
        self.output_dense = dense_head(len(labels), backbone, name="logits")

        # === Functional Model ===
        inputs = backbone.input
        features = backbone(inputs)[self.BACKBONE_OUTPUT]
        logits = ops.cast(self.output_dense(self.output_dropout(features)), "float32")
        super().__init__(inputs=inputs, outputs=logits, **kwargs)

        # === Config ===
        self.labels = [str(label) for label in labels]
        self.dropout = dropout


@keras.saving.register_keras_serializable(package="kzoo")
class BertClassifier(LabelledOutputModel):
    """Classifies a (pair of) sequence(s) from a `BertBackbone`'s pooled output.

    Takes the backbone's input dict and returns float32 logits
    `(batch, len(labels))`: pooled output -> dropout -> dense, as in BERT and
    KerasHub's `BertTextClassifier`. Train with
    `SparseCategoricalCrossentropy(from_logits=True)` on label indices. The label
    names are saved with the model, so `classifier.labels[i]` names class `i`.

    Args:
        backbone: A `kzoo.models.BertBackbone`, e.g. `pretrainer.backbone` or one
            loaded from a `.keras` file; its weights are shared, not copied.
        labels: The class names, in class-index order.
        dropout: Dropout on the pooled output.
        tokenizer, preprocessor: Optional, saved with the model (see
            `kzoo.models.task_model.TaskModel`).

    Example:
    >>> import numpy as np
    >>> backbone = BertBackbone(vocabulary_size=30, num_layers=2, num_heads=2,
    ...                         hidden_dim=8, intermediate_dim=16)
    >>> classifier = BertClassifier(backbone, labels=["negative", "positive"])
    >>> logits = classifier({"token_ids": np.ones((3, 6), "int32"),
    ...                      "segment_ids": np.zeros((3, 6), "int32"),
    ...                      "padding_mask": np.ones((3, 6), "int32")})
    >>> tuple(logits.shape)
    (3, 2)
    """

    BACKBONE_OUTPUT = "pooled_output"
