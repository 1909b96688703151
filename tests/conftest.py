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
        model = keras.saving.load_model(os.path.join(run_dir, "model.keras"),
                                        safe_mode=True, compile=False)
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

