"""Step-exact resume: checkpoint files, atomic run files, fit phases, signals (through
the CLI too), what a resume may change, and SIGKILL."""

import math
import os
import random
import re
import shutil
import signal
import subprocess
import time

import keras
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kzoo import staged_files
from kzoo.testing import ROOT, TINY_OVERRIDES, assert_same_weights, interrupt_at, kzoo_command
from kzoo.testing.tiers import full_only
from kzoo.training import checkpoints, resume
from kzoo.training.run_directory import RunDirectory

# The interrupted runs share one reference run (module fixture): one worker.
pytestmark = pytest.mark.xdist_group("resume")

# Dropout on, so the dropout seed state must be restored too.
RESUMABLE = TINY_OVERRIDES + [
    "model.dropout=0.1",
    "train.sample_prompts=[]",
    "train.steps=12",
    "train.steps_per_epoch=5",
    "train.checkpoint_every=2",
]


# --- Fit phases ---------------------------------------------------------------------


def _batches(phases, total_steps):
    """(epoch, input position) of every batch `phases` train, as `fit` would."""
    trained = []
    for phase in phases:
        position = phase.skip_batches
        for epoch in range(phase.initial_epoch, phase.epochs):
            for _ in range(phase.steps_per_epoch):
                if position >= total_steps:  # StepLimit stops the run.
                    return trained
                trained.append((epoch, position))
                position += 1
    return trained


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 40), st.integers(1, 9), st.data())
def test_fit_phases_continue_the_uninterrupted_schedule(total_steps, per_epoch, data):
    epochs = math.ceil(total_steps / per_epoch)
    step = data.draw(st.integers(0, total_steps))
    uninterrupted = _batches(resume.fit_phases(0, total_steps, per_epoch, epochs), total_steps)
    assert [position for _, position in uninterrupted] == list(range(total_steps))
    assert all(epoch == position // per_epoch for epoch, position in uninterrupted)
    resumed = _batches(resume.fit_phases(step, total_steps, per_epoch, epochs), total_steps)
    assert resumed == uninterrupted[step:]


# --- Checkpoint files ---------------------------------------------------------------


def _model(width=4, seed=0):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [
            keras.Input((3,)),
            keras.layers.Dense(width),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(1),
        ]
    )
    model.compile(optimizer=keras.optimizers.AdamW(1e-2), loss="mse")
    model.fit(np.ones((8, 3)), np.ones((8, 1)), epochs=1, verbose=0)
    return model


def _state(model):
    return [keras.ops.convert_to_numpy(v) for v in model.variables + model.optimizer.variables]


def test_restore_gives_back_weights_optimizer_and_seed_state(tmp_path):
    model = _model()
    saved = _state(model)
    path = checkpoints.write(str(tmp_path), model, {"step": 7, "history": []})
    model.fit(np.zeros((8, 3)), np.zeros((8, 1)), epochs=1, verbose=0)
    assert any(not np.array_equal(a, b) for a, b in zip(saved, _state(model)))
    assert checkpoints.restore(path, model)["step"] == 7
    for before, after in zip(saved, _state(model)):
        np.testing.assert_array_equal(before, after)
    fresh = _model(seed=1)  # an unbuilt optimizer is built first
    checkpoints.restore(path, fresh)
    for before, after in zip(saved, _state(fresh)):
        np.testing.assert_array_equal(before, after)


def test_a_crash_during_a_write_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    model = _model()
    directory = str(tmp_path)
    checkpoints.write(directory, model, {"step": 2})
    good = checkpoints.write(directory, model, {"step": 4})

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(checkpoints.json, "dump", crash)
    with pytest.raises(OSError, match="disk full"):
        checkpoints.write(directory, model, {"step": 6})
    assert checkpoints.latest(directory) == good
    assert sorted(os.listdir(directory)) == ["step-00000002", "step-00000004"]
    # What SIGKILL during a write leaves: an unfinished temporary directory.
    os.makedirs(os.path.join(directory, ".tmp-killed"))
    open(os.path.join(directory, ".tmp-killed", checkpoints.VARIABLES), "wb").close()
    assert checkpoints.latest(directory) == good
    checkpoints.remove_unfinished(directory)
    assert sorted(os.listdir(directory)) == ["step-00000002", "step-00000004"]


