"""Evaluation metrics of generated text: corpus BLEU, ROUGE F1 and exact match.

The scores come from the reference libraries, not from code of our own, so they
are the numbers papers report: sacreBLEU (`sacrebleu.metrics.BLEU`, default 13a
tokenization, exponential smoothing) and Google's `rouge_score` package (the one
T5 evaluates with).

Every metric takes `predictions`, the generated texts (a list of `str`), and
`references`, one reference text per prediction, and raises a `ValueError` when
the lists are empty, differ in length or hold anything but `str`.
"""

from rouge_score import rouge_scorer
from sacrebleu.metrics import BLEU

ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")


def bleu(predictions, references):
    """Corpus BLEU of the predictions, as sacreBLEU computes it.

    N-gram matches are summed over the whole corpus before the precisions and the
    brevity penalty are taken, so this is not the mean of sentence BLEU scores. A
    corpus with no 4-gram at all (every prediction under 4 tokens) scores 0.

    Returns:
        A `float` in [0, 100].

    Example:
    >>> round(bleu(["the cat sat on the mat"], ["the cat sat on a mat"]), 2)
    53.73
    """
    predictions, references = _checked("bleu", predictions, references)
    return float(BLEU(force=True).corpus_score(predictions, [references]).score)


def rouge(predictions, references):
    """ROUGE-1, ROUGE-2 and ROUGE-L F-measures, averaged over the examples.

    `rouge_score` lowercases and keeps only runs of letters and digits as tokens
    (punctuation is dropped); no stemming. ROUGE-L is the sentence-level
    longest common subsequence.

    Returns:
        `{"rouge1": float, "rouge2": float, "rougeL": float}`, each in [0, 1].

    Example:
    >>> scores = rouge(["the cat sat on the mat"], ["The cat is on the mat."])
    >>> {name: round(value, 4) for name, value in scores.items()}
    {'rouge1': 0.8333, 'rouge2': 0.6, 'rougeL': 0.8333}
    """
    predictions, references = _checked("rouge", predictions, references)
    scorer = rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=False)
    totals = dict.fromkeys(ROUGE_TYPES, 0.0)
    for prediction, reference in zip(predictions, references):
        scores = scorer.score(reference, prediction)  # (target, prediction)
        for name in ROUGE_TYPES:
            totals[name] += scores[name].fmeasure
    return {name: float(total / len(predictions)) for name, total in totals.items()}


def exact_match(predictions, references):
    """The share of predictions equal to their reference, surrounding spaces aside.

    Returns:
        A `float` in [0, 1].

    Example:
    >>> exact_match([" Paris\\n", "paris", "Rome"], ["Paris", "Paris", "Rome"])
    0.6666666666666666
    """
    predictions, references = _checked("exact_match", predictions, references)
    matches = sum(
        prediction.strip() == reference.strip()
        for prediction, reference in zip(predictions, references)
    )
    return matches / len(predictions)


def generation_metrics(predictions, references):
    """All the metrics of this module in one dict, for evaluation logs.

    Returns:
        `{"bleu", "rouge1", "rouge2", "rougeL", "exact_match"}` to `float`; BLEU
        is in [0, 100], the others in [0, 1].

    Example:
    >>> scores = generation_metrics(["the cat sat on a rug"], ["the cat sat on a mat"])
    >>> {name: round(value, 2) for name, value in scores.items()}
    {'bleu': 75.98, 'rouge1': 0.83, 'rouge2': 0.8, 'rougeL': 0.83, 'exact_match': 0.0}
    """
    predictions, references = _checked("generation_metrics", predictions, references)
    return {
        "bleu": bleu(predictions, references),
        **rouge(predictions, references),
        "exact_match": exact_match(predictions, references),
    }


def _checked(name, predictions, references):
    """Returns both as lists, after checking that they pair up strings."""
    if isinstance(predictions, (str, bytes)) or isinstance(references, (str, bytes)):
        raise ValueError(
            f"{name}: predictions and references must be lists of strings, got "
            f"{type(predictions).__name__} and {type(references).__name__}"
        )
    predictions, references = list(predictions), list(references)
    if len(predictions) != len(references):
        raise ValueError(
            f"{name}: {len(predictions)} predictions but {len(references)} "
            "references; give one reference per prediction"
        )
    if not predictions:
        raise ValueError(f"{name}: no predictions to score")
    for text in predictions + references:
        if not isinstance(text, str):
            raise ValueError(
                f"{name}: predictions and references must hold str, got "
                f"{type(text).__name__} {text!r:.60} (decode bytes first)"
            )
    return predictions, references
