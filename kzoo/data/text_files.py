"""The user's text corpus: resolve paths and globs, check UTF-8, split, tokenize.

Every error names the config key the paths came from (e.g. `data.train`), so a typo
in a recipe points straight at the line to fix. Files are read in chunks or line by
line, never whole, so validating a corpus of any size needs little memory. Given a
`kzoo.data.bad_records.BadRecords` (recipe key `data.on_bad_record`), bad lines
(invalid UTF-8, longer than `data.max_line_bytes`) are skipped and counted instead.

The checked files become documents (`document_dataset`) and one token stream
(`token_stream`: each document's tokens, then its end id), which causal LM
blocks and T5 span corruption are cut from.

Documents are tokenized line by line (each line keeps its `"\\n"`), in groups of
lines, in parallel. `"\\n"` is a token of its own in kzoo tokenizers, so this gives
the same ids as tokenizing the whole document for BPE and char models; unigram
models may break exact ties between equal-score segmentations differently.
"""

import codecs
import glob
import os

import tensorflow as tf

from kzoo.data import line_ends
from kzoo.data.bad_records import invalid_utf8

_CHUNK_BYTES = 1 << 20
_GLOB_CHARS = frozenset("*?[")
_NEWLINE = "\n"


def resolve_files(patterns, key):
    """Resolves paths and glob patterns to a sorted, deduplicated list of files.

    Args:
        patterns: A path or glob (`"corpus/*.txt"`, `"corpus/**/*.md"`), or a list
            of them.
        key: The config key the patterns came from, quoted in errors.

    Returns:
        Absolute paths of the matching regular files, sorted, each listed once.

    Raises:
        FileNotFoundError: A path does not exist or a glob matches no file.
        ValueError: `patterns` is empty, or a path names a directory.

    Example:
    >>> import pathlib, tempfile
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (root / "b.txt").write_text("b"), (root / "a.txt").write_text("a")
    >>> files = resolve_files([f"{root}/*.txt", f"{root}/a.txt"], "data.train")
    >>> [os.path.basename(f) for f in files]
    ['a.txt', 'b.txt']
    """
    patterns = _as_list(patterns)
    if not patterns:
        raise ValueError(f"{key}: no files given; expected a path or a glob pattern")
    files = set()
    for pattern in patterns:
        expanded = os.path.expanduser(pattern)
        if _GLOB_CHARS.intersection(expanded):
            matches = [m for m in glob.glob(expanded, recursive=True) if os.path.isfile(m)]
            if not matches:
                raise FileNotFoundError(f"{key}: no files match {pattern!r}")
            files.update(os.path.abspath(m) for m in matches)
        elif os.path.isdir(expanded):
            raise ValueError(
                f"{key}: {pattern!r} is a directory; use a glob such as "
                f"{os.path.join(pattern, '*.txt')!r}"
            )
        elif not os.path.isfile(expanded):
            raise FileNotFoundError(f"{key}: file {pattern!r} does not exist")
        else:
            files.add(os.path.abspath(expanded))
    return sorted(files)


def check_utf8(path):
    """Streams a file through a strict UTF-8 decoder.

    Args:
        path: The file to check.

    Returns:
        The file's size in bytes.

    Raises:
        ValueError: `"{path}:{line}: invalid UTF-8 at byte offset {offset} ..."`,
            with a 1-based line number and the 0-based byte offset in the file.

    Example:
    >>> import tempfile
    >>> path = tempfile.mktemp()
    >>> _ = open(path, "wb").write(b"ok\\n\\xff")
    >>> check_utf8(path)
    Traceback (most recent call last):
    ...
    ValueError: ...:2: invalid UTF-8 at byte offset 3 (0xff): invalid start byte; ...
    """
    offset = 0  # File offset of `pending[0]`.
    line = 1  # Line number at `pending[0]`.
    pending = b""
    with open(path, "rb") as file:
        while True:
            chunk = file.read(_CHUNK_BYTES)
            data = pending + chunk
            final = not chunk
            try:
                # Stops before an incomplete sequence at the end unless `final`.
                _, consumed = codecs.utf_8_decode(data, "strict", final)
            except UnicodeDecodeError as error:
                raise _utf8_error(
                    path, line + data.count(b"\n", 0, error.start), offset + error.start, error
                ) from None
            line += data.count(b"\n", 0, consumed)
            offset += consumed
            pending = data[consumed:]
            if final:
                return offset