def _write_half_then_fail(*args, **kwargs):
    """Stands in for a serializer (`json.dump`, `yaml.safe_dump`): writes part of
    the file, then fails as a full disk does."""
    stream = next(arg for arg in args if hasattr(arg, "write"))
    stream.write("{half")
    raise OSError(28, "No space left on device")


@pytest.mark.parametrize("name", [RunDirectory.CONFIG, RunDirectory.MODEL, RunDirectory.SUMMARY])
def test_a_crash_while_a_run_file_is_written_keeps_the_previous_one(tmp_path, monkeypatch, name):
    from kzoo.training import config as config_module
    from kzoo.training.recipe import load_recipe

    recipe = os.path.join(ROOT, "recipes", "gpt_tiny.yaml")
    path = tmp_path / name
    run = RunDirectory(tmp_path)
    write = {  # as the trainer writes each
        RunDirectory.CONFIG: lambda seed: run.write_config(
            load_recipe(recipe, [f"train.seed={seed}"])
        ),
        RunDirectory.MODEL: lambda seed: run.save_model(_model(seed=seed)),
        RunDirectory.SUMMARY: lambda seed: run.write_summary({"seed": seed}),
    }[name]
    write(1)
    previous = path.read_bytes()

    def save_half_then_fail(model, filepath, *args, **kwargs):
        with open(filepath, "w") as f:
            _write_half_then_fail(f)

    monkeypatch.setattr(config_module.yaml, "safe_dump", _write_half_then_fail)
    monkeypatch.setattr(keras.Model, "save", save_half_then_fail)
    monkeypatch.setattr(staged_files.json, "dump", _write_half_then_fail)
    with pytest.raises(OSError, match="No space left on device"):
        write(2)
    assert path.read_bytes() == previous
    assert os.listdir(tmp_path) == [name]  # no partial or temporary file


def test_only_the_two_newest_checkpoints_are_kept(tmp_path):
    model = _model()
    for step in (1, 2, 3, 4):
        checkpoints.write(str(tmp_path), model, {"step": step})
    assert [s for s, _ in checkpoints.list_checkpoints(str(tmp_path))] == [3, 4]


def test_a_checkpoint_of_another_model_is_refused(tmp_path):
    path = checkpoints.write(str(tmp_path), _model(width=4), {"step": 1})
    with pytest.raises(checkpoints.CheckpointError, match=r"variables\.npz: .* shape"):
        checkpoints.restore(path, _model(width=5))


# --- Interrupted runs ---------------------------------------------------------------


def test_ctrl_c_twice_stops_at_once():
    previous = signal.getsignal(signal.SIGINT)
    with resume.SignalFlag() as flag:
        os.kill(os.getpid(), signal.SIGINT)  # noted: training goes on to a checkpoint
        assert flag.received == signal.SIGINT
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(5)  # (the handler runs before this ends)
    assert signal.getsignal(signal.SIGINT) is previous


def _train(run_dir, overrides=()):
    from kzoo.training.recipe import load_recipe
    from kzoo.training.trainer import train

    config = load_recipe(
        os.path.join(ROOT, "recipes", "gpt_tiny.yaml"), RESUMABLE + list(overrides)
    )
    return train(config, str(run_dir), verbose=0)


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("reference") / "run"
    return run_dir, _train(run_dir)


