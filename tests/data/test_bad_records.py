"""kzoo.data.bad_records: a corrupt record in the middle of a large file stops the
read with file:line (`data.on_bad_record: stop`) or is skipped and counted (`skip`),
leaving exactly what the file without it gives."""

import json
import random
import re

import pytest
import tensorflow as tf

from kzoo.data import bad_records as br
from kzoo.data import labelled_files, parallel_files, text_files
from kzoo.data.bad_records import BadRecords, scan_lines
from kzoo.data.bert_pretraining import read_documents
from kzoo.data.text_files import count_tokens, document_dataset, token_stream
from kzoo.tokenizers import load_tokenizer, train_sentencepiece

MAX_LINE_BYTES = 200
LONG_LINE = "x" * (MAX_LINE_BYTES + 1)


def good_lines(count, start=0):
    return [f"line {i}: the quick brown fox, café\n" for i in range(start, start + count)]


def corpus_with_bad_lines(directory, name="corpus.txt"):
    """A ~90 kB text file with an invalid UTF-8 line at line 1001 and an over-long
    one at 2002; returns `(path, clean text)`."""
    lines = good_lines(1000) + ["bad \xff\n"] + good_lines(1000, 1000)
    lines += [LONG_LINE + "\n"] + good_lines(500, 2000)
    raw = "".join(lines).encode("utf-8").replace(b"\xc3\xbf", b"\xff")  # ÿ -> 0xff
    path = directory / name
    path.write_bytes(raw)
    clean = "".join(lines[:1000] + lines[1001:2001] + lines[2002:])
    return str(path), clean


def skipping():
    return BadRecords("skip", MAX_LINE_BYTES, key="data.train")


def stopping():
    return BadRecords("stop", MAX_LINE_BYTES, key="data.train")


def error_of(function, *args, **kwargs):
    with pytest.raises(ValueError) as error:
        function(*args, **kwargs)
    return str(error.value)


# === The scanner and the policy ===


def test_scan_finds_invalid_utf8_and_over_long_lines(tmp_path):
    path, clean = corpus_with_bad_lines(tmp_path)
    offset = len("".join(good_lines(1000)).encode("utf-8")) + len(b"bad ")
    bad = [(line, problem) for line, _, problem in scan_lines(path, MAX_LINE_BYTES) if problem]
    assert bad == [
        (
            1001,
            f"invalid UTF-8 at byte offset {offset} (0xff): invalid start byte; "
            "the corpus must be UTF-8 text",
        ),
        (
            2002,
            f"line of {MAX_LINE_BYTES + 1} bytes is longer than "
            f"data.max_line_bytes={MAX_LINE_BYTES}",
        ),
    ]
    texts = [text for _, text, _ in scan_lines(path, MAX_LINE_BYTES) if text]
    assert "".join(texts) == clean


def test_over_long_line_is_read_in_bounded_chunks(tmp_path, monkeypatch):
    monkeypatch.setattr(br, "_CHUNK_BYTES", 7)
    path = tmp_path / "long.txt"
    path.write_bytes(b"a" * 10 + b"\n" + b"b" * 1000 + b"\r\n" + b"c" * 10 + b"\n" + b"d" * 11)
    scanned = list(scan_lines(str(path), max_line_bytes=10))
    assert [(line, text) for line, text, _ in scanned] == [
        (1, "a" * 10 + "\n"),
        (2, None),
        (3, "c" * 10 + "\n"),
        (4, None),
    ]
    assert "line of 1001 bytes" in scanned[1][2]  # The "\r" counts, the "\n" not.
    assert "line of 11 bytes" in scanned[3][2]


