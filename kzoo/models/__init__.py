"""Model families assembled from `kzoo.layers` (`keras.ops` only; no TensorFlow)."""

from kzoo.models.bert import (
    BertBackbone,
    BertClassifier,
    BertMaskedLMHead,
    BertPretrainer,
    BertQuestionAnswerer,
    BertTokenClassifier,
)
from kzoo.models.gpt import GPTBackbone, GPTCausalLM
from kzoo.models.lstm import LSTMLanguageModel

__all__ = [
    "BertBackbone",
    "BertClassifier",
    "BertMaskedLMHead",
    "BertPretrainer",
    "BertQuestionAnswerer",
    "BertTokenClassifier",
    "GPTBackbone",
    "GPTCausalLM",
    "LSTMLanguageModel",
]
