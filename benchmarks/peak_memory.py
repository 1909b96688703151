"""Peak resident memory of `make demo` and of a tinyshakespeare training run.

    TF_CPP_MIN_LOG_LEVEL=3 .venv/bin/python benchmarks/peak_memory.py \
        [--demo-steps N] [--shakespeare-steps 300] [--out /tmp/kzoo_peak_memory]

Runs each command as a subprocess (`python -m kzoo.cli ...`, what `.venv/bin/kzoo`
runs) and reads its peak resident set size from `os.wait4`: `ru_maxrss` of that
child, which on Linux is the largest of it and its own waited-for children. Sizes
are MiB (`ru_maxrss` KiB / 1024).

    baseline     python -c "import keras, tensorflow" (the floor of every command)
    demo         the steps of `make demo` on recipes/gpt_tiny.yaml: train (the
                 recipe's 1500 steps unless --demo-steps), evaluate, export,
                 check-serving, generate; outputs under --out, not the repository
    shakespeare  train recipes/gpt_shakespeare_char.yaml on
                 /work/shared/data/tinyshakespeare.txt for --shakespeare-steps
                 steps (epochs of 100 steps, monitoring on as in a real run)

The issue's reference, nanoGPT at 374 MB on tinyshakespeare, is a figure quoted
in the issue, not measured here. Prints one JSON object.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import time

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHAKESPEARE = "/work/shared/data/tinyshakespeare.txt"
NANOGPT_REFERENCE_MB = 374


def kzoo(*args):
    return [sys.executable, "-m", "kzoo.cli", *args]


def peak_rss(name, command, log_dir):
    """Runs `command`; returns its exit status, wall seconds and peak RSS in MiB."""
    log_path = os.path.join(log_dir, f"{name}.log")
    start = time.monotonic()
    with open(log_path, "w", encoding="utf-8") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode:
        with open(log_path, encoding="utf-8") as log:
            tail = log.read()[-3000:]
        raise RuntimeError(f"{name}: {' '.join(command)} exited with {process.returncode}:\n{tail}")
    return {
        "command": name,
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),
        "wall_seconds": round(time.monotonic() - start, 1),
    }


def demo_commands(out, steps):
    """`make demo`'s commands, writing under `out`."""
    run, export = os.path.join(out, "gpt_tiny"), os.path.join(out, "saved_models")
    served = os.path.join(export, "gpt_tiny", "1")
    train = kzoo("train", "recipes/gpt_tiny.yaml", "--run-dir", run)
    if steps:
        train += ["--set", f"train.steps={steps}"]
    return {
        "train": train,
        "evaluate": kzoo("evaluate", run),
        "export": kzoo(
            "export", run, "--out", export, "--name", "gpt_tiny", "--version", "1", "--overwrite"
        ),
        "check-serving": kzoo("check-serving", served),
        "generate": kzoo(
            "generate",
            served,
            "--prompt",
            "zo",
            "--prompt",
            "",
            "--max-new-tokens",
            "40",
            "--strategy",
            "sample",
            "--temperature",
            "0.9",
            "--seed",
            "1",
        ),
    }


def shakespeare_command(out, steps):
    return kzoo(
        "train",
        "recipes/gpt_shakespeare_char.yaml",
        "--run-dir",
        os.path.join(out, "shakespeare"),
        "--set",
        f"data.train={SHAKESPEARE}",
        "--set",
        f"train.steps={steps}",
        "--set",
        f"train.steps_per_epoch={min(steps, 100)}",
    )


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--demo-steps",
        type=int,
        default=None,
        help="training steps of the demo (default: the recipe's)",
    )
    parser.add_argument("--shakespeare-steps", type=int, default=300)
    parser.add_argument("--out", default="/tmp/kzoo_peak_memory")
    args = parser.parse_args()
    with open(os.path.join(ROOT, "recipes", "gpt_tiny.yaml"), encoding="utf-8") as file:
        demo_steps = args.demo_steps or yaml.safe_load(file)["train"]["steps"]
    shutil.rmtree(args.out, ignore_errors=True)
    os.makedirs(args.out)

    baseline = peak_rss("baseline", [sys.executable, "-c", "import keras, tensorflow"], args.out)
    demo = [
        peak_rss(name, command, args.out)
        for name, command in demo_commands(args.out, args.demo_steps).items()
    ]
    shakespeare = peak_rss(
        "shakespeare-train", shakespeare_command(args.out, args.shakespeare_steps), args.out
    )
    print(
        json.dumps(
            {
                "unit": "MiB (ru_maxrss / 1024)",
                "baseline_import_keras_tensorflow": baseline,
                "demo": {
                    "recipe": "gpt_tiny",
                    "train_steps": demo_steps,
                    "peak_rss_mib": max(step["peak_rss_mib"] for step in demo),
                    "commands": demo,
                },
                "shakespeare": {
                    "recipe": "gpt_shakespeare_char",
                    "train_steps": args.shakespeare_steps,
                    **shakespeare,
                },
                "nanogpt_reference_mb": NANOGPT_REFERENCE_MB,
                "nanogpt_reference_note": "quoted in issue 8, not measured here",
                "ratio_shakespeare_to_nanogpt": round(
                    shakespeare["peak_rss_mib"] / NANOGPT_REFERENCE_MB, 2
                ),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