def read_lines(path):
    """Yields the lines of a UTF-8 file, each with its trailing `"\\n"` (if any).

    `"\\r\\n"` ends a line too and reads as `"\\n"` (a lone `"\\r"` is text); a
    byte-order mark at the start of the file is dropped (`kzoo.data.line_ends`).

    Args:
        path: The file to read.

    Yields:
        `str` lines.

    Raises:
        ValueError: The file is not valid UTF-8 (same message as `check_utf8`).

    Example:
    >>> import tempfile
    >>> path = tempfile.mktemp()
    >>> _ = open(path, "wb").write("\\ufeffa\\r\\nb\\rc".encode())
    >>> list(read_lines(path))
    ['a\\n', 'b\\rc']
    """
    offset = 0
    with open(path, "rb") as file:
        for number, raw in enumerate(file, start=1):
            try:
                yield line_ends.normalize_line(raw.decode("utf-8"), number == 1)
            except UnicodeDecodeError as error:
                raise _utf8_error(path, number, offset + error.start, error) from None
            offset += len(raw)


def resolve_text_files(patterns, key, validate=True, bad_records=None):
    """Resolves `patterns` (see `resolve_files`) and checks the files hold a corpus.

    Prints what reading them converts (byte-order marks, CRLF line ends: see
    `kzoo.data.line_ends`), once per `key` and files.

    Args:
        patterns: A path or glob, or a list of them.
        key: The config key the patterns came from, quoted in errors.
        validate: Whether to stream every file through `check_utf8`.
        bad_records: A `kzoo.data.bad_records.BadRecords`: when given (and
            `validate`), every file is streamed through `bad_records.check`
            instead, which also finds over-long lines and may skip and count
            bad lines rather than raise.

    Returns:
        The sorted, deduplicated absolute paths.

    Raises:
        FileNotFoundError: See `resolve_files`.
        ValueError: Every file is empty ("empty corpus"), or a file is not UTF-8.

    Example:
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "empty.txt"
    >>> _ = path.write_text("")
    >>> resolve_text_files(str(path), "data.train")
    Traceback (most recent call last):
    ...
    ValueError: data.train: empty corpus: every file matched by [...] is empty ...
    """
    files = resolve_files(patterns, key)
    if validate and bad_records is None:
        sizes = [check_utf8(path) for path in files]
    else:
        if validate:
            for path in files:
                bad_records.check(path)
        sizes = [os.path.getsize(path) for path in files]
    if not any(sizes):
        raise ValueError(
            f"{key}: empty corpus: every file matched by {_as_list(patterns)!r} is "
            f"empty ({len(files)} file(s))"
        )
    line_ends.report(files, key)
    return files


def split_text(text, validation_fraction, key="data.validation_fraction"):
    """Splits one text into train and validation parts at a character position.

    Like nanoGPT's `prepare.py`: the first `1 - validation_fraction` of the
    characters are for training, the rest for validation, so the two never overlap.

    Args:
        text: The whole corpus as one string.
        validation_fraction: The share of characters for validation, in (0, 1).
        key: The config key of the fraction, quoted in errors.

    Returns:
        `(train_text, validation_text)`, which concatenate back to `text`.

    Example:
    >>> split_text("abcdefghij", 0.1)
    ('abcdefghi', 'j')
    """
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(
            f"{key}: expected a fraction strictly between 0 and 1, got {validation_fraction!r}"
        )
    cut = int(len(text) * (1.0 - validation_fraction))
    return text[:cut], text[cut:]


def split_text_file(path, validation_fraction, key="data.validation_fraction", bad_records=None):
    """Reads one UTF-8 file and splits it with `split_text`.

    For the single-big-file corpora (e.g. tinyshakespeare, 90/10); the file is read
    whole, so use it for files that fit in memory. A byte-order mark at its start
    is dropped and `"\\r\\n"` read as `"\\n"` (`kzoo.data.line_ends`).

    Args:
        path: The file.
        validation_fraction: The share of characters for validation, in (0, 1).
        key: The config key of the fraction, quoted in errors.
        bad_records: A `kzoo.data.bad_records.BadRecords` the file's bad lines
            are reported to; skipped lines (with their `"\\n"`) are left out of
            the text. `None`: the file must be valid UTF-8.

    Returns:
        `(train_text, validation_text)`.

    Example:
    >>> import tempfile
    >>> path = tempfile.mktemp()
    >>> _ = open(path, "w").write("abcdefghij")
    >>> split_text_file(path, 0.2)
    ('abcdefgh', 'ij')
    """
    if bad_records is not None:
        text = "".join(text for _, text in bad_records.lines(path) if text is not None)
        return split_text(text, validation_fraction, key)
    check_utf8(path)
    with open(path, encoding="utf-8", newline="") as file:
        return split_text(line_ends.normalize_text(file.read()), validation_fraction, key)


