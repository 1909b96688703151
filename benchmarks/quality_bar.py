"""Quality bar on the built-in corpus: gpt_tiny and lstm_tiny vs the true entropy rate.

    .venv/bin/python benchmarks/quality_bar.py [--out /tmp/quality_bar] [--set k=v ...]

Trains both recipes (a few minutes each on 2 CPU cores), evaluates held-out bits per
word and prints one JSON object; the target is gpt_tiny within 5% of the source's
entropy rate (`ratio_to_entropy_rate <= 1.05`).
"""

import argparse
import json
import os
import shutil
import time

from kzoo.training.evaluate import evaluate_run
from kzoo.training.recipe import load_recipe
from kzoo.training.trainer import train

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(recipe, out, overrides):
    run_dir = os.path.join(out, recipe)
    shutil.rmtree(run_dir, ignore_errors=True)
    config = load_recipe(os.path.join(ROOT, "recipes", f"{recipe}.yaml"), overrides)
    start = time.monotonic()
    summary = train(config, run_dir, verbose=2)
    wall = time.monotonic() - start
    result = evaluate_run(run_dir)
    return {
        "recipe": recipe,
        "steps": summary["steps"],
        "parameters": summary["parameters"],
        "train_seconds": summary["train_seconds"],
        "wall_seconds": round(wall, 1),
        "validation_loss_nats_per_token": round(result["loss"], 4),
        "bits_per_word": round(result["bits_per_word"], 4),
        "entropy_rate_bits": round(result["entropy_rate_bits"], 4),
        "ratio_to_entropy_rate": round(result["ratio_to_entropy_rate"], 4),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="/tmp/kzoo_quality_bar")
    parser.add_argument("--recipes", nargs="+", default=["gpt_tiny", "lstm_tiny"])
    parser.add_argument("--set", action="append", default=[])
    args = parser.parse_args()
    results = [run(recipe, args.out, args.set) for recipe in args.recipes]
    print(json.dumps({"results": results}, indent=2))


if __name__ == "__main__":
    main()
