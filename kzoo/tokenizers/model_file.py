"""The `tokenizer.model` file: a serialized SentencePiece model in a run directory.

The trainer writes it, `SentencePieceTokenizer.save` rewrites it and `load_tokenizer`
reads it. Writes are atomic (a temporary file in the same directory, then
`os.replace`), so a crash never leaves a half-written model behind.
"""

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
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, TOKENIZER_FILENAME)
    fd, temporary = staged_files.mkstemp(dir=directory, prefix=f".{TOKENIZER_FILENAME}.")
    try:
        with os.fdopen(fd, "wb") as file:
            file.write(proto)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.remove(temporary)
        raise
    return path


def read_model_file(directory):
    """Reads `directory/tokenizer.model`.

    Args:
        directory: A run directory holding a trained tokenizer.

    Returns:
        The serialized SentencePiece model, `bytes`.

    Raises:
        FileNotFoundError: The file is missing; the message says how to create it.

    Example:
    >>> read_model_file("/nonexistent")
    Traceback (most recent call last):
    ...
    FileNotFoundError: /nonexistent/tokenizer.model does not exist; ...
    """
    path = os.path.join(directory, TOKENIZER_FILENAME)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path} does not exist; train one with "
            "kzoo.tokenizers.train_sentencepiece(output_dir=...)"
        )
    with open(path, "rb") as file:
        return file.read()
