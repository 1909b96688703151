"""kzoo.metrics.task_metrics: entity F1, macro F1 and SQuAD scores on hand-computed cases."""

import pytest

from kzoo.metrics.task_metrics import (
    entity_f1,
    entity_spans,
    macro_f1,
    normalize_answer,
    squad_exact_match_and_f1,
)


@pytest.mark.parametrize(
    "tags, spans",
    [
        ([], set()),
        (["O", "O"], set()),
        (["B-PER", "I-PER", "O"], {("PER", 0, 2)}),
        (["B-PER", "B-PER"], {("PER", 0, 1), ("PER", 1, 2)}),
        # An I- without a B- of its type starts an entity (conlleval, seqeval default).
        (["I-PER", "I-PER"], {("PER", 0, 2)}),
        (["O", "I-LOC", "B-LOC"], {("LOC", 1, 2), ("LOC", 2, 3)}),
        (["B-PER", "I-LOC", "I-LOC"], {("PER", 0, 1), ("LOC", 1, 3)}),
        (["B-ORG", "I-ORG", "I-ORG"], {("ORG", 0, 3)}),
    ],
)
def test_entity_spans_decode_lenient_iob2(tags, spans):
    assert entity_spans(tags) == spans


@pytest.mark.parametrize("tag", ["X-PER", "B-", "PER", "E-PER", ""])
def test_entity_spans_rejects_other_tags(tag):
    with pytest.raises(ValueError, match="is not 'O', 'B-TYPE' or 'I-TYPE'"):
        entity_spans(["O", tag])


def test_entity_f1_matches_seqeval_documented_example():
    true = [["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    pred = [["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER", "O"]]
    assert entity_f1(true, pred) == {"precision": 0.5, "recall": 0.5, "f1": 0.5}


def test_entity_f1_precision_and_recall_differ():
    # 3 true entities, 2 predicted, 1 right (type, start and end must all match).
    true = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["O"]]
    scores = entity_f1(true, pred)
    assert scores["precision"] == pytest.approx(1 / 2)
    assert scores["recall"] == pytest.approx(1 / 3)
    assert scores["f1"] == pytest.approx(2 * (1 / 2) * (1 / 3) / (1 / 2 + 1 / 3))
    assert entity_f1([["O"]], [["O"]]) == {"precision": 0.0, "recall": 0.0, "f1": 0.0}
    assert entity_f1([["B-PER"]], [["B-PER"]])["f1"] == 1.0


def test_entity_f1_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="2 true sentences but 1 predicted"):
        entity_f1([["O"], ["O"]], [["O"]])
    with pytest.raises(ValueError, match="sentence 1 has 2 true tags but 1 predicted"):
        entity_f1([["O"], ["O", "O"]], [["O"], ["O"]])


def test_macro_f1_matches_hand_computed_and_sklearn_values():
    # scikit-learn's f1_score documentation example: macro F1 = 0.26666...
    assert macro_f1([0, 1, 2, 0, 1, 2], [0, 2, 1, 0, 0, 1], 3) == pytest.approx(4 / 15)
    # Per class: 0 -> 2/3, 1 -> 4/5, 2 -> 1.
    assert macro_f1([0, 0, 1, 1, 2], [0, 1, 1, 1, 2], 3) == pytest.approx(37 / 45)
    # A class absent from both truth and predictions does not count.
    assert macro_f1([0, 1], [0, 1], num_classes=5) == 1.0
    assert macro_f1([], [], 2) == 0.0


def test_macro_f1_rejects_bad_inputs():
    with pytest.raises(ValueError, match=r"pred_ids must be in \[0, 2\)"):
        macro_f1([0, 1], [0, 2], 2)
    with pytest.raises(ValueError, match="2 true ids but 1 predicted"):
        macro_f1([0, 1], [0], 2)


@pytest.mark.parametrize(
    "text, normalized",
    [
        ("The Broncos", "broncos"),
        ("  an apple,  a pear!  ", "apple pear"),
        ("Theater", "theater"),  # Articles only as whole words.
        ("Denver's (1998)", "denvers 1998"),
    ],
)
def test_normalize_answer_follows_squad_v1_1(text, normalized):
    assert normalize_answer(text) == normalized


def test_squad_exact_match_and_f1():
    assert squad_exact_match_and_f1("Denver Broncos", ["Denver Broncos"]) == (1.0, 1.0)
    assert squad_exact_match_and_f1("the denver broncos.", ["Denver Broncos"]) == (1.0, 1.0)
    # 2 common tokens: precision 2/3, recall 1 -> F1 0.8.
    assert squad_exact_match_and_f1("Denver Broncos won", ["Denver Broncos"]) == (0.0, 0.8)
    # The maximum over ground truths, each metric on its own.
    exact, f1 = squad_exact_match_and_f1("Broncos", ["Denver Broncos", "Carolina"])
    assert (exact, f1) == (0.0, pytest.approx(2 / 3))
    assert squad_exact_match_and_f1("Broncos", ["the Broncos", "Denver"]) == (1.0, 1.0)
    assert squad_exact_match_and_f1("Carolina", ["Denver Broncos"]) == (0.0, 0.0)
    # As in the official script, two answers normalizing to "" match exactly, F1 0.
    assert squad_exact_match_and_f1("the", ["a"]) == (1.0, 0.0)
    with pytest.raises(ValueError, match="non-empty list"):
        squad_exact_match_and_f1("x", "x")
