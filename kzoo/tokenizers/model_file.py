"""The `tokenizer.model` file: a serialized SentencePiece model in a run directory.

The trainer writes it, `SentencePieceTokenizer.save` rewrites it and `load_tokenizer`
reads it. Writes are atomic (`kzoo.staged_files.write_bytes_atomic`), so a crash
never leaves a half-written model behind.
"""

import json
import os

from kzoo import staged_files

TOKENIZER_FILENAME = "tokenizer.model"


def write_model_file(directory, proto):
    """Atomically writes `proto` to `directory/tokenizer.model`.

    Args:
        directory: The run directory; created if missing.
        proto: The serialized SentencePiece model, `bytes`.

    Returns:
        The path written.

    Example:
    >>> import tempfile
    >>> path = write_model_file(tempfile.mkdtemp(), b"proto")
    >>> os.path.basename(path), read_model_file(os.path.dirname(path))
    ('tokenizer.model', b'proto')
    """
    return staged_files.write_bytes_atomic(os.path.join(directory, TOKENIZER_FILENAME), proto)


def trained_file(directory, filename, trainer):
    """The path of `directory/filename`, a file that a tokenizer trainer writes.

    Args:
        directory: A run directory holding a trained tokenizer.
        filename: `tokenizer.model`, `vocab.txt`, ...
        trainer: The `kzoo.tokenizers` function that writes it, for the message.

    Raises:
        FileNotFoundError: The file is missing; the message says how to create it.

    Example:
    >>> trained_file("/nonexistent", TOKENIZER_FILENAME, "train_sentencepiece")
    Traceback (most recent call last):
    ...
    FileNotFoundError: /nonexistent/tokenizer.model does not exist; ...
    """
    path = os.path.join(directory, filename)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path} does not exist; train one with kzoo.tokenizers.{trainer}(output_dir=...)"
        )
    return path


def read_model_file(directory):
    """Reads `directory/tokenizer.model`.

    Args:
        directory: A run directory holding a trained tokenizer.

    Returns:
        The serialized SentencePiece model, `bytes`.

    Raises:
        FileNotFoundError: The file is missing (`trained_file`).
    """
    with open(trained_file(directory, TOKENIZER_FILENAME, "train_sentencepiece"), "rb") as file:
        return file.read()


def read_settings(directory, filename):
    """The JSON object in `directory/filename` that a tokenizer's settings live in,
    `{}` when the file is absent (a vocabulary written before it existed)."""
    path = os.path.join(directory, filename)
    if not os.path.isfile(path):
        return {}
    with open(path, encoding="utf-8") as file:
        return json.load(file)
