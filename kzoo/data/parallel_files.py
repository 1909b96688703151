"""The user's parallel (translation) data: a two-column table, or two aligned files.

Both readers return a list of `{"source": str, "target": str, "line": int}`, the
`"line"` (1-based) saying where the pair sits in its file, so every later error can
name `file:line`. Texts are kept as written (only line ends are removed): the
tokenizers are lossless, and what the user wrote is what the model learns.

Tables (tsv, csv, jsonl) are read by `kzoo.data.labelled_files.read_table_columns`,
with the same formats, header detection and errors as the classification files.
"""

from kzoo.data.labelled_files import read_table_columns, read_text_lines


def read_parallel_table(
    path,
    *,
    source_column,
    target_column,
    header=None,
    file_format=None,
    key="data.train",
):
    """Reads translation pairs from two columns of a tsv, csv or jsonl file.

    Args:
        path: The file (a glob must match exactly one file).
        source_column: The source text's column: a header name (a key for jsonl)
            or a 0-based index.
        target_column: The target text's column, likewise.
        header: Whether a tsv/csv file starts with a header row; `None` means it
            does exactly when a column is given by name. Ignored for jsonl.
        file_format: `"tsv"`, `"csv"` or `"jsonl"`; `None` infers it from the
            extension (`.tsv`, `.csv`, `.jsonl`, `.json`).
        key: The config key the path came from, quoted in errors.

    Returns:
        A list of `{"source": str, "target": str, "line": int}`.

    Raises:
        ValueError: `"{path}:{line}: ..."` for a missing column or an empty (or
            blank) source or target; `"{key}: ..."` for a file without pairs.

    Example:
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "train.tsv"
    >>> _ = path.write_text("de\\ten\\nHallo, Welt.\\tHello, world.\\n")
    >>> read_parallel_table(path, source_column="de", target_column="en")
    [{'source': 'Hallo, Welt.', 'target': 'Hello, world.', 'line': 2}]
    """
    columns = {"source": source_column, "target": target_column}
    path, rows = read_table_columns(
        path, columns, header=header, file_format=file_format, key=key
    )
    pairs = []
    for line, fields in rows:
        for role, value in fields.items():
            if not isinstance(value, str):
                raise ValueError(
                    f"{path}:{line}: expected a string for {columns[role]!r} "
                    f"({role}_column), got {value!r}"
                )
            if not value.strip():
                raise ValueError(
                    f"{path}:{line}: empty {role} text (column {columns[role]!r}); "
                    "every pair needs a source and a target"
                )
        pairs.append({**fields, "line": line})
    return pairs


def read_line_aligned(source_path, target_path, *, key="data.train"):
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

    Returns:
        A list of `{"source": str, "target": str, "line": int}`, in file order.

    Raises:
        ValueError: The files have different numbers of lines (the message names
            both files and both counts), a line is empty or blank (`"{file}:{line}:
            ..."`), or both files are empty.

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
    source_path, source_lines = read_text_lines(source_path, f"{key}_source")
    target_path, target_lines = read_text_lines(target_path, f"{key}_target")
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
    for (line, source), (_, target) in zip(source_lines, target_lines):
        for path, text, other in (
            (source_path, source, target_path),
            (target_path, target, source_path),
        ):
            if not text.strip():
                raise ValueError(
                    f"{path}:{line}: empty line; every line must hold the "
                    f"translation of the same line of {other}"
                )
        pairs.append({"source": source, "target": target, "line": line})
    return pairs
