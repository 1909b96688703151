import os
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

# A recipe small enough to train in seconds on 2 cores (overrides of gpt_tiny).
TINY_OVERRIDES = [
    "model.num_layers=1",
    "model.hidden_dim=16",
    "model.intermediate_dim=32",
    "model.max_sequence_length=32",
    "tokenizer.vocab_size=320",
    "data.sequence_length=16",
    "data.batch_size=8",
    "data.builtin_train_documents=60",
    "data.builtin_validation_documents=10",
    "train.steps=6",
    "train.steps_per_epoch=3",
    "train.warmup_steps=2",
    "train.sample_max_new_tokens=8",
    "train.log_every=2",
    "export.max_new_tokens=8",
    "export.max_prompt_tokens=16",
]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="session")
def tiny_overrides():
    return list(TINY_OVERRIDES)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A trained tiny GPT run directory, shared by a test module."""
    from kzoo.training.recipe import load_recipe
    from kzoo.training.trainer import train

    run_dir = str(tmp_path_factory.mktemp("run") / "gpt_tiny")
    config = load_recipe(os.path.join(ROOT, "recipes", "gpt_tiny.yaml"), TINY_OVERRIDES)
    summary = train(config, run_dir, verbose=0)
    return run_dir, config, summary


def kzoo_command(*args):
    """argv that runs the kzoo CLI with this interpreter."""
    return [sys.executable, "-m", "kzoo.cli", *args]


def tensorboard_tags(run_dir):
    """Every scalar and tensor tag written under `RUN/tensorboard/*/`."""
    import glob

    from tensorboard.backend.event_processing import event_accumulator

    tags = set()
    for events in glob.glob(os.path.join(run_dir, "tensorboard", "*", "events.*")):
        accumulator = event_accumulator.EventAccumulator(events)
        accumulator.Reload()
        tags |= set(accumulator.Tags()["tensors"]) | set(accumulator.Tags()["scalars"])
    return tags


def tensorboard_events(log_dir):
    """`{(event directory relative to log_dir, tag): sorted steps}` of every summary
    in the event files under `log_dir`, a graph as tag `(graph)`; a step written
    twice (an interrupted run's step-0 text, written again on resume) counts once."""
    import glob

    import tensorflow as tf

    events = {}
    for path in glob.glob(os.path.join(log_dir, "**", "events.*"), recursive=True):
        directory = os.path.relpath(os.path.dirname(path), log_dir)
        for event in tf.compat.v1.train.summary_iterator(path):
            tags = [value.tag for value in event.summary.value]
            for tag in tags + (["(graph)"] if event.graph_def else []):
                events.setdefault((directory, tag), set()).add(event.step)
    return {key: sorted(steps) for key, steps in events.items()}


def interrupt_at(monkeypatch, signals):
    """Training sends itself `signals[step]` once it has trained `step` batches, as a
    scheduler would (`{3: signal.SIGTERM}`); the trainer checkpoints and raises
    `TrainingInterrupted`."""
    from kzoo.training import resume

    pending = dict(signals)
    batch_end = resume.StepCheckpoint.on_train_batch_end

    def send_signal(self, batch, logs=None):
        signum = pending.pop(self.counter.taken, None)
        if signum is not None:
            os.kill(os.getpid(), signum)
        return batch_end(self, batch, logs)

    monkeypatch.setattr(resume.StepCheckpoint, "on_train_batch_end", send_signal)


def assert_same_weights(run_a, run_b, atol=1e-6):
    """The `model.keras` weights of two run directories agree to `atol`."""
    import keras
    import numpy as np

    import kzoo.models  # noqa: F401  (registers the model classes)
    import kzoo.tokenizers  # noqa: F401

    def weights(run_dir):
        model = keras.saving.load_model(
            os.path.join(run_dir, "model.keras"), safe_mode=True, compile=False
        )
        return [keras.ops.convert_to_numpy(w) for w in model.weights]

    for a, b in zip(weights(run_a), weights(run_b), strict=True):
        np.testing.assert_allclose(a, b, atol=atol, rtol=0)


def assert_interrupted_run_resumes_to(reference_dir, run_dir, train, monkeypatch, signals):
    """`train(run_dir)` is interrupted by `signals` (see `interrupt_at`), once per
    signal, then run again: it resumes from the last signal's step and ends with the
    weights of the uninterrupted run in `reference_dir`."""
    from kzoo.training.resume import TrainingInterrupted

    interrupt_at(monkeypatch, signals)
    for _ in signals:
        with pytest.raises(TrainingInterrupted):
            train(run_dir)
    assert train(run_dir)["resumed_from_step"] == max(signals)
    assert_same_weights(reference_dir, run_dir)


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on (at the time of the call)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening_addresses(port):
    """The local addresses of the TCP sockets listening on `port`, from Linux's
    `/proc/net/tcp` and `tcp6` (e.g. `{"127.0.0.1"}`)."""
    import socket

    found = set()
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        if not os.path.exists(table):
            continue
        with open(table, encoding="ascii") as f:
            rows = [line.split() for line in f.read().splitlines()[1:]]
        for row in rows:
            address, hex_port = row[1].split(":")
            if row[3] == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                raw = bytes.fromhex(address)
                # Each 32-bit word is printed in the host's byte order.
                words = [raw[i : i + 4] for i in range(0, len(raw), 4)]
                if sys.byteorder == "little":
                    words = [word[::-1] for word in words]
                found.add(socket.inet_ntop(family, b"".join(words)))
    return found


def child_pids(pid):
    """The ids of the processes whose parent is `pid` (Linux `/proc`)."""
    children = []
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{name}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
        except (FileNotFoundError, ProcessLookupError):  # It has just exited.
            continue
        # "pid (command) state ppid ...": the command may hold spaces and ")".
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            children.append(int(name))
    return children
