"""kzoo.data.text_files: resolving, validating and splitting the user's corpus."""

import os
import re

import pytest

from kzoo.data import text_files


@pytest.fixture
def corpus_dir(tmp_path):
    (tmp_path / "b.txt").write_text("second\n")
    (tmp_path / "a.txt").write_text("first\n")
    (tmp_path / "notes.md").write_text("# notes\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.txt").write_text("third\n")
    return tmp_path


def names(paths, root):
    return [os.path.relpath(p, root) for p in paths]


def test_resolve_sorts_and_deduplicates(corpus_dir):
    files = text_files.resolve_files(
        [str(corpus_dir / "*.txt"), str(corpus_dir / "a.txt"), str(corpus_dir / "**" / "*.txt")],
        "data.train",
    )
    assert names(files, corpus_dir) == ["a.txt", "b.txt", os.path.join("sub", "c.txt")]
    assert all(os.path.isabs(f) for f in files)
    single = text_files.resolve_files(str(corpus_dir / "notes.md"), "data.train")
    assert names(single, corpus_dir) == ["notes.md"]


def test_missing_file_names_key_and_pattern(corpus_dir):
    missing = str(corpus_dir / "nope.txt")
    with pytest.raises(FileNotFoundError) as error:
        text_files.resolve_files([str(corpus_dir / "a.txt"), missing], "data.validation")
    assert str(error.value) == f"data.validation: file {missing!r} does not exist"


def test_glob_without_match_names_key_and_pattern(corpus_dir):
    pattern = str(corpus_dir / "*.csv")
    with pytest.raises(FileNotFoundError) as error:
        text_files.resolve_files(pattern, "data.train")
    assert str(error.value) == f"data.train: no files match {pattern!r}"


def test_directory_and_empty_list_are_rejected(corpus_dir):
    with pytest.raises(ValueError, match=r"data\.train: .* is a directory; use a glob"):
        text_files.resolve_files(str(corpus_dir), "data.train")
    with pytest.raises(ValueError, match=r"data\.train: no files given"):
        text_files.resolve_files([], "data.train")


def test_empty_corpus_names_the_patterns(tmp_path):
    (tmp_path / "a.txt").write_text("")
    (tmp_path / "b.txt").write_text("")
    pattern = str(tmp_path / "*.txt")
    with pytest.raises(ValueError) as error:
        text_files.resolve_text_files(pattern, "data.train")
    message = str(error.value)
    assert message.startswith("data.train: empty corpus")
    assert repr(pattern) in message and "2 file(s)" in message


def test_one_empty_file_among_others_is_fine(tmp_path):
    (tmp_path / "a.txt").write_text("")
    (tmp_path / "b.txt").write_text("text")
    files = text_files.resolve_text_files(str(tmp_path / "*.txt"), "data.train")
    assert names(files, tmp_path) == ["a.txt", "b.txt"]


def test_invalid_utf8_names_file_line_and_offset(tmp_path):
    path = tmp_path / "bad.txt"
    prefix = "fine\nstill fine ✓\nbad ".encode()
    path.write_bytes(prefix + b"\xff here\n")
    offset = len(prefix)
    expected = f"{path}:3: invalid UTF-8 at byte offset {offset} (0xff)"
    with pytest.raises(ValueError, match="^" + re.escape(expected)) as error:
        text_files.resolve_text_files(str(path), "data.train")
    assert "invalid start byte" in str(error.value)
    with pytest.raises(ValueError, match="^" + re.escape(expected)):
        list(text_files.read_lines(str(path)))


def test_validation_streams_across_chunk_boundaries(tmp_path, monkeypatch):
    # Tiny chunks: multi-byte characters and the bad byte straddle chunk borders.
    monkeypatch.setattr(text_files, "_CHUNK_BYTES", 3)
    good = "é✓😀\n" * 20 + "ab"
    path = tmp_path / "good.txt"
    path.write_text(good, encoding="utf-8")
    assert text_files.check_utf8(str(path)) == len(good.encode("utf-8"))
    data = good.encode("utf-8") + b"\n\xe2\x9c"  # Truncated 3-byte character at the end.
    path.write_bytes(data)
    with pytest.raises(ValueError, match=rf":22: invalid UTF-8 at byte offset {len(data) - 2} "):
        text_files.check_utf8(str(path))


def test_read_lines_keeps_line_endings_as_newlines(tmp_path):
    path = tmp_path / "lines.txt"
    path.write_bytes("a\r\n\nb\rc\nlast ✓".encode())
    assert list(text_files.read_lines(str(path))) == ["a\n", "\n", "b\rc\n", "last ✓"]


def test_split_text_at_character_position():
    text = "".join(chr(ord("a") + i % 26) for i in range(1000))
    train, validation = text_files.split_text(text, 0.1)
    assert (len(train), len(validation)) == (900, 100)
    assert train + validation == text
    # Characters, not bytes: a multi-byte text splits at the same position.
    train, validation = text_files.split_text("é" * 10, 0.3)
    assert (train, validation) == ("é" * 7, "é" * 3)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.1, 1.5])
def test_split_text_rejects_bad_fractions(fraction):
    with pytest.raises(ValueError, match=r"data\.validation_fraction: .*between 0 and 1"):
        text_files.split_text("abc", fraction)


def test_split_text_file(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_bytes(b"line one\r\nline two\n")
    train, validation = text_files.split_text_file(str(path), 0.25)
    assert train + validation == "line one\nline two\n"  # "\r\n" read as "\n"
    assert len(validation) == 18 - int(18 * 0.75)
