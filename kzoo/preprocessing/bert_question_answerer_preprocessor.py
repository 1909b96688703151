"""Questions and contexts to the windows of a `BertQuestionAnswerer`."""

import keras
import tensorflow as tf

from kzoo.preprocessing.bert_preprocessor import BertPreprocessor


@keras.saving.register_keras_serializable(package="kzoo")
class BertQuestionAnswererPreprocessor(BertPreprocessor):
    """Packs `[CLS] question [SEP] context window [SEP]` for extractive QA.

    A question keeps its first `max_query_tokens` tokens; a long context is split
    into windows that start `doc_stride` tokens apart (`kzoo.data.qa_windows`),
    and the best answer over a question's windows is at most `max_answer_tokens`
    long (`kzoo.data.qa_answers`).

    Args:
        tokenizer: A `kzoo.tokenizers.WordPieceTokenizer`.
        sequence_length: Packed length (`data.sequence_length`).
        max_query_tokens: Question tokens kept (`data.max_query_tokens`).
        doc_stride: Tokens between window starts (`data.doc_stride`).
        max_answer_tokens: The longest answer span (`data.max_answer_tokens`).
    """

    CONFIG_KEYS = ("sequence_length", "max_query_tokens", "doc_stride", "max_answer_tokens")

    def __init__(
        self, tokenizer, sequence_length, max_query_tokens, doc_stride, max_answer_tokens, **kwargs
    ):
        super().__init__(tokenizer, sequence_length, **kwargs)
        self.max_query_tokens = int(max_query_tokens)
        self.doc_stride = int(doc_stride)
        self.max_answer_tokens = int(max_answer_tokens)

    def window_settings(self):
        """The keyword arguments of `kzoo.data.qa_windows`' functions."""
        return dict(
            sequence_length=self.sequence_length,
            max_query_tokens=self.max_query_tokens,
            doc_stride=self.doc_stride,
        )

    def windows(self, questions, contexts):
        """The windows of 1-D string tensors: model inputs and where each window
        came from (see `kzoo.data.qa_windows.qa_windows`)."""
        from kzoo.data.qa_windows import qa_windows

        return qa_windows(self.tokenizer, questions, contexts, **self.window_settings())

    def call(self, questions, contexts):
        windows = self.windows(
            tf.convert_to_tensor(questions, tf.string), tf.convert_to_tensor(contexts, tf.string)
        )
        return {key: windows[key] for key in ("token_ids", "segment_ids", "padding_mask")}
