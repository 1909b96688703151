"""Texts that tokenizers must handle, and SentencePiece vocabularies of every model
type trained on them (a second each), for the tokenizer tests."""

import random

WORDS = "the quick brown fox jumps over lazy dog café naïve über to be or".split()
# The subword model types with their vocabulary sizes; "char" takes no size.
SUBWORD_TYPES = [("bpe", 320), ("unigram", 320)]
# Newlines, runs of spaces, leading/trailing spaces, tabs, accents.
LOSSLESS_TEXTS = [
    "the quick  brown fox\n\njumps over",
    "  leading and trailing  \n",
    "\n",
    "café\tnaïve   über\n  \n",
    "",
]
# Characters never seen in training: only byte fallback can represent them.
UNSEEN_TEXTS = ["emoji 😀🎉 and 日本語, Ελληνικά, العربية", "\r\n\x00 ∑≠ Q"]


def make_corpus(num_lines=600, seed=0):
    """`num_lines` lines of 1 to 10 `WORDS`, some indented, some with double spaces.

    Example:
    >>> make_corpus(2, seed=1).count("\\n")
    2
    """
    rng = random.Random(seed)
    lines = []
    for _ in range(num_lines):
        words = [rng.choice(WORDS) for _ in range(rng.randint(1, 10))]
        separator = rng.choice([" ", " ", " ", "  "])
        lines.append(rng.choice(["", " ", "\t"]) + separator.join(words))
    return "\n".join(lines) + "\n"


def train_every_model_type(corpus, make_directory, **options):
    """Trains a SentencePiece vocabulary of each model type (`SUBWORD_TYPES` and
    char) on `corpus`, in `make_directory(model_type)`; `options` go to
    `train_sentencepiece`. Returns `{model_type: directory}`."""
    from kzoo.tokenizers import train_sentencepiece

    directories = {}
    for model_type, vocab_size in SUBWORD_TYPES + [("char", None)]:
        directory = str(make_directory(model_type))
        train_sentencepiece(
            texts=[corpus],
            vocab_size=vocab_size,
            model_type=model_type,
            output_dir=directory,
            **options,
        )
        directories[model_type] = directory
    return directories
