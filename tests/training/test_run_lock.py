"""One writer per run directory: a second `kzoo train` (or sweep trial) is refused at
once naming the first; a lock left by a killed run does not block its resume."""

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time

import pytest

from kzoo.cli import main
from kzoo.testing import ROOT, TINY_OVERRIDES
from kzoo.training.run_directory import RunDirectory
from kzoo.training.run_lock import RunDirectoryInUse, RunLock

RECIPE = os.path.join(ROOT, "recipes", "gpt_tiny.yaml")
SETS = [arg for override in TINY_OVERRIDES for arg in ("--set", override)]
IN_USE = re.compile(
    r"(.*): in use by kzoo train \(pid (\d+) on (.+), since "
    r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\); wait for it or choose another "
    r"--run-dir"
)

# A lock holder that ends without releasing it: SIGKILLed once it holds the lock.
HOLD_LOCK = """
import sys, time
from kzoo.training.run_lock import RunLock
RunLock(sys.argv[1]).__enter__()
print("locked", flush=True)
time.sleep(600)
"""

# `kzoo train ARGS` that stops after its first checkpoint, writes the file MARKER and
# sleeps (holding the lock): a run in progress, at a known step, to be killed.
STOPPING_TRAIN = """
import sys, time
from kzoo import cli
from kzoo.training import resume
marker, args = sys.argv[1], sys.argv[2:]
save = resume.StepCheckpoint.save
def save_then_sleep(self):
    path = save(self)
    open(marker, "w").close()
    time.sleep(600)
resume.StepCheckpoint.save = save_then_sleep
sys.exit(cli.main(args))
"""


def _python(code, *args, log):
    env = dict(
        os.environ,
        TF_CPP_MIN_LOG_LEVEL="3",
        PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])),
    )
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait_for(path, process, log_path, timeout=300):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"no {path}: {open(log_path).read()[-3000:]}")
        time.sleep(0.05)


def _stopped_train(tmp_path, run_dir):
    """`kzoo train` of the tiny recipe into `run_dir`, stopped after the checkpoint
    of step 1: its process."""
    marker, log_path = str(tmp_path / "stopped"), str(tmp_path / "first.log")
    with open(log_path, "w") as log:
        process = _python(
            STOPPING_TRAIN,
            marker,
            "train",
            RECIPE,
            "--run-dir",
            str(run_dir),
            *SETS,
            "--set",
            "train.checkpoint_every=1",
            log=log,
        )
    _wait_for(marker, process, log_path)
    return process


def _holder(run_dir):
    with open(os.path.join(run_dir, RunDirectory.LOCK), encoding="utf-8") as f:
        return json.load(f)


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    run_dir = str(tmp_path / "run")
    with RunLock(run_dir) as lock:
        assert lock.created_directory
        with pytest.raises(RunDirectoryInUse) as refused:
            with RunLock(run_dir):
                pass
        assert isinstance(refused.value, FileExistsError)  # The CLI's exit status 2.
        match = IN_USE.fullmatch(str(refused.value))
        assert match and match.groups() == (run_dir, str(os.getpid()), socket.gethostname())
    # Released: the lock file is gone, and the directory the lock made and nothing
    # else wrote into.
    assert not os.path.exists(run_dir)
    os.makedirs(os.path.join(run_dir, "kept"))
    with RunLock(run_dir) as lock:
        assert not lock.created_directory
    assert os.listdir(run_dir) == ["kept"]


def test_a_run_dir_that_is_or_is_under_a_file_is_refused(tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    for run_dir, message in (
        (afile, f"{afile}: exists"),
        (afile / "sub", f"{afile / 'sub'}: {afile} exists"),
    ):
        with pytest.raises(FileExistsError) as refused:
            with RunLock(str(run_dir)):
                pass
        assert str(refused.value) == (f"{message} and is not a directory; choose another --run-dir")


def test_a_lock_left_by_a_killed_process_does_not_block(tmp_path):
    run_dir = str(tmp_path / "run")
    log_path = tmp_path / "holder.log"
    with open(log_path, "w") as log:
        holder = _python(HOLD_LOCK, run_dir, log=log)
    deadline = time.monotonic() + 120
    while "locked" not in log_path.read_text():
        assert holder.poll() is None and time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.05)
    with pytest.raises(RunDirectoryInUse, match=f"pid {holder.pid} on"):
        RunLock(run_dir).__enter__()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert _holder(run_dir)["pid"] == holder.pid  # Left behind: stale.
    with RunLock(run_dir):
        assert _holder(run_dir)["pid"] == os.getpid()
    assert not os.path.exists(os.path.join(run_dir, RunDirectory.LOCK))


def _untouched_state(run_dir):
    """Every path under `run_dir`, with the modification time of those outside
    `tensorboard/` (whose event files a stopped run may still flush)."""
    state = {}
    for directory, _, files in os.walk(run_dir):
        for name in files:
            path = os.path.relpath(os.path.join(directory, name), run_dir)
            state[path] = (
                None
                if path.startswith(RunDirectory.TENSORBOARD)
                else os.stat(os.path.join(directory, name)).st_mtime_ns
            )
    return state


@pytest.mark.slow
def test_a_second_kzoo_train_is_refused_at_once_and_a_sigkilled_one_resumes(tmp_path, capsys):
    run_dir = tmp_path / "run"
    first = _stopped_train(tmp_path, run_dir)
    before = _untouched_state(run_dir)
    start = time.monotonic()
    status = main(
        ["train", RECIPE, "--run-dir", str(run_dir), *SETS, "--set", "train.checkpoint_every=1"]
    )
    seconds = time.monotonic() - start
    stderr = capsys.readouterr().err
    assert status == 2, stderr
    assert seconds < 10
    assert stderr.count("\n") == 1 and stderr.startswith("kzoo train: error: ")
    match = IN_USE.fullmatch(stderr.strip()[len("kzoo train: error: ") :])
    assert match and match.group(2) == str(first.pid), stderr
    assert _untouched_state(run_dir) == before
    # Killed, the first run leaves its lock file behind, stale: the resume takes it.
    first.send_signal(signal.SIGKILL)
    first.wait()
    assert _holder(run_dir)["pid"] == first.pid
    assert main(["train", "--resume", str(run_dir)]) == 0, capsys.readouterr().err
    summary = RunDirectory(run_dir).summary()
    assert (summary["resumed_from_step"], summary["steps"]) == (1, 6)
    assert not (run_dir / RunDirectory.LOCK).exists()


def test_a_sweep_trial_in_use_is_refused(tmp_path, capsys):
    out = tmp_path / "sweep"
    with RunLock(str(out / "learning_rate=0.01")):
        status = main(
            ["sweep", RECIPE, "--out", str(out), *SETS, "--grid", "train.learning_rate=0.01,0.003"]
        )
    assert status == 2
    assert "learning_rate=0.01: in use by kzoo train (pid " in capsys.readouterr().err
    assert not (out / "learning_rate=0.01" / RunDirectory.CONFIG).exists()
