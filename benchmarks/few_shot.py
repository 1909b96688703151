"""Few-shot accuracy of a trained `gpt_tiny` on the built-in multiple-choice tasks.

    python benchmarks/few_shot.py [--run-dir runs/gpt_tiny] [--shots 0 1 5]
                                  [--seed 1234] [--json FILE] [--set KEY=VALUE ...]

Trains `recipes/gpt_tiny.yaml` into `--run-dir` unless a finished run is there
(a few minutes on 2 CPU cores; `--set train.steps=N` for a quicker one), then
scores `builtin:grammar` and `builtin:completion` at each number of shots, as
`kzoo evaluate RUN --tasks builtin:grammar builtin:completion --shots 0 1 5` does,
and prints a Markdown table (acc and acc_norm with standard errors) for
BENCHMARKS.md. An untrained model of the same shape and tokenizer is scored too,
as the baseline (chance is 1/2 for grammar, 1/4 for completion, but an untrained
model's preferences for some tokens move it either way).
"""

import argparse
import json
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

TASKS = ("builtin:grammar", "builtin:completion")


def trained_run(run_dir, overrides):
    from kzoo.training.recipe import load_recipe
    from kzoo.training.run_directory import RunDirectory
    from kzoo.training.trainer import train

    if RunDirectory(run_dir).is_finished():
        print(f"Using the finished run {run_dir}")
        return run_dir
    config = load_recipe(os.path.join(ROOT, "recipes", "gpt_tiny.yaml"), overrides)
    start = time.perf_counter()
    train(config, run_dir, verbose=0)
    print(f"Trained {run_dir} in {time.perf_counter() - start:.0f} s")
    return run_dir


def untrained_copy(run_dir, out_dir):
    """A run with the trained run's config and tokenizer and fresh weights."""
    import keras

    from kzoo.training.recipe import validate
    from kzoo.training.run_directory import RunDirectory
    from kzoo.training.tasks.registry import task_for

    keras.utils.set_random_seed(0)
    trained = RunDirectory(run_dir)
    config = validate(trained.config())
    untrained = RunDirectory(out_dir)
    untrained.write_config(config)
    untrained.copy_tokenizer_from(trained)
    model = task_for(config).build_model(trained.tokenizer(trained.load_model()))
    untrained.save_model(model)
    return out_dir


def table(rows):
    lines = ["| model | task | shots | acc | acc_norm |", "| --- | --- | ---: | ---: | ---: |"]
    for name, r in rows:
        lines.append(
            f"| {name} | {r['task']} | {r['shots']} | {r['acc']:.3f} ± {r['acc_stderr']:.3f} "
            f"| {r['acc_norm']:.3f} ± {r['acc_norm_stderr']:.3f} |"
        )
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", default=os.path.join("runs", "gpt_tiny"))
    parser.add_argument("--shots", type=int, nargs="+", default=[0, 1, 5])
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--json", help="also write the results to this file")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--no-baseline", action="store_true", help="skip the untrained model")
    args = parser.parse_args(argv)

    from kzoo.training.evaluate import evaluate_choice_tasks

    run_dir = trained_run(args.run_dir, args.set)
    models = [("gpt_tiny", run_dir)]
    if not args.no_baseline:
        models.append(("untrained", untrained_copy(run_dir, tempfile.mkdtemp())))
    rows, output = [], {}
    for name, directory in models:
        start = time.perf_counter()
        result = evaluate_choice_tasks(directory, TASKS, shots=args.shots, seed=args.seed)
        print(f"Scored {name} in {time.perf_counter() - start:.0f} s")
        rows += [(name, r) for r in result["results"]]
        output[name] = result
    print(table(rows))
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(output, f, indent=2, sort_keys=True)


if __name__ == "__main__":
    main()
