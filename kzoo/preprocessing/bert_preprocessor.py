"""Text (pairs) to BERT encoder inputs: the base of the BERT task preprocessors."""

import keras
import tensorflow as tf

from kzoo.preprocessing.preprocessor import Preprocessor


@keras.saving.register_keras_serializable(package="kzoo")
class BertPreprocessor(Preprocessor):
    """Packs a text, or a text pair, as `[CLS] A [SEP] (B [SEP])` for a `BertBackbone`.

    Padded to `sequence_length`; a pair is trimmed round-robin, one token at a
    time from the longer side (`kzoo.data.bert_inputs`, the code the training
    pipelines use). The encoder's `embed` signature and the task preprocessors
    (`BertMaskedLMPreprocessor`, `BertClassifierPreprocessor`,
    `BertTaggerPreprocessor`, `BertQuestionAnswererPreprocessor`) build on it.

    Args:
        tokenizer: A `kzoo.tokenizers.WordPieceTokenizer`.
        sequence_length: Packed length, [CLS] and [SEP] included
            (`data.sequence_length`).
    """

    CONFIG_KEYS = ("sequence_length",)

    def __init__(self, tokenizer, sequence_length, **kwargs):
        super().__init__(tokenizer, **kwargs)
        self.sequence_length = int(sequence_length)

    def pack(self, segments):
        """Packs ragged id segments `[B, None]` (one or two) into encoder inputs."""
        # keras_hub (the packer) is imported by BERT runs only.
        from kzoo.data.bert_inputs import pack_segments

        return pack_segments(self.tokenizer, self.sequence_length, segments)

    def text_inputs(self, texts, text_pairs=None):
        """`{"token_ids", "segment_ids", "padding_mask"}` of 1-D string tensors."""
        from kzoo.data.bert_inputs import text_inputs

        return text_inputs(self.tokenizer, self.sequence_length, texts, text_pairs)

    def call(self, texts, text_pairs=None):
        texts = tf.convert_to_tensor(texts, tf.string)
        if text_pairs is not None:
            text_pairs = tf.convert_to_tensor(text_pairs, tf.string)
        return self.text_inputs(texts, text_pairs)
