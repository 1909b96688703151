"""Does pretraining help? Fine-tune from a pretrained run vs from scratch, same budget.

    python benchmarks/bert_pretraining_benefit.py [--pretrained RUN_DIR] [--seeds 0 1 2]

Trains `recipes/bert_tiny_pretrain.yaml` (unless `--pretrained` names a finished
run), then each fine-tuning recipe twice per seed with identical settings and
steps, once with `train.init_from` and once from random weights, and prints the
validation metrics of both as a Markdown table (and `--json` to a file).
"""

import argparse
import json
import os
import statistics
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

TASKS = {
    "bert_tiny_classify.yaml": ("accuracy", "macro_f1"),
    "bert_tiny_tagging.yaml": ("entity_f1", "accuracy"),
}


def train_and_evaluate(recipe, run_dir, overrides):
    from kzoo.training.evaluate import evaluate_run
    from kzoo.training.recipe import load_recipe
    from kzoo.training.trainer import train

    config = load_recipe(os.path.join(ROOT, "recipes", recipe), overrides)
    summary = train(config, run_dir, verbose=0)
    return summary, evaluate_run(run_dir)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pretrained", help="a finished bert_tiny_pretrain run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--json", help="write the results here")
    args = parser.parse_args(argv)
    work = tempfile.mkdtemp(prefix="kzoo-bert-benefit-")
    pretrained = args.pretrained
    if pretrained is None:
        pretrained = os.path.join(work, "pretrain")
        summary, result = train_and_evaluate("bert_tiny_pretrain.yaml", pretrained, [])
        print(
            f"pretraining: {summary['steps']} steps in {summary['train_seconds']:.0f} s, "
            f"val MLM accuracy {result['mlm_accuracy']:.3f}, "
            f"NSP accuracy {result['nsp_accuracy']:.3f}",
            flush=True,
        )
    results = {}
    for recipe, metrics in TASKS.items():
        for start in ("pretrained", "scratch"):
            for seed in args.seeds:
                overrides = [f"train.seed={seed}", f"data.seed={seed}"]
                if start == "pretrained":
                    overrides.append(f"train.init_from={pretrained}")
                run_dir = os.path.join(work, f"{recipe}-{start}-{seed}")
                summary, result = train_and_evaluate(recipe, run_dir, overrides)
                row = {m: result[m] for m in metrics}
                row["steps"] = summary["steps"]
                results.setdefault(recipe, {}).setdefault(start, []).append(row)
                print(f"{recipe} {start} seed {seed}: {row}", flush=True)
    print("\n| recipe | metric | from pretrained | from scratch | steps |")
    print("|---|---|---|---|---|")
    for recipe, metrics in TASKS.items():
        for metric in metrics:
            cells = []
            for start in ("pretrained", "scratch"):
                values = [r[metric] for r in results[recipe][start]]
                cells.append(
                    f"{statistics.mean(values):.3f} ({', '.join(f'{v:.3f}' for v in values)})"
                )
            steps = results[recipe]["scratch"][0]["steps"]
            print(f"| {recipe} | {metric} | {cells[0]} | {cells[1]} | {steps} |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump({"pretrained": pretrained, "results": results}, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
