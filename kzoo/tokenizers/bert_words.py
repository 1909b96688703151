"""Hugging Face's BERT text pipeline in TensorFlow ops: normalize, split, WordPiece.

`HuggingFaceBertPipeline` reproduces the `tokenizers` library's `BertNormalizer`
(`clean_text`, `handle_chinese_chars`, `strip_accents`, `lowercase`),
`BertPreTokenizer` and `WordPiece` (`max_input_chars_per_word=100`), so a released
BERT vocabulary gives the reference's ids (`WordPieceTokenizer(...,
normalization="huggingface")`). It differs from TF Text's `FastBertTokenizer`
(kzoo's default, matching `train_wordpiece`) where the reference lower-cases
rather than case-folds (`"ß"` stays `"ß"`, `"ς"` stays `"ς"`), drops control and
format characters (`"\\x00"`, U+200B, U+FEFF, ...), counts a word's length in
characters rather than bytes, and takes its punctuation and control classes from
older Unicode tables (listed below, generated from `tokenizers` 0.23).

The text is split first and each word normalized after, so offsets point into the
original text. That order gives the reference's words: normalization never
creates whitespace, and the four characters whose NFD holds punctuation
(U+1FEF, U+2260, U+226E, U+226F) count as punctuation when accents are stripped.

Known difference (no released BERT vocabulary holds these characters): the 95
characters of `LOWERCASE_DIFFERENCES`, case pairs that Unicode 14 to 16 added
(e.g. U+2C2F, U+1C89), follow TensorFlow's lower-casing tables rather than the
reference's.
"""

import tensorflow as tf
import tensorflow_text as tf_text

from kzoo.tokenizers.byte_level_words import regex_split

