"""The LiteRT signatures of BERT runs: raw strings in, the tokenizer inside the model.

    classify  texts string [B] (, text_pairs string [B] for a pair classifier)
           -> label string [B], label_id int32 [B], probabilities float32 [B, C]
    tag       texts string [B]
           -> tags string [B, W], start_byte / end_byte int32 [B, W] (each word's
              UTF-8 byte span in its text: `text.encode()[start:end]`),
              num_words int32 [B]; rows padded with "" and 0
    embed     texts string [B] -> embedding float32 [B, H] (the pooled output)

A classifier has `classify` and `embed`, a tagger `tag` and `embed`, a pretraining
run `embed`. They answer as the SavedModel signatures do (`bert_signatures`), with
the same preprocessor settings (`model.preprocessor`: the WordPiece tokenizer,
`sequence_length`, `pairs`), with these differences, all from what TFLite can run:

- Tokenization is TF Text's `FastBertNormalize` and `FastWordpieceTokenize` ops,
  custom ops that an interpreter runs once TF Text registers them
  (`litert_driver.load_interpreter`; on a device, link TF Text's TFLite op
  library). They are built here as `WordPieceTokenizer` builds its
  `FastBertTokenizer` (the vocabulary, "##", "[UNK]", `lowercase`), because that
  class maps offsets back through the normalizer with a ragged gather
  (`RaggedGather`, no TFLite kernel); the ids are the same (the tests compare
  them). Texts must be valid UTF-8 (no replacement, as `unicode_transcode` has
  no TFLite kernel).
- Packing `[CLS] A [SEP] (B [SEP])` is done here with dense ops (`pack_dense`):
  KerasHub's `MultiSegmentPacker` concatenates ragged tensors (`RaggedGather`, no
  TFLite kernel). The round-robin trimming is the same TF Text op; the result is
  the same ids (the tests compare them).
- `tag`'s words are the tokenizer's (whitespace, each punctuation character and
  each CJK ideograph a word; a word the normalizer empties is no word), returned
  as byte spans (TFLite has no substring kernel); `bert_signatures.tag` splits
  with a regular expression, which gives the same words for text without CJK or
  control characters. Words past `sequence_length` are tagged "O" as there.
"""

import numpy as np
import tensorflow as tf
import tensorflow_text as tf_text

from kzoo.export.bert_signatures import model_preprocessor
from kzoo.tokenizers.wordpiece_tokenizer import UNK
from kzoo.tokenizers.wordpiece_trainer import SUFFIX_INDICATOR

# Model class -> its main endpoint (None: `embed` alone); every one serves `embed`.
MAIN_ENDPOINTS = {
    "BertClassifier": "classify",
    "BertTokenClassifier": "tag",
    "BertPretrainer": None,
}
CUSTOM_OPS = "tensorflow_text"


def _texts(name="texts"):
    return tf.TensorSpec([None], tf.string, name=name)


