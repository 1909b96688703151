"""`kzoo evaluate`: a trained run's metrics on held-out data (each task's own), and
a causal LM's zero- and few-shot accuracy on multiple-choice tasks."""

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


def evaluate_choice_tasks(run_dir, tasks, shots=(0,), seed=None, batch_size=None):
    """Zero- and few-shot multiple-choice accuracy of a causal LM run, written to the
    run's `few_shot.json` (`kzoo.metrics.multiple_choice` says how it is scored).

    Args:
        run_dir: A run directory of a causal LM (GPT, LSTM).
        tasks: `ChoiceTask`s, or their specs (a `.jsonl` path or `builtin:NAME`).
        shots: Numbers of few-shot examples; every task is scored at each.
        seed: Draws the few-shot examples (None: 1234, the harness's).
        batch_size: Sequences per forward pass (None: 32).

    Returns:
        `{"run_dir", "seed", "results"}`, `results` a list of dicts with `task`,
        `shots`, `acc`, `acc_stderr`, `acc_norm`, `acc_norm_stderr`, `examples`.

    Raises:
        ValueError: The run is not a causal LM, or a task cannot be scored (the
            message names it).
    """
    from kzoo.data.builtin_choice_tasks import load_choice_task
    from kzoo.metrics.multiple_choice import DEFAULT_SEED, ModelChoiceScorer, evaluate_choice_task
    from kzoo.preprocessing import CausalLMPreprocessor

    seed = DEFAULT_SEED if seed is None else seed
    tasks = [load_choice_task(t) if isinstance(t, str) else t for t in tasks]
    run = RunDirectory(run_dir)
    model = run.load_model()
    if not isinstance(getattr(model, "preprocessor", None), CausalLMPreprocessor):
        raise ValueError(
            f"{run_dir}: --tasks scores causal language models (GPT, LSTM); this run "
            f"holds a {type(model).__name__}"
        )
    scorer = ModelChoiceScorer(model, run.tokenizer(model), batch_size=batch_size or 32)
    results = [
        evaluate_choice_task(task, scorer, shots=k, seed=seed) for task in tasks for k in shots
    ]
    run.write_few_shot_results(results)
    return {"run_dir": os.path.abspath(run_dir), "seed": seed, "results": results}
