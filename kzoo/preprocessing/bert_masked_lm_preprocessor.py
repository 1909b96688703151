"""Texts with "[MASK]" to the inputs of a `BertPretrainer`, and its masking settings."""

import keras
import tensorflow as tf

from kzoo.preprocessing.bert_preprocessor import BertPreprocessor

MASK_TOKEN = "[MASK]"


@keras.saving.register_keras_serializable(package="kzoo")
class BertMaskedLMPreprocessor(BertPreprocessor):
    """Packs texts whose literal "[MASK]"s are to be filled, for a `BertPretrainer`.

    `call` gives the encoder inputs plus `mask_positions` (int32 `[B, M]`, M the
    most [MASK]s of a row, at least 1): each row's [MASK] positions in order,
    then 0 (the [CLS] position) in unused slots. [MASK]s cut off by
    `sequence_length` are dropped. Training masks tokens at random instead
    (`kzoo.data.bert_pretraining`) with the rates kept here.

    Args:
        tokenizer: A `kzoo.tokenizers.WordPieceTokenizer`.
        sequence_length: Packed length (`data.sequence_length`).
        mask_selection_rate: Share of tokens selected for prediction in training
            (`data.mlm_selection_rate`).
        mask_token_rate: Of those, the share replaced by [MASK]
            (`data.mlm_mask_token_rate`).
        random_token_rate: The share replaced by a random token
            (`data.mlm_random_token_rate`).
    """

    CONFIG_KEYS = ("sequence_length", "mask_selection_rate", "mask_token_rate", "random_token_rate")

    def __init__(
        self,
        tokenizer,
        sequence_length,
        mask_selection_rate=0.15,
        mask_token_rate=0.8,
        random_token_rate=0.1,
        **kwargs,
    ):
        super().__init__(tokenizer, sequence_length, **kwargs)
        self.mask_selection_rate = float(mask_selection_rate)
        self.mask_token_rate = float(mask_token_rate)
        self.random_token_rate = float(random_token_rate)

    def masking_settings(self):
        """The rates of `kzoo.data.bert_pretraining.bert_pretraining_dataset`
        (keyword arguments): training masks with this model's settings."""
        return dict(
            selection_rate=self.mask_selection_rate,
            mask_token_rate=self.mask_token_rate,
            random_token_rate=self.random_token_rate,
        )

    def tokenize_with_masks(self, texts):
        """Ragged ids of 1-D string `texts`, each literal "[MASK]" as the [MASK] id."""
        mask_id = int(self.tokenizer.mask_id)
        parts = tf.strings.split(texts, MASK_TOKEN)  # [B, S]: S - 1 masks per row
        rows = parts.value_rowids()
        index = tf.range(tf.size(rows, tf.int64)) - tf.gather(parts.row_starts(), rows)
        followed_by_mask = index < tf.gather(parts.row_lengths(), rows) - 1
        count = tf.cast(followed_by_mask, tf.int64)
        marks = tf.RaggedTensor.from_row_lengths(tf.fill([tf.reduce_sum(count)], mask_id), count)
        pieces = tf.concat(
            [tf.cast(self.tokenizer.tokenize(parts.flat_values), tf.int32), marks], axis=1
        )
        return tf.RaggedTensor.from_row_splits(pieces, parts.row_splits).merge_dims(1, 2)

    def call(self, texts):
        packed = self.pack([self.tokenize_with_masks(tf.convert_to_tensor(texts, tf.string))])
        is_mask = tf.equal(packed["token_ids"], int(self.tokenizer.mask_id))
        count = tf.reduce_sum(tf.cast(is_mask, tf.int32), axis=1)
        slots = tf.maximum(tf.reduce_max(count), 1)
        # Mask positions first, in order; unused slots point at [CLS].
        order = tf.argsort(tf.cast(~is_mask, tf.int32), axis=1, stable=True)[:, :slots]
        used = tf.range(slots)[None, :] < count[:, None]
        return {**packed, "mask_positions": tf.where(used, order, 0)}
