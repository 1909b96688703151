"""BERT token classification (tagging): a dense layer on every token's output."""

import keras

from kzoo.models.bert.bert_backbone import BertBackbone  # noqa: F401 (docstring example)
from kzoo.models.bert.bert_classifier import LabelledOutputModel


@keras.saving.register_keras_serializable(package="kzoo")
class BertTokenClassifier(LabelledOutputModel):
    """Tags every token (e.g. named entities) from a `BertBackbone`'s sequence output.

    Takes the backbone's input dict and returns float32 logits
    `(batch, length, len(labels))`: sequence output -> dropout -> dense. Train
    with `SparseCategoricalCrossentropy(from_logits=True)` on `(batch, length)`
    tag indices, passing the padding mask (or a mask of first sub-tokens) as
    `sample_weight` so padding is not scored. The tag names are saved with the
    model, so `tagger.labels[i]` names tag `i`.

    Args:
        backbone: A `kzoo.models.BertBackbone`, e.g. `pretrainer.backbone` or one
            loaded from a `.keras` file; its weights are shared, not copied.
        labels: The tag names (e.g. `["O", "B-PER", "I-PER"]`), in index order.
        dropout: Dropout on the sequence output.
        tokenizer, preprocessor: Optional, saved with the model (see
            `kzoo.models.task_model.TaskModel`).

    Example:
    >>> import numpy as np
    >>> backbone = BertBackbone(vocabulary_size=30, num_layers=2, num_heads=2,
    ...                         hidden_dim=8, intermediate_dim=16)
    >>> tagger = BertTokenClassifier(backbone, labels=["O", "B-PER", "I-PER"])
    >>> logits = tagger({"token_ids": np.ones((2, 6), "int32"),
    ...                  "segment_ids": np.zeros((2, 6), "int32"),
    ...                  "padding_mask": np.ones((2, 6), "int32")})
    >>> tuple(logits.shape)
    (2, 6, 3)
    """

    BACKBONE_OUTPUT = "sequence_output"
