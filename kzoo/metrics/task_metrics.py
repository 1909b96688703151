"""Evaluation metrics of the fine-tuning tasks: entity F1, macro F1, SQuAD EM/F1.

Pure Python, computed over whole evaluation sets (not averaged over batches), so the
numbers match the reference scripts: conlleval / seqeval for entities, scikit-learn's
macro F1 for classes, the official SQuAD v1.1 `evaluate-v1.1.py` for answers.
"""

import collections
import re
import string

import numpy as np


def entity_spans(tags):
    """Returns the entities of one BIO-tagged sentence as `(type, start, end)` spans.

    `end` is exclusive, like a slice. Decoding is lenient IOB2, as in conlleval and
    seqeval's default mode: an entity ends at `O`, at `B-`, or at an `I-` of another
    type; an `I-` that does not continue an entity of its type starts a new one.

    Args:
        tags: A sequence of `"O"`, `"B-TYPE"` and `"I-TYPE"` strings.

    Returns:
        A `set` of `(type, start, end)` tuples.

    Raises:
        ValueError: A tag is not `O`, `B-TYPE` or `I-TYPE`.

    Example:
    >>> sorted(entity_spans(["B-PER", "I-PER", "O", "I-LOC", "B-LOC", "I-PER"]))
    [('LOC', 3, 4), ('LOC', 4, 5), ('PER', 0, 2), ('PER', 5, 6)]
    """
    spans = set()
    start = kind = None
    for position, tag in enumerate([*tags, "O"]):
        prefix, kind_here = _split_tag(tag)
        if start is not None and (prefix != "I" or kind_here != kind):
            spans.add((kind, start, position))
            start = None
        if prefix == "B" or (prefix == "I" and start is None):
            start, kind = position, kind_here
    return spans


def entity_f1(true_tag_sequences, predicted_tag_sequences):
    """Entity-level precision, recall and F1, micro-averaged over all entities.

    An entity counts as correct only if its type, start and end all match, as in
    conlleval and `seqeval.metrics.f1_score`. A ratio with a zero denominator is 0.

    Args:
        true_tag_sequences: One list of BIO tags per sentence.
        predicted_tag_sequences: The predicted tags, the same lengths.

    Returns:
        `{"precision": float, "recall": float, "f1": float}`.

    Raises:
        ValueError: The sentence counts or a sentence's lengths differ.

    Example:
    >>> true = [["O", "O", "O", "B-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER"]]
    >>> pred = [["O", "O", "B-MISC", "I-MISC", "I-MISC", "I-MISC", "O"], ["B-PER", "I-PER"]]
    >>> entity_f1(true, pred)  # seqeval's example: 1 of 2 entities right, both ways.
    {'precision': 0.5, 'recall': 0.5, 'f1': 0.5}
    """
    true_tag_sequences = list(true_tag_sequences)
    predicted_tag_sequences = list(predicted_tag_sequences)
    if len(true_tag_sequences) != len(predicted_tag_sequences):
        raise ValueError(
            f"entity_f1: {len(true_tag_sequences)} true sentences but "
            f"{len(predicted_tag_sequences)} predicted ones"
        )
    num_true = num_predicted = num_correct = 0
    for number, (true, predicted) in enumerate(zip(true_tag_sequences, predicted_tag_sequences)):
        if len(true) != len(predicted):
            raise ValueError(
                f"entity_f1: sentence {number} has {len(true)} true tags but "
                f"{len(predicted)} predicted ones"
            )
        true_spans, predicted_spans = entity_spans(true), entity_spans(predicted)
        num_true += len(true_spans)
        num_predicted += len(predicted_spans)
        num_correct += len(true_spans & predicted_spans)
    return _precision_recall_f1(num_correct, num_predicted, num_true)


