"""Input pipeline throughput of the GPT recipes, against what their training consumes.

    TF_CPP_MIN_LOG_LEVEL=3 .venv/bin/python benchmarks/pipeline_throughput.py \
        [--cases builtin tinyshakespeare tinyshakespeare_char] [--rounds 5] \
        [--round-tokens 500000] [--train-steps 60]

Each case builds the training dataset exactly as `kzoo train` does
(`CausalLMTask.make_data`: in-graph tokenization, packing, shuffling, batching,
repeated) with the recipe's own tokenizer, once per value of the recipe's
parallelism knob `data.num_parallel_calls` (1, 2 and null = `tf.data.AUTOTUNE`,
the default). The first batch of every setting must be the same (the pipeline is
deterministic). The settings are then read in alternating rounds of about
`--round-tokens` tokens each (so that load on a shared machine hits them alike);
a round first drops a few batches untimed, so that what the idle pipeline
buffered ahead does not count.

Training consumption is measured in the same run: a short `kzoo train` of the
case's recipe as a subprocess (monitoring off, `2 x --train-steps` steps in two
epochs), whose second epoch gives the steady tokens/s (`epoch_tokens_per_second`
in the run summary). The model's compute does not depend on the corpus, so cases
of the same recipe share one training run (trained on the first such case's
data). The target is a pipeline >= 10x faster than training consumes.

Cases: builtin = recipes/gpt_tiny.yaml (BPE 512, batch 32 x 64); tinyshakespeare =
the same recipe on /work/shared/data/tinyshakespeare.txt; tinyshakespeare_char =
recipes/gpt_shakespeare_char.yaml (characters, batch 12 x 64) on that file.

Prints one JSON object.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from timing_flags import timing_parser

from kzoo.data.text_files import count_tokens
from kzoo.training.read_only_config import updated
from kzoo.training.recipe import load_recipe
from kzoo.training.tasks.registry import task_for

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHAKESPEARE = "/work/shared/data/tinyshakespeare.txt"
CASES = {
    "builtin": ("gpt_tiny", []),
    "tinyshakespeare": ("gpt_tiny", [f"data.train={SHAKESPEARE}"]),
    "tinyshakespeare_char": ("gpt_shakespeare_char", [f"data.train={SHAKESPEARE}"]),
}
SETTINGS = {"1": 1, "2": 2, "autotune": None}  # data.num_parallel_calls
MONITORING_OFF = [
    "monitor.graph=false",
    "monitor.projector=false",
    "monitor.attention_maps=false",
    "monitor.histograms=false",
    "monitor.gradient_norms=false",
]
UNTIMED_BATCHES = 20


def recipe_path(recipe):
    return os.path.join(ROOT, "recipes", f"{recipe}.yaml")


def build_pipelines(recipe, overrides, run_dir):
    """`({setting: dataset}, tokens per step, tokens per pass)` for one case."""
    config = load_recipe(recipe_path(recipe), overrides)
    task = task_for(config)
    task.resolve_data()
    tokenizer = task.make_tokenizer(run_dir)
    datasets = {}
    for name, value in SETTINGS.items():
        task.config = updated(config, data={"num_parallel_calls": value})  # read by make_data
        plan = task.make_data(tokenizer)
        datasets[name] = plan.train
    tokens = count_tokens(tokenizer, **task.source.train)
    return datasets, plan.tokens_per_step, tokens


def time_batches(iterator, count):
    """Seconds to read `count` batches, after dropping a few untimed."""
    for _ in range(UNTIMED_BATCHES):
        next(iterator)
    start = time.perf_counter()
    for _ in range(count):
        next(iterator)
    return time.perf_counter() - start


def measure_pipelines(datasets, tokens_per_step, rounds, round_tokens):
    """Median tokens/s and time to the first batch of each setting."""
    iterators, first_batch_seconds, first = {}, {}, {}
    for name, dataset in datasets.items():
        start = time.perf_counter()
        iterators[name] = iter(dataset)
        features, labels = next(iterators[name])
        first_batch_seconds[name] = round(time.perf_counter() - start, 3)
        first[name] = (features["token_ids"].numpy(), labels.numpy())
    reference = first["1"]
    for name, (token_ids, labels) in first.items():
        assert np.array_equal(token_ids, reference[0]), f"{name}: other token_ids"
        assert np.array_equal(labels, reference[1]), f"{name}: other labels"
    batches = max(1, round_tokens // tokens_per_step)
    rates = {name: [] for name in datasets}
    for _ in range(rounds):
        for name, iterator in iterators.items():
            seconds = time_batches(iterator, batches)
            rates[name].append(batches * tokens_per_step / seconds)
    return (
        {name: round(statistics.median(values)) for name, values in rates.items()},
        first_batch_seconds,
        batches,
    )


def training_tokens_per_second(recipe, overrides, steps, run_dir):
    """Steady tokens/s of a short `kzoo train` (its second epoch) and steps/s."""
    settings = [
        f"train.steps={2 * steps}",
        f"train.steps_per_epoch={steps}",
        *MONITORING_OFF,
        *overrides,
    ]
    command = [sys.executable, "-m", "kzoo.cli", "train", recipe_path(recipe), "--run-dir", run_dir]
    for setting in settings:
        command += ["--set", setting]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")
    with open(os.path.join(run_dir, "summary.json"), encoding="utf-8") as file:
        history = json.load(file)["history"]
    return history["tokens_per_second"][-1]


def main():
    parser = timing_parser(__doc__, "--cases", CASES, rounds=5)
    parser.add_argument("--round-tokens", type=int, default=500_000)
    parser.add_argument(
        "--train-steps",
        type=int,
        default=60,
        help="steps per epoch of the training runs (two epochs)",
    )
    args = parser.parse_args()
    load_at_start = [round(load, 2) for load in os.getloadavg()]
    results, training = [], {}
    with tempfile.TemporaryDirectory(prefix="kzoo-pipeline-") as scratch:
        for case in args.cases:
            recipe, overrides = CASES[case]
            datasets, tokens_per_step, tokens = build_pipelines(
                recipe, overrides, os.path.join(scratch, f"{case}-tokenizer")
            )
            rates, first_batch, batches = measure_pipelines(
                datasets, tokens_per_step, args.rounds, args.round_tokens
            )
            if recipe not in training:
                training[recipe] = training_tokens_per_second(
                    recipe, overrides, args.train_steps, os.path.join(scratch, f"{case}-run")
                )
            consumed = training[recipe]
            ratios = {name: round(rate / consumed, 1) for name, rate in rates.items()}
            results.append(
                {
                    "case": case,
                    "recipe": recipe,
                    "tokens_per_step": tokens_per_step,
                    "tokens_per_pass": tokens,
                    "batches_per_round": batches,
                    "pipeline_tokens_per_second": rates,
                    "first_batch_seconds": first_batch,
                    "training_tokens_per_second": round(consumed),
                    "training_steps_per_second": round(consumed / tokens_per_step, 2),
                    "ratio_pipeline_to_training": ratios,
                    "meets_10x": min(ratios.values()) >= 10,
                }
            )
    print(
        json.dumps(
            {
                "num_parallel_calls_settings": {k: v or "AUTOTUNE" for k, v in SETTINGS.items()},
                "rounds": args.rounds,
                "cpu_count": os.cpu_count(),
                "load_average_at_start": load_at_start,
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
