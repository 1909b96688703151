"""Peak resident memory of `make demo`, of a tinyshakespeare training run and of a
GPT-2-small-sized import, fine-tuning and serving (`--real-size`).

    TF_CPP_MIN_LOG_LEVEL=3 .venv/bin/python benchmarks/peak_memory.py \
        [--demo-steps N] [--shakespeare-steps 300] [--out /tmp/kzoo_peak_memory]
    TF_CPP_MIN_LOG_LEVEL=3 .venv/bin/python benchmarks/peak_memory.py --real-size \
        [--real-size-steps 4] [--out /tmp/kzoo_peak_memory]

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

`--real-size` measures these instead of demo and shakespeare (issue 23), on a
random GPT-2-small-shaped Hugging Face checkpoint (124M parameters; written with
NumPy as `benchmarks/import_checkpoint.py` does, with a 400-token byte-level BPE):

    import       kzoo import CHECKPOINT --run-dir RUN
    fine-tune    kzoo train recipes/gpt_small_text.yaml with train.init_from=RUN
                 (the recipe's way to continue an imported GPT-2) for
                 --real-size-steps steps of 4 x 256 tokens of tinyshakespeare's
                 first 40,000 characters (validation: the last 10%), monitoring on
    export       kzoo export of the fine-tuned run (a SavedModel)
    serve        python -c: tf.saved_model.load of the export and one `generate`
                 call, 32 greedy new tokens (TensorFlow and TensorFlow Text only,
                 what a serving process loads)
    serve-floor  python -c "import tensorflow, tensorflow_text" (the floor of serve)

Each is reported against the float32 weights' own size (parameters x 4 bytes)
and its floor. The checkpoint, runs and export are deleted afterwards (the logs
stay in --out).
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
REAL_SIZE_TEXT_CHARACTERS = 40_000
SERVE = """
import tensorflow as tf, tensorflow_text
generate = tf.saved_model.load({path!r}).signatures["generate"]
out = generate(prompts=tf.constant(["ROMEO:"]), max_new_tokens=tf.constant([32]),
               temperature=tf.constant([0.0]), top_k=tf.constant([0]),
               top_p=tf.constant([1.0]), seed=tf.constant([0]))
assert int(out["token_count"][0]) > 0, out
"""


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


def real_size_commands(out, steps):
    """The `--real-size` commands (module docstring), writing under `out`."""
    source, run = os.path.join(out, "gpt2-small"), os.path.join(out, "gpt2-small-run")
    tuned, exports = os.path.join(out, "gpt2-small-tuned"), os.path.join(out, "saved_models")
    text = os.path.join(out, "text.txt")
    with open(SHAKESPEARE, encoding="utf-8") as full, open(text, "w", encoding="utf-8") as part:
        part.write(full.read(REAL_SIZE_TEXT_CHARACTERS))
    settings = {
        "train.init_from": run,
        "data.train": text,
        "data.batch_size": 4,
        "data.sequence_length": 256,
        "train.steps": steps,
        "train.steps_per_epoch": steps,
        "train.warmup_steps": 1,
        "train.learning_rate": 0.0001,
    }
    fine_tune = kzoo("train", "recipes/gpt_small_text.yaml", "--run-dir", tuned)
    for key, value in settings.items():
        fine_tune += ["--set", f"{key}={value}"]
    served = os.path.join(exports, "gpt2_small", "1")
    return {
        "import": kzoo("import", source, "--run-dir", run),
        "fine-tune": fine_tune,
        "export": kzoo("export", tuned, "--out", exports, "--name", "gpt2_small", "--version", "1"),
        "serve": [sys.executable, "-c", SERVE.format(path=served)],
    }


def real_size(out, steps, baseline):
    """Peak RSS of the `--real-size` commands, against the weights and the floors."""
    from kzoo.testing.hf_fixtures import write_random_gpt2_checkpoint
    from kzoo.testing.hf_tokenizers import write_gpt2_tokenizer

    commands = real_size_commands(out, steps)
    source = write_gpt2_tokenizer(write_random_gpt2_checkpoint(os.path.join(out, "gpt2-small")))
    serve_floor = peak_rss(
        "serve-floor", [sys.executable, "-c", "import tensorflow, tensorflow_text"], out
    )
    measured = [peak_rss(name, command, out) for name, command in commands.items()]
    with open(os.path.join(out, "gpt2-small-run", "summary.json"), encoding="utf-8") as file:
        parameters = json.load(file)["parameters"]
    weights_mib = parameters * 4 / 2**20
    for entry in measured:
        floor = serve_floor if entry["command"] == "serve" else baseline
        entry["over_floor_mib"] = round(entry["peak_rss_mib"] - floor["peak_rss_mib"], 1)
        entry["over_floor_in_weights"] = round(entry["over_floor_mib"] / weights_mib, 2)
        entry["peak_in_weights"] = round(entry["peak_rss_mib"] / weights_mib, 2)
    checkpoint_mib = os.path.getsize(os.path.join(source, "model.safetensors")) / 2**20
    for name in os.listdir(out):  # The logs stay; the checkpoint, runs and export go.
        path = os.path.join(out, name)
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif name == "text.txt":
            os.remove(path)
    return {
        "parameters": parameters,
        "float32_weights_mib": round(weights_mib, 1),
        "checkpoint_mib": round(checkpoint_mib, 1),
        "fine_tune": {"steps": steps, "batch_size": 4, "sequence_length": 256},
        "serve_floor_import_tensorflow_text": serve_floor,
        "commands": measured,
    }


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
    parser.add_argument(
        "--real-size",
        action="store_true",
        help="GPT-2 small's import, fine-tuning and serving instead of demo and shakespeare",
    )
    parser.add_argument("--real-size-steps", type=int, default=4)
    parser.add_argument("--out", default="/tmp/kzoo_peak_memory")
    args = parser.parse_args()
    with open(os.path.join(ROOT, "recipes", "gpt_tiny.yaml"), encoding="utf-8") as file:
        demo_steps = args.demo_steps or yaml.safe_load(file)["train"]["steps"]
    shutil.rmtree(args.out, ignore_errors=True)
    os.makedirs(args.out)

    baseline = peak_rss("baseline", [sys.executable, "-c", "import keras, tensorflow"], args.out)
    if args.real_size:
        result = {
            "unit": "MiB (ru_maxrss / 1024)",
            "baseline_import_keras_tensorflow": baseline,
            "real_size": real_size(args.out, args.real_size_steps, baseline),
        }
        print(json.dumps(result, indent=2))
        return
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
