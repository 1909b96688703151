"""Documents to the inputs of a causal language model (GPT, LSTM)."""

import keras
import tensorflow as tf

from kzoo.preprocessing.preprocessor import Preprocessor


@keras.saving.register_keras_serializable(package="kzoo")
class CausalLMPreprocessor(Preprocessor):
    """Tokenizes documents for `GPTCausalLM` and `LSTMLanguageModel`.

    A document starts with the end token (the separator the training stream puts
    between documents), so the model predicts its first token too; `call` keeps
    the first `sequence_length` ids and pads with 0. Training packs the same ids
    into blocks of `sequence_length` (`kzoo.data.causal_lm`, given
    `packing_settings()`); `generate` and the exported `generate` / `score`
    start prompts the same way (`tokenize_documents`).

    Args:
        tokenizer: A `kzoo.tokenizers.SentencePieceTokenizer`.
        sequence_length: Tokens per training block (`data.sequence_length`).
        end_token_id: The end-of-document id; defaults to the tokenizer's `eos_id`.

    Example:
    >>> import tempfile
    >>> from kzoo.tokenizers import load_tokenizer, train_sentencepiece
    >>> run_dir = tempfile.mkdtemp()
    >>> _ = train_sentencepiece(texts=["to be or not to be"], model_type="char",
    ...                         output_dir=run_dir)
    >>> preprocessor = CausalLMPreprocessor(load_tokenizer(run_dir), sequence_length=4)
    >>> inputs = preprocessor(["to be", "o"])
    >>> inputs["padding_mask"].numpy().tolist()
    [[1, 1, 1, 1], [1, 1, 0, 0]]
    """

    CONFIG_KEYS = ("sequence_length", "end_token_id")

    def __init__(self, tokenizer, sequence_length, end_token_id=None, **kwargs):
        super().__init__(tokenizer, **kwargs)
        self.sequence_length = int(sequence_length)
        self.end_token_id = int(tokenizer.eos_id if end_token_id is None else end_token_id)

    def packing_settings(self):
        """The keyword arguments of `kzoo.data.causal_lm.causal_lm_dataset` that
        this preprocessor fixes: the training pipeline packs with them."""
        return dict(
            tokenizer=self.tokenizer,
            sequence_length=self.sequence_length,
            end_token_id=self.end_token_id,
        )

    def tokenize_documents(self, texts):
        """Ragged int32 ids `[B, None]` of 1-D string `texts`, each row starting
        with the end-of-document token."""
        ids = tf.cast(self.tokenizer.tokenize(texts), tf.int32)
        start = tf.fill([tf.shape(texts)[0], 1], self.end_token_id)
        return tf.concat([tf.RaggedTensor.from_tensor(start), ids], axis=1)

    def call(self, texts):
        """`{"token_ids", "padding_mask"}`, int32 `[B, sequence_length]`."""
        ids = self.tokenize_documents(tf.convert_to_tensor(texts, tf.string))
        ids = ids[:, : self.sequence_length]
        token_ids = ids.to_tensor(default_value=0, shape=[None, self.sequence_length])
        lengths = tf.cast(ids.row_lengths(), tf.int32)
        return {
            "token_ids": token_ids,
            "padding_mask": tf.sequence_mask(lengths, self.sequence_length, tf.int32),
        }
