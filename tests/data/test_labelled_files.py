"""kzoo.data.labelled_files: reading fine-tuning files, with file:line in every error."""

import json

import pytest

from kzoo.data import labelled_files as lf
from kzoo.testing.data_files import error_of, write_file


def read_table(path, **kwargs):
    kwargs = {"text_column": "text", "label_column": "label", **kwargs}
    return lf.read_classification_file(path, **kwargs)


# === Classification: tsv ===


def test_tsv_with_header_names_pair_crlf_blank_lines_and_literal_quotes(tmp_path):
    path = write_file(
        tmp_path,
        "train.tsv",
        '\ufefflabel\ttext\tsecond\r\npos\tHe said "hi\tthere\r\n\n neg \tbad\tworse\n',
    )
    examples = read_table(path, text_pair_column="second")
    assert examples == [
        {"text": 'He said "hi', "text_pair": "there", "label": "pos", "line": 2},
        {"text": "bad", "text_pair": "worse", "label": "neg", "line": 4},
    ]


def test_tsv_with_indices_has_no_header_unless_told(tmp_path):
    path = write_file(tmp_path, "data.tsv", "a\t0\nb\t1\n")
    examples = read_table(path, text_column=0, label_column=1)
    assert [(e["text"], e["label"], e["line"]) for e in examples] == [("a", "0", 1), ("b", "1", 2)]
    assert examples[0]["text_pair"] is None
    examples = read_table(path, text_column=0, label_column=1, header=True)
    assert [(e["text"], e["line"]) for e in examples] == [("b", 2)]


def test_tsv_wrong_number_of_fields(tmp_path):
    path = write_file(tmp_path, "train.tsv", "text\tlabel\na\tpos\nb\tneg\textra\n")
    assert error_of(read_table, path) == (
        f"{path}:3: expected 2 tab-separated fields (as on line 1), got 3"
    )
    path = write_file(tmp_path, "plain.tsv", "a\tpos\nb\n")
    assert error_of(read_table, path, text_column=0, label_column=1) == (
        f"{path}:2: expected 2 tab-separated fields (as on line 1), got 1"
    )


def test_named_column_missing_from_header_lists_the_header(tmp_path):
    path = write_file(tmp_path, "train.tsv", "sentence\tlabel\na\tpos\n")
    assert error_of(read_table, path) == (
        f"{path}:1: no column 'text' (text_column) in the header; the header has "
        "['sentence', 'label']"
    )


def test_column_index_out_of_range(tmp_path):
    path = write_file(tmp_path, "train.tsv", "a\tpos\n")
    assert error_of(read_table, path, text_column=0, label_column=2) == (
        f"{path}:1: label_column 2 is out of range; the row has 2 tab-separated fields"
    )


@pytest.mark.parametrize(
    "content, message",
    [
        ("text\tlabel\na\tpos\n\tneg\n", ":3: empty text field (column 'text')"),
        ("text\tlabel\na\t  \n", ":2: empty label field (column 'label')"),
    ],
)
def test_empty_fields(tmp_path, content, message):
    path = write_file(tmp_path, "train.tsv", content)
    assert error_of(read_table, path) == path + message


def test_column_names_need_a_header(tmp_path):
    path = write_file(tmp_path, "train.tsv", "a\tpos\n")
    message = error_of(read_table, path, header=False, key="data.validation")
    assert message.startswith("data.validation: column 'text' is a name, which needs a")
    assert "give a 0-based column index" in message
    message = error_of(read_table, path, text_column=-1, label_column=1)
    assert message == "data.train: text_column must be a name or a 0-based index, got -1"


def test_non_utf8_names_file_and_line(tmp_path):
    path = write_file(tmp_path, "train.tsv", b"text\tlabel\nok\tpos\ncaf\xe9\tneg\n")
    assert error_of(read_table, path).startswith(f"{path}:3: invalid UTF-8 at byte offset")


@pytest.mark.parametrize("content", ["", "\n\n", "text\tlabel\n"])
def test_file_without_examples_names_key_and_file(tmp_path, content):
    path = write_file(tmp_path, "dev.tsv", content)
    assert error_of(read_table, path, key="data.validation") == (
        f"data.validation: {path}: no examples; the file is empty or blank"
    )


