"""The user's fine-tuning files: classification tables, CoNLL tagging, SQuAD answers.

Readers return lists of plain dicts, each with a `"line"` field (1-based line where the
example starts), so later errors (an unknown label at evaluation) can name `file:line`.
An error inside a file is a `ValueError("{path}:{line}: ...")` saying what was expected;
an error about the path itself, or a file without examples, names the config `key`.

Formats: tsv (tab-separated, no quoting, as in GLUE: a `"` is text), csv (RFC 4180 via
`csv`: quoted fields may hold commas and newlines), jsonl (one JSON object per line; a
`.json` file is read as JSON Lines too), CoNLL and SQuAD-style JSON Lines.
"""

import csv
import json
import os
import re

from kzoo.data.text_files import read_lines, resolve_files

_EXTENSIONS = {".tsv": "tsv", ".csv": "csv", ".jsonl": "jsonl", ".json": "jsonl"}
_TAG = re.compile(r"[BI]-\S+")
_INTEGER = re.compile(r"-?\d+")


def read_classification_file(
    path,
    *,
    text_column,
    label_column,
    text_pair_column=None,
    header=None,
    file_format=None,
    key="data.train",
):
    """Reads a single-text or text-pair classification file.

    Args:
        path: The file (a glob must match exactly one file).
        text_column: The text's column: a header name (a key for jsonl) or a 0-based
            index.
        label_column: The label's column, likewise.
        text_pair_column: The second text's column for pair tasks, or `None`.
        header: Whether a tsv/csv file starts with a header row; `None` means it does
            exactly when a column is given by name. Ignored for jsonl.
        file_format: `"tsv"`, `"csv"` or `"jsonl"`; `None` infers it from the extension
            (`.tsv`, `.csv`, `.jsonl`, `.json`).
        key: The config key the path came from, quoted in errors.

    Returns:
        A list of `{"text": str, "text_pair": str | None, "label": str, "line": int}`;
        labels are stripped, and integer JSON labels become their string form.

    Example:
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "train.csv"
    >>> _ = path.write_text('sentence,label\\n"Good, really.",pos\\n')
    >>> read_classification_file(path, text_column="sentence", label_column="label")
    [{'text': 'Good, really.', 'text_pair': None, 'label': 'pos', 'line': 2}]
    """
    path = _resolve_one(path, key)
    file_format = _file_format(path, file_format, key)
    columns = {"text": text_column, "label": label_column}
    if text_pair_column is not None:
        columns["text_pair"] = text_pair_column
    for role, column in columns.items():
        if file_format == "jsonl" and not isinstance(column, str):
            raise ValueError(f"{key}: {role}_column must be a key, got {column!r}")
        if not isinstance(column, str) and not (type(column) is int and column >= 0):
            raise ValueError(
                f"{key}: {role}_column must be a name or a 0-based index, got {column!r}"
            )
    if file_format == "jsonl":
        records = _json_lines(path)
    else:
        records = _table_records(path, file_format, columns, header, key)
    examples = []
    for line, fields in records:
        example = {"text": None, "text_pair": None, "label": None, "line": line}
        for role, column in columns.items():
            if column not in fields:  # Only a JSON object can lack a column.
                raise ValueError(
                    f"{path}:{line}: missing key {column!r} ({role}_column); the object "
                    f"has keys {sorted(fields)}"
                )
            value = fields[column]
            if role == "label" and type(value) is int:
                value = str(value)
            if not isinstance(value, str):
                raise ValueError(
                    f"{path}:{line}: expected a string for {column!r} ({role}_column), "
                    f"got {value!r}"
                )
            if not value.strip():
                raise ValueError(f"{path}:{line}: empty {role} field (column {column!r})")
            example[role] = value.strip() if role == "label" else value
        examples.append(example)
    return _non_empty(examples, path, key)


def label_vocabulary(examples, field="label"):
    """Returns the sorted distinct labels, numerically if all are integer strings.

    Example:
    >>> label_vocabulary([{"label": "10"}, {"label": "2"}, {"label": "10"}])
    ['2', '10']
    >>> label_vocabulary([{"label": "pos"}, {"label": "neg"}])
    ['neg', 'pos']
    """
    labels = {example[field] for example in examples}
    if labels and all(_INTEGER.fullmatch(label) for label in labels):
        return sorted(labels, key=int)
    return sorted(labels)


