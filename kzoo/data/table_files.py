"""Tables of the user's files: rows of tsv, csv or JSON Lines, checked row by row.

What the classification reader (`kzoo.data.labelled_files`) and the parallel reader
(`kzoo.data.parallel_files`) share: resolving the path, the format, the header, the
column checks, and a `file:line` for every problem. An error about the path or the
columns names the config `key` and always stops; a bad row (wrong number of fields,
invalid JSON, a missing key, a failed `check`) or a bad line (invalid UTF-8, longer
than `data.max_line_bytes`) goes to a `kzoo.data.bad_records.BadRecords`, which
raises `ValueError("{path}:{line}: ...")` or skips and counts it.

Formats: tsv (tab-separated, no quoting, as in GLUE: a `"` is text), csv (RFC 4180 via
`csv`: quoted fields may hold commas and newlines), jsonl (one JSON object per line; a
`.json` file is read as JSON Lines too).
"""

import csv
import json
import os

from kzoo.data import line_ends
from kzoo.data.bad_records import BadRecord, BadRecords
from kzoo.data.text_files import resolve_files

_EXTENSIONS = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}


def read_table_columns(
    path, columns, *, header=None, file_format=None, key="data.train", bad_records=None, check=None
):
    """Reads the given columns of every row of a tsv, csv or jsonl file.

    Args:
        path: The file (a glob must match exactly one file).
        columns: `{role: column}`, each column a header name (a key for jsonl) or a
            0-based index; errors call it `{role}_column`.
        header: Whether a tsv/csv file starts with a header row; `None` means it does
            exactly when a column is given by name. Ignored for jsonl.
        file_format: `"tsv"`, `"csv"` or `"jsonl"`; `None` infers it from the
            extension (`.tsv`, `.csv`, `.jsonl`, `.json`).
        key: The config key the path came from, quoted in errors.
        bad_records: The `BadRecords` policy; `None` stops at the first bad row.
        check: Optional `check({role: value}) -> row`, applied to every row; it
            raises `BadRecord(problem)` for a bad one.

    Returns:
        A non-empty list of rows: each `{role: value}` (values are `str` from
        tsv/csv, any JSON value from jsonl) or what `check` returned, plus
        `"line"`, the 1-based line where the row starts.

    Example:
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "pairs.tsv"
    >>> _ = path.write_text("Hallo\\tHello\\nkaputt\\n")
    >>> records = BadRecords("skip")
    >>> read_table_columns(path, {"source": 0, "target": 1}, bad_records=records)
    [{'source': 'Hallo', 'target': 'Hello', 'line': 1}]
    >>> records.locations
    ['...pairs.tsv:2: expected 2 tab-separated fields (as on line 1), got 1']
    """
    records = bad_records or BadRecords()
    path = resolve_one(path, key)
    file_format = _file_format(path, file_format, key)
    for role, column in columns.items():
        if file_format == "jsonl" and not isinstance(column, str):
            raise ValueError(f"{key}: {role}_column must be a key, got {column!r}")
        if not isinstance(column, str) and not (type(column) is int and column >= 0):
            raise ValueError(
                f"{key}: {role}_column must be a name or a 0-based index, got {column!r}"
            )
    if file_format == "jsonl":
        rows = json_lines(path, records)
    else:
        rows = _table_rows(path, file_format, columns, header, key, records)
    kept = []
    for line, fields in rows:
        try:
            for role, column in columns.items():
                if column not in fields:  # Only a JSON object can lack a column.
                    raise BadRecord(
                        f"missing key {column!r} ({role}_column); the object has keys "
                        f"{sorted(fields)}"
                    )
            row = {role: fields[column] for role, column in columns.items()}
            kept.append({**(check(row) if check else row), "line": line})
        except BadRecord as error:
            records.found(path, line, str(error))
    return non_empty(kept, path, key, records)


def string_value(value, role, column):
    """`value` if it is a `str`, else a `BadRecord` naming the column."""
    if not isinstance(value, str):
        raise BadRecord(f"expected a string for {column!r} ({role}_column), got {value!r}")
    return value


def numbered_lines(path, records):
    """Yields `(line, text)` of a UTF-8 file; a UTF-8 BOM is dropped.

    `"\\n"` or `"\\r\\n"` ends a line; `text` keeps it as `"\\n"`. A bad line (see
    `kzoo.data.bad_records.scan_lines`) is reported to `records` and yields
    `text=None`.
    """
    yield from records.lines(path)


