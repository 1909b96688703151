"""`kzoo evaluate`: a trained run's metrics on held-out data (each task's own)."""

import os

from kzoo.training import run_files
from kzoo.training.run_files import load_run_model  # noqa: F401 (kzoo.training.evaluate.load_run_model)


def read_run_config(run_dir):
    """The run's saved config (`run_files.read_config`), unvalidated."""
    path = os.path.join(run_dir, run_files.CONFIG)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{run_dir}: not a kzoo run directory (no {run_files.CONFIG})")
    return run_files.read_config(run_dir)


def evaluate_run(run_dir, data=None, batch_size=None):
    """Evaluates a run on `data` (paths/globs) or on its own validation data.

    Returns a dict of the task's metrics (see each `Task.evaluate`: loss,
    perplexity and bits per word for language models; accuracies and F1 scores
    for BERT tasks) with `run_dir`.
    """
    from kzoo.training.recipe import validate
    from kzoo.training.tasks.registry import task_for

    config = validate(read_run_config(run_dir))
    model = load_run_model(run_dir)
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None:
        from kzoo.tokenizers import load_tokenizer

        tokenizer = load_tokenizer(run_dir)
    result = task_for(config).evaluate(run_dir, model, tokenizer, data=data, batch_size=batch_size)
    return {"run_dir": os.path.abspath(run_dir), **result}
