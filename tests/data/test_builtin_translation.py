"""kzoo.data.builtin_translation: the toy language pair and its text-to-text tasks."""

import functools
import os
import re

import pytest

from kzoo.data import builtin_translation as bt

SENTENCE = re.compile(r"[a-z]+( [a-z]+)* \.")
DETERMINERS = ("the", "a", "some")
GENERATORS = {  # (num_examples, seed, split) -> examples.
    **{task: functools.partial(bt.text_to_text_examples, task) for task in bt.TEXT_TO_TEXT_TASKS},
    "translation_pairs": bt.translation_pairs,
}


@pytest.mark.parametrize(
    "source, target",
    [
        # Subject-object-verb; masculine "ko", feminine "sa" (definite, indefinite).
        ("the dog sees a cat .", "ko varo sa miska vide ."),
        # Adjectives follow the noun and agree with its gender: "-o" and "-a".
        ("a big dog sees the small cat .", "so varo grando ka miska pita vide ."),
        # Plural: noun suffix "ek", endings "-on"/"-an", verb ending "em".
        ("the big dogs see some small cats .", "kon varoek grandon san miskaek pitan videm ."),
        # The verb agrees with the subject, not the object.
        ("the cats like the dog .", "kan miskaek ko varo amem ."),
        ("a cat likes the dogs .", "sa miska kon varoek ame ."),
        # Places and adverbs come before the verb; prepositions become postpositions.
        (
            "the girl carries a red book in the old house .",
            "ka nika so knig rudo ko dimo staro inu porte .",
        ),
        ("some boys watch the horse quickly .", "son tomoek ko kaval rapi mirem ."),
        (
            "the old cows follow a teacher near some young kings .",
            "kan tumbaek staran sa lerina son rekoek junon apud segem .",
        ),
    ],
)
def test_translate_hand_checked(source, target):
    assert bt.translate(source) == target


