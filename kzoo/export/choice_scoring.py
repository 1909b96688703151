"""`kzoo evaluate saved_models/NAME/VERSION --tasks ...`: zero- and few-shot
multiple-choice accuracy through an export's `score` signature, the one TF Serving
serves (`kzoo.metrics.multiple_choice` says how tasks are scored).

`score` returns the log-likelihood of a whole text, so a continuation's is
`score(context + continuation) - score(context)`: the same number the run
directory gives when the context's tokens are a prefix of the whole text's (true
for the built-in tasks and for any tokenizer that splits at spaces). `score` keeps
each text's first tokens, where scoring a run directory keeps the last: a text
that fills the export's context is an error here.
"""

import json
import os

import numpy as np

from kzoo.export import layout
from kzoo.metrics.multiple_choice import DEFAULT_SEED, evaluate_choice_task


class SavedModelChoiceScorer:
    """Log-likelihoods of `ChoiceRequest`s through an export's `score` signature.

    Args:
        path: A version directory written by `kzoo export` (a causal LM's).
        batch_size: Texts per call.

    Raises:
        ValueError: The export has no `score` signature (not a causal LM); the
            message names the signatures it has.
    """

    def __init__(self, path, batch_size=32):
        import tensorflow as tf
        import tensorflow_text  # noqa: F401  (registers the SentencePiece ops)

        self.path = path
        self.batch_size = int(batch_size)
        self._loaded = tf.saved_model.load(path)
        signatures = self._loaded.signatures
        if "score" not in signatures:
            names = ", ".join(sorted(signatures)) or "none"
            raise ValueError(
                f"{path}: multiple-choice tasks are scored by a causal LM's score "
                f"signature; this export has {names}"
            )
        self._score = signatures["score"]
        self.context = _export_context(path)

    def __call__(self, requests):
        texts = [r.context for r in requests] + [r.context + r.continuation for r in requests]
        scores, counts = self._score_texts(texts)
        n = len(requests)
        for i, request in enumerate(requests):
            if self.context is not None and counts[n + i] + 1 >= self.context:
                raise ValueError(
                    f"{self.path}: example {request.example}, choice {request.choice}: "
                    f"context and choice fill the export's context of {self.context} "
                    "tokens, and score keeps the first tokens; use fewer --shots, or "
                    "evaluate the run directory (it keeps the last tokens)"
                )
        return scores[n:] - scores[:n]

    def _score_texts(self, texts):
        import tensorflow as tf

        scores, counts = [], []
        for start in range(0, len(texts), self.batch_size):
            batch = tf.constant(texts[start : start + self.batch_size], tf.string)
            outputs = self._score(texts=batch)
            scores.append(outputs["log_likelihood"].numpy().astype("float64"))
            counts.append(outputs["num_tokens"].numpy())
        return np.concatenate(scores), np.concatenate(counts)


def evaluate_saved_model_choices(path, tasks, shots=(0,), seed=DEFAULT_SEED, batch_size=32):
    """Multiple-choice accuracy of an exported causal LM.

    Args:
        path: A version directory written by `kzoo export`.
        tasks: `ChoiceTask`s (`kzoo.data.builtin_choice_tasks.load_choice_task`).
        shots: Numbers of few-shot examples; every task is scored at each.
        seed: Draws the few-shot examples.
        batch_size: Texts per call of the signature.

    Returns:
        `{"saved_model", "seed", "results"}`, `results` a list of
        `kzoo.metrics.multiple_choice.evaluate_choice_task` dicts.
    """
    scorer = SavedModelChoiceScorer(path, batch_size=batch_size)
    results = [
        evaluate_choice_task(task, scorer, shots=k, seed=seed) for task in tasks for k in shots
    ]
    return {"saved_model": os.path.abspath(path), "seed": seed, "results": results}


def _export_context(path):
    """The export's context limit (`kzoo_export.json`), None when not recorded."""
    info = os.path.join(path, layout.ASSETS_EXTRA, layout.EXPORT_INFO_FILE)
    if not os.path.isfile(info):
        return None
    with open(info, encoding="utf-8") as f:
        return (json.load(f).get("limits") or {}).get("context")
