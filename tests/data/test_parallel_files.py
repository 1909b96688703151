"""kzoo.data.parallel_files: translation tables and aligned files, file:line errors."""

import json

import pytest

from kzoo.data import parallel_files as pf
from kzoo.testing.data_files import error_of, write_file


def read_de_en(path):
    return pf.read_parallel_table(path, source_column="de", target_column="en")


def triples(pairs):
    return [(p["source"], p["target"], p["line"]) for p in pairs]


# === Tables ===


def test_tsv_by_name_with_header_blank_lines_and_crlf(tmp_path):
    path = write_file(tmp_path, "train.tsv", "id\ten\tde\r\n1\tHi.\tHallo.\r\n\n2\tYes\tJa\n")
    pairs = pf.read_parallel_table(path, source_column="de", target_column="en")
    assert pairs == [
        {"source": "Hallo.", "target": "Hi.", "line": 2},
        {"source": "Ja", "target": "Yes", "line": 4},
    ]


def test_tsv_by_index_has_no_header_unless_told(tmp_path):
    path = write_file(tmp_path, "train.tsv", 'a "b\tA "B\nc\tC\n')
    pairs = pf.read_parallel_table(path, source_column=0, target_column=1)
    assert triples(pairs) == [('a "b', 'A "B', 1), ("c", "C", 2)]
    pairs = pf.read_parallel_table(path, source_column=1, target_column=0, header=True)
    assert triples(pairs) == [("C", "c", 2)]


def test_csv_quoting_commas_and_newlines(tmp_path):
    path = write_file(
        tmp_path,
        "train.csv",
        'src,tgt\n"Hallo, Welt","Hello, world"\n"zwei\nZeilen","say ""two"""\nx,y\n',
    )
    pairs = pf.read_parallel_table(path, source_column="src", target_column="tgt")
    assert triples(pairs) == [
        ("Hallo, Welt", "Hello, world", 2),
        ("zwei\nZeilen", 'say "two"', 3),
        ("x", "y", 5),
    ]


def test_jsonl_and_format_override(tmp_path):
    rows = [
        {"translation_de": "Danke", "translation_en": "Thanks"},
        {"translation_de": "Bitte", "translation_en": "Please", "id": 7},
    ]
    text = "\n".join(json.dumps(row) for row in rows) + "\n"
    for name, file_format in (("train.jsonl", None), ("train.txt", "jsonl")):
        path = write_file(tmp_path, name, text)
        pairs = pf.read_parallel_table(
            path,
            source_column="translation_de",
            target_column="translation_en",
            file_format=file_format,
        )
        assert triples(pairs) == [("Danke", "Thanks", 1), ("Bitte", "Please", 2)]


def test_missing_column_names_file_line(tmp_path):
    path = write_file(tmp_path, "train.jsonl", '{"de": "a", "en": "b"}\n{"de": "c"}\n')
    assert error_of(pf.read_parallel_table, path, source_column="de", target_column="en") == (
        f"{path}:2: missing key 'en' (target_column); the object has keys ['de']"
    )
    path = write_file(tmp_path, "train.tsv", "de\ten\na\tb\n")
    assert error_of(pf.read_parallel_table, path, source_column="fr", target_column="en") == (
        f"{path}:1: no column 'fr' (source_column) in the header; the header has ['de', 'en']"
    )


def test_empty_source_or_target_names_file_line(tmp_path):
    path = write_file(tmp_path, "train.tsv", "a\tA\n \tB\n")
    assert error_of(pf.read_parallel_table, path, source_column=0, target_column=1) == (
        f"{path}:2: empty source text (column 0); every pair needs a source and a target"
    )
    path = write_file(tmp_path, "train.csv", 'de,en\na,A\nb,""\n')
    message = error_of(read_de_en, path)
    assert message.startswith(f"{path}:3: empty target text (column 'en')")
    path = write_file(tmp_path, "train.jsonl", '{"de": "a", "en": 3}\n')
    message = error_of(read_de_en, path)
    assert message == f"{path}:1: expected a string for 'en' (target_column), got 3"


def test_empty_table_names_the_key(tmp_path):
    path = write_file(tmp_path, "dev.tsv", "de\ten\n\n")
    message = error_of(
        pf.read_parallel_table, path, source_column="de", target_column="en", key="data.validation"
    )
    assert message == f"data.validation: {path}: no examples; the file is empty or blank"


# === Line-aligned files ===


def test_line_aligned_final_newline_is_not_a_line(tmp_path):
    source = write_file(tmp_path, "train.de", "Guten Tag.\r\nDanke.\n")
    target = write_file(tmp_path, "train.en", "Good day.\nThanks.")
    assert triples(pf.read_line_aligned(source, target)) == [
        ("Guten Tag.", "Good day.", 1),
        ("Danke.", "Thanks.", 2),
    ]


def test_line_count_mismatch_names_both_files_and_counts(tmp_path):
    source = write_file(tmp_path, "dev.de", "a\nb\nc\n")
    target = write_file(tmp_path, "dev.en", "A\nB\n")
    message = error_of(pf.read_line_aligned, source, target, key="data.validation")
    assert message == (
        "data.validation_source and data.validation_target are not line-aligned: "
        f"{source} has 3 lines but {target} has 2"
    )


@pytest.mark.parametrize("side", ["source", "target"])
def test_empty_line_names_file_line(tmp_path, side):
    texts = {"source": "a\nb\nc\n", "target": "A\nB\nC\n"}
    texts[side] = texts[side].replace("b" if side == "source" else "B", "  ")
    source = write_file(tmp_path, "train.de", texts["source"])
    target = write_file(tmp_path, "train.en", texts["target"])
    bad, other = (source, target) if side == "source" else (target, source)
    assert error_of(pf.read_line_aligned, source, target) == (
        f"{bad}:2: empty line; every line must hold the translation of the same line of {other}"
    )


def test_line_aligned_path_errors_name_their_key(tmp_path):
    source = write_file(tmp_path, "train.de", "a\n")
    with pytest.raises(FileNotFoundError, match=r"^data\.validation_target: file "):
        pf.read_line_aligned(source, str(tmp_path / "missing.en"), key="data.validation")
    empty = write_file(tmp_path, "empty.en", "")
    empty_source = write_file(tmp_path, "empty.de", "")
    message = error_of(pf.read_line_aligned, empty_source, empty)
    assert message.startswith("data.train_source, data.train_target: ")
    assert message.endswith("are empty; expected one sentence per line")