# === Classification: csv ===


def test_csv_quoted_commas_and_embedded_newlines_keep_line_numbers(tmp_path):
    path = write_file(
        tmp_path,
        "train.csv",
        'text,label\r\n"Hello, world",pos\r\n"line one\nline two, ""quoted""",neg\n'
        "\n"
        "plain,pos\n"
        '"a\n\nb",neg\n'
        "last,neg\n",
    )
    examples = read_table(path)
    assert [(e["text"], e["label"], e["line"]) for e in examples] == [
        ("Hello, world", "pos", 2),
        ('line one\nline two, "quoted"', "neg", 3),
        ("plain", "pos", 6),
        ("a\n\nb", "neg", 7),
        ("last", "neg", 10),
    ]


def test_csv_errors_point_at_the_record_start(tmp_path):
    path = write_file(tmp_path, "train.csv", 'text,label\n"two\nlines",pos\nx,pos,extra\n')
    assert error_of(read_table, path) == (
        f"{path}:4: expected 2 comma-separated fields (as on line 1), got 3"
    )
    path = write_file(tmp_path, "open.csv", 'text,label\nok,pos\n"never closed,pos\nx,neg\n')
    assert error_of(read_table, path).startswith(f"{path}:3: invalid CSV record: ")


# === Classification: jsonl ===


def test_jsonl_reads_keys_integer_labels_and_skips_blank_lines(tmp_path):
    rows = [{"premise": "p1", "hypothesis": "h1", "label": 2, "idx": 0}]
    rows.append({"premise": "p2", "hypothesis": "h2", "label": "10"})
    content = json.dumps(rows[0]) + "\n\n" + json.dumps(rows[1]) + "\n"
    for name in ("train.jsonl", "train.json"):
        path = write_file(tmp_path, name, content)
        examples = lf.read_classification_file(
            path, text_column="premise", text_pair_column="hypothesis", label_column="label"
        )
        assert examples == [
            {"text": "p1", "text_pair": "h1", "label": "2", "line": 1},
            {"text": "p2", "text_pair": "h2", "label": "10", "line": 3},
        ]
        assert lf.label_vocabulary(examples) == ["2", "10"]


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"text": "a"}', ":2: missing key 'label' (label_column); the object has keys ['text']"),
        (
            '{"text": "a", "label": 1.5}',
            ":2: expected a string for 'label' (label_column), got 1.5",
        ),
        (
            '{"text": ["a"], "label": "x"}',
            ":2: expected a string for 'text' (text_column), got ['a']",
        ),
        ('{"text": "", "label": "x"}', ":2: empty text field (column 'text')"),
        ('["text", "label"]', ':2: expected a JSON object, got \'["text", "label"]\''),
        (
            '{"text": "a", "label": "x"',
            ":2: invalid JSON: Expecting ',' delimiter at column 27; expected JSON Lines",
        ),
        # The decoder's message ends in "at": the position must follow it.
        (
            '{"text": "a", "label": "x',
            ":2: invalid JSON: Unterminated string starting at column 24; expected JSON",
        ),
    ],
)
def test_jsonl_errors(tmp_path, line, message):
    path = write_file(tmp_path, "train.jsonl", '{"text": "ok", "label": "x"}\n' + line + "\n")
    assert error_of(read_table, path).startswith(path + message)


def test_jsonl_columns_are_keys(tmp_path):
    path = write_file(tmp_path, "train.jsonl", '{"text": "ok", "label": "x"}\n')
    assert error_of(read_table, path, text_column=0) == (
        "data.train: text_column must be a key, got 0"
    )


# === Formats and paths ===


def test_format_from_extension_or_argument(tmp_path):
    path = write_file(tmp_path, "train.txt", "text\tlabel\na\tpos\n")
    message = error_of(read_table, path, key="data.train")
    assert message.startswith(f"data.train: cannot tell the format of {path!r} from its")
    assert "['.csv', '.json', '.jsonl', '.tsv']" in message
    assert read_table(path, file_format="tsv")[0]["text"] == "a"
    assert "file_format must be 'tsv', 'csv' or 'jsonl', got 'xls'" in error_of(
        read_table, path, file_format="xls"
    )