def labels_to_ids(examples, labels, path, field="label"):
    """Maps each example's label to its index in `labels`.

    `examples` are dicts with `field` and `"line"` (as the readers return), `labels` the
    model's label vocabulary, `path` the examples' file, quoted in errors (an example
    with its own `"path"`, from a run that read several files, names that one).

    Example:
    >>> labels_to_ids([{"label": "pos", "line": 2}], ["neg", "pos"], "dev.tsv")
    [1]
    >>> labels_to_ids([{"label": "meh", "line": 3}], ["neg", "pos"], "dev.tsv")
    Traceback (most recent call last):
    ...
    ValueError: dev.tsv:3: unknown label 'meh'; the model knows ['neg', 'pos']
    """
    index = {label: i for i, label in enumerate(labels)}
    for example in examples:
        if example[field] not in index:
            raise ValueError(
                f"{example.get('path', path)}:{example['line']}: unknown label "
                f"{example[field]!r}; the model "
                f"knows {list(labels)}"
            )
    return [index[example[field]] for example in examples]


def read_conll_file(path, key="data.train"):
    """Reads a CoNLL-style tagging file (e.g. CoNLL-2003 NER).

    One token per line: the token in the first whitespace-separated column, its BIO tag
    in the last (columns between are ignored); blank lines separate sentences and
    `-DOCSTART-` lines are skipped.

    Args:
        path: The file (a glob must match exactly one file).
        key: The config key the path came from, quoted in errors.

    Returns:
        A list of `{"tokens": [str], "tags": [str], "line": int}`, one per sentence.

    Example:
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "train.conll"
    >>> _ = path.write_text("-DOCSTART- -X- O O\\n\\nEU NNP B-ORG\\nrejects VBZ O\\n")
    >>> read_conll_file(path)
    [{'tokens': ['EU', 'rejects'], 'tags': ['B-ORG', 'O'], 'line': 3}]
    """
    path = _resolve_one(path, key)
    examples, current = [], None
    for line, text in _numbered_lines(path):
        columns = text.split()
        if not columns or columns[0] == "-DOCSTART-":
            current = None
            continue
        if len(columns) < 2:
            raise ValueError(
                f"{path}:{line}: expected a token and its tag separated by whitespace, "
                f"got {text.strip()!r}"
            )
        tag = columns[-1]
        if tag != "O" and not _TAG.fullmatch(tag):
            raise ValueError(
                f"{path}:{line}: tag {tag!r} is not 'O', 'B-TYPE' or 'I-TYPE' (a BIO "
                "tag in the last column)"
            )
        if current is None:
            current = {"tokens": [], "tags": [], "line": line}
            examples.append(current)
        current["tokens"].append(columns[0])
        current["tags"].append(tag)
    return _non_empty(examples, path, key)


def tag_vocabulary(examples):
    """Returns `"O"`, then `B-` and `I-` of every entity type seen, sorted.

    Example:
    >>> tag_vocabulary([{"tags": ["B-PER", "O", "I-LOC"]}])
    ['O', 'B-LOC', 'B-PER', 'I-LOC', 'I-PER']
    """
    kinds = {tag[2:] for example in examples for tag in example["tags"] if tag != "O"}
    return ["O", *sorted(f"{prefix}-{kind}" for kind in kinds for prefix in "BI")]


