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
from kzoo.models.llama import LlamaBackbone, LlamaCausalLM
from kzoo.models.lstm import LSTMLanguageModel
from kzoo.models.seq2seq import SEQ2SEQ_SIZES, LSTMSeq2SeqBackbone, Seq2SeqBackbone, Seq2SeqLM
from kzoo.models.t5 import T5_SIZES, T5Backbone

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
    "LSTMSeq2SeqBackbone",
    "LlamaBackbone",
    "LlamaCausalLM",
    "SEQ2SEQ_SIZES",
    "Seq2SeqBackbone",
    "Seq2SeqLM",
    "T5Backbone",
    "T5_SIZES",
]
