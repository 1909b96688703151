"""Every `kzoo` command given bad arguments: exit status 2 (1 for what the machine,
not the input, got wrong), exactly one line on stderr, no traceback.

The catalogue runs in this process through `kzoo.cli.main` (fast); a few cases run
as the user runs them, in a fresh process, to show that nothing else reaches stderr
(TensorFlow's C++ start-up lines included).
"""

import errno
import os
import socket
import subprocess
import sys

import numpy as np
import pytest

from kzoo import cli
from kzoo.testing import ROOT, TINY_OVERRIDES
from kzoo.training import checkpoints

RECIPE = os.path.join(ROOT, "recipes", "gpt_tiny.yaml")


@pytest.fixture(scope="module")
def paths(tmp_path_factory):
    """The paths the catalogue refers to by name."""
    import tensorflow as tf

    from kzoo.testing.tiny_runs import build_run

    root = tmp_path_factory.mktemp("cli_errors")
    (root / "afile.txt").write_text("not a directory\n")
    (root / "bad.yaml").write_text("train:\n  steps: [1, 2\n")
    (root / "empty").mkdir()
    run = build_run(str(root / "run"), "gpt")

    class Classifier(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def classify(self, texts):
            return {"label": texts}

    classifier = Classifier()
    saved = str(root / "classifier" / "1")
    tf.saved_model.save(classifier, saved, signatures={"classify": classifier.classify})
    return {
        "recipe": RECIPE,
        "file": str(root / "afile.txt"),
        "bad_yaml": str(root / "bad.yaml"),
        "dir": str(root / "empty"),
        "missing": str(root / "missing"),
        "run": run,
        "classifier": saved,
        "out": str(root / "out"),
    }


def run_in_process(argv, capsys):
    """`(exit status, stdout, stderr)` of `kzoo ARGV` through `cli.main`."""
    try:
        status = cli.main(argv)
    except SystemExit as exit:  # argparse
        status = exit.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def assert_one_line_error(status, err, expected_status, fragment):
    assert "Traceback" not in err, err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert status == expected_status, err
    assert fragment in lines[0], lines[0]


# (argv with {name} placeholders from `paths`, exit status, expected fragment)
CATALOGUE = {
    "train: missing recipe": (["train", "{missing}.yaml"], 2, "config file not found"),
    "train: invalid YAML": (["train", "{bad_yaml}"], 2, "invalid YAML"),
    "train: no recipe": (["train"], 2, "give a recipe"),
    "train: run dir is a file": (
        ["train", "{recipe}", "--run-dir", "{file}"],
        2,
        "--run-dir {file}: is a file, not a directory",
    ),
    "train: run dir under a file": (
        ["train", "{recipe}", "--run-dir", "{file}/sub"],
        2,
        "--run-dir {file}/sub: {file} is a file, not a directory",
    ),
    "train: unknown --set key": (
        ["train", "{recipe}", "--set", "train.stepz=3"],
        2,
        "--set 'train.stepz=3': unknown key; valid keys: ",
    ),
    "train: bad --set value": (
        ["train", "{recipe}", "--set", "train.steps=-1"],
        2,
        "--set 'train.steps=-1': must be > 0, got -1",
    ),
    "train: --set of the wrong type": (
        ["train", "{recipe}", "--set", "model.hidden_dim=abc"],
        2,
        "--set 'model.hidden_dim=abc': expected int",
    ),
    "train: --set without a value": (
        ["train", "{recipe}", "--set", "train.steps"],
        2,
        "expected KEY=VALUE",
    ),
    "train: --set without a section": (
        ["train", "{recipe}", "--set", "steps=3"],
        2,
        "key must be SECTION.KEY",
    ),
    "train: --set of an unknown section": (
        ["train", "{recipe}", "--set", "optim.lr=1"],
        2,
        "unknown section 'optim'",
    ),
    "train: contradictory schedule": (
        ["train", "{recipe}", "--set", "train.min_learning_rate=0.1"],
        2,
        "is below train.min_learning_rate 0.1",
    ),
    "train: missing data": (
        ["train", "{recipe}", "--run-dir", "{out}/train", "--set", "data.train={missing}/*.txt"],
        2,
        "{missing}/*.txt",
    ),
    "train: resume a directory that is no run": (
        ["train", "--resume", "{dir}"],
        2,
        "--resume {dir}: no run there",
    ),
    "train: resume a file": (["train", "--resume", "{file}"], 2, "no run there"),
    "train: resume with a recipe": (
        ["train", "{recipe}", "--resume", "{run}"],
        2,
        "takes no CONFIG",
    ),
    "sweep: no grid": (["sweep", "{recipe}"], 2, "give at least one --grid"),
    "sweep: grid without a section": (
        ["sweep", "{recipe}", "--grid", "lr=1,2"],
        2,
        "key must be SECTION.KEY",
    ),
    "sweep: grid without values": (
        ["sweep", "{recipe}", "--grid", "train.learning_rate="],
        2,
        "no values",
    ),
    "sweep: bad grid value": (
        ["sweep", "{recipe}", "--grid", "train.learning_rate=0.1,-1"],
        2,
        "train.learning_rate: must be > 0, got -1",
    ),
    "sweep: unknown --set key": (
        ["sweep", "{recipe}", "--grid", "train.steps=1,2", "--set", "train.stepz=1"],
        2,
        "--set 'train.stepz=1': unknown key",
    ),
    "sweep: missing recipe": (
        ["sweep", "{missing}.yaml", "--grid", "train.steps=1,2"],
        2,
        "config file not found",
    ),
    "sweep: out is a file": (
        ["sweep", "{recipe}", "--grid", "train.steps=1,2", "--out", "{file}"],
        2,
        "--out {file}: is a file, not a directory",
    ),
    "evaluate: missing run": (["evaluate", "{missing}"], 2, "no such run directory"),
    "evaluate: a file": (["evaluate", "{file}"], 2, "is a file, not a run directory"),
    "evaluate: a directory that is no run": (["evaluate", "{dir}"], 2, "not a kzoo run directory"),
    "evaluate: a SavedModel": (["evaluate", "{classifier}"], 2, "not a kzoo run directory"),
    "evaluate: missing data": (
        ["evaluate", "{run}", "--data", "{missing}.txt"],
        2,
        "{missing}.txt",
    ),
    "generate: missing model": (
        ["generate", "{missing}", "--prompt", "a"],
        2,
        "no such run directory or SavedModel",
    ),
    "generate: a file": (["generate", "{file}", "--prompt", "a"], 2, "is a file"),
    "generate: a directory that is no run": (["generate", "{dir}", "--prompt", "a"], 2, "{dir}: "),
    "generate: no prompt": (
        ["generate", "{run}"],
        2,
        "the following arguments are required: --prompt",
    ),
    "generate: max-new-tokens 0": (
        ["generate", "{run}", "--prompt", "a", "--max-new-tokens", "0"],
        2,
        "--max-new-tokens: must be >= 1, got 0",
    ),
    "generate: max-new-tokens above the model's": (
        ["generate", "{run}", "--prompt", "a", "--max-new-tokens", "1000"],
        2,
        "--max-new-tokens: must be in [1, 31] (the model's max_sequence_length is 32)",
    ),
    "generate: max-new-tokens not a number": (
        ["generate", "{run}", "--prompt", "a", "--max-new-tokens", "many"],
        2,
        "argument --max-new-tokens: invalid int value: 'many'",
    ),
    "generate: sampling at temperature 0": (
        ["generate", "{run}", "--prompt", "a", "--strategy", "sample", "--temperature", "0"],
        2,
        "--temperature: must be > 0",
    ),
    "generate: temperature nan": (
        ["generate", "{run}", "--prompt", "a", "--temperature", "nan"],
        2,
        "--temperature: must be a finite number",
    ),
    "generate: top-p 0": (
        ["generate", "{run}", "--prompt", "a", "--top-p", "0"],
        2,
        "--top-p: must be in (0, 1]",
    ),
    "generate: top-k -1": (
        ["generate", "{run}", "--prompt", "a", "--top-k", "-1"],
        2,
        "--top-k: must be >= 0",
    ),
    "generate: num-beams 0": (
        ["generate", "{run}", "--prompt", "a", "--num-beams", "0"],
        2,
        "--num-beams: must be >= 1",
    ),
    "generate: unknown strategy": (
        ["generate", "{run}", "--prompt", "a", "--strategy", "nucleus"],
        2,
        "invalid choice: 'nucleus'",
    ),
    "generate: a SavedModel of another kind": (
        ["generate", "{classifier}", "--prompt", "a"],
        2,
        "its signatures (classify) do not generate text",
    ),
    "import: missing source": (
        ["import", "{missing}", "--run-dir", "{out}"],
        2,
        "{missing}: no such checkpoint directory",
    ),
    "import: a file": (
        ["import", "{file}", "--run-dir", "{out}"],
        2,
        "is a file, not a checkpoint directory",
    ),
    "import: a directory that is no checkpoint": (
        ["import", "{dir}", "--run-dir", "{out}"],
        2,
        "neither a Hugging Face checkpoint (config.json, model.safetensors) nor a KerasHub",
    ),
    "import: no run directory": (
        ["import", "{dir}"],
        2,
        "the following arguments are required: --run-dir",
    ),
    "import: run directory is a file": (
        ["import", "{dir}", "--run-dir", "{file}"],
        2,
        "--run-dir {file}: is a file, not a directory",
    ),
    "import: into an existing run": (
        ["import", "{dir}", "--run-dir", "{run}"],
        2,
        "{run}: already exists and is not empty; give a new --run-dir",
    ),
    "quantize: missing run": (
        ["quantize", "{missing}", "--mode", "int8", "--run-dir", "{out}"],
        2,
        "{missing}: no such run directory",
    ),
    "quantize: a file": (
        ["quantize", "{file}", "--mode", "int8", "--run-dir", "{out}"],
        2,
        "is a file, not a run directory",
    ),
    "quantize: no mode": (
        ["quantize", "{run}", "--run-dir", "{out}"],
        2,
        "the following arguments are required: --mode",
    ),
    "quantize: unknown mode": (
        ["quantize", "{run}", "--mode", "int2", "--run-dir", "{out}"],
        2,
        "argument --mode: invalid choice: 'int2'",
    ),
    "quantize: run directory is a file": (
        ["quantize", "{run}", "--mode", "int8", "--run-dir", "{file}"],
        2,
        "--run-dir {file}: is a file, not a directory",
    ),
    "quantize: into an existing run": (
        ["quantize", "{run}", "--mode", "int8", "--run-dir", "{run}"],
        2,
        "{run}: already exists and is not empty; give a new --run-dir",
    ),
    "quantize: a directory that is no run": (
        ["quantize", "{dir}", "--mode", "int8", "--run-dir", "{out}"],
        2,
        "{dir}: no trained model (model.keras)",
    ),
    "export: lora-only without --out": (
        ["export", "{run}", "--lora-only"],
        2,
        "--lora-only: give the adapters' directory with --out DIR",
    ),
    "export: lora-only of a run without adapters": (
        ["export", "{run}", "--lora-only", "--out", "{out}"],
        2,
        "no LoRA adapters; only a finished run with train.lora has them",
    ),
    "export: missing run": (["export", "{missing}"], 2, "no such run directory"),
    "export: a file": (["export", "{file}"], 2, "is a file, not a run directory"),
    "export: a directory that is no run": (["export", "{dir}", "--out", "{out}"], 2, "{dir}"),
    "export: bad name": (
        ["export", "{run}", "--name", "../evil", "--out", "{out}"],
        2,
        "--name: '../evil' is not a valid model name",
    ),
    "export: version 0": (["export", "{run}", "--version", "0", "--out", "{out}"], 2, "--version"),
    "export: version not a number": (
        ["export", "{run}", "--version", "one"],
        2,
        "argument --version: invalid int value",
    ),
    "export: out is a file": (
        ["export", "{run}", "--out", "{file}"],
        2,
        "--out {file}: is a file, not a directory",
    ),
    "export: litert without --out": (
        ["export", "{run}", "--format", "litert"],
        2,
        "--format litert: give the model's directory with --out DIR",
    ),
    "export: litert into a directory that is not empty": (
        ["export", "{run}", "--format", "litert", "--out", "{run}"],
        2,
        "{run}: already exists and is not empty; give a new --out or pass --overwrite",
    ),
    "export: litert with an unknown --quantize": (
        ["export", "{run}", "--format", "litert", "--quantize", "int4", "--out", "{out}"],
        2,
        "argument --quantize: invalid choice: 'int4'",
    ),
    "export: --quantize without --format litert": (
        ["export", "{run}", "--quantize", "dynamic_int8", "--out", "{out}"],
        2,
        "--quantize: only with --format litert",
    ),
    "check-serving: missing": (
        ["check-serving", "{missing}"],
        2,
        "no such SavedModel version directory",
    ),
    "check-serving: a file": (["check-serving", "{file}"], 2, "is a file"),
    "check-serving: a directory that is no SavedModel": (
        ["check-serving", "{dir}"],
        2,
        "not a SavedModel (no saved_model.pb)",
    ),
    "tensorboard: missing run": (["tensorboard", "{missing}"], 2, "no such run directory"),
    "tensorboard: port 0": (
        ["tensorboard", "{run}", "--port", "0"],
        2,
        "--port: must be in [1, 65535], got 0",
    ),
    "tensorboard: port too large": (
        ["tensorboard", "{run}", "--port", "70000"],
        2,
        "--port: must be in [1, 65535]",
    ),
    "tensorboard: port not a number": (
        ["tensorboard", "{run}", "--port", "http"],
        2,
        "invalid int value: 'http'",
    ),
    "tensorboard: unknown host": (
        ["tensorboard", "{run}", "--host", "no-such-host.invalid"],
        2,
        "--host no-such-host.invalid: not an address of this machine",
    ),
    "unknown command": (["frobnicate"], 2, "invalid choice: 'frobnicate'"),
}


def _fill(items, paths):
    return [item.format(**paths) for item in items]


def test_the_catalogue_covers_every_command():
    commands = {case.split(":")[0] for case in CATALOGUE}
    assert set(cli.COMMANDS) <= commands


@pytest.mark.parametrize("case", sorted(CATALOGUE))
def test_bad_arguments_give_one_line(case, paths, capsys):
    argv, expected_status, fragment = CATALOGUE[case]
    status, _, err = run_in_process(_fill(argv, paths), capsys)
    assert_one_line_error(status, err, expected_status, fragment.format(**paths))


def test_a_port_in_use_is_one_line(paths, capsys):
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        status, out, err = run_in_process(
            ["tensorboard", paths["run"], "--port", str(port)], capsys
        )
    assert_one_line_error(status, err, 2, f"--port {port}: cannot listen on 127.0.0.1:{port}")
    assert out == ""


def test_a_failed_serving_check_is_one_line(paths, capsys):
    status, out, err = run_in_process(["check-serving", paths["classifier"]], capsys)
    assert_one_line_error(status, err, 1, "FAILED files")
    assert "serving check FAILED" in out


# A few cases as the user runs them: nothing but the error reaches stderr.
SUBPROCESS_CASES = [
    "train: run dir under a file",
    "train: unknown --set key",
    "generate: a SavedModel of another kind",
    "check-serving: a directory that is no SavedModel",
]


@pytest.mark.parametrize("case", SUBPROCESS_CASES)
def test_bad_arguments_in_a_fresh_process_print_nothing_else(case, paths):
    argv, expected_status, fragment = CATALOGUE[case]
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(
        [sys.executable, "-m", "kzoo.cli", *_fill(argv, paths)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert_one_line_error(
        result.returncode, result.stderr, expected_status, fragment.format(**paths)
    )
    assert result.stdout == ""


def test_a_full_disk_at_a_checkpoint_is_one_line_and_keeps_the_last(tmp_path, monkeypatch, capsys):
    """The second checkpoint's write fails with ENOSPC: exit 1, one line naming the
    checkpoint, the last good step and the resume command; step 3's is intact."""
    run_dir = str(tmp_path / "run")
    savez = np.savez
    calls = []

    def savez_on_a_full_disk(file, **arrays):
        calls.append(file)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        savez(file, **arrays)

    monkeypatch.setattr(checkpoints.np, "savez", savez_on_a_full_disk)
    argv = ["train", RECIPE, "--run-dir", run_dir]
    # A warmup as long as the run, which the log notes (one run, two checks).
    for override in TINY_OVERRIDES + [
        "train.warmup_steps=6",
        "train.sample_prompts=[]",
        "monitor.graph=false",
        "monitor.projector=false",
        "monitor.attention_maps=false",
        "monitor.histograms=false",
    ]:
        argv += ["--set", override]
    status, out, err = run_in_process(argv, capsys)
    assert (
        "Note: train.warmup_steps 6 is not below the run's 6 steps (train.steps, or "
        "train.epochs); the learning rate warms up over 5 steps instead"
    ) in out
    last = os.path.join(run_dir, "checkpoints", "step-00000003")
    assert_one_line_error(
        status,
        err,
        1,
        f"{os.path.join(run_dir, 'checkpoints', 'step-00000006')}: could not write the "
        f"checkpoint of step 6 (No space left on device); the last complete checkpoint "
        f"is step 3 ({last}). Free space (or fix the cause), then resume with: "
        f"kzoo train --resume {run_dir}",
    )
    assert [
        step for step, _ in checkpoints.list_checkpoints(os.path.join(run_dir, "checkpoints"))
    ] == [3]
    assert sorted(os.listdir(os.path.join(run_dir, "checkpoints"))) == ["step-00000003"]
    assert checkpoints.read_state(last)["step"] == 3
    with np.load(os.path.join(last, checkpoints.VARIABLES), allow_pickle=False) as arrays:
        assert all(np.isfinite(arrays[key]).all() for key in arrays.files)


@pytest.mark.parametrize("where", ["before", "after"])
def test_verbose_shows_the_tensorflow_start_up_log(where, paths):
    """`kzoo --verbose CMD` / `kzoo CMD ... --verbose`: the C++ log lines hidden above
    reach stderr, before the same one-line error."""
    from kzoo.commands.startup import _CPP_LOG_LINE

    argv, expected_status, fragment = CATALOGUE["generate: a SavedModel of another kind"]
    argv = _fill(argv, paths)
    argv = ["--verbose", *argv] if where == "before" else [*argv, "--verbose"]
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(
        [sys.executable, "-m", "kzoo.cli", *argv],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == expected_status
    lines = result.stderr.splitlines()
    assert any(_CPP_LOG_LINE.match(line) for line in lines), result.stderr
    assert fragment.format(**paths) in lines[-1]