def test_paths_resolve_with_the_key(tmp_path):
    missing = str(tmp_path / "nope.tsv")
    with pytest.raises(FileNotFoundError, match=r"data\.validation: file .* does not exist"):
        read_table(missing, key="data.validation")
    write_file(tmp_path, "a.tsv", "text\tlabel\na\tpos\n")
    write_file(tmp_path, "b.tsv", "text\tlabel\nb\tneg\n")
    assert error_of(read_table, str(tmp_path / "*.tsv")) == (
        f"data.train: {str(tmp_path / '*.tsv')!r} matches 2 files; expected one file"
    )


# === Labels ===


def test_label_vocabulary_sorts_numbers_numerically_and_strings_alphabetically():
    examples = [{"label": l} for l in ["10", "2", "-1", "2"]]
    assert lf.label_vocabulary(examples) == ["-1", "2", "10"]
    examples = [{"label": l} for l in ["pos", "neg", "10"]]
    assert lf.label_vocabulary(examples) == ["10", "neg", "pos"]
    assert lf.label_vocabulary([{"tag": "b"}, {"tag": "a"}], field="tag") == ["a", "b"]
    assert lf.label_vocabulary([]) == []


def test_labels_to_ids_names_file_and_line_of_unknown_labels(tmp_path):
    path = write_file(tmp_path, "dev.tsv", "text\tlabel\na\tneg\nb\tmaybe\n")
    examples = read_table(path)
    assert lf.labels_to_ids(examples[:1], ["neg", "pos"], path) == [0]
    assert error_of(lf.labels_to_ids, examples, ["neg", "pos"], path) == (
        f"{path}:3: unknown label 'maybe'; the model knows ['neg', 'pos']"
    )


# === CoNLL ===


def test_conll_sentences_docstart_middle_columns_and_tabs(tmp_path):
    path = write_file(
        tmp_path,
        "train.conll",
        "-DOCSTART- -X- -X- O\n\n"
        "EU NNP B-NP B-ORG\nrejects VBZ B-VP O\nGerman\tJJ\tB-NP\tB-MISC\n\n\n"
        "Peter NNP B-NP B-PER\r\nBlackburn NNP I-NP I-PER\n"
        "-DOCSTART- -X- -X- O\n"
        "Rome I-LOC\n",
    )
    examples = lf.read_conll_file(path)
    assert examples == [
        {"tokens": ["EU", "rejects", "German"], "tags": ["B-ORG", "O", "B-MISC"], "line": 3},
        {"tokens": ["Peter", "Blackburn"], "tags": ["B-PER", "I-PER"], "line": 8},
        {"tokens": ["Rome"], "tags": ["I-LOC"], "line": 11},
    ]
    assert lf.tag_vocabulary(examples) == [
        "O",
        "B-LOC",
        "B-MISC",
        "B-ORG",
        "B-PER",
        "I-LOC",
        "I-MISC",
        "I-ORG",
        "I-PER",
    ]


@pytest.mark.parametrize(
    "line, message",
    [
        ("lonely", ":3: expected a token and its tag separated by whitespace, got 'lonely'"),
        ("Paris NNP X-LOC", ":3: tag 'X-LOC' is not 'O', 'B-TYPE' or 'I-TYPE'"),
        ("Paris NNP B-", ":3: tag 'B-' is not 'O', 'B-TYPE' or 'I-TYPE'"),
        ("Paris NNP LOC", ":3: tag 'LOC' is not 'O', 'B-TYPE' or 'I-TYPE'"),
    ],
)
def test_conll_errors(tmp_path, line, message):
    path = write_file(tmp_path, "train.conll", "EU B-ORG\n\n" + line + "\n")
    assert error_of(lf.read_conll_file, path).startswith(path + message)


def test_conll_without_sentences(tmp_path):
    path = write_file(tmp_path, "test.conll", "-DOCSTART- -X- O O\n\n")
    assert error_of(lf.read_conll_file, path, key="data.test") == (
        f"data.test: {path}: no examples; the file is empty or blank"
    )


# === SQuAD ===

CONTEXT = "Der Zug fährt nach Zürich. Zürich liegt am See."


