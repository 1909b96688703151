"""The user's fine-tuning files: classification tables, CoNLL tagging, SQuAD answers.

Readers return lists of plain dicts, each with a `"line"` field (1-based line where the
example starts), so later errors (an unknown label at evaluation) can name `file:line`.
A bad record inside a file goes to a `kzoo.data.bad_records.BadRecords`
(`data.on_bad_record`): by default a `ValueError("{path}:{line}: ...")` saying what was
expected, or skipped and counted. An error about the path itself, the columns, or a
file without examples names the config `key` and always stops.

Formats: tsv, csv and jsonl tables (read by `kzoo.data.table_files`), CoNLL, and
SQuAD-style JSON Lines.
"""

import os
import re

from kzoo.data.bad_records import BadRecord, BadRecords
from kzoo.data.table_files import (
    json_lines,
    non_empty,
    numbered_lines,
    read_table_columns,
    resolve_one,
    string_value,
)

_TAG = re.compile(r"[BI]-\S+")
_INTEGER = re.compile(r"-?\d+")


def read_classification_file(
    path, *, text_column, label_column, text_pair_column=None, **table_options
):
    """Reads a single-text or text-pair classification file.

    Args:
        path: The file (a glob must match exactly one file).
        text_column: The text's column: a header name (a key for jsonl) or a 0-based
            index.
        label_column: The label's column, likewise.
        text_pair_column: The second text's column for pair tasks, or `None`.
        **table_options: `header`, `file_format`, `key` and `bad_records`, as for
            `kzoo.data.table_files.read_table_columns` (a non-string or empty
            field is a bad row too).

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
    columns = {"text": text_column, "label": label_column}
    if text_pair_column is not None:
        columns["text_pair"] = text_pair_column

    def check(fields):
        example = {"text": None, "text_pair": None, "label": None}
        for role, value in fields.items():
            if role == "label" and type(value) is int:
                value = str(value)
            value = string_value(value, role, columns[role])
            if not value.strip():
                raise BadRecord(f"empty {role} field (column {columns[role]!r})")
            example[role] = value.strip() if role == "label" else value
        return example

    return read_table_columns(path, columns, check=check, **table_options)


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


def read_conll_file(path, key="data.train", bad_records=None):
    """Reads a CoNLL-style tagging file (e.g. CoNLL-2003 NER).

    One token per line: the token in the first whitespace-separated column, its BIO tag
    in the last (columns between are ignored); blank lines separate sentences and
    `-DOCSTART-` lines are skipped.

    Args:
        path: The file (a glob must match exactly one file).
        key: The config key the path came from, quoted in errors.
        bad_records: The `kzoo.data.bad_records.BadRecords` that bad lines (no tag,
            not a BIO tag, invalid UTF-8, too long) go to; skipping one drops its
            whole sentence. `None` stops at the first.

    Returns:
        A list of `{"tokens": [str], "tags": [str], "line": int}`, one per sentence.

    Example:
    >>> import pathlib, tempfile
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "train.conll"
    >>> _ = path.write_text("-DOCSTART- -X- O O\\n\\nEU NNP B-ORG\\nrejects VBZ O\\n")
    >>> read_conll_file(path)
    [{'tokens': ['EU', 'rejects'], 'tags': ['B-ORG', 'O'], 'line': 3}]
    """
    records = bad_records or BadRecords()
    path = resolve_one(path, key)
    examples, current = [], None  # current: the open sentence; False: a dropped one.
    for line, text in numbered_lines(path, records):
        if text is not None:
            columns = text.split()
            if not columns or columns[0] == "-DOCSTART-":
                current = None
                continue
            try:
                tag = _conll_tag(columns, text)
            except BadRecord as error:
                records.found(path, line, str(error))
                text = None
        if text is None:  # A bad line (reported): its whole sentence goes.
            if current:
                examples.pop()
            current = False
            continue
        if current is False:
            continue
        if current is None:
            current = {"tokens": [], "tags": [], "line": line}
            examples.append(current)
        current["tokens"].append(columns[0])
        current["tags"].append(tag)
    return non_empty(examples, path, key, records)


def _conll_tag(columns, text):
    """The BIO tag of a CoNLL token line, or a `BadRecord`."""
    if len(columns) < 2:
        raise BadRecord(
            f"expected a token and its tag separated by whitespace, got {text.strip()!r}"
        )
    tag = columns[-1]
    if tag != "O" and not _TAG.fullmatch(tag):
        raise BadRecord(
            f"tag {tag!r} is not 'O', 'B-TYPE' or 'I-TYPE' (a BIO tag in the last column)"
        )
    return tag


def tag_vocabulary(examples):
    """Returns `"O"`, then `B-` and `I-` of every entity type seen, sorted.

    Example:
    >>> tag_vocabulary([{"tags": ["B-PER", "O", "I-LOC"]}])
    ['O', 'B-LOC', 'B-PER', 'I-LOC', 'I-PER']
    """
    kinds = {tag[2:] for example in examples for tag in example["tags"] if tag != "O"}
    return ["O", *sorted(f"{prefix}-{kind}" for kind in kinds for prefix in "BI")]


def read_squad_file(path, key="data.train", bad_records=None):
    """Reads extractive question answering examples from SQuAD-style JSON Lines.

    Each line is `{"id": str (optional), "context": str, "question": str, "answers":
    {"text": [str], "answer_start": [int]}}` (the Hugging Face `squad` layout);
    `"answers": [{"text", "answer_start"}, ...]` and a single `"answer": {"text",
    "answer_start"}` are accepted too. `answer_start` counts Python `str` characters.

    Args:
        path: The file (a glob must match exactly one file).
        key: The config key the path came from, quoted in errors.
        bad_records: The `kzoo.data.bad_records.BadRecords` that bad lines go to
            (invalid JSON, a missing or empty field, a bad answer, a duplicate id);
            `None` stops at the first.

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
    records = bad_records or BadRecords()
    path = resolve_one(path, key)
    examples, first_line_of = [], {}
    for line, obj in json_lines(path, records):
        try:
            example = _squad_example(obj, path, line, first_line_of)
        except BadRecord as error:
            records.found(path, line, str(error))
            continue
        first_line_of[example["id"]] = line
        examples.append(example)
    return non_empty(examples, path, key, records)


