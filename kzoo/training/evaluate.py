"""`kzoo evaluate`: a trained run's metrics on held-out data (each task's own)."""

import os

import keras

from kzoo.training import run_files


def read_run_config(run_dir):
    """The run's saved config (`run_files.read_config`), unvalidated."""
    path = os.path.join(run_dir, run_files.CONFIG)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{run_dir}: not a kzoo run directory (no {run_files.CONFIG})")
    return run_files.read_config(run_dir)


def load_run_model(run_dir):
    """Loads `RUN/model.keras` with `safe_mode` (no code is deserialized)."""
    import kzoo.models  # noqa: F401  (registers the model classes)
    import kzoo.tokenizers  # noqa: F401  (registers the tokenizer layer)

    path = os.path.join(run_dir, run_files.MODEL)
    if not os.path.isfile(path):
        raise FileNotFoundError(_no_model_message(run_dir))
    return keras.saving.load_model(path, safe_mode=True, compile=False)


def _no_model_message(run_dir):
    """Why `run_dir` has no `model.keras`, and what to do: an unfinished run
    (interrupted at its latest checkpoint) is resumed, anything else trained."""
    from kzoo.training import checkpoints

    if not os.path.isfile(os.path.join(run_dir, run_files.CONFIG)):
        return (f"{run_dir}: no trained model ({run_files.MODEL}); train one with "
                "`kzoo train RECIPE --run-dir DIR`")
    last = checkpoints.latest(os.path.join(run_dir, run_files.CHECKPOINTS))
    if last is None:
        where = "before its first checkpoint"
    else:
        state = checkpoints.read_state(last)
        total = state.get("total_steps")
        where = f"at step {state['step']}" + (f" of {total}" if total else "")
    return (f"{run_dir}: training was interrupted {where} (no {run_files.MODEL} "
            f"yet); finish it with `kzoo train --resume {run_dir}`")


def evaluate_run(run_dir, data=None, batch_size=None):
    """Evaluates a run on `data` (paths/globs) or on its own validation data.

    Returns a dict of the task's metrics (see each `Task.evaluate`: loss,
    perplexity and bits per word for language models; accuracies and F1 scores
    for BERT tasks) with `run_dir`.
    """
    from kzoo.training.recipe import validate
    from kzoo.training.task import task_for

    config = validate(read_run_config(run_dir))
    model = load_run_model(run_dir)
    tokenizer = getattr(model, "tokenizer", None)
    if tokenizer is None:
        from kzoo.tokenizers import load_tokenizer

        tokenizer = load_tokenizer(run_dir)
    result = task_for(config).evaluate(run_dir, model, tokenizer, data=data,
                                       batch_size=batch_size)
    return {"run_dir": os.path.abspath(run_dir), **result}