class BertLiteRT:
    """The LiteRT endpoints of a BERT task model (see the module docstring).

    Args:
        model: `BertClassifier`, `BertTokenClassifier` or `BertPretrainer` with
            its preprocessor (float: an int8 run's `litert_dequantize.float_copy`).

    Raises:
        ValueError: A tokenizer with `normalization="huggingface"` (an imported
            BERT checkpoint's): its regular expressions have no TFLite kernels.
    """

    custom_ops = CUSTOM_OPS

    def __init__(self, model):
        self.model = model
        self.preprocessor = model_preprocessor(model)
        self.tokenizer = self.preprocessor.tokenizer
        self.sequence_length = int(self.preprocessor.sequence_length)
        self.pairs = bool(getattr(self.preprocessor, "pairs", False))
        self.main = MAIN_ENDPOINTS[type(model).__name__]
        if getattr(self.tokenizer, "normalization", "tf_text") != "tf_text":
            raise ValueError(
                f"{type(model).__name__}: its tokenizer normalizes as Hugging Face does "
                f"(normalization={self.tokenizer.normalization!r}: an imported checkpoint), "
                "with regular expressions TFLite cannot run; only TF Text's BERT "
                "normalization (a kzoo-trained WordPiece vocabulary) exports to LiteRT"
            )
        self._labels = list(getattr(model, "labels", []) or [])
        vocabulary = self.tokenizer.get_vocabulary()
        self._normalizer = tf_text.FastBertNormalizer(
            lower_case_nfd_strip_accents=self.tokenizer.lowercase
        )
        self._wordpiece = tf_text.FastWordpieceTokenizer(
            vocab=vocabulary,
            suffix_indicator=SUFFIX_INDICATOR,
            token_out_type=tf.int32,
            unknown_token=UNK,
        )
        # Whether each token starts a word (no suffix mark), for `tag`.
        self._starts_word = tf.constant(
            [not token.startswith(SUFFIX_INDICATOR) for token in vocabulary]
        )

    @classmethod
    def from_model(cls, model, run, settings):
        return cls(model)

    def trackables(self):
        return [self.model]

    def endpoints(self):
        """`{name: (function, input specs)}`, the main endpoint first."""
        endpoints = {}
        if self.main == "classify":
            specs = {
                "texts": _texts(),
                **({"text_pairs": _texts("text_pairs")} if self.pairs else {}),
            }
            endpoints["classify"] = (self.classify, specs)
        elif self.main == "tag":
            endpoints["tag"] = (self.tag, {"texts": _texts()})
        endpoints["embed"] = (self.embed, {"texts": _texts()})
        return endpoints

    def manifest(self):
        return {
            "labels": self._labels,
            "sequence_length": self.sequence_length,
            "pairs": self.pairs,
        }

    def write_assets(self, directory):
        return None  # The tokenizer is inside model.tflite.

    def sample_inputs(self):
        """One small input per endpoint (the export runs each once)."""
        texts = np.array([b"a b", b""], dtype=object)
        return {
            name: {key: texts for key in specs} for name, (_, specs) in self.endpoints().items()
        }

    # --- Endpoints ----------------------------------------------------------------

    def classify(self, inputs):
        segments = [self.tokenize(inputs["texts"])]
        if "text_pairs" in inputs:
            segments.append(self.tokenize(inputs["text_pairs"]))
        logits = self.model(self._pack(segments), training=False)
        probabilities = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
        label_id = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
        return {
            "label": tf.gather(tf.constant(self._labels), label_id),
            "label_id": label_id,
            "probabilities": probabilities,
        }

    def embed(self, inputs):
        packed = self._pack([self.tokenize(inputs["texts"])])
        pooled = self.model.backbone(packed, training=False)["pooled_output"]
        return {"embedding": tf.cast(pooled, tf.float32)}

    def tag(self, inputs):
        ids, starts, ends = self.tokenize_with_offsets(inputs["texts"])
        best = tf.argmax(self.model(self._pack([ids]), training=False), axis=-1)
        best = tf.cast(best, tf.int32)  # [B, L]: the best tag of each packed position
        words = word_spans(ids, starts, ends, self._starts_word)
        first, valid = words["first_piece"], words["valid"]
        # A word is tagged at its first piece, after [CLS]; past the last [SEP]
        # slot it was cut off and gets "O".
        position = first + 1
        seen = position < self.sequence_length - 1
        tag_id = tf.gather(best, tf.minimum(position, self.sequence_length - 1), batch_dims=1)
        # Indices into labels + ["O", ""]: cut-off words, then padding.
        outside, padding = len(self._labels), len(self._labels) + 1
        index = tf.where(valid, tf.where(seen, tag_id, outside), padding)
        return {
            "tags": tf.gather(tf.constant([*self._labels, "O", ""]), index),
            "start_byte": words["start_byte"],
            "end_byte": words["end_byte"],
            "num_words": words["num_words"],
        }

    # --- Shared steps -------------------------------------------------------------

    def tokenize(self, texts):
        """The WordPiece ids of 1-D string `texts`, ragged int32 `[B, None]`."""
        return self._wordpiece.tokenize(self._normalizer.normalize(texts))

    def tokenize_with_offsets(self, texts):
        """`(ids, starts, ends)`: the ids (ragged `[B, P]`) and each piece's UTF-8
        byte span in the text as it was given, int32 `[B, P]` (0-padded)."""
        normalized, offsets = self._normalizer.normalize_with_offsets(texts)
        ids, starts, ends = self._wordpiece.tokenize_with_offsets(normalized)
        # offsets[b, i]: the byte of text b where normalized byte i came from.
        offsets = offsets.to_tensor(default_value=0)

        def original(positions):
            dense = tf.cast(positions.to_tensor(default_value=0), tf.int32)
            return tf.cast(tf.gather(offsets, dense, batch_dims=1), tf.int32)

        return ids, original(starts), original(ends)

    def _pack(self, segments):
        tokenizer = self.tokenizer
        return pack_dense(
            segments, self.sequence_length, tokenizer.cls_id, tokenizer.sep_id, tokenizer.pad_id
        )