def _squad_example(obj, path, line, first_line_of):
    """One checked SQuAD example, or a `BadRecord`."""
    for name in ("context", "question"):
        if name not in obj:
            raise BadRecord(f"missing key {name!r}; got keys {sorted(obj)}")
        if not isinstance(obj[name], str) or not obj[name].strip():
            raise BadRecord(f"expected a non-empty string for {name!r}")
    identifier = str(obj.get("id", f"{os.path.basename(path)}:{line}"))
    if identifier in first_line_of:
        raise BadRecord(f"duplicate id {identifier!r} (first on line {first_line_of[identifier]})")
    answers = [_check_answer(answer, obj["context"]) for answer in _answers(obj)]
    return {
        "id": identifier,
        "context": obj["context"],
        "question": obj["question"],
        "answers": answers,
        "line": line,
    }


def _answers(obj):
    """Returns a SQuAD object's answers as a list, from any accepted layout."""
    if "answers" in obj:
        answers = obj["answers"]
    elif "answer" in obj:
        answers = [obj["answer"]]
    else:
        raise BadRecord(f"missing key 'answers'; got keys {sorted(obj)}")
    if isinstance(answers, dict):  # {"text": [...], "answer_start": [...]}
        texts, starts = answers.get("text"), answers.get("answer_start")
        paired = isinstance(texts, list) and isinstance(starts, list)
        if not paired or len(texts) != len(starts):
            raise BadRecord(
                "expected 'answers' with lists 'text' and 'answer_start' of "
                f"equal length, got {answers!r}"
            )
        answers = [{"text": t, "answer_start": s} for t, s in zip(texts, starts)]
    if not isinstance(answers, list) or not answers:
        raise BadRecord(
            "no answers; every question needs at least one (unanswerable "
            "SQuAD 2.0 questions are not supported)"
        )
    return answers


def _check_answer(answer, context):
    if not isinstance(answer, dict) or not {"text", "answer_start"} <= answer.keys():
        raise BadRecord(f"expected an answer {{'text': ..., 'answer_start': ...}}, got {answer!r}")
    text, start = answer["text"], answer["answer_start"]
    if not isinstance(text, str) or not text.strip():
        raise BadRecord(f"expected a non-empty answer text, got {text!r}")
    if type(start) is not int or start < 0:
        raise BadRecord(f"expected an integer answer_start >= 0, got {start!r}")
    if context[start : start + len(text)] != text:
        found = [match.start() for match in re.finditer(re.escape(text), context)]
        hint = f"; it occurs at answer_start={found[:5]} (offsets count characters)"
        raise BadRecord(
            f"answer {text!r} is not in the context at answer_start={start}{hint if found else ''}"
        )
    return {"text": text, "answer_start": start}