def test_chunked_fast_check_agrees_with_the_line_scanner(tmp_path, monkeypatch):
    monkeypatch.setattr(br, "_CHUNK_BYTES", 5)  # Lines and characters straddle chunks.
    rng = random.Random(0)
    pieces = [b"ab", b"\n", "é✓".encode(), b"\xff", b"\xe2\x9c", b"x" * 9, b"\r\n"]
    path = tmp_path / "random.txt"
    for _ in range(300):
        path.write_bytes(b"".join(rng.choice(pieces) for _ in range(rng.randint(0, 12))))
        bad = any(problem for _, _, problem in scan_lines(str(path), 8))
        assert br._all_lines_good(str(path), 8) == (not bad), path.read_bytes()


def test_policy_stops_with_file_line_or_counts_and_keeps_five_locations():
    with pytest.raises(ValueError, match=r"^a\.txt:3: broken$"):
        BadRecords().found("a.txt", 3, "broken")
    records = BadRecords("skip", key="data.validation")
    assert records.summary() == "data.validation: no bad records"
    for line in range(1, 8):
        records.found("a.txt", line, "broken")
    assert records.count == 7 and records.paths == {"a.txt"}
    assert records.locations == [f"a.txt:{i}: broken" for i in range(1, 6)]
    assert records.summary().startswith(
        "data.validation: skipped 7 bad record(s), first: a.txt:1: broken; a.txt:2: broken"
    )
    with pytest.raises(ValueError, match="data.on_bad_record: expected one of"):
        BadRecords("ignore")
    with pytest.raises(ValueError, match="data.max_line_bytes: expected a positive int"):
        BadRecords("skip", 0)


# === Text corpora: files, in-graph skipping, splits ===


def test_corpus_stop_names_file_and_line(tmp_path):
    path, _ = corpus_with_bad_lines(tmp_path)
    message = error_of(text_files.resolve_text_files, path, "data.train", bad_records=stopping())
    assert message.startswith(f"{path}:1001: invalid UTF-8 at byte offset ")
    # The strict UTF-8 check without a policy says the same.
    assert error_of(text_files.check_utf8, path) == message
    (tmp_path / "long.txt").write_text("ok\n" + LONG_LINE + "\n")
    message = error_of(
        text_files.resolve_text_files,
        str(tmp_path / "long.txt"),
        "data.train",
        bad_records=stopping(),
    )
    assert message == (
        f"{tmp_path / 'long.txt'}:2: line of {MAX_LINE_BYTES + 1} bytes "
        f"is longer than data.max_line_bytes={MAX_LINE_BYTES}"
    )


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("tokenizer"))
    train_sentencepiece(
        texts=["".join(good_lines(50)) + "bad x"], model_type="char", output_dir=directory
    )
    return load_tokenizer(directory)


def test_skipped_lines_leave_the_documents_and_tokens_of_the_clean_file(tmp_path, tokenizer):
    path, clean = corpus_with_bad_lines(tmp_path)
    # Bad lines at a document's end (no "\n") and a document of bad lines only.
    last = tmp_path / "last.txt"
    last.write_bytes(b"first\nsecond\n\xfe")
    only_bad = tmp_path / "only_bad.txt"
    only_bad.write_bytes(b"\xff\n" + LONG_LINE.encode() + b"\n")
    files = [path, str(last), str(only_bad)]
    records = skipping()
    assert text_files.resolve_text_files(files, "data.train", bad_records=records) == sorted(files)
    assert records.count == 5
    assert records.paths == set(files)

    documents = document_dataset(files=sorted(files), max_line_bytes=MAX_LINE_BYTES)
    expected = [clean.encode(), b"first\nsecond\n"]  # only_bad.txt is left out.
    assert [d.numpy() for d in documents] == expected

    def tokens(dataset):
        return tf.concat(list(token_stream(dataset, tokenizer)), 0).numpy().tolist()

    expected_tokens = tokens(document_dataset(texts=[clean, "first\nsecond\n"]))
    assert tokens(documents) == expected_tokens
    assert count_tokens(tokenizer, files=sorted(files), max_line_bytes=MAX_LINE_BYTES) == (
        len(expected_tokens)
    )


