"""BERT extractive question answering: start and end logits over the tokens."""

import keras
from keras import ops

from kzoo.models.bert.bert_backbone import (
    BertBackbone,  # noqa: F401 (docstring example)
    dense_head,
)
from kzoo.models.task_model import TaskModel

# Logit of padded positions: softmax gives them exactly 0, and it stays finite
# in float32, so losses and argmax behave.
PADDING_LOGIT = -1e9


@keras.saving.register_keras_serializable(package="kzoo")
class BertQuestionAnswerer(TaskModel):
    """Finds an answer span in the context: the start and end token of the answer.

    Takes the backbone's input dict (question as segment 0, context as segment
    1) and returns float32 logits `{"start_logits": (batch, length),
    "end_logits": (batch, length)}` from one dense layer of width 2 on the
    sequence output, as in BERT's SQuAD head. Positions where `padding_mask` is
    0 get `PADDING_LOGIT` (-1e9), so a softmax over the sequence ignores them.
    Train with `SparseCategoricalCrossentropy(from_logits=True)` per output on
    the start and end token indices.

    Args:
        backbone: A `kzoo.models.BertBackbone`, e.g. `pretrainer.backbone` or one
            loaded from a `.keras` file; its weights are shared, not copied.
        tokenizer, preprocessor: Optional, saved with the model (see
            `kzoo.models.task_model.TaskModel`).

    Example:
    >>> import numpy as np
    >>> backbone = BertBackbone(vocabulary_size=30, num_layers=2, num_heads=2,
    ...                         hidden_dim=8, intermediate_dim=16)
    >>> answerer = BertQuestionAnswerer(backbone)
    >>> out = answerer({"token_ids": np.ones((1, 6), "int32"),
    ...                 "segment_ids": np.array([[0, 0, 0, 1, 1, 1]], "int32"),
    ...                 "padding_mask": np.array([[1, 1, 1, 1, 1, 0]], "int32")})
    >>> tuple(out["start_logits"].shape), float(out["end_logits"][0, 5])
    ((1, 6), -1000000000.0)
    """

    CONFIG_KEYS = ()

    def __init__(self, backbone, tokenizer=None, preprocessor=None, **kwargs):
        # === Layers ===
        self.backbone = backbone
        self._set_preprocessing(tokenizer, preprocessor)
        self.span_dense = dense_head(2, backbone, name="span_logits")

        # === Functional Model ===
        inputs = backbone.input
        sequence = backbone(inputs)["sequence_output"]
        logits = ops.cast(self.span_dense(sequence), "float32")
        is_token = ops.cast(inputs["padding_mask"], "bool")
        start = ops.where(is_token, logits[..., 0], PADDING_LOGIT)
        end = ops.where(is_token, logits[..., 1], PADDING_LOGIT)
        super().__init__(
            inputs=inputs, outputs={"start_logits": start, "end_logits": end}, **kwargs
        )
