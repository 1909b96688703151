"""In-graph byte-level BPE (GPT-2, Llama-3, Qwen2), for tf.data and SavedModels.

Words are split as the reference splits them (`kzoo.tokenizers.byte_level_words`:
GPT-2's, Llama-3's or Qwen2's regex, exact where KerasHub's RE2 approximation of
the lookahead is not), then each word's
bytes are merged with KerasHub's graph-mode BPE (`keras_hub.tokenizers.
BytePairTokenizer`: its merge loop, word cache and lookup tables). Only TensorFlow
and TF Text ops run, so the tokenizer works inside `tf.data`, `tf.function` and
SavedModels served by TF Serving. Ids are those of the Hugging Face `tokenizers`
library for the same `vocab.json` and `merges.txt`.
"""

import json
import os

import keras
import tensorflow as tf

from kzoo import staged_files
from kzoo.tokenizers.byte_level_words import GPT2_PATTERN, check_pattern, split_words
from kzoo.tokenizers.model_file import read_settings
from kzoo.tokenizers.tokenizer import Tokenizer

VOCAB_JSON = "vocab.json"
MERGES_TXT = "merges.txt"
# The settings that are not GPT-2's (special and end tokens, pattern, ...).
SETTINGS_JSON = "byte_pair.json"
END_OF_TEXT = "<|endoftext|>"


