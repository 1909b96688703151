"""Zero- and few-shot multiple-choice scoring of causal LMs by log-likelihood, as
lm-evaluation-harness scores its `multiple_choice` tasks.

For each example, the context is K examples of the task's train split, each its
context, a space and its correct choice, joined by a blank line (`"\\n\\n"`), then
a blank line and the example's context (K = 0: the context alone). Each choice is
the continuation `" " + choice`; its log-likelihood is the sum of
`log p(token | previous)` over the continuation's tokens. Metrics, means over the
examples with the harness's standard errors (sample standard deviation / sqrt(n)):

- `acc`: the choice with the highest log-likelihood is the label;
- `acc_norm`: the choice with the highest log-likelihood divided by the choice's
  length in characters (without the leading space) is the label.

Ties go to the first choice (`numpy.argmax`). A scorer is any callable taking a list
of `ChoiceRequest`s and returning their log-likelihoods: `ModelChoiceScorer` here
(a Keras causal LM), `kzoo.export.choice_scoring.SavedModelChoiceScorer` (an
export's `score` signature).
"""

import dataclasses
import math

import numpy as np

FEW_SHOT_SEPARATOR = "\n\n"
TARGET_DELIMITER = " "
DEFAULT_SEED = 1234  # lm-evaluation-harness's few-shot seed.


@dataclasses.dataclass(frozen=True)
class ChoiceRequest:
    """One (context, continuation) pair to score: choice `choice` of example `example`."""

    example: int
    choice: int
    context: str
    continuation: str


def few_shot_contexts(task, shots, seed=DEFAULT_SEED):
    """The context of each evaluated example of `task` with `shots` examples of its
    train split before it, drawn without replacement, a new draw per example, from
    one generator seeded with `seed`.

    Example:
    >>> from kzoo.data.choice_tasks import ChoiceExample, ChoiceTask
    >>> train = (ChoiceExample("a b", ("c", "d"), 1),)
    >>> task = ChoiceTask("t", (ChoiceExample("x", ("y", "z"), 0),), train, "t.jsonl")
    >>> few_shot_contexts(task, 1)
    ['a b d\\n\\nx']
    """
    if isinstance(shots, bool) or not isinstance(shots, int) or shots < 0:
        raise ValueError(f"shots: must be an integer >= 0; got {shots!r}")
    if shots > len(task.train):
        raise ValueError(
            f"shots: {task.source} has {len(task.train)} train examples (lines with "
            f'"split": "train"); {shots} shots need at least {shots}'
        )
    rng = np.random.default_rng(seed)
    contexts = []
    for example in task.examples:
        drawn = rng.choice(len(task.train), shots, replace=False) if shots else []
        shown = [
            task.train[i].context + TARGET_DELIMITER + task.train[i].choices[task.train[i].label]
            for i in drawn
        ]
        contexts.append(FEW_SHOT_SEPARATOR.join(shown + [example.context]))
    return contexts


def choice_requests(task, shots=0, seed=DEFAULT_SEED):
    """Every (context, `" " + choice`) pair of `task`'s evaluated examples."""
    contexts = few_shot_contexts(task, shots, seed)
    return [
        ChoiceRequest(number, index, context, TARGET_DELIMITER + choice)
        for number, (example, context) in enumerate(zip(task.examples, contexts))
        for index, choice in enumerate(example.choices)
    ]


def choice_metrics(examples, log_likelihoods):
    """`acc` and `acc_norm` (with standard errors) of `examples` given each choice's
    log-likelihood.

    Args:
        examples: `ChoiceExample`s.
        log_likelihoods: One list of floats per example, one per choice.

    Example:
    >>> from kzoo.data.choice_tasks import ChoiceExample
    >>> examples = [ChoiceExample("", ("a", "bbbb"), 1)]
    >>> metrics = choice_metrics(examples, [[-2.0, -4.0]])  # per char: -2.0 vs -1.0
    >>> metrics["acc"], metrics["acc_norm"]
    (0.0, 1.0)
    """
    correct, correct_norm = [], []
    for example, scores in zip(examples, log_likelihoods, strict=True):
        scores = np.asarray(scores, "float64")
        lengths = np.array([float(len(choice)) for choice in example.choices])
        correct.append(float(np.argmax(scores) == example.label))
        correct_norm.append(float(np.argmax(scores / lengths) == example.label))
    return {
        "acc": _mean(correct),
        "acc_stderr": _stderr(correct),
        "acc_norm": _mean(correct_norm),
        "acc_norm_stderr": _stderr(correct_norm),
        "examples": len(correct),
    }


def evaluate_choice_task(task, scorer, shots=0, seed=DEFAULT_SEED):
    """Scores `task` with `scorer` at `shots` shots; returns `choice_metrics`' dict
    with `task` and `shots`."""
    requests = choice_requests(task, shots, seed)
    scores = np.asarray(scorer(requests), "float64")
    per_example = [[] for _ in task.examples]
    for request, score in zip(requests, scores, strict=True):
        per_example[request.example].append(float(score))
    return {"task": task.name, "shots": shots, **choice_metrics(task.examples, per_example)}