# Removed by `clean_text` (the reference's `is_control`: Cc, Cf, Co; and U+FFFD).
CONTROL = (
    r"\x{0}-\x{8}\x{b}-\x{c}\x{e}-\x{1f}\x{7f}-\x{9f}\x{ad}\x{600}-\x{605}\x{61c}"
    r"\x{6dd}\x{70f}\x{180e}\x{200b}-\x{200f}\x{202a}-\x{202e}\x{2060}-\x{2064}"
    r"\x{2066}-\x{206f}\x{e000}-\x{f8ff}\x{feff}\x{fff9}-\x{fffb}\x{fffd}\x{110bd}"
    r"\x{1bca0}-\x{1bca3}\x{1d173}-\x{1d17a}\x{e0001}\x{e0020}-\x{e007f}"
    r"\x{f0000}-\x{ffffd}\x{100000}-\x{10fffd}"
)
# Unicode White_Space less the control characters removed first.
WHITESPACE = r"\t\n\r \x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}\x{202f}\x{205f}\x{3000}"
# Each is a word of its own (`handle_chinese_chars`).
CJK = (
    r"\x{3400}-\x{4dbf}\x{4e00}-\x{9fff}\x{f900}-\x{faff}\x{20000}-\x{2a6df}"
    r"\x{2a700}-\x{2b81f}\x{2b920}-\x{2ceaf}\x{2f800}-\x{2fa1f}"
)
# Whose NFD holds punctuation: punctuation once accents are stripped.
NFD_PUNCTUATION = r"\x{1fef}\x{2260}\x{226e}\x{226f}"
# ASCII punctuation and Unicode P* (the reference's tables): each is a word of its own.
PUNCTUATION = (
    r"\x{21}-\x{2f}\x{3a}-\x{40}\x{5b}-\x{60}\x{7b}-\x{7e}\x{a1}\x{a7}\x{ab}\x{b6}-"
    r"\x{b7}\x{bb}\x{bf}\x{37e}\x{387}\x{55a}-\x{55f}\x{589}-\x{58a}\x{5be}\x{5c0}"
    r"\x{5c3}\x{5c6}\x{5f3}-\x{5f4}\x{609}-\x{60a}\x{60c}-\x{60d}\x{61b}\x{61e}-"
    r"\x{61f}\x{66a}-\x{66d}\x{6d4}\x{700}-\x{70d}\x{7f7}-\x{7f9}\x{830}-\x{83e}"
    r"\x{85e}\x{964}-\x{965}\x{970}\x{af0}\x{df4}\x{e4f}\x{e5a}-\x{e5b}\x{f04}-\x{f12}"
    r"\x{f14}\x{f3a}-\x{f3d}\x{f85}\x{fd0}-\x{fd4}\x{fd9}-\x{fda}\x{104a}-\x{104f}"
    r"\x{10fb}\x{1360}-\x{1368}\x{1400}\x{166d}-\x{166e}\x{169b}-\x{169c}\x{16eb}-"
    r"\x{16ed}\x{1735}-\x{1736}\x{17d4}-\x{17d6}\x{17d8}-\x{17da}\x{1800}-\x{180a}"
    r"\x{1944}-\x{1945}\x{1a1e}-\x{1a1f}\x{1aa0}-\x{1aa6}\x{1aa8}-\x{1aad}\x{1b5a}-"
    r"\x{1b60}\x{1bfc}-\x{1bff}\x{1c3b}-\x{1c3f}\x{1c7e}-\x{1c7f}\x{1cc0}-\x{1cc7}"
    r"\x{1cd3}\x{2010}-\x{2027}\x{2030}-\x{2043}\x{2045}-\x{2051}\x{2053}-\x{205e}"
    r"\x{207d}-\x{207e}\x{208d}-\x{208e}\x{2308}-\x{230b}\x{2329}-\x{232a}\x{2768}-"
    r"\x{2775}\x{27c5}-\x{27c6}\x{27e6}-\x{27ef}\x{2983}-\x{2998}\x{29d8}-\x{29db}"
    r"\x{29fc}-\x{29fd}\x{2cf9}-\x{2cfc}\x{2cfe}-\x{2cff}\x{2d70}\x{2e00}-\x{2e2e}"
    r"\x{2e30}-\x{2e42}\x{3001}-\x{3003}\x{3008}-\x{3011}\x{3014}-\x{301f}\x{3030}"
    r"\x{303d}\x{30a0}\x{30fb}\x{a4fe}-\x{a4ff}\x{a60d}-\x{a60f}\x{a673}\x{a67e}"
    r"\x{a6f2}-\x{a6f7}\x{a874}-\x{a877}\x{a8ce}-\x{a8cf}\x{a8f8}-\x{a8fa}\x{a8fc}"
    r"\x{a92e}-\x{a92f}\x{a95f}\x{a9c1}-\x{a9cd}\x{a9de}-\x{a9df}\x{aa5c}-\x{aa5f}"
    r"\x{aade}-\x{aadf}\x{aaf0}-\x{aaf1}\x{abeb}\x{fd3e}-\x{fd3f}\x{fe10}-\x{fe19}"
    r"\x{fe30}-\x{fe52}\x{fe54}-\x{fe61}\x{fe63}\x{fe68}\x{fe6a}-\x{fe6b}\x{ff01}-"
    r"\x{ff03}\x{ff05}-\x{ff0a}\x{ff0c}-\x{ff0f}\x{ff1a}-\x{ff1b}\x{ff1f}-\x{ff20}"
    r"\x{ff3b}-\x{ff3d}\x{ff3f}\x{ff5b}\x{ff5d}\x{ff5f}-\x{ff65}\x{10100}-\x{10102}"
    r"\x{1039f}\x{103d0}\x{1056f}\x{10857}\x{1091f}\x{1093f}\x{10a50}-\x{10a58}"
    r"\x{10a7f}\x{10af0}-\x{10af6}\x{10b39}-\x{10b3f}\x{10b99}-\x{10b9c}\x{11047}-"
    r"\x{1104d}\x{110bb}-\x{110bc}\x{110be}-\x{110c1}\x{11140}-\x{11143}\x{11174}-"
    r"\x{11175}\x{111c5}-\x{111c9}\x{111cd}\x{111db}\x{111dd}-\x{111df}\x{11238}-"
    r"\x{1123d}\x{112a9}\x{114c6}\x{115c1}-\x{115d7}\x{11641}-\x{11643}\x{1173c}-"
    r"\x{1173e}\x{12470}-\x{12474}\x{16a6e}-\x{16a6f}\x{16af5}\x{16b37}-\x{16b3b}"
    r"\x{16b44}\x{1bc9f}\x{1da87}-\x{1da8b}"
)