@pytest.mark.parametrize(
    "source, message",
    [
        ("the unicorn sees a cat .", "unknown word 'unicorn'"),
        ("the dog sees a cat", "expected a final '.', got 'the end'"),
        ("the dog sees a cat today slowly .", "expected a final '.', got 'slowly .'"),
        ("a dogs see the cat .", "'a' cannot precede 'dogs'"),
        ("some dog sees the cat .", "'some' cannot precede 'dog'"),
        ("the dog see the cat .", "the verb 'see' must be singular like its subject"),
        ("the dog sees big cat .", "expected a determiner at word 4, got 'big'"),
        ("the dog  sees the cat .", "unknown word ''"),
    ],
)
def test_translate_rejects_sentences_outside_the_grammar(source, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        bt.translate(source)


@pytest.mark.parametrize("name", [*bt.TEXT_TO_TEXT_TASKS, "translation_pairs"])
@pytest.mark.parametrize("split", bt.SPLITS)
def test_generators_are_deterministic_and_honour_counts(name, split):
    generate = GENERATORS[name]
    examples = generate(20, 0, split)
    assert examples == generate(20, 0, split)
    assert examples != generate(20, 1, split)
    assert generate(7, 0, split) == examples[:7]  # A stream: more examples extend it.
    assert [len(generate(n, 0, split)) for n in (0, 1, 7)] == [0, 1, 7]
    with pytest.raises(ValueError, match="num_examples must be an integer >= 0, got -"):
        generate(-1, 0, split)


def test_translation_pairs_is_the_translate_task():
    pairs = bt.translation_pairs(50, seed=2, split="validation")
    assert pairs == bt.text_to_text_examples("translate", 50, 2, "validation")


def test_bad_task_and_split_are_errors():
    with pytest.raises(ValueError, match="task must be one of .* got 'sort'"):
        bt.text_to_text_examples("sort", 1)
    with pytest.raises(ValueError, match="split must be one of .* got 'test'"):
        bt.translation_pairs(1, split="test")


@pytest.mark.parametrize("task", bt.TEXT_TO_TEXT_TASKS)
def test_train_and_validation_sources_are_disjoint(task):
    validation = bt.text_to_text_examples(task, bt.HELD_OUT_VALIDATION, 1, "validation")
    train = bt.text_to_text_examples(task, 3000, 1, "train")
    assert not {s for s, _ in train} & {s for s, _ in validation}
    assert len({s for s, _ in train}) > 2900  # Duplicates are rare.


def test_translation_targets_follow_the_rules():
    pairs = bt.translation_pairs(2000, seed=0)
    sources = {source for source, _ in pairs}
    assert len({target for _, target in pairs}) == len(sources)  # One-to-one.
    for source, target in pairs:
        assert SENTENCE.fullmatch(source) and SENTENCE.fullmatch(target)
        assert bt.translate(source) == target
        assert 6 <= len(source.split()) == len(target.split()) <= 12
    source_words = {w for s, _ in pairs for w in s.split()}
    target_words = {w for _, t in pairs for w in t.split()}
    # 3 determiners, 15 nouns and 8 verbs in 2 forms, 8 adjectives, 4 adverbs,
    # 3 prepositions, "."; Toy has 8 articles and 4 forms per adjective instead.
    assert (len(source_words), len(target_words)) == (65, 94)
    assert source_words & target_words == {"."}


def test_plural_targets_pluralize_the_subject_and_its_verb():
    for source, target in bt.text_to_text_examples("plural", 500, seed=0):
        words, plural = source.split(), target.split()
        assert plural[0] == {"the": "the", "a": "some"}[words[0]]  # Singular subjects.
        changed = [i for i in range(1, len(words)) if words[i] != plural[i]]
        assert len(plural) == len(words) and len(changed) == 2
        noun, verb = changed  # [adjective] noun, then the verb.
        assert noun in (1, 2) and verb == noun + 1
        assert plural[noun] == words[noun] + "s"
        stem = plural[verb]
        assert words[verb] in (stem + "s", stem + "es", stem[:-1] + "ies")
        bt.translate(source)
        bt.translate(target)  # The verb agrees with the plural subject.


def test_subject_targets_are_the_subject_noun_phrase():
    for source, target in bt.text_to_text_examples("subject", 500, seed=0):
        assert source.startswith(target + " ")
        assert target.split()[0] in DETERMINERS and len(target.split()) in (2, 3)
        # A whole noun phrase: it can be the subject of another sentence.
        verb = "see" if target.endswith("s") else "sees"  # No singular noun ends in s.
        bt.translate(f"{target} {verb} the cat .")


def test_pretraining_texts():
    documents = bt.pretraining_texts(200, seed=1)
    assert documents == bt.pretraining_texts(200, seed=1)
    assert documents != bt.pretraining_texts(200, seed=0)
    assert bt.pretraining_texts(0) == []
    held_out = {
        source
        for task in bt.TEXT_TO_TEXT_TASKS
        for source, _ in bt.text_to_text_examples(task, bt.HELD_OUT_VALIDATION, 1, "validation")
    }
    for document in documents:
        sentences = document.split("\n")
        assert 3 <= len(sentences) <= 6
        for sentence in sentences:
            bt.translate(sentence)
            assert sentence not in held_out


def test_write_builtin_translation_round_trip(tmp_path):
    directory = str(tmp_path / "toy")
    train_path, valid_path = bt.write_builtin_translation(directory, 30, 12, seed=4)
    assert (os.path.basename(train_path), os.path.basename(valid_path)) == (
        "train.tsv",
        "valid.tsv",
    )
    files = ((train_path, 30, "train"), (valid_path, 12, "validation"))
    for path, count, split in files:
        with open(path, encoding="utf-8") as file:
            lines = file.read().split("\n")
        assert lines[0] == "source\ttarget" and lines[-1] == ""
        rows = [tuple(line.split("\t")) for line in lines[1:-1]]
        assert len(rows) == count and all(len(row) == 2 for row in rows)
        assert rows == bt.translation_pairs(count, seed=4, split=split)
    with pytest.raises(FileExistsError, match="train.tsv' exists"):
        bt.write_builtin_translation(directory, 30, 12, seed=4)
    with pytest.raises(ValueError, match="num_validation must be an integer >= 1, got"):
        bt.write_builtin_translation(str(tmp_path / "other"), 3, 0)
