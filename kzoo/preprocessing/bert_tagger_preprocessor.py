"""Raw text to words and the inputs of a `BertTokenClassifier`."""

import keras
import tensorflow as tf

from kzoo.preprocessing.bert_preprocessor import BertPreprocessor


@keras.saving.register_keras_serializable(package="kzoo")
class BertTaggerPreprocessor(BertPreprocessor):
    """Splits text into words and packs their sub-words for token tagging.

    Words are split at whitespace, each punctuation character a word of its own
    (`kzoo.data.bert_inputs.split_words`); a word's tag is predicted at its first
    sub-word. Words past `sequence_length` are not seen by the model (position
    -1 in `word_inputs`). The tag names stay with the model
    (`BertTokenClassifier.labels`).

    Args:
        tokenizer: A `kzoo.tokenizers.WordPieceTokenizer`.
        sequence_length: Packed length (`data.sequence_length`).
    """

    def split_words(self, texts):
        """Ragged string words `[B, None]` of 1-D string `texts`."""
        from kzoo.data.bert_inputs import split_words

        return split_words(texts)

    def word_inputs(self, words):
        """`(inputs, first_positions)` of ragged words `[B, W]`; see
        `kzoo.data.bert_inputs.word_inputs`."""
        from kzoo.data.bert_inputs import word_inputs

        return word_inputs(self.tokenizer, self.sequence_length, words)

    def call(self, texts):
        words = self.split_words(tf.convert_to_tensor(texts, tf.string))
        return self.word_inputs(words)[0]