# The marks the reference's `strip_accents` drops (after NFD): its Mn table.
STRIPPED_MARKS = (
    r"\x{300}-\x{33f}\x{342}\x{345}-\x{36f}\x{483}-\x{487}\x{591}-\x{5bd}\x{5bf}"
    r"\x{5c1}-\x{5c2}\x{5c4}-\x{5c5}\x{5c7}\x{610}-\x{61a}\x{64b}-\x{65f}\x{670}"
    r"\x{6d6}-\x{6dc}\x{6df}-\x{6e4}\x{6e7}-\x{6e8}\x{6ea}-\x{6ed}\x{711}\x{730}-"
    r"\x{74a}\x{7a6}-\x{7b0}\x{7eb}-\x{7f3}\x{816}-\x{819}\x{81b}-\x{823}\x{825}-"
    r"\x{827}\x{829}-\x{82d}\x{859}-\x{85b}\x{8e3}-\x{902}\x{93a}\x{93c}\x{941}-"
    r"\x{948}\x{94d}\x{951}-\x{957}\x{962}-\x{963}\x{981}\x{9bc}\x{9c1}-\x{9c4}\x{9cd}"
    r"\x{9e2}-\x{9e3}\x{a01}-\x{a02}\x{a3c}\x{a41}-\x{a42}\x{a47}-\x{a48}\x{a4b}-"
    r"\x{a4d}\x{a51}\x{a70}-\x{a71}\x{a75}\x{a81}-\x{a82}\x{abc}\x{ac1}-\x{ac5}"
    r"\x{ac7}-\x{ac8}\x{acd}\x{ae2}-\x{ae3}\x{b01}\x{b3c}\x{b3f}\x{b41}-\x{b44}\x{b4d}"
    r"\x{b56}\x{b62}-\x{b63}\x{b82}\x{bc0}\x{bcd}\x{c00}\x{c3e}-\x{c40}\x{c46}-\x{c47}"
    r"\x{c4a}-\x{c4d}\x{c55}-\x{c56}\x{c62}-\x{c63}\x{c81}\x{cbc}\x{cbf}\x{cc6}"
    r"\x{ccc}-\x{ccd}\x{ce2}-\x{ce3}\x{d01}\x{d41}-\x{d44}\x{d4d}\x{d62}-\x{d63}"
    r"\x{dca}\x{dd2}-\x{dd4}\x{dd6}\x{e31}\x{e34}-\x{e3a}\x{e47}-\x{e4e}\x{eb1}"
    r"\x{eb4}-\x{eb9}\x{ebb}-\x{ebc}\x{ec8}-\x{ecd}\x{f18}-\x{f19}\x{f35}\x{f37}"
    r"\x{f39}\x{f71}-\x{f72}\x{f74}\x{f77}\x{f79}-\x{f7e}\x{f80}\x{f82}-\x{f84}"
    r"\x{f86}-\x{f87}\x{f8d}-\x{f92}\x{f94}-\x{f97}\x{f99}-\x{f9c}\x{f9e}-\x{fa1}"
    r"\x{fa3}-\x{fa6}\x{fa8}-\x{fab}\x{fad}-\x{fb8}\x{fba}-\x{fbc}\x{fc6}\x{102d}-"
    r"\x{1030}\x{1032}-\x{1037}\x{1039}-\x{103a}\x{103d}-\x{103e}\x{1058}-\x{1059}"
    r"\x{105e}-\x{1060}\x{1071}-\x{1074}\x{1082}\x{1085}-\x{1086}\x{108d}\x{109d}"
    r"\x{135d}-\x{135f}\x{1712}-\x{1714}\x{1732}-\x{1734}\x{1752}-\x{1753}\x{1772}-"
    r"\x{1773}\x{17b4}-\x{17b5}\x{17b7}-\x{17bd}\x{17c6}\x{17c9}-\x{17d3}\x{17dd}"
    r"\x{180b}-\x{180d}\x{18a9}\x{1920}-\x{1922}\x{1927}-\x{1928}\x{1932}\x{1939}-"
    r"\x{193b}\x{1a17}-\x{1a18}\x{1a1b}\x{1a56}\x{1a58}-\x{1a5e}\x{1a60}\x{1a62}"
    r"\x{1a65}-\x{1a6c}\x{1a73}-\x{1a7c}\x{1a7f}\x{1ab0}-\x{1abd}\x{1b00}-\x{1b03}"
    r"\x{1b34}\x{1b36}-\x{1b3a}\x{1b3c}\x{1b42}\x{1b6b}-\x{1b73}\x{1b80}-\x{1b81}"
    r"\x{1ba2}-\x{1ba5}\x{1ba8}-\x{1ba9}\x{1bab}-\x{1bad}\x{1be6}\x{1be8}-\x{1be9}"
    r"\x{1bed}\x{1bef}-\x{1bf1}\x{1c2c}-\x{1c33}\x{1c36}-\x{1c37}\x{1cd0}-\x{1cd2}"
    r"\x{1cd4}-\x{1ce0}\x{1ce2}-\x{1ce8}\x{1ced}\x{1cf4}\x{1cf8}-\x{1cf9}\x{1dc0}-"
    r"\x{1df5}\x{1dfc}-\x{1dff}\x{20d0}-\x{20dc}\x{20e1}\x{20e5}-\x{20f0}\x{2cef}-"
    r"\x{2cf1}\x{2d7f}\x{2de0}-\x{2dff}\x{302a}-\x{302d}\x{3099}-\x{309a}\x{a66f}"
    r"\x{a674}-\x{a67d}\x{a69e}-\x{a69f}\x{a6f0}-\x{a6f1}\x{a802}\x{a806}\x{a80b}"
    r"\x{a825}-\x{a826}\x{a8c4}\x{a8e0}-\x{a8f1}\x{a926}-\x{a92d}\x{a947}-\x{a951}"
    r"\x{a980}-\x{a982}\x{a9b3}\x{a9b6}-\x{a9b9}\x{a9bc}\x{a9e5}\x{aa29}-\x{aa2e}"
    r"\x{aa31}-\x{aa32}\x{aa35}-\x{aa36}\x{aa43}\x{aa4c}\x{aa7c}\x{aab0}\x{aab2}-"
    r"\x{aab4}\x{aab7}-\x{aab8}\x{aabe}-\x{aabf}\x{aac1}\x{aaec}-\x{aaed}\x{aaf6}"
    r"\x{abe5}\x{abe8}\x{abed}\x{fb1e}\x{fe00}-\x{fe0f}\x{fe20}-\x{fe2f}\x{101fd}"
    r"\x{102e0}\x{10376}-\x{1037a}\x{10a01}-\x{10a03}\x{10a05}-\x{10a06}\x{10a0c}-"
    r"\x{10a0f}\x{10a38}-\x{10a3a}\x{10a3f}\x{10ae5}-\x{10ae6}\x{11001}\x{11038}-"
    r"\x{11046}\x{1107f}-\x{11081}\x{110b3}-\x{110b6}\x{110b9}-\x{110ba}\x{11100}-"
    r"\x{11102}\x{11127}-\x{1112b}\x{1112d}\x{11130}-\x{11134}\x{11173}\x{11180}-"
    r"\x{11181}\x{111b6}-\x{111be}\x{111ca}-\x{111cc}\x{1122f}-\x{11231}\x{11234}"
    r"\x{11236}-\x{11237}\x{112df}\x{112e3}-\x{112ea}\x{11300}-\x{11301}\x{1133c}"
    r"\x{11340}\x{11366}-\x{1136c}\x{11370}-\x{11374}\x{114b3}-\x{114b8}\x{114ba}"
    r"\x{114bf}-\x{114c0}\x{114c2}-\x{114c3}\x{115b2}-\x{115b5}\x{115bc}-\x{115bd}"
    r"\x{115bf}-\x{115c0}\x{115dc}-\x{115dd}\x{11633}-\x{1163a}\x{1163d}\x{1163f}-"
    r"\x{11640}\x{116ab}\x{116ad}\x{116b0}-\x{116b5}\x{116b7}\x{1171d}-\x{1171f}"
    r"\x{11722}-\x{11725}\x{11727}-\x{1172b}\x{16af0}-\x{16af4}\x{16b30}-\x{16b36}"
    r"\x{16f8f}-\x{16f92}\x{1bc9d}-\x{1bc9e}\x{1d167}-\x{1d169}\x{1d17b}-\x{1d182}"
    r"\x{1d185}-\x{1d18b}\x{1d1aa}-\x{1d1ad}\x{1d242}-\x{1d244}\x{1da00}-\x{1da36}"
    r"\x{1da3b}-\x{1da6c}\x{1da75}\x{1da84}\x{1da9b}-\x{1da9f}\x{1daa1}-\x{1daaf}"
    r"\x{1e8d0}-\x{1e8d6}\x{e0100}-\x{e01ef}"
)
# Lower-cased differently by TensorFlow (newer Unicode case pairs): known differences.
LOWERCASE_DIFFERENCES = (
    r"\x{1c89}\x{2c2f}\x{a7c0}\x{a7cb}-\x{a7cc}\x{a7ce}\x{a7d0}\x{a7d2}\x{a7d4}"
    r"\x{a7d6}\x{a7d8}\x{a7da}\x{a7dc}\x{10570}-\x{1057a}\x{1057c}-\x{1058a}\x{1058c}-"
    r"\x{10592}\x{10594}-\x{10595}\x{10d50}-\x{10d65}\x{16ea0}-\x{16eb8}"
)

