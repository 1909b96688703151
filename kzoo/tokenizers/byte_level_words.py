"""The word splitting before byte-level byte-pair encoding, in TensorFlow ops.

GPT-2 (and the Hugging Face `tokenizers` `ByteLevel` pre-tokenizer) cuts text into
words with the regular expression `GPT2_PATTERN`

    's|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+

Llama-3 (`LLAMA3_PATTERN`) and Qwen2 (`QWEN2_PATTERN`, digits one by one) use a
`Split` pre-tokenizer with

    (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}|
    ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+

RE2, the engine of TensorFlow's string ops, has no lookahead `(?!\\S)`. Its only
effect is that a run of whitespace followed by a non-space character gives up its
last character, which then starts the next word (`"a   b"` splits into `"a"`,
`"  "`, `" b"`). So the text is first cut right before every whitespace character
that precedes a non-space one, and the pattern without the lookahead is applied to
each piece: no word crosses those cuts, so the words are exactly the reference's.
In the Llama-3 and Qwen2 patterns `\\s*[\\r\\n]+` and `[\\r\\n]*` take a newline
together with what precedes it, so there the cuts are only before the other
whitespace characters (a match never holds one of those but at its start, or at
the end of a whitespace run that the lookahead would have cut short).

Character classes follow `tokenizers` (Oniguruma, Unicode 16): `\\s` is Unicode
White_Space (not Python's `str.isspace`), and the letters and digits that Unicode
15.1 to 16 added, which TensorFlow's RE2 tables lack, are listed explicitly.
"""

import tensorflow as tf
import tensorflow_text as tf_text

WHITESPACE = (
    r"\t\n\x{0b}\f\r \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}"
    r"\x{202f}\x{205f}\x{3000}"
)
# \p{L} and \p{N} of Unicode 16 that TensorFlow's RE2 (Unicode 15) does not know.
NEW_LETTERS = (
    r"\x{1c89}-\x{1c8a}\x{a7cb}-\x{a7cd}\x{a7da}-\x{a7dc}\x{105c0}-\x{105f3}"
    r"\x{10d4a}-\x{10d65}\x{10d6f}-\x{10d85}\x{10ec2}-\x{10ec4}\x{11380}-\x{11389}"
    r"\x{1138b}\x{1138e}\x{11390}-\x{113b5}\x{113b7}\x{113d1}\x{113d3}"
    r"\x{11bc0}-\x{11be0}\x{13460}-\x{143fa}\x{16100}-\x{1611d}\x{16d40}-\x{16d6c}"
    r"\x{18cff}\x{1e5d0}-\x{1e5ed}\x{1e5f0}\x{2ebf0}-\x{2ee5d}"
)
NEW_NUMBERS = (
    r"\x{10d40}-\x{10d49}\x{116d0}-\x{116e3}\x{11bf0}-\x{11bf9}\x{16130}-\x{16139}"
    r"\x{16d70}-\x{16d79}\x{1ccf0}-\x{1ccf9}\x{1e5f1}-\x{1e5fa}"
)
LETTER = r"\p{L}" + NEW_LETTERS
NUMBER = r"\p{N}" + NEW_NUMBERS
# Whitespace but for the newlines that Llama-3's `[\r\n]` names.
SPACE_NOT_NEWLINE = WHITESPACE.replace(r"\n", "").replace(r"\r", "")

# The reference patterns, as `tokenizer.json` spells them.
GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2_PATTERN = LLAMA3_PATTERN.replace(r"\p{N}{1,3}", r"\p{N}")


def _llama3_words(number):
    return (
        r"(?i:'s|'t|'re|'ve|'m|'ll|'d)"
        rf"|[^\r\n{LETTER}{NUMBER}]?[{LETTER}]+|{number}"
        rf"| ?[^{WHITESPACE}{LETTER}{NUMBER}]+[\r\n]*|[{WHITESPACE}]*[\r\n]+|[{WHITESPACE}]+"
    )


# {reference pattern: (the RE2 word pattern without the lookahead, the RE2 pattern
# of the two characters a cut goes between)}. RE2 alternation is leftmost-first,
# as in the reference.
SPLITTERS = {
    GPT2_PATTERN: (
        r"'s|'t|'re|'ve|'m|'ll|'d"
        rf"| ?[{LETTER}]+| ?[{NUMBER}]+| ?[^{WHITESPACE}{LETTER}{NUMBER}]+|[{WHITESPACE}]+",
        rf"[{WHITESPACE}][^{WHITESPACE}]",
    ),
    LLAMA3_PATTERN: (
        _llama3_words(rf"[{NUMBER}]{{1,3}}"),
        rf"[{SPACE_NOT_NEWLINE}][^{WHITESPACE}]",
    ),
    QWEN2_PATTERN: (_llama3_words(rf"[{NUMBER}]"), rf"[{SPACE_NOT_NEWLINE}][^{WHITESPACE}]"),
}
# GPT-2's, kept under their old names.
WORD_PATTERN, CUT_PATTERN = SPLITTERS[GPT2_PATTERN]