def pack_dense(segments, sequence_length, cls_id, sep_id, pad_id):
    """`[CLS] A [SEP] (B [SEP])` of ragged id segments, with dense ops only.

    The same inputs as `kzoo.data.bert_inputs.pack_segments` (KerasHub's
    `MultiSegmentPacker`: round-robin trimming, then padding), built by gathering
    each position's id from the trimmed segments instead of concatenating ragged
    tensors, which TFLite cannot run.

    Args:
        segments: One or two int32 `tf.RaggedTensor`s `[B, None]`.
        sequence_length: L, the special tokens included.
        cls_id, sep_id, pad_id: The special tokens' ids.

    Returns:
        `{"token_ids", "segment_ids", "padding_mask"}`, int32 `[B, L]`.

    Example:
    >>> packed = pack_dense([tf.ragged.constant([[7, 8, 9], []])], 5, 2, 3, 0)
    >>> packed["token_ids"].numpy().tolist()
    [[2, 7, 8, 9, 3], [2, 3, 0, 0, 0]]
    """
    trimmed = tf_text.RoundRobinTrimmer(sequence_length - len(segments) - 1).trim(segments)
    batch = trimmed[0].nrows(out_type=tf.int32)
    positions = tf.tile(tf.expand_dims(tf.range(sequence_length), 0), [batch, 1])
    token_ids = tf.where(positions == 0, cls_id, pad_id)
    segment_ids = tf.zeros_like(positions)
    start = tf.ones([batch, 1], tf.int32)
    for index, segment in enumerate(trimmed):
        segment = tf.cast(segment, tf.int32)
        lengths = tf.expand_dims(tf.cast(segment.row_lengths(), tf.int32), 1)
        offset = positions - start
        inside = tf.logical_and(offset >= 0, offset < lengths)
        # One padding value past the end, so that an all-empty batch gathers too.
        values = tf.concat([segment.flat_values, [pad_id]], axis=0)
        row_starts = tf.expand_dims(tf.cast(segment.row_starts(), tf.int32), 1)
        flat_index = tf.where(inside, row_starts + offset, tf.shape(values)[0] - 1)
        token_ids = tf.where(inside, tf.gather(values, flat_index), token_ids)
        token_ids = tf.where(offset == lengths, sep_id, token_ids)
        in_segment = tf.logical_and(offset >= 0, offset <= lengths)
        segment_ids = tf.where(in_segment, index, segment_ids)
        start = start + lengths + 1
    return {
        "token_ids": token_ids,
        "segment_ids": segment_ids,
        "padding_mask": tf.cast(token_ids != pad_id, tf.int32),
    }


def word_spans(ids, starts, ends, starts_word):
    """The words of tokenized texts: where each starts among the pieces and in
    the text.

    Args:
        ids: int32 `tf.RaggedTensor` `[B, P]`, the pieces of each text.
        starts, ends: Their UTF-8 byte spans in the text, int32 `[B, P]`
            (padded: `ids.to_tensor()`'s shape)
        starts_word: bool `[V]`, whether a token starts a word.

    Returns:
        A dict of `[B, W]` tensors (W the most words of a text): `first_piece`
        (int32, the index of the word's first piece), `start_byte`,
        `end_byte` (int32; 0 past the text's words), `valid` (bool), and
        `num_words` int32 `[B]`.

    Example:
    >>> words = word_spans(tf.ragged.constant([[5, 6, 5], [6]]),
    ...                    tf.constant([[0, 2, 4], [0, 0, 0]]),
    ...                    tf.constant([[2, 3, 6], [1, 0, 0]]),
    ...                    tf.constant([False] * 5 + [True, False]))
    >>> words["first_piece"].numpy().tolist(), words["end_byte"].numpy().tolist()
    ([[0, 2], [0, 0]], [[3, 6], [0, 0]])
    """
    lengths = tf.cast(ids.row_lengths(), tf.int32)
    width = tf.reduce_max(tf.concat([lengths, [0]], axis=0))
    pieces = tf.expand_dims(tf.range(width), 0)
    real = pieces < tf.expand_dims(lengths, 1)  # [B, P]
    dense_ids = ids.to_tensor(default_value=0, shape=[None, None])
    is_first = tf.logical_and(real, tf.gather(starts_word, dense_ids))
    word_of_piece = tf.maximum(tf.cumsum(tf.cast(is_first, tf.int32), axis=1) - 1, 0)
    num_words = tf.reduce_sum(tf.cast(is_first, tf.int32), axis=1)
    words = tf.range(tf.reduce_max(tf.concat([num_words, [0]], axis=0)))
    # [B, P, W]: piece p belongs to word w. (`expand_dims` throughout: the
    # converter leaves a new-axis slice of a dynamic shape as a TF op.)
    in_word = tf.logical_and(
        tf.equal(tf.expand_dims(word_of_piece, 2), words), tf.expand_dims(real, 2)
    )
    first_piece = tf.argmax(
        tf.cast(tf.logical_and(in_word, tf.expand_dims(is_first, 2)), tf.int32),
        axis=1,
        output_type=tf.int32,
    )
    last_piece = tf.reduce_max(tf.where(in_word, tf.expand_dims(pieces, 2), -1), axis=1)
    valid = tf.expand_dims(words, 0) < tf.expand_dims(num_words, 1)  # [B, W]
    start_byte = tf.gather(starts, first_piece, batch_dims=1)
    end_byte = tf.gather(ends, tf.maximum(last_piece, 0), batch_dims=1)
    return {
        "first_piece": first_piece,
        "start_byte": tf.where(valid, start_byte, 0),
        "end_byte": tf.where(valid, end_byte, 0),
        "valid": valid,
        "num_words": num_words,
    }
