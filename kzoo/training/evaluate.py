"""`kzoo evaluate`: a trained run's metrics on held-out data (each task's own)."""

import os

from kzoo.training.run_directory import RunDirectory


def evaluate_run(run_dir, data=None, batch_size=None):
    """Evaluates a run on `data` (paths/globs) or on its own validation data.

    Returns a dict of the task's metrics (see each `Task.evaluate`: loss,
    perplexity and bits per word for language models; accuracies and F1 scores
    for BERT tasks) with `run_dir`.
    """
    from kzoo.training.recipe import validate
    from kzoo.training.tasks.registry import task_for

    run = RunDirectory(run_dir)
    config = validate(run.config())
    model = run.load_model()
    tokenizer = run.tokenizer(model)
    result = task_for(config).evaluate(run_dir, model, tokenizer, data=data, batch_size=batch_size)
    return {"run_dir": os.path.abspath(run_dir), **result}
