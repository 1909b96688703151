"""Trains a BERT WordPiece vocabulary; reads and writes it in a run directory.

The corpus is normalized exactly as `WordPieceTokenizer` normalizes its input (TF
Text's `FastBertNormalizer`: with `lowercase=True`, lower-casing, NFD and accent
stripping, so `"Café"` becomes `"cafe"` and `"ß"` becomes `"ss"`), then handed to
`keras_hub.tokenizers.compute_word_piece_vocabulary` (TF Text's BERT vocabulary
learner). The learner drops rare characters and long words, so every character of
the normalized corpus is added back, both word-initial (`"c"`) and as a suffix
(`"##c"`): `[UNK]` then only stands for characters never seen in training (and for
words longer than 100 bytes).

A run directory holds `vocab.txt` (one token per line, the BERT format, so Google's
BERT vocabularies load too) and `wordpiece.json` (`{"lowercase": true}`).
"""

import json
import os

import tensorflow as tf
import tensorflow_text as tf_text

from kzoo import staged_files
from kzoo.data import text_files
from kzoo.tokenizers.model_file import trained_file

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
VOCAB_FILENAME = "vocab.txt"
SETTINGS_FILENAME = "wordpiece.json"
SUFFIX_INDICATOR = "##"


def train_wordpiece(
    *, output_dir, vocab_size, files=None, texts=None, files_key="data.train", lowercase=True
):
    """Trains a WordPiece vocabulary and writes `vocab.txt` and `wordpiece.json`.

    The vocabulary is `SPECIAL_TOKENS` (ids 0 to 4: `[PAD]`, `[UNK]`, `[CLS]`,
    `[SEP]`, `[MASK]`), then every character of the normalized corpus, then the
    same characters as `"##"` suffixes, then the learned subwords, most frequent
    first. The learner aims within 5% below `vocab_size`, so the vocabulary may be
    smaller, never larger (a small corpus supports few subwords).

    Args:
        output_dir: The run directory; both files are written there atomically.
        vocab_size: The largest number of tokens, specials included (config key
            `tokenizer.vocab_size`).
        files: Paths or glob patterns of UTF-8 text files (see
            `kzoo.data.text_files.resolve_text_files`), read line by line.
        texts: In-memory documents, a list of `str`. Give `files` or `texts`.
        files_key: The config key of `files`, quoted in errors.
        lowercase: Lower-case, NFD-normalize and strip accents (BERT "uncased").

    Returns:
        The path of the written `vocab.txt`.

    Raises:
        ValueError: Neither or both of `files` and `texts`, a corpus with no text
            (only whitespace), or a `vocab_size` below the specials plus two
            tokens per character (the message names `tokenizer.vocab_size`).

    Example:
    >>> import tempfile
    >>> path = train_wordpiece(texts=["Bat sat, pat mat rat."] * 20, vocab_size=30,
    ...                        output_dir=tempfile.mkdtemp())
    >>> vocabulary = open(path).read().split()
    >>> vocabulary[:10]
    ['[PAD]', '[UNK]', '[CLS]', '[SEP]', '[MASK]', ',', '.', 'a', 'b', 'm']
    >>> vocabulary[14:17], vocabulary[23:]
    (['##,', '##.', '##a'], ['bat', 'mat', 'pat', 'rat', 'sat'])
    """
    if (files is None) == (texts is None):
        raise ValueError("train_wordpiece: give exactly one of `files` or `texts`")
    if not isinstance(vocab_size, int) or vocab_size < 1:
        raise ValueError(f"tokenizer.vocab_size: expected a positive int, got {vocab_size!r}")
    lines, source = _corpus_lines(files, texts, files_key)
    normalizer = tf_text.FastBertNormalizer(lower_case_nfd_strip_accents=lowercase)
    normalized = lines.batch(1024).map(normalizer.normalize)
    characters = set()
    for batch in normalized.as_numpy_iterator():
        for line in batch:
            characters.update(line.decode("utf-8"))
    # The tokenizer splits words on every character Python calls whitespace.
    characters = sorted(c for c in characters if not c.isspace())
    if not characters:
        raise ValueError(f"{source}: empty corpus: it holds no text, only whitespace")
    required = len(SPECIAL_TOKENS) + 2 * len(characters)
    if vocab_size < required:
        raise ValueError(
            f"tokenizer.vocab_size: {vocab_size} is too small; {source} needs at "
            f"least {required}: the {len(SPECIAL_TOKENS)} special tokens plus "
            f"'c' and '##c' for each of its {len(characters)} characters"
        )

    # Imported here: KerasHub is only needed to train, not to tokenize.
    from keras_hub.tokenizers import compute_word_piece_vocabulary

    learned = compute_word_piece_vocabulary(
        normalized,
        vocab_size,
        lowercase=False,  # Already normalized, exactly as the tokenizer will.
        strip_accents=False,
        suffix_indicator=SUFFIX_INDICATOR,
        reserved_tokens=list(SPECIAL_TOKENS),
    )
    vocabulary = list(SPECIAL_TOKENS) + characters
    vocabulary += [SUFFIX_INDICATOR + c for c in characters]
    seen = set(vocabulary)
    vocabulary += [token for token in learned if token not in seen]
    return write_vocabulary(output_dir, vocabulary[:vocab_size], lowercase)


