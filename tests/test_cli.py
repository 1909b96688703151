import contextlib
import os
import re
import signal
import socket
import subprocess
import sys

import pytest

import kzoo
from kzoo.testing import (
    ROOT,
    TINY_OVERRIDES,
    child_pids,
    free_port,
    kzoo_command,
    listening_addresses,
)


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "kzoo.cli", *args], capture_output=True, text=True)


def test_version():
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"kzoo {kzoo.__version__}"


def test_help_lists_usage():
    result = run_cli("--help")
    assert result.returncode == 0
    assert result.stdout.startswith("usage: kzoo")


def test_unknown_command_fails_with_message():
    result = run_cli("frobnicate")
    assert result.returncode == 2
    assert "invalid choice: 'frobnicate'" in result.stderr


def test_usage_and_help_list_every_command(capsys):
    from kzoo import cli

    with pytest.raises(SystemExit):
        cli.main(["--help"])
    help_text = capsys.readouterr().out
    for command in cli.COMMANDS:
        assert f"\n    kzoo {command} " in cli.__doc__, command
        assert re.search(rf"^\s+{command}\s+\S", help_text, flags=re.M), command


def _wait_until_served(url, server, timeout=120):
    import time
    import urllib.request

    deadline = time.monotonic() + timeout
    while True:
        assert server.poll() is None, "kzoo tensorboard exited"
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except OSError:
            assert time.monotonic() < deadline, f"{url} not served in {timeout} s"
            time.sleep(0.5)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP], ids=["TERM", "HUP"])
def test_tensorboard_stops_its_server_on_a_signal(tmp_path, signum):
    """The signal goes to `kzoo tensorboard` alone, as a scheduler or a closed
    terminal sends it: the server stops with it and frees the port."""
    (tmp_path / "tensorboard").mkdir()
    port = free_port()
    kzoo = subprocess.Popen(
        kzoo_command("tensorboard", str(tmp_path), "--port", str(port)),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    servers = []
    try:
        _wait_until_served(f"http://127.0.0.1:{port}/", kzoo)
        servers = child_pids(kzoo.pid)
        assert len(servers) == 1
        assert listening_addresses(port) == {"127.0.0.1"}
        kzoo.send_signal(signum)
        _, err = kzoo.communicate(timeout=60)
        assert kzoo.returncode == 128 + signum
        assert err.splitlines()[-1] == (
            f"kzoo tensorboard: {signal.Signals(signum).name} received: TensorBoard stopped"
        )
        assert not os.path.exists(f"/proc/{servers[0]}")
        assert listening_addresses(port) == set()
        with socket.socket() as again:  # What the next `kzoo tensorboard` does.
            again.bind(("127.0.0.1", port))
    finally:
        for pid in [kzoo.pid, *servers]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        kzoo.wait()


@pytest.mark.slow
def test_export_and_check_serving_work_under_the_jax_backend(tmp_path):
    """A run trained with KERAS_BACKEND=jax exports and passes check-serving with
    the variable still set: both run on TensorFlow whatever the backend."""
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    run_dir, out = str(tmp_path / "run"), str(tmp_path / "saved_models")
    overrides = [o for o in TINY_OVERRIDES if not o.startswith(("train.steps", "train.warmup"))]
    overrides += [
        "train.steps=1",
        "train.steps_per_epoch=1",
        "train.warmup_steps=0",
        "train.validation_steps=1",
        "train.jit_compile=true",
        "train.sample_prompts=[]",
        "monitor.graph=false",
        "monitor.projector=false",
        "monitor.attention_maps=false",
        "monitor.histograms=false",
        "monitor.gradient_norms=false",
    ]
    train = ["train", os.path.join(ROOT, "recipes", "gpt_tiny.yaml"), "--run-dir", run_dir]
    for override in overrides:
        train += ["--set", override]
    for argv in (
        train,
        ["export", run_dir, "--out", out],
        ["check-serving", os.path.join(out, "gpt_tiny", "1")],
    ):
        result = subprocess.run(
            kzoo_command(*argv), env=env, capture_output=True, text=True, timeout=600
        )
        assert result.returncode == 0, (argv[0], result.stdout[-2000:], result.stderr[-2000:])
    assert "serving check passed" in result.stdout
