"""Source (and target) texts to the inputs of a `Seq2SeqLM`: translation and T5."""

import keras
import tensorflow as tf

from kzoo.preprocessing.preprocessor import Preprocessor


@keras.saving.register_keras_serializable(package="kzoo")
class Seq2SeqPreprocessor(Preprocessor):
    """Tokenizes sources and targets for an encoder-decoder with teacher forcing.

    A source is its tokens then the end token; the decoder reads the start token
    then the target, and predicts the target then the end token (the layout of
    `kzoo.data.seq2seq_pipeline`). Training drops pairs longer than
    `max_source_length` / `max_target_length` (ids, end or start token
    included); `call` cuts them instead, so any text gets an answer. A T5
    text-to-text run records its `task_prefix` ("translate: " ...): the training
    sources were given it, so requests should carry it too.

    Args:
        tokenizer: A `kzoo.tokenizers.SentencePieceTokenizer`.
        max_source_length: Source ids, end token included (`data.max_source_length`).
        max_target_length: Decoder ids, start token included
            (`data.max_target_length`).
        start_token_id: The first decoder token; defaults to the tokenizer's
            `bos_id`, or its `pad_id` for a vocabulary without one (T5's
            released vocabularies: the decoder starts from the pad token).
        end_token_id: The token ending sources and targets; defaults to the
            tokenizer's `eos_id`.
        task_prefix: The text-to-text prefix of the training sources, or None.
    """

    CONFIG_KEYS = (
        "max_source_length",
        "max_target_length",
        "start_token_id",
        "end_token_id",
        "task_prefix",
    )

    def __init__(
        self,
        tokenizer,
        max_source_length,
        max_target_length,
        start_token_id=None,
        end_token_id=None,
        task_prefix=None,
        **kwargs,
    ):
        super().__init__(tokenizer, **kwargs)
        self.max_source_length = int(max_source_length)
        self.max_target_length = int(max_target_length)
        if start_token_id is None:
            bos_id = int(tokenizer.bos_id)
            start_token_id = bos_id if bos_id >= 0 else tokenizer.pad_id
        self.start_token_id = int(start_token_id)
        self.end_token_id = int(tokenizer.eos_id if end_token_id is None else end_token_id)
        self.task_prefix = task_prefix

    def batching_settings(self):
        """The keyword arguments of `kzoo.data.seq2seq_pipeline.seq2seq_dataset`
        that this preprocessor fixes: the training pipeline batches with them."""
        return dict(
            tokenizer=self.tokenizer,
            max_source_length=self.max_source_length,
            max_target_length=self.max_target_length,
            start_id=self.start_token_id,
            end_id=self.end_token_id,
        )

    def source_ids(self, texts, max_tokens=None):
        """Ragged int32 ids of 1-D string `texts`: the first `max_tokens - 1`
        tokens (default `max_source_length`), then the end token."""
        keep = (max_tokens or self.max_source_length) - 1
        ids = tf.cast(self.tokenizer.tokenize(texts), tf.int32)[:, :keep]
        return tf.concat([ids, id_column(tf.shape(texts)[0], self.end_token_id)], axis=1)

    def decoder_ids(self, texts, max_tokens=None):
        """Ragged int32 ids of 1-D string targets: the start token, the first
        `max_tokens - 1` target tokens (default `max_target_length`), the end token."""
        keep = (max_tokens or self.max_target_length) - 1
        ids = tf.cast(self.tokenizer.tokenize(texts), tf.int32)[:, :keep]
        batch = tf.shape(texts)[0]
        return tf.concat(
            [id_column(batch, self.start_token_id), ids, id_column(batch, self.end_token_id)],
            axis=1,
        )

    def call(self, sources, targets=None):
        """The model's four inputs (int32, 0-padded); without targets the decoder
        holds the start token alone."""
        sources = tf.convert_to_tensor(sources, tf.string)
        source = self.source_ids(sources)
        if targets is None:
            decoder = id_column(tf.shape(sources)[0], self.start_token_id)
        else:
            decoder = self.decoder_ids(tf.convert_to_tensor(targets, tf.string))[:, :-1]
        source_ids, source_mask = dense(source)
        decoder_ids, decoder_mask = dense(decoder)
        return {
            "encoder_token_ids": source_ids,
            "encoder_padding_mask": source_mask,
            "decoder_token_ids": decoder_ids,
            "decoder_padding_mask": decoder_mask,
        }


def id_column(batch, value):
    """A ragged `[batch, 1]` column of `value`."""
    return tf.RaggedTensor.from_tensor(tf.fill([batch, 1], tf.constant(value, tf.int32)))


def dense(ragged, width=None):
    """Right-padded ids and their int32 mask; `width` defaults to the longest row."""
    lengths = tf.cast(ragged.row_lengths(), tf.int32)
    ids = ragged.to_tensor(default_value=0)
    if width is not None:
        ids = tf.pad(ids, [[0, 0], [0, width - tf.shape(ids)[1]]])
    return ids, tf.sequence_mask(lengths, tf.shape(ids)[1], tf.int32)