@keras.saving.register_keras_serializable(package="kzoo")
class BytePairTokenizer(Tokenizer):
    """Tokenizes strings to int32 byte-level BPE ids and back, in graph.

    Calling the layer is `tokenize`. The vocabulary, merges and settings are kept
    in `get_config()`, so the tokenizer survives `.keras` round trips inside a
    model. Every string is representable (byte-level), so there is no unknown
    token: `unk_id` is None. `eos_id` is the id of `end_token`; `bos_id` and
    `pad_id` those of `bos_token` and `pad_token`, or `eos_id` where they are
    None (GPT-2 has one special token, `<|endoftext|>`, for all three).

    Args:
        vocabulary: `{token: id}` with ids `0 ... n-1` (the content of
            `vocab.json`, plus added tokens), tokens in GPT-2's byte-to-unicode
            alphabet (`"Ġthe"` for `" the"`).
        merges: The merge rules in priority order, `"a b"` strings (the lines
            of `merges.txt` without its `#version` header).
        special_tokens: Tokens never split: where their text occurs in the input
            it is that one id (the reference's added tokens). Defaults to
            `[end_token]`.
        end_token: The token that ends a document (and, by default, pads and
            starts generation).
        pattern: The pre-tokenizer regex as `tokenizer.json` spells it: GPT-2's
            (the default), Llama-3's or Qwen2's
            (`kzoo.tokenizers.byte_level_words.SPLITTERS`).
        normalizer: None, or `"NFC"` (Qwen2's): the text between special tokens
            is normalized to Unicode NFC before it is split.
        ignore_merges: A word that is a token of the vocabulary is that token,
            whatever the merges would give (Llama-3's `ignore_merges`).
        bos_token: The token that starts a sequence (Llama-3's
            `<|begin_of_text|>`); None: `end_token`.
        pad_token: The padding token; None: `end_token`.
        **kwargs: Base `keras.layers.Layer` arguments (e.g. `name`).

    Example:
    >>> vocabulary = {"<|endoftext|>": 0, "a": 1, "b": 2, "Ġ": 3, "ab": 4, "Ġab": 5}
    >>> tokenizer = BytePairTokenizer(vocabulary, ["a b", "Ġ ab"])
    >>> ids = tokenizer.tokenize(["ab ab", "ba<|endoftext|>"])
    >>> ids.to_list()
    [[4, 5], [2, 1, 0]]
    >>> tokenizer.detokenize(ids).numpy().tolist()
    [b'ab ab', b'ba']
    >>> tokenizer.vocabulary_size, tokenizer.eos_id, tokenizer.unk_id
    (6, 0, None)
    """

    def __init__(
        self,
        vocabulary,
        merges,
        special_tokens=None,
        end_token=END_OF_TEXT,
        pattern=GPT2_PATTERN,
        normalizer=None,
        ignore_merges=False,
        bos_token=None,
        pad_token=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        import keras_hub

        if not isinstance(vocabulary, dict):
            raise TypeError(
                f"vocabulary: expected a {{token: id}} dict, got {type(vocabulary).__name__}; "
                "use kzoo.tokenizers.load_byte_pair_tokenizer(directory)"
            )
        self._vocabulary = _check_ids(vocabulary)
        self.merges = [merge for merge in merges if not merge.startswith("#version")]
        self.end_token = end_token
        self.pattern = check_pattern(pattern)
        if normalizer not in (None, "NFC"):
            raise ValueError(f'normalizer: expected None or "NFC", got {normalizer!r}')
        self.normalizer = normalizer
        self.ignore_merges = bool(ignore_merges)
        self.bos_token = bos_token
        self.pad_token = pad_token
        for key, token in (
            ("end_token", end_token),
            ("bos_token", bos_token),
            ("pad_token", pad_token),
        ):
            if token is not None and token not in vocabulary:
                raise ValueError(f"{key}: {token!r} is not in the vocabulary")
        self.special_tokens = list(special_tokens if special_tokens is not None else [end_token])
        missing = [token for token in self.special_tokens if token not in vocabulary]
        if missing:
            raise ValueError(f"special_tokens: {missing} are not in the vocabulary")
        # Held in a tf.Module (tracked for SavedModels) rather than as a Keras
        # sublayer: Keras would save its vocabulary twice and reload it from files.
        self._bpe = tf.Module()
        self._bpe.layer = keras_hub.tokenizers.BytePairTokenizer(
            vocabulary=dict(vocabulary),
            merges=self.merges,
            unsplittable_tokens=self.special_tokens,
            _allow_python_workflow=False,
        )
        self._tokens = tf.constant(self._vocabulary, tf.string)
        self._traced = None

    @property
    def vocabulary_size(self):
        """The number of ids: `0 <= id < vocabulary_size`."""
        return len(self._vocabulary)

    @property
    def eos_id(self):
        """The id of `end_token`, which ends every document."""
        return self._vocabulary.index(self.end_token)

    @property
    def bos_id(self):
        """The id of `bos_token`, else `eos_id`."""
        return self._vocabulary.index(self.bos_token or self.end_token)

    @property
    def pad_id(self):
        """The id of `pad_token`, else `eos_id`."""
        return self._vocabulary.index(self.pad_token or self.end_token)

    @property
    def unk_id(self):
        """None: byte-level BPE represents every string."""
        return None

    def get_vocabulary(self):
        """Returns the tokens, a list of `str` indexed by id."""
        return list(self._vocabulary)

    def token_to_id(self, token):
        """The id of `token` (`KeyError` if it is not in the vocabulary)."""
        return self._ids()[token]

    def tokenize(self, inputs):
        """Splits strings into ids; nothing is added.

        Args:
            inputs: A string, a list of strings, or a 0-D or 1-D string tensor.

        Returns:
            For a scalar string, a 1-D int32 `tf.Tensor`; for a batch of `n`
            strings, an int32 `tf.RaggedTensor` of shape `(n, None)`.
        """
        texts = tf.convert_to_tensor(inputs, tf.string)
        if texts.shape.rank == 0:
            return self.tokenize(texts[tf.newaxis])[0]
        if texts.shape.rank != 1:
            raise ValueError(
                f"inputs: expected a string or a 1-D batch of strings, got shape {texts.shape}"
            )
        if tf.executing_eagerly():
            # KerasHub's merge loop is a tf.while_loop: slow eagerly, fast traced.
            if self._traced is None:
                spec = tf.TensorSpec([None], tf.string)
                self._traced = tf.function(
                    self._tokenize_batch, input_signature=[spec], autograph=False
                )
            return self._traced(texts)
        return self._tokenize_batch(texts)

    def _tokenize_batch(self, texts):
        bpe = self._bpe.layer
        words = split_words(texts, self.special_tokens, self.pattern, nfc=self.normalizer == "NFC")
        flat = words.flat_values
        cached = bpe.cache.lookup(flat)
        unseen = tf.equal(cached, "")

        def merge_unseen():
            bpe._bpe_merge_and_update_cache_tf(tf.unique(tf.boolean_mask(flat, unseen)).y)
            return bpe.cache.lookup(flat)

        merged = tf.cond(tf.reduce_any(unseen), merge_unseen, lambda: cached)
        if self.ignore_merges:
            # A word that is a token as a whole is that token.
            whole = tf.strings.reduce_join(
                bpe.byte2unicode.lookup(tf.strings.bytes_split(flat)), axis=-1
            )
            merged = tf.where(bpe.token_to_id_map.lookup(whole) >= 0, whole, merged)
        pieces = tf.strings.split(merged, sep=" ")
        ids = tf.cast(bpe.token_to_id_map.lookup(pieces.flat_values), tf.int32)
        row_splits = tf.gather(pieces.row_splits, words.row_splits)
        return tf.RaggedTensor.from_row_splits(ids, row_splits)

    def _detokenize(self, ids):
        """Joins the bytes of the pieces; `end_token`, `bos_token`, `pad_token` and
        ids outside the vocabulary are dropped.

        A sequence cut inside a multi-byte character gives invalid UTF-8 bytes
        (the reference library decodes them to U+FFFD).
        """
        single = isinstance(ids, tf.Tensor) and ids.shape.rank == 1
        if isinstance(ids, tf.Tensor):
            ids = tf.RaggedTensor.from_tensor(ids[tf.newaxis] if single else ids)
        ids = tf.ragged.boolean_mask(ids, self._known(ids, self.eos_id, self.bos_id, self.pad_id))
        text = tf.strings.reduce_join(
            tf.ragged.map_flat_values(tf.gather, self._tokens, ids), axis=-1
        )
        characters = tf.strings.unicode_split(text, "UTF-8")
        unicode2byte = self._bpe.layer.unicode2byte
        texts = tf.strings.reduce_join(
            tf.ragged.map_flat_values(unicode2byte.lookup, characters), axis=-1
        )
        return texts[0] if single else texts

    def save(self, directory):
        """Atomically writes `vocab.json` and `merges.txt` (Hugging Face's GPT-2
        files), and `byte_pair.json` where the settings are not GPT-2's (special
        tokens, pattern, ...); returns the path of `vocab.json`."""
        settings = {key: value for key, value in self._settings().items() if value}
        settings_path = os.path.join(directory, SETTINGS_JSON)
        if settings != {"special_tokens": [END_OF_TEXT], "end_token": END_OF_TEXT}:
            os.makedirs(directory, exist_ok=True)
            staged_files.write_json_atomic(settings_path, settings)
        elif os.path.isfile(settings_path):
            os.remove(settings_path)
        return write_byte_pair_files(directory, self._ids(), self.merges)

    def get_config(self):
        config = super().get_config()
        config["vocabulary"] = self._ids()
        config["merges"] = list(self.merges)
        config.update(self._settings())
        return config

    def _settings(self):
        """The constructor's arguments beside the vocabulary and merges."""
        settings = {"special_tokens": list(self.special_tokens), "end_token": self.end_token}
        settings["pattern"] = None if self.pattern == GPT2_PATTERN else self.pattern
        for key in ("normalizer", "ignore_merges", "bos_token", "pad_token"):
            settings[key] = getattr(self, key)
        return settings

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["pattern"] = config.get("pattern") or GPT2_PATTERN
        return cls(**config)

    def _ids(self):
        return {token: index for index, token in enumerate(self._vocabulary)}


def _check_ids(vocabulary):
    """The tokens indexed by id; the ids must be exactly `0 ... n-1`."""
    tokens = [None] * len(vocabulary)
    for token, index in vocabulary.items():
        if not isinstance(index, int) or not 0 <= index < len(tokens) or tokens[index]:
            raise ValueError(
                f"vocabulary: token {token!r} has id {index!r}; expected the ids "
                f"0 to {len(tokens) - 1}, each once"
            )
        tokens[index] = token
    return tuple(tokens)


def write_byte_pair_files(directory, vocabulary, merges):
    """Atomically writes `directory/vocab.json` and `directory/merges.txt`.

    Args:
        directory: Created if missing.
        vocabulary: `{token: id}`.
        merges: `"a b"` strings in priority order.

    Returns:
        The path of `vocab.json`.
    """
    os.makedirs(directory, exist_ok=True)
    merges_text = "#version: 0.2\n" + "".join(f"{merge}\n" for merge in merges)
    staged_files.write_text_atomic(os.path.join(directory, MERGES_TXT), merges_text)
    text = json.dumps(vocabulary, ensure_ascii=False)
    return staged_files.write_text_atomic(os.path.join(directory, VOCAB_JSON), text)


def read_byte_pair_files(directory):
    """Reads `directory/vocab.json` and `directory/merges.txt`.

    Returns:
        `(vocabulary, merges)`: `{token: id}` and the `"a b"` merge rules.

    Raises:
        FileNotFoundError: A file is missing (the message names both).
        ValueError: `vocab.json` is not a JSON object, or a merge line is not two
            tokens (the message names the file and line).
    """
    vocab_path = os.path.join(directory, VOCAB_JSON)
    merges_path = os.path.join(directory, MERGES_TXT)
    for path in (vocab_path, merges_path):
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"{path} does not exist; a byte-level BPE tokenizer needs "
                f"{VOCAB_JSON} and {MERGES_TXT} in {directory}"
            )
    with open(vocab_path, encoding="utf-8") as file:
        vocabulary = json.load(file)
    if not isinstance(vocabulary, dict):
        raise ValueError(f"{vocab_path}: expected a JSON object {{token: id}}")
    merges = []
    with open(merges_path, encoding="utf-8") as file:
        for number, line in enumerate(file, 1):
            line = line.rstrip("\r\n")
            if not line or (number == 1 and line.startswith("#version")):
                continue
            if len(line.split(" ")) != 2:
                raise ValueError(
                    f"{merges_path}:{number}: expected two tokens separated by a space, "
                    f"got {line!r}"
                )
            merges.append(line)
    return vocabulary, merges


def load_byte_pair_tokenizer(directory, special_tokens=None, end_token=None):
    """Loads a `BytePairTokenizer` from `vocab.json` and `merges.txt` in `directory`.

    Args:
        directory: A run directory or a Hugging Face GPT-2 checkpoint.
        special_tokens: Tokens never split; defaults to those of
            `byte_pair.json` if the directory has one, else `[end_token]`.
        end_token: The end-of-document token; defaults to `byte_pair.json`'s,
            else `<|endoftext|>`.

    Example:
    >>> load_byte_pair_tokenizer("/nonexistent")
    Traceback (most recent call last):
    ...
    FileNotFoundError: /nonexistent/vocab.json does not exist; ...
    """
    vocabulary, merges = read_byte_pair_files(directory)
    settings = read_settings(directory, SETTINGS_JSON)
    settings["special_tokens"] = (
        settings.get("special_tokens") if special_tokens is None else special_tokens
    )
    settings["end_token"] = end_token or settings.get("end_token") or END_OF_TEXT
    settings["pattern"] = settings.get("pattern") or GPT2_PATTERN
    return BytePairTokenizer(vocabulary, merges, **settings)
