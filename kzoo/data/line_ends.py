"""Byte-order marks and CRLF line ends in the user's text files, read as plain text.

Editors on Windows save UTF-8 with a byte-order mark (U+FEFF) first and `"\\r\\n"`
line ends. Every reader of the user's files applies one rule, so that neither
becomes text (a vocabulary piece, a `"\\r"` in generated text):

- a BOM at the very start of a file is dropped (anywhere else U+FEFF is text);
- `"\\r\\n"` ends a line like `"\\n"` and reads as `"\\n"`; a lone `"\\r"` is text.

The Python readers (`kzoo.data.bad_records.scan_lines`, under every table,
labelled, parallel and document reader; `kzoo.data.text_files.read_lines`, under
the SentencePiece trainer; `text_files.split_text_file`) apply `normalize_line` or
`normalize_text`; the tf.data pipelines that read whole files in the graph apply
`normalize_document`. Line lengths (`data.max_line_bytes`) count the bytes as
they are in the file. `report` prints, once per config key and files, what
reading them converts.
"""

import os

BOM = "\ufeff"
_BOM_BYTES = BOM.encode("utf-8")
_CHUNK_BYTES = 1 << 20
_reported = set()


def normalize_line(text, first):
    """One line as read (with its line end, if any): `first` is the file's first.

    Example:
    >>> normalize_line("\\ufeffa\\r\\n", first=True), normalize_line("b\\rc\\r\\n", first=False)
    ('a\\n', 'b\\rc\\n')
    """
    if first:
        text = text.removeprefix(BOM)
    if text.endswith("\r\n"):
        text = text[:-2] + "\n"
    return text


def normalize_text(text):
    """A whole file's text.

    Example:
    >>> normalize_text("\\ufeffa\\r\\nb\\r\\n\\ufeff")
    'a\\nb\\n\\ufeff'
    """
    return text.removeprefix(BOM).replace("\r\n", "\n")


def normalize_document(document):
    """`normalize_text` in the graph, on a string tensor of whole files' bytes.

    Example:
    >>> import tensorflow as tf
    >>> normalize_document(tf.constant("\\ufeffa\\r\\nb\\r")).numpy()
    b'a\\nb\\r'
    """
    import tensorflow as tf  # Imported here: the Python readers need no TensorFlow.

    document = tf.strings.regex_replace(document, "^" + BOM, "", replace_global=False)
    return tf.strings.regex_replace(document, "\r\n", "\n")


def count(path):
    """`(has_bom, crlf)`: whether `path` starts with a BOM, and its `"\\r\\n"`s.

    Example:
    >>> import tempfile
    >>> path = tempfile.mktemp()
    >>> _ = open(path, "wb").write("\\ufeffa\\r\\nb\\r\\n".encode())
    >>> count(path)
    (True, 2)
    """
    crlf, last = 0, b""
    with open(path, "rb") as file:
        has_bom = file.read(len(_BOM_BYTES)) == _BOM_BYTES
        file.seek(0)
        while chunk := file.read(_CHUNK_BYTES):
            crlf += chunk.count(b"\r\n") + (last == b"\r" and chunk[:1] == b"\n")
            last = chunk[-1:]
    return has_bom, crlf


def summary(files, key):
    """One line for the log saying what reading `files` converts, or None.

    Example:
    >>> import tempfile
    >>> path = tempfile.mktemp()
    >>> _ = open(path, "wb").write("\\ufeffa\\r\\nb\\n".encode())
    >>> summary([path], "data.train")
    'data.train: 1 file(s): stripped a byte-order mark from 1, converted 1 CRLF line end(s) to "\\\\n"'
    """
    counts = [count(path) for path in files]
    boms = sum(has_bom for has_bom, _ in counts)
    crlf = sum(n for _, n in counts)
    if not boms and not crlf:
        return None
    return (
        f"{key}: {len(files)} file(s): stripped a byte-order mark from {boms}, "
        f'converted {crlf} CRLF line end(s) to "\\n"'
    )


def report(files, key):
    """Prints `summary(files, key)` if there is one, once per key and files."""
    files = tuple(os.fspath(path) for path in files)
    if (key, files) in _reported:
        return
    _reported.add((key, files))
    line = summary(files, key)
    if line:
        print(line)
