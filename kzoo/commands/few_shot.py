"""`kzoo evaluate RUN_DIR_OR_SAVEDMODEL --tasks FILE.jsonl|builtin:NAME [--shots K
...] [--seed S]`: zero- and few-shot multiple-choice accuracy of a causal LM."""

import json
import os

from kzoo.commands.directories import check_input_directory
from kzoo.commands.startup import start_tensorflow


def check_task_specs(specs):
    """Each spec is `builtin:NAME` or an existing file; checked before TensorFlow."""
    from kzoo.data.choice_tasks import BUILTIN_PREFIX

    for spec in specs:
        if spec.startswith(BUILTIN_PREFIX):
            from kzoo.data.builtin_choice_tasks import BUILTIN_CHOICE_TASKS

            if spec[len(BUILTIN_PREFIX) :] not in BUILTIN_CHOICE_TASKS:
                names = ", ".join(BUILTIN_PREFIX + n for n in BUILTIN_CHOICE_TASKS)
                raise ValueError(f"--tasks: unknown built-in task {spec}; built-in tasks: {names}")
        elif not os.path.isfile(spec):
            raise FileNotFoundError(
                f"--tasks {spec}: no such file (give a .jsonl file or builtin:NAME)"
            )


def run_few_shot(args):
    """The `--tasks` branch of `kzoo evaluate`."""
    check_input_directory(args.run_dir, "run directory or SavedModel")
    check_task_specs(args.tasks)
    for shots in args.shots:
        if shots < 0:
            raise ValueError(f"--shots: must be >= 0, got {shots}")
    if args.batch_size is not None and args.batch_size < 1:
        raise ValueError(f"--batch-size: must be >= 1, got {args.batch_size}")
    start_tensorflow()
    from kzoo.data.builtin_choice_tasks import load_choice_task
    from kzoo.metrics.multiple_choice import DEFAULT_SEED

    tasks = [load_choice_task(spec) for spec in args.tasks]
    seed = DEFAULT_SEED if args.seed is None else args.seed
    if os.path.isfile(os.path.join(args.run_dir, "saved_model.pb")):
        from kzoo.export.choice_scoring import evaluate_saved_model_choices

        result = evaluate_saved_model_choices(
            args.run_dir, tasks, shots=args.shots, seed=seed, batch_size=args.batch_size or 32
        )
    else:
        from kzoo.training.evaluate import evaluate_choice_tasks

        result = evaluate_choice_tasks(
            args.run_dir, tasks, shots=args.shots, seed=seed, batch_size=args.batch_size
        )
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        print(format_results(result["results"]))
    return 0


def format_results(results):
    """A table: one row per task and number of shots.

    Example:
    >>> row = {"task": "grammar", "shots": 1, "acc": 0.5, "acc_stderr": 0.1,
    ...        "acc_norm": 0.75, "acc_norm_stderr": 0.1, "examples": 20}
    >>> print(format_results([row]))
    task          shots  examples     acc  ± stderr  acc_norm  ± stderr
    grammar           1        20  0.5000    0.1000    0.7500    0.1000
    """
    lines = [f"{'task':<12} {'shots':>6} {'examples':>9} {'acc':>7}  ± stderr  acc_norm  ± stderr"]
    for r in results:
        lines.append(
            f"{r['task']:<12} {r['shots']:>6} {r['examples']:>9} {r['acc']:>7.4f} "
            f"{r['acc_stderr']:>9.4f} {r['acc_norm']:>9.4f} {r['acc_norm_stderr']:>9.4f}"
        )
    return "\n".join(lines)