def test_signals_checkpoint_then_resume_gives_the_uninterrupted_run(
    tmp_path, monkeypatch, capsys, reference_run
):
    from kzoo.cli import main

    reference_dir, reference = reference_run
    handlers = {s: signal.getsignal(s) for s in (signal.SIGTERM, signal.SIGINT)}
    # SIGTERM mid-epoch (step 3), SIGINT at an epoch's last batch (step 10).
    interrupt_at(monkeypatch, {3: signal.SIGTERM, 10: signal.SIGINT})
    run_dir = tmp_path / "run"
    # `kzoo train` (in this process): message and exit status 128 + SIGTERM.
    sets = [arg for override in RESUMABLE for arg in ("--set", override)]
    assert (
        main(
            [
                "train",
                os.path.join(ROOT, "recipes", "gpt_tiny.yaml"),
                "--run-dir",
                str(run_dir),
                *sets,
            ]
        )
        == 128 + signal.SIGTERM
    )
    assert (
        f"SIGTERM received: checkpoint written at step 3. Resume with\n"
        f"    kzoo train --resume {run_dir}"
    ) in capsys.readouterr().err
    # The unfinished run has no model yet: each command says where it stopped.
    for command in (
        ["evaluate", str(run_dir)],
        ["generate", str(run_dir), "--prompt", "zo"],
        ["export", str(run_dir), "--out", str(tmp_path / "exports")],
    ):
        assert main(command) == 2
        assert capsys.readouterr().err == (
            f"kzoo {command[0]}: error: {run_dir}: training was interrupted at step 3 of "
            f"12 (no model.keras yet); finish it with `kzoo train --resume {run_dir}`\n"
        )
    with pytest.raises(resume.TrainingInterrupted) as interrupted:
        _train(run_dir)
    assert interrupted.value.step == 10
    assert interrupted.value.exit_status == 128 + signal.SIGINT
    assert checkpoints.latest(str(run_dir / "checkpoints")).endswith("00000010")
    assert not (run_dir / RunDirectory.MODEL).exists()
    assert {s: signal.getsignal(s) for s in handlers} == handlers  # restored
    summary = _train(run_dir)
    assert summary["resumed_from_step"] == 10 and summary["steps"] == 12
    # Same epoch boundaries: validation saw the same weights at the same steps.
    assert summary["history"]["val_loss"] == pytest.approx(
        reference["history"]["val_loss"], abs=1e-6
    )
    assert summary["history"]["loss"][-1] == pytest.approx(
        reference["history"]["loss"][-1], abs=1e-6
    )
    assert_same_weights(reference_dir, run_dir)


def test_resuming_with_a_different_recipe_names_the_key(tmp_path, reference_run):
    from kzoo.training.config import ConfigError

    run_dir = tmp_path / "run"
    shutil.copytree(reference_run[0], run_dir)
    os.remove(run_dir / RunDirectory.SUMMARY)  # as if killed before the end
    with pytest.raises(ConfigError, match=r"train\.learning_rate: 0\.5 differs from"):
        _train(run_dir, ["train.learning_rate=0.5"])
    with pytest.raises(FileExistsError, match="already holds a finished run"):
        _train(reference_run[0])


# --- SIGINT through the CLI; what a resume may change ------------------------------


def _lines(first, count):
    return "".join(
        f"line {i}: the quick brown fox jumps over the lazy dog\n"
        for i in range(first, first + count)
    ).encode()