def _as_list(patterns):
    if isinstance(patterns, (str, os.PathLike)):
        patterns = [patterns]
    return [os.fspath(pattern) for pattern in patterns]


def _utf8_error(path, line, offset, error):
    return ValueError(f"{path}:{line}: {invalid_utf8(error, offset)}")


def split_examples(examples, fraction):
    """The last `fraction` of the examples held out: `(train, validation)`."""
    held_out = int(round(len(examples) * fraction))
    if held_out == 0 or held_out == len(examples):
        return examples, []
    return examples[:-held_out], examples[-held_out:]


def document_dataset(
    *, files=None, texts=None, num_parallel_calls=tf.data.AUTOTUNE, max_line_bytes=None
):
    """Yields each document as a scalar string; empty documents are skipped.

    Args:
        files: Paths of UTF-8 text files (e.g. from
            `resolve_text_files`), one document each. Only the
            names are held in memory; `tf.io.read_file` reads each file when needed.
            A byte-order mark at the start of a file is dropped and `"\\r\\n"`
            read as `"\\n"` (`kzoo.data.line_ends`).
        texts: In-memory documents, a list of `str`. Give `files` or `texts`.
        num_parallel_calls: Files read in parallel.
        max_line_bytes: `None` keeps every line (the files were checked). An int
            drops, in the graph, each line that is not valid UTF-8 or has more
            bytes than this (`"\\n"` not counted), with its `"\\n"`: the document
            is then the file without its bad lines, as
            `kzoo.data.bad_records.scan_lines` finds them (`data.on_bad_record:
            skip`); a document left empty is skipped.

    Returns:
        A `tf.data.Dataset` of scalar `tf.string`.

    Example:
    >>> [d.numpy() for d in document_dataset(texts=["a", "", "b c"])]
    [b'a', b'b c']
    >>> texts = [b"ok\\n\\xff\\nlong line\\nend", b"too long"]
    >>> [d.numpy() for d in document_dataset(texts=texts, max_line_bytes=4)]
    [b'ok\\nend']
    """
    if (files is None) == (texts is None):
        raise ValueError("give exactly one of `files` or `texts`")
    if files is not None:
        files = [files] if isinstance(files, str) else list(files)
        documents = tf.data.Dataset.from_tensor_slices(tf.constant(files, tf.string))
        documents = documents.map(tf.io.read_file, num_parallel_calls=num_parallel_calls)
    else:
        texts = [texts] if isinstance(texts, str) else list(texts)
        documents = tf.data.Dataset.from_tensor_slices(tf.constant(texts, tf.string))
    if max_line_bytes is not None:
        documents = documents.map(
            lambda document: drop_bad_lines(document, max_line_bytes),
            num_parallel_calls=num_parallel_calls,
        )
    if files is not None:  # After `drop_bad_lines`: line lengths count the file's bytes.
        documents = documents.map(
            line_ends.normalize_document, num_parallel_calls=num_parallel_calls
        )
    return documents.filter(lambda document: tf.strings.length(document) > 0)


def drop_bad_lines(document, max_line_bytes):
    """`document` without its lines that are not UTF-8 or longer than `max_line_bytes`.

    Each bad line goes with its `"\\n"`, so the result is the text of the file with
    those lines deleted. Invalid UTF-8 shows as a line that transcoding with
    `errors="ignore"` changes; the length is in bytes, like `scan_lines`'.

    Example:
    >>> drop_bad_lines(tf.constant(b"a\\nb\\xff\\nc"), 8).numpy()
    b'a\\nc'
    """
    lines = tf.strings.split(document, _NEWLINE)
    valid = tf.equal(tf.strings.unicode_transcode(lines, "UTF-8", "UTF-8", errors="ignore"), lines)
    good = tf.logical_and(valid, tf.strings.length(lines) <= max_line_bytes)
    count = tf.size(lines)
    ends = tf.where(tf.range(count) < count - 1, _NEWLINE, "")
    pieces = tf.strings.join([lines, ends])
    return tf.strings.reduce_join(tf.boolean_mask(pieces, good))


