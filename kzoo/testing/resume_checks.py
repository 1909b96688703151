"""Interrupting training at a chosen step, and checking that a resumed run ends
where an uninterrupted one does."""

import os


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

    from kzoo.training.run_directory import RunDirectory

    def weights(run_dir):
        model = RunDirectory(run_dir).load_model()
        return [keras.ops.convert_to_numpy(w) for w in model.weights]

    for a, b in zip(weights(run_a), weights(run_b), strict=True):
        np.testing.assert_allclose(a, b, atol=atol, rtol=0)


def assert_interrupted_run_resumes_to(reference_dir, run_dir, train, monkeypatch, signals):
    """`train(run_dir)` is interrupted by `signals` (see `interrupt_at`), once per
    signal, then run again: it resumes from the last signal's step and ends with the
    weights of the uninterrupted run in `reference_dir`."""
    import pytest

    from kzoo.training.resume import TrainingInterrupted

    interrupt_at(monkeypatch, signals)
    for _ in signals:
        with pytest.raises(TrainingInterrupted):
            train(run_dir)
    assert train(run_dir)["resumed_from_step"] == max(signals)
    assert_same_weights(reference_dir, run_dir)