@pytest.fixture(scope="module")
def sigint_run(tmp_path_factory):
    """`(run_dir, overrides, exit status, stderr)` of a `kzoo train` subprocess sent
    SIGINT mid-epoch, after its first checkpoint. Each of its data files holds one
    line that is not UTF-8 (`data.on_bad_record: skip`)."""
    root = tmp_path_factory.mktemp("sigint")
    train, validation = root / "train.txt", root / "validation.txt"
    train.write_bytes(_lines(0, 100) + b"bad \xff line\n" + _lines(100, 100))
    validation.write_bytes(_lines(200, 50) + b"\xfe\n" + _lines(250, 50))
    overrides = [o for o in RESUMABLE if not o.startswith("train.steps")] + [
        "train.steps=1000",
        "train.steps_per_epoch=500",
        "tokenizer.kind=char",
        "tokenizer.vocab_size=null",
        f"data.train={train}",
        f"data.validation={validation}",
        "data.on_bad_record=skip",
    ]
    run_dir = str(root / "run")
    sets = [arg for override in overrides for arg in ("--set", override)]
    process = subprocess.Popen(
        kzoo_command(
            "train", os.path.join(ROOT, "recipes", "gpt_tiny.yaml"), "--run-dir", run_dir, *sets
        ),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    directory = os.path.join(run_dir, RunDirectory.CHECKPOINTS)
    deadline = time.monotonic() + 300
    while (
        process.poll() is None
        and not checkpoints.list_checkpoints(directory)
        and time.monotonic() < deadline
    ):
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    stderr = process.communicate(timeout=300)[1]
    return run_dir, overrides, process.returncode, stderr


def _train_recipe(run_dir, overrides, verbose=0):
    from kzoo.training.recipe import load_recipe
    from kzoo.training.trainer import train

    config = load_recipe(os.path.join(ROOT, "recipes", "gpt_tiny.yaml"), overrides)
    return train(config, str(run_dir), verbose=verbose)


@pytest.mark.slow
def test_sigint_through_the_cli_exits_130_with_the_resume_message(sigint_run):
    run_dir, _, status, stderr = sigint_run
    assert status == 130, stderr[-3000:]
    assert re.search(
        r"kzoo train: SIGINT received: checkpoint written at step \d+\. "
        rf"Resume with\n    kzoo train --resume {re.escape(run_dir)}\n",
        stderr,
    )


@pytest.mark.slow
def test_a_resume_may_change_train_max_minutes_only(sigint_run, tmp_path, capsys):
    from kzoo.training.config import ConfigError

    run_dir = tmp_path / "run"
    shutil.copytree(sigint_run[0], run_dir)
    overrides = sigint_run[1]
    step = checkpoints.read_state(checkpoints.latest(str(run_dir / "checkpoints")))["step"]
    with pytest.raises(ConfigError, match=r"^train\.learning_rate: 0\.5 differs from "):
        _train_recipe(run_dir, overrides + ["train.learning_rate=0.5"])
    summary = _train_recipe(run_dir, overrides + ["train.max_minutes=0.0001"], verbose=2)
    assert summary["stopped_by_time_budget"]
    assert (summary["resumed_from_step"], summary["steps"]) == (step, step + 1)
    # The epoch's log line counts the one step trained, not the epoch's remaining ones.
    assert re.search(rf"^ *1/{500 - step} - ", capsys.readouterr().out, re.MULTILINE)
    # The bad lines skipped are counted in summary.json.
    assert RunDirectory(run_dir).summary()["skipped_records"] == {
        "data.train": 1,
        "data.validation": 1,
    }


# --- SIGKILL ------------------------------------------------------------------------


def _kill_after(args, run_dir, step, seed):
    """Starts `kzoo train ARGS`; SIGKILLs it once a checkpoint >= `step` exists."""
    process = subprocess.Popen(
        kzoo_command(*args), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    directory = os.path.join(run_dir, RunDirectory.CHECKPOINTS)
    deadline = time.monotonic() + 300
    while process.poll() is None and time.monotonic() < deadline:
        found = checkpoints.list_checkpoints(directory)
        if found and found[-1][0] >= step:
            process.send_signal(signal.SIGKILL)
            process.wait()
            return found[-1][0]
        time.sleep(0.002)
    stderr = process.communicate()[1]
    pytest.fail(f"(seed {seed}) the run ended before step {step}: {stderr[-2000:]}")


@pytest.mark.slow
@full_only(
    "test_run_lock.py::test_a_second_kzoo_train_is_refused_at_once_and_a_sigkilled_one_resumes"
    " (a SIGKILLed run resumes from its checkpoint) and "
    "test_signals_checkpoint_then_resume_gives_the_uninterrupted_run (the same weights)"
)
def test_sigkill_at_random_steps_then_resume_equals_an_uninterrupted_run(tmp_path):
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    overrides = [
        o for o in RESUMABLE if not o.startswith(("train.steps=", "train.checkpoint_every"))
    ]
    overrides += ["train.steps=40", "train.checkpoint_every=1", "train.deterministic=true"]
    sets = [arg for o in overrides for arg in ("--set", o)]
    reference, run_dir = str(tmp_path / "reference"), str(tmp_path / "run")
    recipe = os.path.join(ROOT, "recipes", "gpt_tiny.yaml")
    subprocess.run(
        kzoo_command("train", recipe, "--run-dir", reference, *sets),
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    args = ["train", recipe, "--run-dir", run_dir, *sets]
    first = _kill_after(args, run_dir, rng.randrange(2, 15), seed)
    _kill_after(args, run_dir, rng.randrange(first + 2, 30), seed)
    finish = subprocess.run(
        kzoo_command("train", "--resume", run_dir), cwd=ROOT, capture_output=True, text=True
    )
    assert finish.returncode == 0, (seed, finish.stderr[-2000:])
    assert "Resuming" in finish.stdout
    assert_same_weights(reference, run_dir)