def read_squad_file(path, key="data.train"):
    """Reads extractive question answering examples from SQuAD-style JSON Lines.

    Each line is `{"id": str (optional), "context": str, "question": str, "answers":
    {"text": [str], "answer_start": [int]}}` (the Hugging Face `squad` layout);
    `"answers": [{"text", "answer_start"}, ...]` and a single `"answer": {"text",
    "answer_start"}` are accepted too. `answer_start` counts Python `str` characters.

    Args:
        path: The file (a glob must match exactly one file).
        key: The config key the path came from, quoted in errors.

    Returns:
        A list of `{"id": str, "context": str, "question": str, "answers": [{"text":
        str, "answer_start": int}], "line": int}`; `id` defaults to `"{name}:{line}"`
        with `name` the file's base name.

    Example:
    >>> import json, pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "dev.jsonl"
    >>> row = {"context": "Paris is in France.", "question": "Where is Paris?",
    ...        "answers": {"text": ["France"], "answer_start": [12]}}
    >>> _ = path.write_text(json.dumps(row) + "\\n")
    >>> read_squad_file(path)[0]["answers"]
    [{'text': 'France', 'answer_start': 12}]
    """
    path = _resolve_one(path, key)
    examples, first_line_of = [], {}
    for line, obj in _json_lines(path):
        where = f"{path}:{line}"
        for name in ("context", "question"):
            if name not in obj:
                raise ValueError(f"{where}: missing key {name!r}; got keys {sorted(obj)}")
            if not isinstance(obj[name], str) or not obj[name].strip():
                raise ValueError(f"{where}: expected a non-empty string for {name!r}")
        identifier = str(obj.get("id", f"{os.path.basename(path)}:{line}"))
        if identifier in first_line_of:
            raise ValueError(
                f"{where}: duplicate id {identifier!r} (first on line "
                f"{first_line_of[identifier]})"
            )
        first_line_of[identifier] = line
        answers = [_check_answer(a, obj["context"], where) for a in _answers(obj, where)]
        examples.append(
            {
                "id": identifier,
                "context": obj["context"],
                "question": obj["question"],
                "answers": answers,
                "line": line,
            }
        )
    return _non_empty(examples, path, key)


def read_table_columns(
    path, columns, *, header=None, file_format=None, key="data.train"
):
    """Reads the given columns of every row of a tsv, csv or jsonl file.

    The part every table reader shares: resolving the path, the format, the column
    checks and the `file:line` errors (see `read_classification_file`).

    Args:
        path: The file (a glob must match exactly one file).
        columns: `{role: column}`, each column a header name (a key for jsonl) or a
            0-based index; errors call it `{role}_column`.
        header: Whether a tsv/csv file starts with a header row; `None` means it does
            exactly when a column is given by name. Ignored for jsonl.
        file_format: `"tsv"`, `"csv"` or `"jsonl"`; `None` infers it from the
            extension.
        key: The config key the path came from, quoted in errors.

    Returns:
        `(path, rows)`: the resolved path and a non-empty list of `(line, {role:
        value})`; values are `str` from tsv/csv, any JSON value from jsonl.

    Example:
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "pairs.tsv"
    >>> _ = path.write_text("Hallo\\tHello\\n")
    >>> read_table_columns(path, {"source": 0, "target": 1})[1]
    [(1, {'source': 'Hallo', 'target': 'Hello'})]
    """
    path = _resolve_one(path, key)
    file_format = _file_format(path, file_format, key)
    for role, column in columns.items():
        if file_format == "jsonl" and not isinstance(column, str):
            raise ValueError(f"{key}: {role}_column must be a key, got {column!r}")
        if not isinstance(column, str) and not (type(column) is int and column >= 0):
            raise ValueError(
                f"{key}: {role}_column must be a name or a 0-based index, got {column!r}"
            )
    if file_format == "jsonl":
        records = _json_lines(path)
    else:
        records = _table_records(path, file_format, columns, header, key)
    rows = []
    for line, fields in records:
        for role, column in columns.items():
            if column not in fields:  # Only a JSON object can lack a column.
                raise ValueError(
                    f"{path}:{line}: missing key {column!r} ({role}_column); the object "
                    f"has keys {sorted(fields)}"
                )
        rows.append((line, {role: fields[column] for role, column in columns.items()}))
    return path, _non_empty(rows, path, key)


def read_text_lines(path, key="data.train"):
    """Reads a UTF-8 file's lines without their `"\\n"` or `"\\r\\n"` (and BOM).

    Returns:
        `(path, lines)`: the resolved path (a glob must match one file) and a list
        of `(line, text)`; a final `"\\n"` does not start another line.
    """
    path = _resolve_one(path, key)
    return path, [(line, text.rstrip("\r\n")) for line, text in _numbered_lines(path)]