def check_pattern(pattern):
    """Raises a one-line `ValueError` unless `pattern` is one `split_words` runs."""
    if pattern not in SPLITTERS:
        raise ValueError(
            f"pattern: {pattern!r} is not a pre-tokenizer regex kzoo runs; expected "
            "GPT-2's, Llama-3's or Qwen2's (kzoo.tokenizers.byte_level_words.SPLITTERS)"
        )
    return pattern


def split_words(texts, special_tokens=(), pattern=GPT2_PATTERN, nfc=False):
    """Splits strings into the words of a byte-level BPE, in graph.

    Args:
        texts: A 1-D string tensor.
        special_tokens: Strings kept whole wherever they occur (e.g.
            `"<|endoftext|>"`); the text between them is split on its own, as the
            reference splits around its added tokens.
        pattern: The reference's regex, a key of `SPLITTERS` (GPT-2's by default).
        nfc: Normalize the text between special tokens to Unicode NFC first
            (Qwen2's `NFC` normalizer).

    Returns:
        A string `tf.RaggedTensor` of shape `(batch, None)`: the words of each
        text, whose concatenation is the text.

    Example:
    >>> split_words(tf.constant(["Hello  world's\\n\\n", "a<|endoftext|>b"]),
    ...             ["<|endoftext|>"]).to_list()
    [[b'Hello', b' ', b' world', b"'s", b'\\n\\n'], [b'a', b'<|endoftext|>', b'b']]
    """
    texts = tf.convert_to_tensor(texts, tf.string)
    word_pattern, cut_pattern = SPLITTERS[check_pattern(pattern)]

    def split(pieces):
        if nfc:
            pieces = tf_text.normalize_utf8(pieces, "NFC")
        return _split_pieces(pieces, word_pattern, cut_pattern)

    if not special_tokens:
        return split(texts)
    special = literal_pattern(special_tokens)
    pieces, _, _ = regex_split(texts, special, special)
    flat = pieces.flat_values
    is_special = tf.reduce_any(
        tf.equal(flat[:, tf.newaxis], tf.constant(list(special_tokens))[tf.newaxis]), axis=1
    )
    words = split(tf.where(is_special, "", flat))
    kept = tf.RaggedTensor.from_row_lengths(
        tf.boolean_mask(flat, is_special), tf.cast(is_special, tf.int64)
    )
    words = tf.concat([words, kept], axis=1)
    return pieces.with_flat_values(words).merge_dims(1, 2)


def regex_split(texts, pattern, keep_pattern):
    """`tf_text.regex_split_with_offsets` that also splits text holding NUL bytes.

    TF Text's op stops reading a string at its first `"\\x00"`; it is split as
    `"\\x01"` (the same byte length, and the same class in every pattern here)
    and the pieces are cut from the original text.

    Returns:
        `(pieces, starts, ends)`: ragged `(batch, None)`, byte offsets in `texts`.
    """
    safe = tf.strings.regex_replace(texts, r"\x00", "\x01")
    pieces, starts, ends = tf_text.regex_split_with_offsets(safe, pattern, keep_pattern)
    flat = tf.strings.substr(
        tf.repeat(texts, starts.row_lengths()),
        starts.flat_values,
        ends.flat_values - starts.flat_values,
    )
    return starts.with_flat_values(flat), starts, ends


def _split_pieces(texts, word_pattern, cut_pattern):
    """`split_words` of a 1-D string tensor without special tokens."""
    pieces, begins, _ = regex_split(texts, cut_pattern, cut_pattern)
    is_cut = tf.ragged.map_flat_values(
        tf.strings.regex_full_match,
        tf.ragged.map_flat_values(tf.strings.regex_replace, pieces, r"\x00", "\x01"),
        cut_pattern,
    )
    cuts = tf.ragged.boolean_mask(begins, is_cut)
    batch = tf.shape(texts, out_type=tf.int64)[0]
    zeros = tf.zeros([batch, 1], tf.int64)
    lengths = tf.strings.length(texts)[:, tf.newaxis]
    starts = tf.concat([zeros, cuts], axis=1)
    ends = tf.concat([cuts, tf.cast(lengths, tf.int64)], axis=1)
    flat_texts = tf.repeat(texts, starts.row_lengths())
    segments = tf.strings.substr(
        flat_texts, starts.flat_values, ends.flat_values - starts.flat_values
    )
    words, _, _ = regex_split(segments, word_pattern, word_pattern)
    return starts.with_flat_values(words).merge_dims(1, 2)


def literal_pattern(tokens):
    """An RE2 pattern that matches any of `tokens`, the longest first."""
    return "|".join(_escape(token) for token in sorted(tokens, key=len, reverse=True))


def _escape(token):
    """`token` as an RE2 literal."""
    return "".join(f"\\x{{{ord(char):x}}}" for char in token)