def json_lines(path, records):
    """Yields `(line, object)` for each good, non-blank line of a JSON Lines file."""
    for line, text in numbered_lines(path, records):
        if text is None or not text.strip():
            continue
        try:
            obj = json.loads(text.rstrip("\r\n"))
        except json.JSONDecodeError as error:
            records.found(
                path,
                line,
                f"invalid JSON: {json_problem(error)}; expected JSON Lines, one object per line",
            )
            continue
        if not isinstance(obj, dict):
            records.found(path, line, f"expected a JSON object, got {text.strip()!r}")
            continue
        yield line, obj


def json_problem(error):
    """A `json.JSONDecodeError` of one line as `problem at column N`; the decoder's
    message may end in "at" ("Unterminated string starting at"): the column follows.

    Example:
    >>> try:
    ...     json.loads('{"text": "a')
    ... except json.JSONDecodeError as error:
    ...     print(json_problem(error))
    Unterminated string starting at column 10
    """
    joint = " " if error.msg.endswith(" at") else " at "
    return f"{error.msg}{joint}column {error.colno}"


def resolve_one(path, key):
    """The one file `path` names (a glob must match exactly one); prints what
    reading it converts (`kzoo.data.line_ends.report`)."""
    files = resolve_files(path, key)
    if len(files) != 1:
        raise ValueError(
            f"{key}: {os.fspath(path)!r} matches {len(files)} files; expected one file"
        )
    line_ends.report(files, key)
    return files[0]


def non_empty(examples, path, key, records=None):
    """`examples`, or a `ValueError` naming `key` and `path` when there are none."""
    if not examples:
        if records is not None and os.fspath(path) in records.paths:
            raise ValueError(
                f"{key}: {path}: no examples; every record was bad and skipped "
                "(data.on_bad_record: skip)"
            )
        raise ValueError(f"{key}: {path}: no examples; the file is empty or blank")
    return examples


def _table_rows(path, file_format, columns, header, key, records):
    """Yields `(line, {column: value})` for each data row of a tsv/csv file."""
    names = [column for column in columns.values() if isinstance(column, str)]
    has_header = bool(names) if header is None else header
    if names and not has_header:
        raise ValueError(
            f"{key}: column {names[0]!r} is a name, which needs a header row, but "
            f"header={header!r}; give a 0-based column index instead"
        )
    separator = "tab-separated" if file_format == "tsv" else "comma-separated"
    width = None
    for line, row in _rows(path, file_format, records):
        if width is None:  # The header row, or the first data row without one.
            width, width_line, positions = len(row), line, {}
            for role, column in columns.items():
                if isinstance(column, str) and column not in row:
                    raise ValueError(
                        f"{path}:{line}: no column {column!r} ({role}_column) in the "
                        f"header; the header has {row}"
                    )
                if isinstance(column, int) and column >= width:
                    raise ValueError(
                        f"{path}:{line}: {role}_column {column} is out of range; the row "
                        f"has {width} {separator} fields"
                    )
                positions[column] = row.index(column) if isinstance(column, str) else column
            if has_header:
                continue
        if len(row) != width:
            records.found(
                path,
                line,
                f"expected {width} {separator} fields (as on line {width_line}), got {len(row)}",
            )
            continue
        yield line, {column: row[i] for column, i in positions.items()}


def _rows(path, file_format, records):
    """Yields `(start line, fields)` for each non-blank tsv line or csv record."""
    lines = numbered_lines(path, records)
    if file_format == "tsv":
        for line, text in lines:
            if text is not None and text.strip():
                yield line, text.rstrip("\r\n").split("\t")
        return
    # `csv` reads one line at a time, as a record needs them: the first line fed
    # after a record is where the next one starts (bad lines are left out).
    start = [None]

    def good_lines():
        for line, text in lines:
            if text is not None:
                start[0] = start[0] or line
                yield text

    reader = csv.reader(good_lines(), strict=True)
    while True:
        start[0] = None
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            records.found(path, start[0], f"invalid CSV record: {error}")
            continue
        if any(field.strip() for field in row):
            yield start[0], row


def _file_format(path, file_format, key):
    if file_format is None:
        extension = os.path.splitext(path)[1].lower()
        if extension not in _EXTENSIONS:
            raise ValueError(
                f"{key}: cannot tell the format of {path!r} from its extension; expected "
                f"one of {sorted(_EXTENSIONS)}, or give file_format"
            )
        return _EXTENSIONS[extension]
    if file_format not in ("tsv", "csv", "jsonl"):
        raise ValueError(f"{key}: file_format must be 'tsv', 'csv' or 'jsonl', got {file_format!r}")
    return file_format
