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
from kzoo.models.t5 import T5Backbone
from kzoo.models.seq2seq import (
    SEQ2SEQ_SIZES,
    LSTMSeq2Seq,
    Seq2SeqBackbone,
    Seq2SeqTranslator,
)

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
    "LSTMSeq2Seq",
    "SEQ2SEQ_SIZES",
    "Seq2SeqBackbone",
    "Seq2SeqTranslator",
    "T5Backbone",
]
