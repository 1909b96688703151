"""Preprocessors: the tokenizer and every setting that turns raw text into a
model's inputs, as Keras layers saved with the model (`model.preprocessor`).

Importing this package registers them for `keras.saving` (a `model.keras`
names its preprocessor by its registered name; `kzoo.models` never imports it).
"""

from kzoo.preprocessing.bert_classifier_preprocessor import BertClassifierPreprocessor
from kzoo.preprocessing.bert_masked_lm_preprocessor import BertMaskedLMPreprocessor
from kzoo.preprocessing.bert_preprocessor import BertPreprocessor
from kzoo.preprocessing.bert_question_answerer_preprocessor import BertQuestionAnswererPreprocessor
from kzoo.preprocessing.bert_tagger_preprocessor import BertTaggerPreprocessor
from kzoo.preprocessing.causal_lm_preprocessor import CausalLMPreprocessor
from kzoo.preprocessing.preprocessor import Preprocessor
from kzoo.preprocessing.seq2seq_preprocessor import Seq2SeqPreprocessor

__all__ = [
    "BertClassifierPreprocessor",
    "BertMaskedLMPreprocessor",
    "BertPreprocessor",
    "BertQuestionAnswererPreprocessor",
    "BertTaggerPreprocessor",
    "CausalLMPreprocessor",
    "Preprocessor",
    "Seq2SeqPreprocessor",
]
