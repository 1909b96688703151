"""Transformer vs the LSTM-with-attention baseline on the built-in translation task.

Both train on the same pipeline (recipes/seq2seq_tiny.yaml: same data, vocabulary
size, batch, schedule and number of steps), then `kzoo evaluate` decodes the 500
held-out pairs with greedy search and beam search (4 beams).

    python benchmarks/seq2seq_translation.py --steps 600 --out /tmp/seq2seq_bench

Prints one JSON line per model and a markdown table for BENCHMARKS.md.
"""

import argparse
import json
import os
import time

from kzoo.training.evaluate import evaluate_run
from kzoo.training.recipe import load_recipe
from kzoo.training.trainer import train

RECIPE = os.path.join(os.path.dirname(__file__), "..", "recipes", "seq2seq_tiny.yaml")
MODELS = {
    "transformer": [],
    "lstm": [
        "model.architecture=lstm",
        "model.embedding_dim=128",
        "model.hidden_dim=256",
        "model.num_layers=1",
    ],
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--out", default="/tmp/seq2seq_bench")
    args = parser.parse_args()
    rows = []
    for name, overrides in MODELS.items():
        run_dir = os.path.join(args.out, name)
        config = load_recipe(
            RECIPE, overrides + [f"train.steps={args.steps}", f"train.steps_per_epoch={args.steps}"]
        )
        start = time.monotonic()
        summary = train(config, run_dir, verbose=0)
        seconds = time.monotonic() - start
        result = evaluate_run(run_dir)
        row = {
            "model": name,
            "parameters": summary["parameters"],
            "train_seconds": round(seconds, 1),
            **result,
        }
        print(json.dumps(row), flush=True)
        rows.append(row)
    print("| model | parameters | train s | greedy BLEU | beam BLEU | greedy EM | beam EM |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['model']} | {r['parameters']:,} | {r['train_seconds']} | "
            f"{r['greedy_bleu']:.1f} | {r['bleu']:.1f} | {r['greedy_exact_match']:.3f} | "
            f"{r['exact_match']:.3f} |"
        )


if __name__ == "__main__":
    main()