class ModelChoiceScorer:
    """Log-likelihoods of `ChoiceRequest`s under a Keras causal LM, in padded batches.

    Texts are tokenized as lm-evaluation-harness tokenizes them: the continuation's
    tokens are those of `context + continuation` after as many tokens as the
    context alone has. Each row starts with the start-of-document (end) token, as
    the exported `score` signature starts it; a row longer than the model's context
    keeps its last tokens (the continuation must fit).

    Args:
        model: A kzoo causal LM taking `{"token_ids", "padding_mask"}` and returning
            logits `(batch, length, vocabulary_size)`, with `end_token_id`.
        tokenizer: Its tokenizer (`tokenize` of a list of strings gives ragged ids).
        batch_size: Rows per forward pass.
        context: The longest row (None: the model's `max_sequence_length`, if any).

    Example:
    >>> import tempfile
    >>> from kzoo.models import LSTMLanguageModel
    >>> from kzoo.tokenizers import load_tokenizer, train_sentencepiece
    >>> run_dir = tempfile.mkdtemp()
    >>> _ = train_sentencepiece(texts=["to be or not to be"], model_type="char",
    ...                         output_dir=run_dir)
    >>> tokenizer = load_tokenizer(run_dir)
    >>> lm = LSTMLanguageModel(tokenizer.vocabulary_size, 4, 8,
    ...                        end_token_id=tokenizer.eos_id)
    >>> scores = ModelChoiceScorer(lm, tokenizer)([ChoiceRequest(0, 0, "to", " be")])
    >>> scores.shape, bool(scores[0] < 0)
    ((1,), True)
    """

    def __init__(self, model, tokenizer, batch_size=32, context=None):
        self.model = model
        self.tokenizer = tokenizer
        self.batch_size = int(batch_size)
        self.end_id = int(model.end_token_id)
        if context is None:
            context = getattr(getattr(model, "backbone", None), "max_sequence_length", None)
        self.context = context

    def __call__(self, requests):
        rows = self._rows(requests)
        scores = np.zeros(len(rows), "float64")
        order = sorted(range(len(rows)), key=lambda i: -len(rows[i][0]))  # Less padding.
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            scores[batch] = self._score_batch([rows[i] for i in batch])
        return scores

    def _rows(self, requests):
        """(token ids, number of continuation tokens) of each request."""
        texts = [r.context for r in requests] + [r.context + r.continuation for r in requests]
        tokenized = self._tokenize(texts)
        contexts, wholes = tokenized[: len(requests)], tokenized[len(requests) :]
        rows = []
        for request, context_ids, whole_ids in zip(requests, contexts, wholes):
            ids = [self.end_id] + whole_ids
            scored = len(whole_ids) - len(context_ids)
            where = f"example {request.example}, choice {request.choice}"
            if scored < 1:
                raise ValueError(
                    f"{where}: the continuation {request.continuation!r} adds no token to "
                    "its context"
                )
            if self.context is not None and len(ids) > self.context:
                if scored > self.context - 1:
                    raise ValueError(
                        f"{where}: the continuation is {scored} tokens, longer than the "
                        f"model's context of {self.context} tokens allows"
                    )
                ids = ids[-self.context :]
            rows.append((ids, scored))
        return rows

    def _tokenize(self, texts):
        import tensorflow as tf

        ids = self.tokenizer.tokenize(tf.constant(texts, tf.string))
        return [[int(t) for t in row] for row in ids.to_list()]

    def _score_batch(self, rows):
        from keras import ops

        width = max(len(ids) for ids, _ in rows)
        token_ids = np.zeros((len(rows), width), "int32")
        padding_mask = np.zeros((len(rows), width), "int32")
        target_mask = np.zeros((len(rows), width - 1), "float32")
        for i, (ids, scored) in enumerate(rows):
            token_ids[i, : len(ids)], padding_mask[i, : len(ids)] = ids, 1
            target_mask[i, len(ids) - 1 - scored : len(ids) - 1] = 1.0
        logits = self.model({"token_ids": token_ids, "padding_mask": padding_mask})
        log_probs = ops.log_softmax(ops.cast(logits[:, :-1], "float32"), axis=-1)
        targets = ops.convert_to_tensor(token_ids[:, 1:, None])
        token_log_probs = ops.take_along_axis(log_probs, targets, axis=-1)[..., 0]
        return ops.convert_to_numpy(ops.sum(token_log_probs * target_mask, axis=-1))


def _mean(values):
    return float(np.mean(values)) if values else float("nan")


def _stderr(values):
    if len(values) < 2:
        return float("nan")
    return float(np.std(values, ddof=1) / math.sqrt(len(values)))
