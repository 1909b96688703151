"""BERT model inputs from text, in graph: shared by the pipelines and the exports.

`text_inputs` packs one text or a text pair as `[CLS] A [SEP] (B [SEP])`, padded
to a fixed length, with keras-hub's `MultiSegmentPacker` (a pair is trimmed
round-robin, one token at a time from the longer side). `word_inputs` packs
pre-split words (token tagging) and says where each word's first sub-word landed.
`split_words` splits raw text into words the way BERT's basic tokenizer does
(whitespace, and every punctuation character is a word of its own).
"""

import tensorflow as tf
import tensorflow_text as tf_text
from keras_hub.layers import MultiSegmentPacker

PUNCTUATION = r"[!-/:-@\[-`{-~]|\p{P}"


def _padding_mask(token_ids, pad_id):
    return tf.cast(tf.not_equal(token_ids, pad_id), tf.int32)


def pack_segments(tokenizer, sequence_length, segments):
    """Packs ragged id segments `[B, None]` into BERT inputs (int32 `[B, L]`)."""
    packer = MultiSegmentPacker(
        sequence_length=sequence_length,
        start_value=int(tokenizer.cls_id),
        end_value=int(tokenizer.sep_id),
        pad_value=int(tokenizer.pad_id),
    )
    token_ids, segment_ids = packer(tuple(segments))
    token_ids = tf.cast(token_ids, tf.int32)
    return {
        "token_ids": token_ids,
        "segment_ids": tf.cast(segment_ids, tf.int32),
        "padding_mask": _padding_mask(token_ids, int(tokenizer.pad_id)),
    }


def text_inputs(tokenizer, sequence_length, texts, text_pairs=None):
    """`{"token_ids", "segment_ids", "padding_mask"}` for a batch of texts (pairs)."""
    segments = [tokenizer.tokenize(texts)]
    if text_pairs is not None:
        segments.append(tokenizer.tokenize(text_pairs))
    return pack_segments(tokenizer, sequence_length, segments)


def split_words(texts):
    """Ragged string words `[B, None]`: split at whitespace, punctuation kept as words.

    Example:
    >>> split_words(tf.constant(["Hi, there!"])).to_list()
    [[b'Hi', b',', b'there', b'!']]
    """
    return tf_text.regex_split(texts, r"\s+|" + PUNCTUATION, PUNCTUATION)


def word_inputs(tokenizer, sequence_length, words):
    """BERT inputs for pre-split words, and each word's first sub-word position.

    Args:
        tokenizer: A `WordPieceTokenizer`.
        sequence_length: L, [CLS] and [SEP] included.
        words: Ragged string `[B, W]`.

    Returns:
        `(inputs, first_positions)`: the packed inputs and int32 `[B, W]` ragged
        positions of each word's first sub-word in `token_ids`, or -1 for words cut
        off by the length limit.
    """
    pieces = tokenizer.tokenize_words(words)  # [B, W, P]
    counts = pieces.row_lengths(axis=2)
    starts = tf.math.cumsum(counts, axis=1, exclusive=True)  # ragged [B, W]
    flat = pieces.merge_dims(1, 2)[:, : sequence_length - 2]
    inputs = pack_segments(tokenizer, sequence_length, [flat])
    positions = tf.cast(starts, tf.int32) + 1  # after [CLS]
    first_positions = tf.where(positions < sequence_length - 1, positions, -tf.ones_like(positions))
    return inputs, first_positions
