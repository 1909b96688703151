"""kzoo.data.builtin_tasks: generated labelled tasks, in the readers' formats."""

import collections
import os

import numpy as np
import pytest

from kzoo.data import builtin_tasks, labelled_files
from kzoo.data.builtin_corpus import default_corpus
from kzoo.metrics.task_metrics import entity_spans

GENERATORS = {
    "classification": builtin_tasks.classification_examples,
    "pair_classification": builtin_tasks.pair_classification_examples,
    "tagging": builtin_tasks.tagging_examples,
    "qa": builtin_tasks.qa_examples,
}


@pytest.fixture(scope="module")
def corpus():
    return default_corpus()


def zero_transitions(corpus, symbols):
    """The transitions of `[".", *symbols]` with probability 0 in the chain."""
    index = {symbol: i for i, symbol in enumerate(corpus.symbols)}
    matrix = corpus.transition_matrix
    ids = [index[s] for s in [".", *symbols]]
    return [(a, b) for a, b in zip(ids, ids[1:]) if matrix[a, b] == 0]


@pytest.mark.parametrize("task", sorted(GENERATORS))
def test_generators_are_deterministic_and_honour_counts(task):
    generate = GENERATORS[task]
    assert generate(7, seed=3) == generate(7, seed=3)
    assert generate(7, seed=3) != generate(7, seed=4)
    assert [len(generate(n, seed=0)) for n in (0, 1, 7)] == [0, 1, 7]
    with pytest.raises(ValueError, match="num_examples must be an integer >= 0, got -1"):
        generate(-1, seed=0)


def test_pretraining_documents(corpus):
    documents = builtin_tasks.pretraining_documents(300, seed=5)
    assert len(documents) == 300
    assert documents == builtin_tasks.pretraining_documents(300, seed=5)
    assert documents != builtin_tasks.pretraining_documents(300, seed=6)
    assert builtin_tasks.pretraining_documents(0, seed=5) == []
    assert all(len(document) >= 2 for document in documents)
    assert all(s.endswith(".") and ". " not in s for d in documents for s in d)
    # Whole documents of the chain path, in order, only the one-sentence ones left out.
    texts = [text for text in corpus.documents(400, seed=5) if ". " in text]
    assert [" ".join(document) for document in documents] == texts[:300]


def test_classification_is_balanced_and_bad_sentences_are_ungrammatical(corpus):
    examples = builtin_tasks.classification_examples(401, seed=1)
    labels = collections.Counter(e["label"] for e in examples)
    assert labels == {"good": 201, "bad": 200}
    assert [e["line"] for e in examples] == list(range(2, 403))
    assert all(e["text_pair"] is None for e in examples)
    for example in examples:
        symbols = corpus.parse(example["text"])  # Only corpus words.
        assert symbols[-1] == "." and len(symbols) <= 32
        zeros = zero_transitions(corpus, symbols)
        positions = builtin_tasks.ungrammatical_positions(symbols)
        if example["label"] == "good":
            assert not zeros and not positions
        else:
            assert zeros and positions
    good = {e["text"] for e in examples if e["label"] == "good"}
    assert not good & {e["text"] for e in examples if e["label"] == "bad"}


def test_corruption_swaps_or_replaces_words(corpus):
    rng = np.random.default_rng(0)
    symbols = corpus.parse("zo kufe mosan to fuzi.")
    kinds = collections.Counter()
    for _ in range(50):
        corrupted = builtin_tasks._corrupt(symbols, rng)
        assert len(corrupted) == len(symbols) and corrupted[-1] == "."
        assert builtin_tasks.ungrammatical_positions(corrupted)
        same_words = sorted(corrupted) == sorted(symbols)
        kinds["swap" if same_words else "replace"] += 1
    assert kinds["swap"] > 5 and kinds["replace"] > 5