def test_split_skips_bad_lines_before_cutting(tmp_path):
    path, clean = corpus_with_bad_lines(tmp_path)
    records = skipping()
    assert text_files.split_text_file(path, 0.1, bad_records=records) == (
        text_files.split_text(clean, 0.1)
    )
    assert records.count == 2
    assert error_of(text_files.split_text_file, path, 0.1, bad_records=stopping()).startswith(
        f"{path}:1001: invalid UTF-8"
    )


def test_bert_documents_skip_bad_lines(tmp_path):
    path = tmp_path / "docs.txt"
    path.write_bytes(b"one.\nbr\xffoken.\ntwo.\n\n" + LONG_LINE.encode() + b"\nthree.\n")
    records = skipping()
    assert read_documents([str(path)], records) == [["one.", "two."], ["three."]]
    assert records.count == 2
    assert error_of(read_documents, [str(path)], stopping()).startswith(f"{path}:2: invalid UTF-8")


# === Tables ===


def classification_rows(count):
    return [f"sentence number {i}\t{'pos' if i % 3 else 'neg'}\n" for i in range(count)]


@pytest.mark.parametrize(
    "bad_row, problem",
    [
        ("too\tmany\tfields\n", "expected 2 tab-separated fields (as on line 1), got 3"),
        ("\tpos\n", "empty text field (column 'text')"),
        ("caf\xff\tpos\n", "invalid UTF-8 at byte offset"),
        (LONG_LINE + "\tpos\n", "line of 205 bytes is longer than data.max_line_bytes=200"),
    ],
)
def test_bad_tsv_row_in_a_large_file(tmp_path, bad_row, problem):
    rows = ["text\tlabel\n"] + classification_rows(3000)
    corrupt = rows[:1500] + [bad_row] + rows[1500:]
    path = tmp_path / "train.tsv"
    path.write_bytes("".join(corrupt).encode("utf-8").replace(b"\xc3\xbf", b"\xff"))

    def read(records):
        return labelled_files.read_classification_file(
            path, text_column="text", label_column="label", bad_records=records
        )

    assert error_of(read, stopping()).startswith(f"{path}:1501: {problem}")
    records = skipping()
    examples = read(records)
    assert records.count == 1 and records.locations[0].startswith(f"{path}:1501: ")
    clean = tmp_path / "clean.tsv"
    clean.write_text("".join(rows))
    expected = labelled_files.read_classification_file(
        clean, text_column="text", label_column="label"
    )
    assert [(e["text"], e["label"]) for e in examples] == [
        (e["text"], e["label"]) for e in expected
    ]
    assert [e["line"] for e in examples] == list(range(2, 1501)) + list(range(1502, 3003))


def test_bad_csv_and_jsonl_records_are_skipped(tmp_path):
    csv_path = tmp_path / "train.csv"
    csv_path.write_text('text,label\na,pos\n"x"y,neg\nb,"multi\nline"\nc,pos,extra\nd,neg\n')
    records = skipping()
    examples = labelled_files.read_classification_file(
        csv_path, text_column="text", label_column="label", bad_records=records
    )
    assert [(e["text"], e["line"]) for e in examples] == [("a", 2), ("b", 4), ("d", 7)]
    assert [location.split(": ")[0] for location in records.locations] == [
        f"{csv_path}:3",
        f"{csv_path}:6",
    ]

    rows = [json.dumps({"text": f"t{i}", "label": i % 2}) for i in range(5)]
    rows[1], rows[3] = '{"text": "t1", "label": ', '{"text": 5, "label": 1}'
    jsonl = tmp_path / "train.jsonl"
    jsonl.write_text("\n".join(rows) + "\n")
    records = skipping()
    examples = labelled_files.read_classification_file(
        jsonl, text_column="text", label_column="label", bad_records=records
    )
    assert [(e["text"], e["line"]) for e in examples] == [("t0", 1), ("t2", 3), ("t4", 5)]
    assert records.count == 2
    assert "invalid JSON" in records.locations[0]
    assert "expected a string for 'text'" in records.locations[1]