def token_stream(
    documents, tokenizer, num_parallel_calls=tf.data.AUTOTUNE, lines_per_call=512, end_token_id=None
):
    """Tokenizes documents into consecutive int32 chunks of the token stream.

    Concatenating the chunks gives, for each document in order, its tokens followed
    by the end-of-document id.

    Args:
        documents: A dataset of scalar strings (see `document_dataset`).
        tokenizer: A `kzoo.tokenizers.SentencePieceTokenizer`.
        num_parallel_calls: Groups of lines tokenized in parallel.
        lines_per_call: Lines per tokenizer call (lines of several documents may
            share a call).
        end_token_id: The end-of-document id; defaults to `tokenizer.eos_id`.

    Returns:
        A `tf.data.Dataset` of 1-D int32 tensors of varying length.

    Example:
    >>> import tempfile
    >>> from kzoo.tokenizers import load_tokenizer, train_sentencepiece
    >>> run_dir = tempfile.mkdtemp()
    >>> _ = train_sentencepiece(texts=["ab\\nb"], model_type="char", output_dir=run_dir)
    >>> tokenizer = load_tokenizer(run_dir)
    >>> chunks = token_stream(document_dataset(texts=["ab\\n", "b"]), tokenizer)
    >>> # a b \\n </s> b </s>
    >>> tokenizer.eos_id, tf.concat(list(chunks), 0).numpy().tolist()
    (3, [6, 5, 4, 3, 5, 3])
    """
    eos_id = tokenizer.eos_id if end_token_id is None else end_token_id

    def split_lines(document):
        lines = tf.strings.split(document, _NEWLINE)
        count = tf.size(lines)
        is_last = tf.range(count) == count - 1
        lines = tf.strings.join([lines, tf.where(is_last, "", _NEWLINE)])
        return lines, is_last

    def tokenize(lines, ends_document):
        tokens = tokenizer.tokenize(lines)
        ends = tf.cast(ends_document, tokens.row_splits.dtype)
        eos = tf.RaggedTensor.from_row_lengths(
            tf.fill([tf.reduce_sum(ends)], tf.constant(eos_id, tf.int32)), ends
        )
        return tf.concat([tokens, eos], axis=1).flat_values

    lines = documents.map(split_lines, num_parallel_calls=num_parallel_calls).unbatch()
    return lines.batch(lines_per_call).map(tokenize, num_parallel_calls=num_parallel_calls)


def count_tokens(
    tokenizer, *, files=None, texts=None, num_parallel_calls=tf.data.AUTOTUNE, max_line_bytes=None
):
    """Counts the tokens of the stream (end-of-document ids included) in one pass.

    Args:
        tokenizer: A `kzoo.tokenizers.SentencePieceTokenizer`.
        files: UTF-8 text files. Give `files` or `texts`.
        texts: In-memory documents.
        num_parallel_calls: Parallelism of reading and tokenization.
        max_line_bytes: Drop bad lines in the graph (see `document_dataset`).

    Returns:
        The number of tokens, `int`; `num_blocks(count, T)` gives the examples.

    Example:
    >>> import tempfile
    >>> from kzoo.tokenizers import load_tokenizer, train_sentencepiece
    >>> run_dir = tempfile.mkdtemp()
    >>> _ = train_sentencepiece(texts=["abc"], model_type="char", output_dir=run_dir)
    >>> count_tokens(load_tokenizer(run_dir), texts=["abc", "", "c"])  # abc</s>c</s>
    6
    """
    chunks = token_stream(
        document_dataset(
            files=files,
            texts=texts,
            num_parallel_calls=num_parallel_calls,
            max_line_bytes=max_line_bytes,
        ),
        tokenizer,
        num_parallel_calls,
    )
    sizes = chunks.map(lambda chunk: tf.size(chunk, tf.int64))
    return int(sizes.reduce(tf.constant(0, tf.int64), lambda total, size: total + size))
