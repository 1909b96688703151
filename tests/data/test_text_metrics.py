"""kzoo.metrics.text_metrics: BLEU, ROUGE and exact match on hand-computed cases."""

import math

import pytest
import sacrebleu

from kzoo.metrics.text_metrics import bleu, exact_match, generation_metrics, rouge

TEXTS = ["the quick brown fox jumps over the lazy dog", "It was not unexpected."]
# sacreBLEU's README example, with its first reference stream only.
SACREBLEU_PREDICTIONS = [
    "The dog bit the man.",
    "It wasn't surprising.",
    "The man had just bitten him.",
]
SACREBLEU_REFERENCES = ["The dog bit the guy.", "It was not unexpected.", "The man bit him first."]


def test_identical_texts_score_perfectly():
    scores = generation_metrics(TEXTS, list(TEXTS))
    assert scores == {
        "bleu": pytest.approx(100.0),
        "rouge1": 1.0,
        "rouge2": 1.0,
        "rougeL": 1.0,
        "exact_match": 1.0,
    }
    assert all(type(value) is float for value in scores.values())


def test_bleu_by_hand():
    # 6 tokens each, so no brevity penalty. Matched n-grams: 5/6 unigrams,
    # 3/5 bigrams, 2/4 trigrams, 1/3 4-grams; BLEU is their geometric mean.
    score = bleu(["the cat sat on the mat"], ["the cat sat on a mat"])
    assert score == pytest.approx(100 * (5 / 6 * 3 / 5 * 2 / 4 * 1 / 3) ** 0.25)
    # Every n-gram matches, but 4 of 6 tokens: the brevity penalty is exp(1 - 6/4).
    score = bleu(["the cat sat on"], ["the cat sat on the mat"])
    assert score == pytest.approx(100 * math.exp(1 - 6 / 4))
    # Under 4 tokens there is no 4-gram to match at all.
    assert bleu(["the cat sat"], ["the cat sat"]) == 0.0


def test_bleu_is_corpus_bleu_from_sacrebleu():
    expected = sacrebleu.corpus_bleu(SACREBLEU_PREDICTIONS, [SACREBLEU_REFERENCES])
    score = bleu(SACREBLEU_PREDICTIONS, SACREBLEU_REFERENCES)
    assert score == pytest.approx(expected.score)
    assert round(score, 2) == 25.46  # 64.7/28.6/18.2/12.5 with BP = 1.000
    # Corpus-level: counts are summed, not sentence scores averaged.
    sentence_mean = sum(
        sacrebleu.sentence_bleu(p, [r]).score
        for p, r in zip(SACREBLEU_PREDICTIONS, SACREBLEU_REFERENCES)
    ) / len(SACREBLEU_PREDICTIONS)
    assert score != pytest.approx(sentence_mean)


def test_rouge_by_hand():
    # 1: 5 of 6 unigrams shared (the x2, cat, on, mat), 3 of 5 bigrams, LCS 5.
    # 2: nothing shared.  3: precision 1 and recall 2/3 -> F1 0.8 for unigrams and
    # the LCS; 1 of 1 predicted and 1 of 2 reference bigrams -> F1 2/3.
    scores = rouge(
        ["the cat sat on the mat", "a b", "the cat"],
        ["The cat is on the mat.", "c d", "the cat sat"],
    )
    assert scores == pytest.approx(
        {
            "rouge1": (5 / 6 + 0 + 0.8) / 3,
            "rouge2": (3 / 5 + 0 + 2 / 3) / 3,
            "rougeL": (5 / 6 + 0 + 0.8) / 3,
        }
    )


def test_rouge_drops_punctuation_and_case():
    assert rouge(["Hello, World!"], ["hello world"]) == pytest.approx(
        {"rouge1": 1.0, "rouge2": 1.0, "rougeL": 1.0}
    )
    assert rouge([""], ["hello"]) == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}


def test_exact_match_ignores_surrounding_whitespace_only():
    assert exact_match(["  Paris\n", "\tRome "], ["Paris", "Rome"]) == 1.0
    assert exact_match(["New  York", "paris"], ["New York", "Paris"]) == 0.0
    assert exact_match(["a", "b", "c", " "], ["a", "x", "c", ""]) == 0.75


@pytest.mark.parametrize("metric", [bleu, rouge, exact_match, generation_metrics])
def test_errors(metric):
    name = metric.__name__
    with pytest.raises(ValueError, match=f"{name}: 2 predictions but 1 references"):
        metric(["a", "b"], ["a"])
    with pytest.raises(ValueError, match=f"{name}: no predictions to score"):
        metric([], [])
    with pytest.raises(ValueError, match="must be lists of strings, got str and list"):
        metric("a", ["a"])
    with pytest.raises(ValueError, match="must hold str, got bytes b'a'"):
        metric([b"a"], ["a"])


def test_accepts_any_iterable():
    assert exact_match(iter(["a", "b"]), ("a", "c")) == 0.5
