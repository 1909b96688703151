import math
import os
import re
import subprocess
import sys

import numpy as np
import pytest

from kzoo.data.builtin_corpus import ALPHABET, END_OF_DOCUMENT, BuiltinCorpus, default_corpus


@pytest.fixture(scope="module")
def corpus():
    return default_corpus()


def test_default_corpus_is_seed_zero(corpus):
    assert corpus.seed == 0
    assert corpus.vocabulary == BuiltinCorpus(seed=0).vocabulary


def test_transition_matrix_is_stochastic_sparse_and_grammatical(corpus):
    matrix = corpus.transition_matrix
    symbols = corpus.symbols
    assert matrix.shape == (len(symbols), len(symbols))
    assert (matrix >= 0).all()
    np.testing.assert_allclose(matrix.sum(axis=1), 1.0, atol=1e-12)
    fan_out = (matrix[: len(corpus.vocabulary)] > 0).sum(axis=1)
    assert fan_out.min() >= 3 and fan_out.max() <= 10
    end, period = symbols.index(END_OF_DOCUMENT), symbols.index(".")
    # Only "." may end a document, and a document never starts with punctuation.
    assert np.flatnonzero(matrix[:, end]).tolist() == [period]
    for mark in (",", ".", END_OF_DOCUMENT):
        assert matrix[end, symbols.index(mark)] == 0


def test_stationary_distribution_is_invariant(corpus):
    pi = corpus.stationary_distribution
    assert (pi > 0).all()
    assert pi.sum() == pytest.approx(1.0, abs=1e-12)
    np.testing.assert_allclose(pi @ corpus.transition_matrix, pi, atol=1e-12)


def test_chain_is_irreducible_and_aperiodic(corpus):
    # A primitive matrix has a power with every entry positive.
    reach = corpus.transition_matrix > 0
    for _ in range(7):  # reach now covers paths of exactly 128 steps.
        reach = (reach.astype(np.int64) @ reach.astype(np.int64)) > 0
    assert reach.all()


def test_entropy_rate_matches_monte_carlo(corpus):
    path = corpus.sample_path(200_000, seed=1)
    matrix = corpus.transition_matrix
    estimate = -np.log(matrix[path[:-1], path[1:]]).mean()
    assert estimate == pytest.approx(corpus.entropy_rate("nats"), rel=0.02)
    bits = corpus.entropy_rate("bits")
    assert bits == pytest.approx(corpus.entropy_rate("nats") / math.log(2), rel=1e-12)


def test_monte_carlo_visit_frequencies_match_stationary_distribution(corpus):
    path = corpus.sample_path(200_000, seed=2)
    frequencies = np.bincount(path, minlength=len(corpus.symbols)) / len(path)
    pi = corpus.stationary_distribution
    top = np.argsort(pi)[-20:]
    np.testing.assert_allclose(frequencies[top], pi[top], rtol=0.1)


def test_default_corpus_size_and_entropy_are_in_the_design_range(corpus):
    assert 150 <= len(corpus.vocabulary) <= 300
    assert 1.5 <= corpus.entropy_rate("nats") <= 2.5
    assert 50 <= corpus.mean_document_symbols <= 200
    documents = corpus.documents(300, seed=3)
    mean_symbols = corpus.num_symbols(documents) / len(documents)
    assert mean_symbols == pytest.approx(corpus.mean_document_symbols, rel=0.2)


def test_documents_are_deterministic(corpus):
    first = corpus.documents(5, seed=7)
    assert first == BuiltinCorpus(seed=0).documents(5, seed=7)
    assert first != corpus.documents(5, seed=8)
    assert corpus.documents(3, seed=7) == first[:3]
    assert corpus.documents(0) == []
    other = BuiltinCorpus(seed=1)
    assert other.vocabulary != corpus.vocabulary
    assert not np.allclose(other.transition_matrix, corpus.transition_matrix)


def test_documents_are_one_chain_path(corpus):
    documents = corpus.documents(10, seed=4)
    total = corpus.num_symbols(documents)
    path = corpus.sample_path(total, seed=4)
    end = corpus.symbols.index(END_OF_DOCUMENT)
    assert np.flatnonzero(path == end).size == 10 and path[-1] == end
    symbols = [corpus.symbols[i] for i in path if i != end]
    assert symbols == [s for text in documents for s in corpus.parse(text)]