def _answers(obj, where):
    """Returns a SQuAD object's answers as a list, from any accepted layout."""
    if "answers" in obj:
        answers = obj["answers"]
    elif "answer" in obj:
        answers = [obj["answer"]]
    else:
        raise ValueError(f"{where}: missing key 'answers'; got keys {sorted(obj)}")
    if isinstance(answers, dict):  # {"text": [...], "answer_start": [...]}
        texts, starts = answers.get("text"), answers.get("answer_start")
        paired = isinstance(texts, list) and isinstance(starts, list)
        if not paired or len(texts) != len(starts):
            raise ValueError(
                f"{where}: expected 'answers' with lists 'text' and 'answer_start' of "
                f"equal length, got {answers!r}"
            )
        answers = [{"text": t, "answer_start": s} for t, s in zip(texts, starts)]
    if not isinstance(answers, list) or not answers:
        raise ValueError(
            f"{where}: no answers; every question needs at least one (unanswerable "
            "SQuAD 2.0 questions are not supported)"
        )
    return answers


def _check_answer(answer, context, where):
    if not isinstance(answer, dict) or not {"text", "answer_start"} <= answer.keys():
        raise ValueError(
            f"{where}: expected an answer {{'text': ..., 'answer_start': ...}}, got "
            f"{answer!r}"
        )
    text, start = answer["text"], answer["answer_start"]
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{where}: expected a non-empty answer text, got {text!r}")
    if type(start) is not int or start < 0:
        raise ValueError(f"{where}: expected an integer answer_start >= 0, got {start!r}")
    if context[start : start + len(text)] != text:
        found = [match.start() for match in re.finditer(re.escape(text), context)]
        hint = f"; it occurs at answer_start={found[:5]} (offsets count characters)"
        raise ValueError(
            f"{where}: answer {text!r} is not in the context at answer_start={start}"
            f"{hint if found else ''}"
        )
    return {"text": text, "answer_start": start}


def _table_records(path, file_format, columns, header, key):
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
    for line, row in _rows(path, file_format):
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
            raise ValueError(
                f"{path}:{line}: expected {width} {separator} fields (as on line "
                f"{width_line}), got {len(row)}"
            )
        yield line, {column: row[i] for column, i in positions.items()}


def _rows(path, file_format):
    """Yields `(start line, fields)` for each non-blank tsv line or csv record."""
    if file_format == "tsv":
        for line, text in _numbered_lines(path):
            if text.strip():
                yield line, text.rstrip("\r\n").split("\t")
        return
    # Fed our lines, `line_num` counts them, so multi-line records keep true numbers.
    reader = csv.reader((text for _, text in _numbered_lines(path)), strict=True)
    start = 1
    try:
        for row in reader:
            if any(field.strip() for field in row):
                yield start, row
            start = reader.line_num + 1
    except csv.Error as error:
        raise ValueError(f"{path}:{start}: invalid CSV record: {error}") from None


def _json_lines(path):
    """Yields `(line, object)` for each non-blank line of a JSON Lines file."""
    for line, text in _numbered_lines(path):
        if not text.strip():
            continue
        try:
            obj = json.loads(text.rstrip("\r\n"))
        except json.JSONDecodeError as error:
            raise ValueError(
                f"{path}:{line}: invalid JSON at column {error.colno}: {error.msg}; "
                "expected JSON Lines, one object per line"
            ) from None
        if not isinstance(obj, dict):
            raise ValueError(f"{path}:{line}: expected a JSON object, got {text.strip()!r}")
        yield line, obj


def _numbered_lines(path):
    """Yields `(line, text)`; only "\\n" ends a line, a UTF-8 BOM is dropped."""
    for line, text in enumerate(read_lines(path), start=1):
        yield line, text.removeprefix("\ufeff") if line == 1 else text


def _resolve_one(path, key):
    files = resolve_files(path, key)
    if len(files) != 1:
        raise ValueError(
            f"{key}: {os.fspath(path)!r} matches {len(files)} files; expected one file"
        )
    return files[0]


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
        raise ValueError(
            f"{key}: file_format must be 'tsv', 'csv' or 'jsonl', got {file_format!r}"
        )
    return file_format


def _non_empty(examples, path, key):
    if not examples:
        raise ValueError(f"{key}: {path}: no examples; the file is empty or blank")
    return examples
