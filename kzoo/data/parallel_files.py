"""The user's parallel (translation) data: a two-column table, or two aligned files.

Both readers return a list of `{"source": str, "target": str, "line": int}`, the
`"line"` (1-based) saying where the pair sits in its file, so every later error can
name `file:line`. Texts are kept as written (only line ends are removed): the
tokenizers are lossless, and what the user wrote is what the model learns.

Tables (tsv, csv, jsonl) are read by `kzoo.data.table_files.read_table_columns`,
with the same formats, header detection and errors as the classification files. Bad
records (a bad row, an empty text, a line that is not UTF-8 or longer than
`data.max_line_bytes`) go to a `kzoo.data.bad_records.BadRecords`: by default they
stop with `file:line`; skipped, they drop their pair.
"""

from kzoo.data.bad_records import BadRecord, BadRecords
from kzoo.data.table_files import numbered_lines, read_table_columns, resolve_one, string_value


def read_parallel_table(path, *, source_column, target_column, **table_options):
    """Reads translation pairs from two columns of a tsv, csv or jsonl file.

    Args:
        path: The file (a glob must match exactly one file).
        source_column: The source text's column: a header name (a key for jsonl)
            or a 0-based index.
        target_column: The target text's column, likewise.
        **table_options: `header`, `file_format`, `key` and `bad_records`, as for
            `kzoo.data.table_files.read_table_columns`.

    Returns:
        A list of `{"source": str, "target": str, "line": int}`.

    Raises:
        ValueError: `"{path}:{line}: ..."` for a bad row (a missing column, an
            empty or blank source or target, ...) unless `bad_records` skips it;
            `"{key}: ..."` for a file without pairs.

    Example:
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "train.tsv"
    >>> _ = path.write_text("de\\ten\\nHallo, Welt.\\tHello, world.\\n")
    >>> read_parallel_table(path, source_column="de", target_column="en")
    [{'source': 'Hallo, Welt.', 'target': 'Hello, world.', 'line': 2}]
    """
    columns = {"source": source_column, "target": target_column}

    def check(fields):
        for role, value in fields.items():
            if not string_value(value, role, columns[role]).strip():
                raise BadRecord(
                    f"empty {role} text (column {columns[role]!r}); every pair needs "
                    "a source and a target"
                )
        return fields

    return read_table_columns(path, columns, check=check, **table_options)


def read_line_aligned(source_path, target_path, *, key="data.train", bad_records=None):
    """Reads translation pairs from two line-aligned UTF-8 files.

    Line `i` of `source_path` translates to line `i` of `target_path` (the layout
    of WMT's `train.de` / `train.en`). The files come from the config keys
    `{key}_source` and `{key}_target`, e.g. `data.train_source` and
    `data.train_target`, or `data.validation_source` and `data.validation_target`.
    A final `"\\n"` does not start another line; `"\\r\\n"` ends a line too.

    Args:
        source_path: The source-language file (a glob must match one file).
        target_path: The target-language file, likewise.
        key: The config section, e.g. `"data.train"` or `"data.validation"`.
        bad_records: The `BadRecords` that bad lines (empty or blank, invalid
            UTF-8, too long) go to; a skipped line drops its pair. `None` stops at
            the first.

    Returns:
        A list of `{"source": str, "target": str, "line": int}`, in file order.

    Raises:
        ValueError: The files have different numbers of lines (the message names
            both files and both counts), a line is bad (`"{file}:{line}: ..."`)
            and not skipped, or both files are empty.

    Example:
    >>> import pathlib, tempfile
    >>> root = pathlib.Path(tempfile.mkdtemp())
    >>> _ = (root / "train.de").write_text("Guten Morgen.\\nDanke.\\n")
    >>> _ = (root / "train.en").write_text("Good morning.\\nThanks.\\n")
    >>> pairs = read_line_aligned(root / "train.de", root / "train.en")
    >>> [(p["source"], p["target"], p["line"]) for p in pairs]
    [('Guten Morgen.', 'Good morning.', 1), ('Danke.', 'Thanks.', 2)]
    >>> _ = (root / "short.en").write_text("Good morning.\\n")
    >>> read_line_aligned(root / "train.de", root / "short.en")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: data.train_source and data.train_target are not line-aligned: ...
    """
    records = bad_records or BadRecords()
    source_path, source_lines = _lines(source_path, f"{key}_source", records)
    target_path, target_lines = _lines(target_path, f"{key}_target", records)
    if len(source_lines) != len(target_lines):
        raise ValueError(
            f"{key}_source and {key}_target are not line-aligned: {source_path} has "
            f"{len(source_lines)} lines but {target_path} has {len(target_lines)}"
        )
    if not source_lines:
        raise ValueError(
            f"{key}_source, {key}_target: {source_path} and {target_path} are empty; "
            "expected one sentence per line"
        )
    pairs = []
    for line, (source, target) in enumerate(zip(source_lines, target_lines), start=1):
        good = source is not None and target is not None  # Bad lines were reported.
        for path, text, other in (
            (source_path, source, target_path),
            (target_path, target, source_path),
        ):
            if text is not None and not text.strip():
                records.found(
                    path,
                    line,
                    f"empty line; every line must hold the translation of the same line of {other}",
                )
                good = False
        if good:
            pairs.append({"source": source, "target": target, "line": line})
    return pairs


def _lines(path, key, records):
    """`(path, texts)`: the resolved path and its lines without `"\\n"` or `"\\r\\n"`
    (`None` for a bad line); a final `"\\n"` does not start another line."""
    path = resolve_one(path, key)
    return path, [
        None if text is None else text.rstrip("\r\n") for _, text in numbered_lines(path, records)
    ]