def macro_f1(true_ids, pred_ids, num_classes):
    """The unweighted mean of the per-class F1 scores.

    Averages over the classes that occur in `true_ids` or `pred_ids`, like
    `sklearn.metrics.f1_score(average="macro")` with its default `labels`; a class's
    F1 with a zero denominator is 0.

    Args:
        true_ids: Integer class ids in `[0, num_classes)`.
        pred_ids: Predicted class ids, the same length.
        num_classes: The number of classes the model predicts.

    Returns:
        A `float` in [0, 1]; 0.0 for empty inputs.

    Raises:
        ValueError: The lengths differ or an id is out of range.

    Example:
    >>> round(macro_f1([0, 0, 1, 1, 2], [0, 1, 1, 1, 2], num_classes=3), 4)
    0.8222
    """
    true_ids = np.asarray(true_ids, dtype=np.int64).reshape(-1)
    pred_ids = np.asarray(pred_ids, dtype=np.int64).reshape(-1)
    if true_ids.shape != pred_ids.shape:
        raise ValueError(f"macro_f1: {true_ids.size} true ids but {pred_ids.size} predicted ones")
    for name, ids in (("true_ids", true_ids), ("pred_ids", pred_ids)):
        if ids.size and (ids.min() < 0 or ids.max() >= num_classes):
            raise ValueError(
                f"macro_f1: {name} must be in [0, {num_classes}), got values from "
                f"{ids.min()} to {ids.max()}"
            )
    if not true_ids.size:
        return 0.0
    true_counts = np.bincount(true_ids, minlength=num_classes)
    pred_counts = np.bincount(pred_ids, minlength=num_classes)
    correct = np.bincount(true_ids[true_ids == pred_ids], minlength=num_classes)
    present = np.flatnonzero(true_counts + pred_counts)
    scores = [
        _precision_recall_f1(correct[c], pred_counts[c], true_counts[c])["f1"] for c in present
    ]
    return float(np.mean(scores))


def normalize_answer(text):
    """SQuAD v1.1 answer normalization: lowercase, drop punctuation, articles, extra space.

    Example:
    >>> normalize_answer("The  Denver Broncos!")
    'denver broncos'
    """
    text = "".join(ch for ch in text.lower() if ch not in _PUNCTUATION)
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def squad_exact_match_and_f1(prediction, ground_truths):
    """The official SQuAD v1.1 exact match and token F1 of one prediction.

    Both are the maximum over the ground-truth answers, after `normalize_answer`.
    The official script then averages them over questions and reports percentages.

    Args:
        prediction: The predicted answer text.
        ground_truths: The reference answer texts (at least one).

    Returns:
        `(exact_match, f1)`, floats in [0, 1].

    Example:
    >>> squad_exact_match_and_f1("the Broncos", ["Denver Broncos", "Broncos"])
    (1.0, 1.0)
    >>> squad_exact_match_and_f1("Denver Broncos won", ["Denver Broncos"])
    (0.0, 0.8)
    """
    if isinstance(ground_truths, str) or not ground_truths:
        raise ValueError(
            "squad_exact_match_and_f1: ground_truths must be a non-empty list of "
            f"strings, got {ground_truths!r}"
        )
    predicted = normalize_answer(prediction)
    truths = [normalize_answer(truth) for truth in ground_truths]
    exact = max(float(predicted == truth) for truth in truths)
    f1 = max(_token_f1(predicted.split(), truth.split()) for truth in truths)
    return exact, f1


_PUNCTUATION = frozenset(string.punctuation)


def _token_f1(predicted_tokens, true_tokens):
    common = collections.Counter(predicted_tokens) & collections.Counter(true_tokens)
    return _precision_recall_f1(sum(common.values()), len(predicted_tokens), len(true_tokens))["f1"]


def _precision_recall_f1(num_correct, num_predicted, num_true):
    precision = num_correct / num_predicted if num_predicted else 0.0
    recall = num_correct / num_true if num_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": float(precision), "recall": float(recall), "f1": float(f1)}


def _split_tag(tag):
    if tag == "O":
        return "O", None
    prefix, dash, kind = tag.partition("-")
    if prefix not in ("B", "I") or not dash or not kind:
        raise ValueError(f"entity_spans: tag {tag!r} is not 'O', 'B-TYPE' or 'I-TYPE'")
    return prefix, kind
