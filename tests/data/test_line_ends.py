"""Byte-order marks and CRLF line ends (kzoo.data.line_ends): every reader of the
user's files reads a Windows-saved file (BOM first, "\\r\\n" line ends) as its
plain "\\n" version, and the log says what was converted."""

import json

import pytest
import tensorflow as tf

from kzoo.data import line_ends, text_files
from kzoo.data.bad_records import BadRecords, scan_lines
from kzoo.data.bert_pretraining import read_documents
from kzoo.data.labelled_files import read_classification_file, read_conll_file, read_squad_file
from kzoo.data.parallel_files import read_line_aligned, read_parallel_table
from kzoo.data.text_files import document_dataset, token_stream
from kzoo.tokenizers import load_tokenizer, train_sentencepiece


def windows(text):
    """`text` as a Windows editor saves it: a BOM first, "\\r\\n" line ends."""
    return "\ufeff" + text.replace("\n", "\r\n")


def write_both(tmp_path, name, text):
    """Writes `text` as `lf/NAME` and its `windows` version as `crlf/NAME`."""
    paths = []
    for folder, content in (("lf", text), ("crlf", windows(text))):
        (tmp_path / folder).mkdir(exist_ok=True)
        path = tmp_path / folder / name
        path.write_bytes(content.encode("utf-8"))
        paths.append(str(path))
    return paths


PROSE = "first line, with a\rlone CR\nsecond line\n\nthird ✓\nno final newline"
SQUAD = {
    "context": "Paris is in France.",
    "question": "Where is Paris?",
    "answers": {"text": ["France"], "answer_start": [12]},
}
READERS = {
    "read_lines": ("corpus.txt", PROSE, lambda p: list(text_files.read_lines(p))),
    "scan_lines": ("corpus.txt", PROSE, lambda p: list(scan_lines(p))),
    "split_text_file": ("corpus.txt", PROSE, lambda p: text_files.split_text_file(p, 0.25)),
    "split_text_file, skipping bad lines": (
        "corpus.txt",
        PROSE,
        lambda p: text_files.split_text_file(p, 0.25, bad_records=BadRecords("skip")),
    ),
    "bert documents": ("corpus.txt", PROSE, lambda p: read_documents([p])),
    "document_dataset": (
        "corpus.txt",
        PROSE,
        lambda p: [d.numpy() for d in document_dataset(files=[p])],
    ),
    "document_dataset, dropping bad lines": (
        "corpus.txt",
        PROSE,
        lambda p: [d.numpy() for d in document_dataset(files=[p], max_line_bytes=100)],
    ),
    "tsv": (
        "train.tsv",
        "text\tlabel\na b\tpos\n\nc\tneg\n",
        lambda p: read_classification_file(p, text_column="text", label_column="label"),
    ),
    "csv": (
        "train.csv",
        'text,label\n"a\nb, quoted",pos\nc,neg\n',
        lambda p: read_classification_file(p, text_column="text", label_column="label"),
    ),
    "jsonl": (
        "train.jsonl",
        '{"text": "a", "label": 1}\n\n{"text": "b", "label": 0}\n',
        lambda p: read_classification_file(p, text_column="text", label_column="label"),
    ),
    "conll": (
        "train.conll",
        "-DOCSTART- -X- O O\n\nEU NNP B-ORG\nrejects VBZ O\n",
        read_conll_file,
    ),
    "squad": ("train.jsonl", json.dumps(SQUAD) + "\n", read_squad_file),
    "parallel table": (
        "pairs.tsv",
        "de\ten\nHallo\tHello\nDanke\tThanks\n",
        lambda p: read_parallel_table(p, source_column="de", target_column="en"),
    ),
    "line-aligned": ("train.de", "Guten Morgen.\nDanke.\n", lambda p: read_line_aligned(p, p)),
}


@pytest.mark.parametrize("reader", READERS)
def test_a_windows_file_reads_like_its_plain_version(tmp_path, reader):
    name, text, read = READERS[reader]
    plain, crlf = write_both(tmp_path, name, text)
    expected = read(plain)
    assert read(crlf) == expected
    assert "\ufeff" not in repr(expected) and "\\r\\n" not in repr(expected)


def test_a_bom_after_the_start_and_a_lone_cr_are_text(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_bytes("a\r\n\ufeffb\rc\r\n".encode("utf-8"))
    assert list(text_files.read_lines(str(path))) == ["a\n", "\ufeffb\rc\n"]
    documents = [d.numpy() for d in document_dataset(files=[str(path)])]
    assert documents == ["a\n\ufeffb\rc\n".encode("utf-8")]


def test_line_lengths_count_the_bytes_in_the_file(tmp_path):
    # "abc\r" is 4 bytes: too long for max_line_bytes=3 in Python and in the graph.
    path = tmp_path / "corpus.txt"
    path.write_bytes(b"abc\r\nab\r\n")
    records = BadRecords("skip", max_line_bytes=3)
    assert [text for _, text in records.lines(str(path))] == [None, "ab\n"]
    documents = document_dataset(files=[str(path)], max_line_bytes=3)
    assert [d.numpy() for d in documents] == [b"ab\n"]


def test_the_log_says_what_was_converted_once_per_key(tmp_path, capsys):
    for name, content in (
        ("a.txt", windows("one\ntwo\n")),
        ("b.txt", "x\r\ny\n"),
        ("c.txt", "plain\n"),
    ):
        (tmp_path / name).write_bytes(content.encode("utf-8"))
    pattern = str(tmp_path / "*.txt")
    text_files.resolve_text_files(pattern, "data.train")
    text_files.resolve_text_files(pattern, "data.train")  # e.g. the tokenizer trainer
    assert capsys.readouterr().out.splitlines() == [
        "data.train: 3 file(s): stripped a byte-order mark from 1, converted 3 CRLF "
        'line end(s) to "\\n"'
    ]
    read_classification_file(
        str(tmp_path / "c.txt"),
        text_column=0,
        label_column=0,
        file_format="tsv",
        key="data.validation",
    )
    assert capsys.readouterr().out == ""  # nothing to convert, nothing said


def test_crlf_split_across_read_chunks_is_counted_once(tmp_path, monkeypatch):
    monkeypatch.setattr(line_ends, "_CHUNK_BYTES", 4)
    path = tmp_path / "corpus.txt"
    path.write_bytes(b"abc\r\nd\r\n\r")
    assert line_ends.count(str(path)) == (False, 2)


def test_documents_hold_no_cr_or_bom_token(tmp_path):
    # A vocabulary that has "\r" and U+FEFF pieces, to see that none is produced.
    train_sentencepiece(texts=["ab\r\ufeff\n"], model_type="char", output_dir=tmp_path)
    tokenizer = load_tokenizer(str(tmp_path))
    path = tmp_path / "corpus.txt"
    path.write_bytes(windows("ab\nba\n").encode("utf-8"))
    ids = tf.concat(list(token_stream(document_dataset(files=[str(path)]), tokenizer)), 0)
    unwanted = tokenizer.tokenize(tf.constant(["\r\ufeff"])).flat_values.numpy().tolist()
    assert len(unwanted) == 2 and not set(unwanted) & set(ids.numpy().tolist())
