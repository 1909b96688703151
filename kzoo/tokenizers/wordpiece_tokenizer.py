"""In-graph BERT WordPiece tokenization, for tf.data pipelines and exported SavedModels.

A Keras layer around TensorFlow Text's `FastBertTokenizer` (BERT normalization,
splitting on whitespace and punctuation, then greedy longest-match WordPiece), so
only TensorFlow and TF Text ops run: inside `tf.data`, `tf.function` and SavedModels
served by TF Serving. Like `SentencePieceTokenizer`, `tokenize` always returns
tensors and the sizes and special ids are properties.
"""

import os

import keras
import tensorflow as tf
import tensorflow_text as tf_text

from kzoo import staged_files
from kzoo.tokenizers.bert_words import HuggingFaceBertPipeline
from kzoo.tokenizers.model_file import read_settings
from kzoo.tokenizers.tokenizer import Tokenizer
from kzoo.tokenizers.wordpiece_trainer import (
    SETTINGS_FILENAME,
    SPECIAL_TOKENS,
    SUFFIX_INDICATOR,
    read_vocabulary,
    write_vocabulary,
)

NORMALIZATIONS = ("tf_text", "huggingface")

PAD, UNK, CLS, SEP, MASK = SPECIAL_TOKENS


def _id_of(token, role):
    """A read-only property: the id of the special `token`."""
    return property(lambda tokenizer: tokenizer._ids[token], doc=f"The id of `{token}`, {role}.")