def test_everything_skipped_says_so(tmp_path):
    path = tmp_path / "train.tsv"
    path.write_text("text\tlabel\na\tb\tc\n")
    message = error_of(
        labelled_files.read_classification_file,
        path,
        text_column="text",
        label_column="label",
        bad_records=skipping(),
    )
    assert message == (
        f"data.train: {path}: no examples; every record was bad and "
        "skipped (data.on_bad_record: skip)"
    )


def test_conll_bad_line_drops_its_sentence(tmp_path):
    path = tmp_path / "train.conll"
    path.write_bytes(
        b"EU B-ORG\nrejects O\n\nBad X-TAG\nline O\n\nPeter B-PER\n\n"
        b"Caf\xff O\nRome B-LOC\n\nParis B-LOC\n"
    )
    records = skipping()
    examples = labelled_files.read_conll_file(path, bad_records=records)
    assert [(e["tokens"], e["line"]) for e in examples] == [
        (["EU", "rejects"], 1),
        (["Peter"], 7),
        (["Paris"], 12),
    ]
    assert records.count == 2
    assert error_of(labelled_files.read_conll_file, path).startswith(
        f"{path}:4: tag 'X-TAG' is not"
    )


def test_squad_bad_rows_are_skipped(tmp_path):
    good = {"context": "abc", "question": "q?", "answers": {"text": ["b"], "answer_start": [1]}}
    rows = [
        {**good, "id": "1"},
        {**good, "id": "2", "answers": []},
        {**good, "id": "1"},
        {**good, "id": "3"},
    ]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    records = skipping()
    examples = labelled_files.read_squad_file(path, bad_records=records)
    assert [(e["id"], e["line"]) for e in examples] == [("1", 1), ("3", 4)]
    assert records.locations == [
        f"{path}:2: no answers; every question needs at least one (unanswerable SQuAD "
        "2.0 questions are not supported)",
        f"{path}:3: duplicate id '1' (first on line 1)",
    ]


# === Parallel files ===


def test_parallel_table_skips_bad_rows(tmp_path):
    path = tmp_path / "train.tsv"
    lines = [f"Satz {i}\tSentence {i}\n" for i in range(1000)]
    lines[500] = "kaputt\n"
    path.write_text("".join(lines))
    records = skipping()
    pairs = parallel_files.read_parallel_table(
        path, source_column=0, target_column=1, bad_records=records
    )
    assert len(pairs) == 999 and records.count == 1
    assert 501 not in [pair["line"] for pair in pairs]
    message = error_of(parallel_files.read_parallel_table, path, source_column=0, target_column=1)
    assert message == f"{path}:501: expected 2 tab-separated fields (as on line 1), got 1"


def test_line_aligned_bad_line_on_either_side_drops_the_pair(tmp_path):
    source, target = tmp_path / "train.de", tmp_path / "train.en"
    source.write_bytes(
        "".join(f"Satz {i}\n" for i in range(2000)).encode().replace(b"Satz 700\n", b"Satz \xff\n")
    )
    target.write_text("".join(f"Sentence {i}\n" if i != 1200 else "  \n" for i in range(2000)))
    records = skipping()
    pairs = parallel_files.read_line_aligned(source, target, bad_records=records)
    assert [pair["line"] for pair in pairs] == [i + 1 for i in range(2000) if i not in (700, 1200)]
    assert all(p["source"] == f"Satz {p['line'] - 1}" for p in pairs)
    assert all(p["target"] == f"Sentence {p['line'] - 1}" for p in pairs)
    assert [re.match(r".*:(\d+):", loc).group(1) for loc in records.locations] == ["701", "1201"]
    assert error_of(parallel_files.read_line_aligned, source, target).startswith(
        f"{source}:701: invalid UTF-8"
    )