def squad_lines(*rows):
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def test_squad_accepts_three_answer_layouts_and_defaults_ids(tmp_path):
    start = CONTEXT.index("Zürich")
    path = write_file(
        tmp_path,
        "dev.jsonl",
        squad_lines(
            {
                "id": "q1",
                "context": CONTEXT,
                "question": "Wohin?",
                "answers": {"text": ["Zürich", "nach Zürich"], "answer_start": [19, 14]},
            },
            {
                "context": CONTEXT,
                "question": "Wo?",
                "answers": [{"text": "am See", "answer_start": 40}],
            },
        )
        + "\n"
        + squad_lines(
            {
                "id": 7,
                "context": CONTEXT,
                "question": "Was?",
                "answer": {"text": "Zug", "answer_start": 4},
            }
        ),
    )
    examples = lf.read_squad_file(path)
    assert start == 19
    assert examples == [
        {
            "id": "q1",
            "context": CONTEXT,
            "question": "Wohin?",
            "answers": [
                {"text": "Zürich", "answer_start": 19},
                {"text": "nach Zürich", "answer_start": 14},
            ],
            "line": 1,
        },
        {
            "id": "dev.jsonl:2",
            "context": CONTEXT,
            "question": "Wo?",
            "answers": [{"text": "am See", "answer_start": 40}],
            "line": 2,
        },
        {
            "id": "7",
            "context": CONTEXT,
            "question": "Was?",
            "answers": [{"text": "Zug", "answer_start": 4}],
            "line": 4,
        },
    ]


def test_squad_answer_not_at_answer_start_says_where_it_is(tmp_path):
    byte_offset = CONTEXT.encode("utf-8").index("Zürich".encode())  # 20, not 19
    answers = [{"text": "Zürich", "answer_start": byte_offset}]
    row = {"context": CONTEXT, "question": "Wohin?", "answers": answers}
    path = write_file(tmp_path, "dev.jsonl", squad_lines(row))
    assert error_of(lf.read_squad_file, path) == (
        f"{path}:1: answer 'Zürich' is not in the context at answer_start=20; it occurs "
        "at answer_start=[19, 27] (offsets count characters)"
    )
    row["answers"] = [{"text": "Genf", "answer_start": 0}]
    path = write_file(tmp_path, "dev.jsonl", squad_lines(row))
    assert error_of(lf.read_squad_file, path) == (
        f"{path}:1: answer 'Genf' is not in the context at answer_start=0"
    )


GOOD = {
    "id": "a",
    "context": "abc",
    "question": "q?",
    "answers": {"text": ["b"], "answer_start": [1]},
}


@pytest.mark.parametrize(
    "change, message",
    [
        ({"context": None}, ":2: missing key 'context'; got keys"),
        ({"question": " "}, ":2: expected a non-empty string for 'question'"),
        ({"context": ""}, ":2: expected a non-empty string for 'context'"),
        ({"answers": None}, ":2: missing key 'answers'; got keys ['context', 'id', 'q"),
        ({"answers": {"text": [], "answer_start": []}}, ":2: no answers; every"),
        ({"answers": []}, ":2: no answers; every question needs"),
        ({"answers": {"text": ["b"], "answer_start": []}}, ":2: expected 'answers' with"),
        ({"answers": [{"text": "b"}]}, ":2: expected an answer {'text': ..., 'answer_s"),
        ({"answers": [{"text": "", "answer_start": 0}]}, ":2: expected a non-empty answ"),
        ({"answers": [{"text": "b", "answer_start": "1"}]}, ":2: expected an integer an"),
        ({"id": "first"}, ":2: duplicate id 'first' (first on line 1)"),
    ],
)
def test_squad_errors(tmp_path, change, message):
    row = {**GOOD, "id": "b", **change}
    row = {k: v for k, v in row.items() if v is not None}
    path = write_file(tmp_path, "train.jsonl", squad_lines({**GOOD, "id": "first"}, row))
    assert error_of(lf.read_squad_file, path).startswith(path + message)


def test_squad_empty_file(tmp_path):
    path = write_file(tmp_path, "train.jsonl", "\n")
    assert error_of(lf.read_squad_file, path, key="data.train") == (
        f"data.train: {path}: no examples; the file is empty or blank"
    )