@keras.saving.register_keras_serializable(package="kzoo")
class WordPieceTokenizer(Tokenizer):
    """Tokenizes strings to int32 WordPiece ids and back, in or out of a `tf.function`.

    Calling the layer is `tokenize`. The vocabulary is kept in `get_config()`, so
    the tokenizer survives `keras.saving` round trips and `.keras` files. TF Text
    builds its WordPiece model from the vocabulary into constant tensors, which
    `tf.saved_model.save` stores in the graph of every function that tokenizes.

    Words are split on whitespace and punctuation (each punctuation character, and
    each CJK ideograph, is a word); a word longer than 100 bytes, or one holding a
    character missing from the vocabulary, becomes a single `[UNK]`.

    With `normalization="huggingface"` (what `kzoo.tokenizers.load_hf_tokenizer`
    gives a BERT checkpoint) the text goes through the Hugging Face `tokenizers`
    BERT pipeline instead (`kzoo.tokenizers.bert_words`): lower-casing rather than
    case folding, control characters dropped, words limited to 100 characters,
    and `strip_accents` and `tokenize_chinese_chars` as the checkpoint's
    `tokenizer_config.json` says; ids are the reference's.

    Args:
        vocabulary: The tokens, a list of `str` indexed by id, suffix pieces
            marked `"##"`; it must hold `[PAD]`, `[UNK]`, `[CLS]`, `[SEP]` and
            `[MASK]` (see `load_wordpiece_tokenizer`).
        lowercase: Lower-case, NFD-normalize and strip accents before splitting
            (BERT "uncased"); it must match the setting used in training.
        strip_accents: NFD and drop accents; None (the default) follows
            `lowercase`. Another value needs `normalization="huggingface"`.
        tokenize_chinese_chars: Each CJK ideograph is a word of its own; False
            needs `normalization="huggingface"`.
        normalization: `"tf_text"` (the default: TF Text's `FastBertTokenizer`,
            as `train_wordpiece` normalizes) or `"huggingface"` (Hugging Face's
            `BertNormalizer`, `BertPreTokenizer` and `WordPiece`, exactly).
        **kwargs: Base `keras.layers.Layer` arguments (e.g. `name`).

    Example:
    >>> vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "!", "a", "b",
    ...               "c", "f", "e", "##a", "##f", "##e", "cafe", "be"]
    >>> tokenizer = WordPieceTokenizer(vocabulary)
    >>> ids = tokenizer.tokenize(["Café BE!", "fa ce"])
    >>> ids.to_list()
    [[14, 15, 5], [9, 11, 8, 13]]
    >>> tokenizer.detokenize(ids).numpy().tolist()
    [b'cafe be !', b'fa ce']
    >>> ids, starts, ends = tokenizer.tokenize_with_offsets("Café BE!")
    >>> [b"Caf\\xc3\\xa9 BE!"[s:e] for s, e in zip(starts.numpy(), ends.numpy())]
    [b'Caf\\xc3\\xa9', b'BE', b'!']
    >>> tokenizer.tokenize_words([["fa", "!"], ["be"]]).to_list()
    [[[9, 11], [5]], [[15]]]
    """

    def __init__(
        self,
        vocabulary,
        lowercase=True,
        strip_accents=None,
        tokenize_chinese_chars=True,
        normalization="tf_text",
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(vocabulary, (str, bytes)) or not all(
            isinstance(token, str) for token in vocabulary
        ):
            raise TypeError(
                f"vocabulary: expected a list of str tokens, got "
                f"{type(vocabulary).__name__}; use "
                "kzoo.tokenizers.load_wordpiece_tokenizer(run_dir)"
            )
        self._vocabulary = tuple(vocabulary)
        self._ids = {}
        for index, token in enumerate(self._vocabulary):
            if token in self._ids:
                raise ValueError(f"vocabulary: token {token!r} appears twice")
            self._ids[token] = index
        missing = [token for token in SPECIAL_TOKENS if token not in self._ids]
        if missing:
            raise ValueError(
                f"vocabulary: missing the special token(s) {missing}; expected all "
                f"of {list(SPECIAL_TOKENS)}"
            )
        self.lowercase = bool(lowercase)
        self.strip_accents = None if strip_accents is None else bool(strip_accents)
        self.tokenize_chinese_chars = bool(tokenize_chinese_chars)
        self.normalization = normalization
        if normalization == "huggingface":
            self._bert = HuggingFaceBertPipeline(
                self._vocabulary,
                self.lowercase,
                self.strip_accents,
                self.tokenize_chinese_chars,
                unknown_token=UNK,
                suffix_indicator=SUFFIX_INDICATOR,
            )
        elif normalization == "tf_text":
            if self.strip_accents not in (None, self.lowercase) or not self.tokenize_chinese_chars:
                raise ValueError(
                    f"strip_accents={strip_accents!r}, tokenize_chinese_chars="
                    f"{tokenize_chinese_chars!r}: TF Text's BERT normalization strips accents "
                    "exactly when it lower-cases and always splits CJK; use "
                    'normalization="huggingface"'
                )
            self._bert = tf_text.FastBertTokenizer(
                vocab=list(self._vocabulary),
                suffix_indicator=SUFFIX_INDICATOR,
                token_out_type=tf.int32,
                unknown_token=UNK,
                lower_case_nfd_strip_accents=self.lowercase,
            )
        else:
            raise ValueError(
                f"normalization: expected one of {list(NORMALIZATIONS)}, got {normalization!r}"
            )
        self._tokens = tf.constant(self._vocabulary, tf.string)

    @property
    def vocabulary_size(self):
        """The number of ids: `0 <= id < vocabulary_size`."""
        return len(self._vocabulary)

    pad_id = _id_of(PAD, "which fills padded positions")
    unk_id = _id_of(UNK, "for words the vocabulary cannot represent")
    cls_id = _id_of(CLS, "which starts a BERT input")
    sep_id = _id_of(SEP, "which ends each segment of a BERT input")
    mask_id = _id_of(MASK, "which replaces masked tokens in pretraining")

    @property
    def special_ids(self):
        """The ids of `[PAD]`, `[UNK]`, `[CLS]`, `[SEP]` and `[MASK]`, in that order."""
        return [self._ids[token] for token in SPECIAL_TOKENS]

    def get_vocabulary(self):
        """Returns the tokens, a list of `str` indexed by id."""
        return list(self._vocabulary)

    def tokenize(self, texts):
        """Splits strings into ids; no `[CLS]`/`[SEP]` is added.

        Args:
            texts: A string, a list of strings, or a 0-D or 1-D string tensor.

        Returns:
            For a scalar string, a 1-D int32 `tf.Tensor`; for a batch of `n`
            strings, an int32 `tf.RaggedTensor` of shape `(n, None)` (the pieces
            of all words, in order).
        """
        return self._per_text(self._bert.tokenize, texts)

    def tokenize_with_offsets(self, texts):
        """Like `tokenize`, plus where each piece comes from in the input.

        Offsets are UTF-8 BYTE offsets into the original input, before
        lower-casing and accent stripping: `text.encode()[start:end]` is the
        text of the piece (without `"##"`), e.g. `b"Caf\\xc3\\xa9"` for the piece
        `cafe`. This maps character spans (extractive QA answers) to tokens.
        Where normalization turns one character into several (`"ß"` into
        `"ss"`, `"ﬁ"` into `"fi"`), a piece that starts inside the expansion
        gets an empty span; the spans of a word still tile it exactly.

        Args:
            texts: A string, a list of strings, or a 0-D or 1-D string tensor.

        Returns:
            `(ids, starts, ends)`: int32 ids and int64 starts and ends, shaped as
            `tokenize`'s output.
        """
        return self._per_text(self._bert.tokenize_with_offsets, texts)

    def tokenize_words(self, words):
        """Tokenizes pre-split words, keeping one row of pieces per word.

        Every word gets at least one piece: a word that yields none (empty, or
        only whitespace or control characters) becomes `[UNK]`. A word holding
        punctuation yields the pieces of all its parts. Use it to align
        per-word labels (token tagging) with pieces.

        Args:
            words: Words of a batch of sentences, a string `tf.RaggedTensor` (or
                nested list, or dense tensor: `""` padding then gets `[UNK]`) of
                shape `(batch, None)`; or a 1-D list or tensor of the words of
                one sentence.

        Returns:
            An int32 `tf.RaggedTensor` of shape `(batch, None, None)` (sentence,
            word, piece), or `(None, None)` for one sentence's words.
        """
        if not isinstance(words, tf.RaggedTensor):
            if isinstance(words, (list, tuple)) and any(
                isinstance(word, (list, tuple)) for word in words
            ):
                words = tf.ragged.constant(words, dtype=tf.string)
            else:
                words = tf.convert_to_tensor(words, tf.string)
                if words.shape.rank == 2:
                    words = tf.RaggedTensor.from_tensor(words)
        flat = words.flat_values if isinstance(words, tf.RaggedTensor) else words
        flat = tf.reshape(flat, [-1])
        pieces = self._bert.tokenize(flat)
        empty = pieces.row_lengths() == 0
        unknown = tf.RaggedTensor.from_row_lengths(
            tf.fill([tf.reduce_sum(tf.cast(empty, tf.int32))], self.unk_id),
            tf.cast(empty, pieces.row_splits.dtype),
        )
        pieces = tf.concat([pieces, unknown], axis=1)
        if isinstance(words, tf.RaggedTensor):
            return words.with_flat_values(pieces)
        return pieces

    def id_to_token(self, ids):
        """Maps ids (`0 <= id < vocabulary_size`) to their token strings, in graph.

        Args:
            ids: Integer ids of any shape, dense or ragged.

        Returns:
            A string tensor (ragged for ragged `ids`) of the same shape.
        """
        if isinstance(ids, tf.RaggedTensor):
            return tf.ragged.map_flat_values(tf.gather, self._tokens, ids)
        return tf.gather(self._tokens, ids)

    def _detokenize(self, ids):
        """The inverse of `tokenize` up to normalization.

        Pieces are joined with spaces and `"##"` pieces glued to the previous one,
        so punctuation comes back as a word of its own (`"a , b"`), lower-cased
        and without accents when `lowercase=True`. `[PAD]` (and ids outside the
        vocabulary) are dropped anywhere;
        the other special tokens (`[UNK]`, `[CLS]`, `[SEP]`, `[MASK]`) are kept as
        their token text.
        """
        single = isinstance(ids, tf.Tensor) and ids.shape.rank == 1
        if isinstance(ids, tf.Tensor):
            ids = tf.RaggedTensor.from_tensor(ids[tf.newaxis] if single else ids)
        ids = tf.ragged.boolean_mask(ids, self._known(ids, self.pad_id))
        texts = tf.strings.reduce_join(self.id_to_token(ids), axis=-1, separator=" ")
        texts = tf.strings.regex_replace(texts, " " + SUFFIX_INDICATOR, "")
        return texts[0] if single else texts

    def save(self, directory):
        """Atomically writes `vocab.txt` and `wordpiece.json` (the settings);
        returns the first."""
        path = write_vocabulary(directory, self._vocabulary, self.lowercase)
        settings = self._settings()
        if settings != {"lowercase": self.lowercase}:
            staged_files.write_json_atomic(os.path.join(directory, SETTINGS_FILENAME), settings)
        return path

    def get_config(self):
        config = super().get_config()
        config["vocabulary"] = list(self._vocabulary)
        config.update(self._settings())
        return config

    def _settings(self):
        """The constructor's settings, those at their default left out."""
        settings = {"lowercase": self.lowercase}
        if self.strip_accents is not None:
            settings["strip_accents"] = self.strip_accents
        if not self.tokenize_chinese_chars:
            settings["tokenize_chinese_chars"] = False
        if self.normalization != "tf_text":
            settings["normalization"] = self.normalization
        return settings

    def _per_text(self, tokenize, texts):
        """Runs `tokenize` on a 1-D batch; a scalar is tokenized as a batch of one."""
        texts = tf.convert_to_tensor(texts, tf.string)
        if texts.shape.rank == 1:
            return tokenize(texts)
        if texts.shape.rank != 0:
            raise ValueError(
                f"texts: expected a string or a 1-D batch of strings, got shape {texts.shape}"
            )
        outputs = tokenize(texts[tf.newaxis])
        if isinstance(outputs, tuple):
            return tuple(output[0] for output in outputs)
        return outputs[0]


def load_wordpiece_tokenizer(directory):
    """Loads the `vocab.txt` (and `wordpiece.json`) that `train_wordpiece` wrote.

    Args:
        directory: A run directory.

    Returns:
        A `WordPieceTokenizer`.

    Raises:
        FileNotFoundError: `directory/vocab.txt` does not exist.

    Example:
    >>> load_wordpiece_tokenizer("/nonexistent")
    Traceback (most recent call last):
    ...
    FileNotFoundError: /nonexistent/vocab.txt does not exist; ...
    """
    vocabulary, lowercase = read_vocabulary(directory)
    settings = read_settings(directory, SETTINGS_FILENAME)
    keys = ("strip_accents", "tokenize_chinese_chars", "normalization")
    return WordPieceTokenizer(
        vocabulary, lowercase=lowercase, **{key: settings[key] for key in keys if key in settings}
    )