def test_pair_classification_next_pairs_follow_each_other(monkeypatch):
    seen = []
    original = builtin_tasks.pretraining_documents

    def recording(num_documents, seed):
        seen.extend(original(num_documents, seed))
        return seen

    monkeypatch.setattr(builtin_tasks, "pretraining_documents", recording)
    examples = builtin_tasks.pair_classification_examples(200, seed=2)
    assert collections.Counter(e["label"] for e in examples) == {"next": 100, "random": 100}
    assert len(seen) == 201
    for number, example in enumerate(examples):
        sentences = seen[number]  # Example n takes text from document n.
        followers = {b for a, b in zip(sentences, sentences[1:]) if a == example["text"]}
        assert followers
        if example["label"] == "next":
            assert example["text_pair"] in followers
        else:
            assert example["text_pair"] not in followers
            assert any(example["text_pair"] in other for i, other in enumerate(seen) if i != number)


def test_tagging_chunks_noun_phrases_and_verbs(corpus):
    examples = builtin_tasks.tagging_examples(300, seed=4)
    line = 1
    for example in examples:
        assert example["line"] == line
        line += len(example["tokens"]) + 1
        tokens, tags = example["tokens"], example["tags"]
        assert len(tokens) == len(tags) <= 32
        categories = [corpus.category_of(t) for t in tokens]
        noun_phrases, verbs, start = set(), set(), None
        for i, category in enumerate(categories):
            if category == "adjective" and start is None:
                start = i
            if category == "noun":
                noun_phrases.add(("NP", i if start is None else start, i + 1))
                start = None
            if category == "verb":
                verbs.add(("VP", i, i + 1))
        assert entity_spans(tags) == noun_phrases | verbs
        for previous, tag in zip(["O", *tags], tags):  # BIO: I- only continues.
            if tag.startswith("I-"):
                assert previous[2:] == tag[2:]
    assert labelled_files.tag_vocabulary(examples) == ["O", "B-NP", "B-VP", "I-NP", "I-VP"]


def test_qa_answers_are_unique_and_at_answer_start():
    examples = builtin_tasks.qa_examples(300, seed=6)
    assert len({e["id"] for e in examples}) == 300
    assert [e["line"] for e in examples] == list(range(1, 301))
    for example in examples:
        context, (answer,) = example["context"], example["answers"]
        start = answer["answer_start"]
        assert context[start : start + len(answer["text"])] == answer["text"]
        facts = [fact.split() for fact in context[:-1].split(". ")]
        assert 3 <= len(facts) <= 6
        pairs = [tuple(fact[:2]) for fact in facts]
        assert len(set(pairs)) == len(pairs)  # One fact per (subject, verb).
        _, _, subject, verb = example["question"][:-1].split()
        assert example["question"] == f"what does {subject} {verb}?"
        (fact,) = [fact for fact in facts if fact[:2] == [subject, verb]]
        assert fact[2] == answer["text"]
        assert context.count(f" {answer['text']}.") == 1


READERS = {
    "classification": lambda path: labelled_files.read_classification_file(
        path, text_column="text", label_column="label"
    ),
    "pair_classification": lambda path: labelled_files.read_classification_file(
        path, text_column="text", text_pair_column="text_pair", label_column="label"
    ),
    "tagging": labelled_files.read_conll_file,
    "qa": labelled_files.read_squad_file,
}


@pytest.mark.parametrize("task", sorted(GENERATORS))
def test_written_files_read_back_as_generated(tmp_path, task):
    paths = builtin_tasks.write_builtin_task(tmp_path / "task", task, 9, 4, seed=8)
    extension = {"tagging": ".conll", "qa": ".jsonl"}.get(task, ".tsv")
    assert paths == {
        "train": str(tmp_path / "task" / f"train{extension}"),
        "validation": str(tmp_path / "task" / f"validation{extension}"),
    }
    assert sorted(os.listdir(tmp_path / "task")) == sorted(
        os.path.basename(p) for p in paths.values()
    )
    train = READERS[task](paths["train"])
    validation = READERS[task](paths["validation"])
    assert train == GENERATORS[task](9, seed=8)
    assert len(validation) == 4 and validation != train[:4]
    with pytest.raises(FileExistsError, match="exists; remove it"):
        builtin_tasks.write_builtin_task(tmp_path / "task", task, 9, 4, seed=8)


def test_write_builtin_task_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="task must be one of"):
        builtin_tasks.write_builtin_task(tmp_path, "ner", 2, 2)
    with pytest.raises(ValueError, match="num_validation must be an integer >= 1, got 0"):
        builtin_tasks.write_builtin_task(tmp_path, "qa", 2, 0)
    assert os.listdir(tmp_path) == []