MAX_WORD_CHARACTERS = 100


class HuggingFaceBertPipeline(tf.Module):
    """The reference's BERT normalizer, pre-tokenizer and WordPiece, on 1-D batches.

    Args:
        vocabulary: The tokens, suffix pieces marked `"##"`; holds `unknown_token`.
        lowercase: `do_lower_case`.
        strip_accents: NFD and drop Mn marks; None follows `lowercase` (as the
            reference does).
        tokenize_chinese_chars: Each CJK ideograph is a word of its own.
        unknown_token: For a word the vocabulary cannot spell, or one longer
            than 100 characters.

    Example:
    >>> pipeline = HuggingFaceBertPipeline(["[UNK]", "stra", "##ße", "!", "日"], True)
    >>> pipeline.tokenize(tf.constant(["STRAßE!日\\u200b", ""])).to_list()
    [[1, 2, 3, 4], []]
    """

    def __init__(
        self,
        vocabulary,
        lowercase,
        strip_accents=None,
        tokenize_chinese_chars=True,
        unknown_token="[UNK]",
        suffix_indicator="##",
    ):
        super().__init__()
        self.lowercase = bool(lowercase)
        self.strip_accents = self.lowercase if strip_accents is None else bool(strip_accents)
        punctuation = PUNCTUATION + (NFD_PUNCTUATION if self.strip_accents else "")
        self._isolated = f"[{punctuation}{CJK if tokenize_chinese_chars else ''}]"
        self._delimiter = f"[{WHITESPACE}]+|{self._isolated}"
        self._unknown_id = list(vocabulary).index(unknown_token)
        self._wordpiece = tf_text.FastWordpieceTokenizer(
            vocab=list(vocabulary),
            suffix_indicator=suffix_indicator,
            # Words are limited in characters below, not in bytes.
            max_bytes_per_word=4 * MAX_WORD_CHARACTERS + 4,
            token_out_type=tf.int32,
            unknown_token=unknown_token,
            no_pretokenization=True,
        )

    def tokenize(self, texts):
        """Ids of a 1-D string batch: an int32 `tf.RaggedTensor` `(batch, None)`."""
        return self.tokenize_with_offsets(texts)[0]

    def tokenize_with_offsets(self, texts):
        """`(ids, starts, ends)`, the offsets UTF-8 byte positions in `texts`.

        A piece spans the original characters its normalized text comes from
        (as the reference's offsets do): `"é"` for the piece `"e"` of uncased
        `"café"`; a piece starting inside the expansion of one character (none
        in BERT's normalization) gets that whole character.
        """
        words, word_starts, _ = regex_split(texts, self._delimiter, self._isolated)
        # Normalized character by character, to map offsets back to the original.
        characters = tf.strings.unicode_split(words.flat_values, "UTF-8")
        normalized_characters = self._normalize(characters.flat_values)
        normalized = tf.strings.reduce_join(
            characters.with_flat_values(normalized_characters), axis=1
        )
        too_long = tf.strings.length(normalized, unit="UTF8_CHAR") > MAX_WORD_CHARACTERS
        ids, starts, ends = self._wordpiece.tokenize_with_offsets(
            tf.where(too_long, "", normalized)
        )
        # A word longer than 100 characters is one [UNK] covering it.
        unknown = tf.cast(too_long, tf.int64)
        length = tf.cast(tf.strings.length(normalized), tf.int64)
        ids = tf.concat([ids, _rows(tf.fill([tf.size(too_long)], self._unknown_id), unknown)], 1)
        starts = tf.concat([starts, _rows(tf.zeros_like(length), unknown)], 1)
        ends = tf.concat([ends, _rows(length, unknown)], 1)
        # A piece spans the original characters its normalized bytes come from.
        normalized_ends = _row_cumsum(characters, tf.strings.length(normalized_characters))
        original_ends = _row_cumsum(characters, tf.strings.length(characters.flat_values))
        original_ends = tf.pad(original_ends.to_tensor(), [[0, 0], [1, 0]])
        limit = normalized_ends.to_tensor(tf.int64.max)
        first = tf.searchsorted(limit, starts.to_tensor(), side="right", out_type=tf.int64)
        last = tf.searchsorted(limit, ends.to_tensor(), side="left", out_type=tf.int64) + 1
        lengths = ids.row_lengths()
        word_offset = word_starts.flat_values[:, tf.newaxis]
        starts = tf.RaggedTensor.from_tensor(
            tf.gather(original_ends, first, batch_dims=1), lengths=lengths
        )
        ends = tf.RaggedTensor.from_tensor(
            tf.gather(
                original_ends,
                tf.minimum(last, tf.shape(original_ends, tf.int64)[1] - 1),
                batch_dims=1,
            ),
            lengths=lengths,
        )
        starts, ends = starts + word_offset, ends + word_offset
        return tuple(words.with_flat_values(x).merge_dims(1, 2) for x in (ids, starts, ends))

    def _normalize(self, words):
        words = tf.strings.regex_replace(words, f"[{CONTROL}]", "")
        if self.strip_accents:
            words = tf_text.normalize_utf8(words, "NFD")
            words = tf.strings.regex_replace(words, f"[{STRIPPED_MARKS}]", "")
        if self.lowercase:
            # The reference lower-cases character by character: no final sigma.
            words = tf.strings.regex_replace(words, "\u03a3", "\u03c3")
            words = tf.strings.lower(words, encoding="utf-8")
        return words


def _row_cumsum(ragged, values):
    """The running sums of `values` (one per item of `ragged`) within each row."""
    values = tf.cast(values, tf.int64)
    total = tf.cumsum(values)
    row_start = tf.gather(tf.concat([[0], total], 0), ragged.row_splits[:-1])
    return ragged.with_flat_values(total - tf.repeat(row_start, ragged.row_lengths()))


def _rows(values, lengths):
    """A ragged tensor whose row `i` is `values[i]` if `lengths[i]` is 1, else empty."""
    return tf.RaggedTensor.from_row_lengths(tf.boolean_mask(values, lengths > 0), lengths)