def write_vocabulary(directory, vocabulary, lowercase):
    """Atomically writes `directory/vocab.txt` and `directory/wordpiece.json`.

    Args:
        directory: The run directory; created if missing.
        vocabulary: The tokens, a list of `str` indexed by id.
        lowercase: The tokenizer's `lowercase` setting.

    Returns:
        The path of `vocab.txt`.

    Example:
    >>> import tempfile
    >>> directory = tempfile.mkdtemp()
    >>> path = write_vocabulary(directory, ["[PAD]", "a", "##a"], lowercase=False)
    >>> read_vocabulary(directory)
    (['[PAD]', 'a', '##a'], False)
    """
    bad = [token for token in vocabulary if not token or token != token.strip()]
    bad += [token for token in vocabulary if "\n" in token]
    if bad:
        raise ValueError(
            f"vocabulary: tokens must be non-empty without surrounding whitespace or "
            f"newlines, got {bad[0]!r}"
        )
    os.makedirs(directory, exist_ok=True)
    settings = json.dumps({"lowercase": bool(lowercase)}) + "\n"
    staged_files.write_text_atomic(os.path.join(directory, SETTINGS_FILENAME), settings)
    return staged_files.write_text_atomic(
        os.path.join(directory, VOCAB_FILENAME), "".join(token + "\n" for token in vocabulary)
    )


def read_vocabulary(directory):
    """Reads the vocabulary and `lowercase` setting that `write_vocabulary` wrote.

    A `vocab.txt` without `wordpiece.json` (e.g. Google's BERT files) is read as
    uncased, `lowercase=True`.

    Args:
        directory: A run directory holding `vocab.txt`.

    Returns:
        `(vocabulary, lowercase)`: a list of `str` and a `bool`.

    Raises:
        FileNotFoundError: `directory/vocab.txt` does not exist (the message says
            how to create it).
        ValueError: `wordpiece.json` is not a JSON object with a boolean
            `"lowercase"`.
    """
    path = trained_file(directory, VOCAB_FILENAME, "train_wordpiece")
    with open(path, encoding="utf-8") as file:
        vocabulary = [line.rstrip("\r\n") for line in file]
    while vocabulary and not vocabulary[-1]:
        vocabulary.pop()
    lowercase = True
    settings_path = os.path.join(directory, SETTINGS_FILENAME)
    if os.path.isfile(settings_path):
        with open(settings_path, encoding="utf-8") as file:
            settings = json.load(file)
        if not isinstance(settings, dict) or not isinstance(settings.get("lowercase"), bool):
            raise ValueError(
                f'{settings_path}: expected {{"lowercase": true or false}}, got {settings!r}'
            )
        lowercase = settings["lowercase"]
    return vocabulary, lowercase


def _corpus_lines(files, texts, files_key):
    """Returns a `tf.data.Dataset` of the corpus lines and a description for errors."""
    if files is not None:
        files = text_files.resolve_text_files(files, files_key)
        source = f"{files_key}={files!r}" if len(files) <= 3 else files_key
        # `kzoo.data.line_ends`' rule holds: TextLineDataset drops the "\r" of a
        # "\r\n", and the BERT normalizer drops U+FEFF (a control character).
        return tf.data.TextLineDataset(files), source
    texts = [texts] if isinstance(texts, str) else list(texts)
    lines = [line for text in texts for line in text.split("\n")]
    return tf.data.Dataset.from_tensor_slices(tf.constant(lines, tf.string)), (
        f"texts ({len(texts)} in-memory text(s))"
    )