def test_parse_inverts_render(corpus):
    for text in corpus.documents(50, seed=5):
        symbols = corpus.parse(text)
        assert corpus.render(symbols) == text
        assert symbols[-1] == "." and END_OF_DOCUMENT not in symbols
    assert corpus.render(["ta", "molan", ",", "ki", "."]) == "ta molan, ki."


def test_num_symbols_counts_one_end_per_document(corpus):
    documents = corpus.documents(20, seed=6)
    expected = sum(len(corpus.parse(text)) + 1 for text in documents)
    assert corpus.num_symbols(documents) == expected
    assert corpus.num_symbols([]) == 0


def test_num_symbols_rejects_foreign_text(corpus):
    word = corpus.vocabulary[0]
    with pytest.raises(ValueError, match="'hello'"):
        corpus.num_symbols([f"{word} hello."])
    with pytest.raises(ValueError, match="''"):  # A double space is not a rendering.
        corpus.num_symbols([f"{word}  {word}."])
    with pytest.raises(ValueError, match=re.escape(f"'{word}.,'")):
        corpus.num_symbols([f"{word}.,"])
    with pytest.raises(ValueError, match=f"cannot follow '{word}'"):
        corpus.num_symbols([f"{word} {word}."])  # Determiners never follow determiners.
    with pytest.raises(TypeError, match="list of strings"):
        corpus.num_symbols(corpus.documents(1)[0])


def test_num_symbols_rejects_text_of_another_grammar(corpus):
    other = BuiltinCorpus(seed=1)
    with pytest.raises(ValueError, match="BuiltinCorpus\\(seed=0\\)"):
        corpus.num_symbols(other.documents(5))


def test_text_uses_only_the_documented_alphabet(corpus):
    documents = corpus.documents(100, seed=9)
    assert set("".join(documents)) <= ALPHABET
    assert ALPHABET == set("abcdefghijklmnopqrstuvwxyz ,.")
    for text in documents:
        assert text == text.strip() and "  " not in text and text.endswith(".")


def test_entropy_rate_rejects_unknown_unit(corpus):
    with pytest.raises(ValueError, match="'furlongs'"):
        corpus.entropy_rate("furlongs")


def test_write_creates_one_file_per_document(corpus, tmp_path):
    result = corpus.write(tmp_path / "corpus", num_train=12, num_validation=3, seed=2)
    train = sorted((tmp_path / "corpus" / "train").glob("*.txt"))
    validation = sorted((tmp_path / "corpus" / "validation").glob("*.txt"))
    assert [p.name for p in train][:2] == ["doc_00000.txt", "doc_00001.txt"]
    assert len(train) == 12 and len(validation) == 3
    expected = corpus.documents(15, seed=2)
    assert [p.read_text() for p in train + validation] == expected
    assert result["train"] == os.path.join(tmp_path / "corpus" / "train", "*.txt")
    assert result["validation"] == os.path.join(tmp_path / "corpus" / "validation", "*.txt")
    assert result["train_symbols"] == corpus.num_symbols(expected[:12])
    assert result["validation_symbols"] == corpus.num_symbols(expected[12:])
    assert result["entropy_rate_nats"] == corpus.entropy_rate("nats")
    assert sorted(os.listdir(tmp_path / "corpus")) == ["train", "validation"]


def test_write_refuses_to_overwrite(corpus, tmp_path):
    (tmp_path / "validation").mkdir()
    (tmp_path / "validation" / "keep.txt").write_text("precious")
    with pytest.raises(FileExistsError, match="validation"):
        corpus.write(tmp_path, num_train=2, num_validation=2)
    assert sorted(os.listdir(tmp_path)) == ["validation"]  # Nothing written, no temp dir.
    assert (tmp_path / "validation" / "keep.txt").read_text() == "precious"


def test_write_fills_empty_target_directories(corpus, tmp_path):
    (tmp_path / "train").mkdir()
    corpus.write(tmp_path, num_train=2, num_validation=1)
    assert len(os.listdir(tmp_path / "train")) == 2
    assert sorted(os.listdir(tmp_path)) == ["train", "validation"]
    with pytest.raises(ValueError, match="num_validation"):
        corpus.write(tmp_path / "other", num_train=2, num_validation=0)


def test_import_does_not_load_tensorflow():
    code = (
        "import sys, kzoo.data.builtin_corpus\n"
        "assert 'tensorflow' not in sys.modules, 'tensorflow was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert result.returncode == 0, result.stderr.decode()[-2000:]
