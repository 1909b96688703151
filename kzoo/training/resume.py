"""Step-exact resume: periodic checkpoints, preemption signals, and the `fit` phases
that continue an interrupted run exactly where its last checkpoint left it.

Keras' `BackupAndRestore` restores at epoch granularity and replays the epoch.
Here a resumed run trains exactly the batches the interrupted one had not trained
yet, with the same epoch boundaries (validation and epoch logs at the same steps):

- `StepCheckpoint` writes a checkpoint (`kzoo.training.checkpoints`) every
  `train.checkpoint_every` batches and at every epoch end, with the epoch logs so
  far; on SIGTERM/SIGINT it writes one at the current batch and raises
  `TrainingInterrupted`, which `kzoo train` turns into a message and exit status
  128 + signal number.
- `fit_phases` splits the remaining training into at most two `model.fit` calls:
  the rest of the interrupted epoch, then the remaining whole epochs, each on the
  training pipeline rebuilt and advanced to its first batch.
"""

import dataclasses
import signal
import threading

import keras

from kzoo.training import checkpoints

HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class TrainingInterrupted(Exception):
    """Training stopped on a signal after writing a checkpoint at `step`."""

    def __init__(self, run_dir, step, signum):
        self.run_dir = run_dir
        self.step = step
        self.signum = signum
        name = signal.Signals(signum).name
        super().__init__(
            f"{name} received: checkpoint written at step {step}. Resume with\n"
            f"    kzoo train --resume {run_dir}\n"
            "(or re-run the same `kzoo train` command with the same --run-dir)"
        )

    @property
    def exit_status(self):
        return 128 + self.signum


class SignalFlag:
    """Context manager: SIGTERM/SIGINT set `received` instead of stopping the process.

    A second SIGINT (Ctrl-C twice) interrupts at once, as usual. Outside the main
    thread (where Python cannot install handlers) signals keep their default action.
    """

    def __init__(self):
        self.received = None
        self._previous = {}

    def _handle(self, signum, frame):
        self.received = signum
        if signum == signal.SIGINT:
            signal.signal(signal.SIGINT, signal.default_int_handler)

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in HANDLED_SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}
        return False


class StepCheckpoint(keras.callbacks.Callback):
    """Checkpoints every `every` batches, at epoch ends, and on a signal.

    Args:
        directory: `RUN/checkpoints`.
        run_dir: The run (quoted in the resume message).
        every: Batches between checkpoints (None: epoch ends only).
        steps_per_epoch: Batches per epoch (epoch boundaries are saved at the epoch
            end, after validation, so the checkpoint holds the epoch's logs).
        step_counter: An object whose `taken` is the number of batches trained.
        signals: A `SignalFlag`.
        history: Epoch logs of the run so far (from the checkpoint when resuming).
        state: Extra JSON-serializable entries stored with every checkpoint.
        extra_variables: `{name: Variable}` stored with every checkpoint besides
            the model's (`kzoo.training.checkpoints.write`'s `extra`).
    """

    def __init__(
        self,
        directory,
        run_dir,
        every,
        steps_per_epoch,
        step_counter,
        signals,
        history=None,
        state=None,
        extra_variables=None,
    ):
        super().__init__()
        self.directory = directory
        self.run_dir = run_dir
        self.every = every
        self.steps_per_epoch = steps_per_epoch
        self.counter = step_counter
        self.signals = signals
        self.history = list(history or [])
        self.state = dict(state or {})
        self.extra_variables = extra_variables
        self._interrupt_at_epoch_end = None

    def save(self):
        state = dict(self.state, step=int(self.counter.taken), history=self.history)
        return checkpoints.write(self.directory, self.model, state, extra=self.extra_variables)

    def on_train_batch_end(self, batch, logs=None):
        step = self.counter.taken
        at_epoch_end = step % self.steps_per_epoch == 0
        if self.signals.received is not None:
            if at_epoch_end:  # Validate and log the finished epoch first.
                self._interrupt_at_epoch_end = self.signals.received
                self.model.stop_training = True
                return
            self.save()
            raise TrainingInterrupted(self.run_dir, step, self.signals.received)
        if self.every and step % self.every == 0 and not at_epoch_end:
            self.save()

    def on_epoch_end(self, epoch, logs=None):
        self.history.append({k: float(v) for k, v in (logs or {}).items()})
        self.save()
        if self._interrupt_at_epoch_end is not None:
            raise TrainingInterrupted(
                self.run_dir, self.counter.taken, self._interrupt_at_epoch_end
            )


def build_for_fit(model, dataset):
    """Builds the compiled loss and metrics of `model` from the element spec of
    `dataset` (its training input), before the first `fit`.

    Left unbuilt, Keras builds them at the start of `fit` from a batch of a first
    iterator of the input, then trains on a second iterator (JAX; TensorFlow under a
    distribution strategy). A pipeline that reshuffles per iterator
    (`reshuffle_each_iteration`) would then train the first `fit` of a process on
    its second shuffle, and a resumed run's second `fit` (metrics built by then) on
    the first: other batches than the uninterrupted run's. (`_symbolic_build` is
    what `fit` calls, private in Keras 3.15; the JAX resume in
    tests/training/test_distribute.py fails if it stops doing this.)
    """
    model._symbolic_build(data_batch=dataset.element_spec)


@dataclasses.dataclass(frozen=True)
class FitPhase:
    """One `model.fit` call: `steps_per_epoch` batches for epochs
    `initial_epoch..epochs-1`, its input advanced by `skip_batches`."""

    initial_epoch: int
    epochs: int
    steps_per_epoch: int
    skip_batches: int


def fit_phases(step, total_steps, steps_per_epoch, epochs):
    """The `fit` calls that train batches `step..total_steps-1`.

    Example:
    >>> fit_phases(0, 10, 4, 3)
    [FitPhase(initial_epoch=0, epochs=3, steps_per_epoch=4, skip_batches=0)]
    >>> fit_phases(6, 10, 4, 3)  # Two batches left in epoch 1, then epoch 2.
    [FitPhase(initial_epoch=1, epochs=2, steps_per_epoch=2, skip_batches=6), FitPhase(initial_epoch=2, epochs=3, steps_per_epoch=4, skip_batches=8)]
    """
    if step >= total_steps:
        return []
    epoch, within = divmod(step, steps_per_epoch)
    phases = []
    if within:
        phases.append(FitPhase(epoch, epoch + 1, steps_per_epoch - within, step))
        epoch += 1
    if epoch < epochs and epoch * steps_per_epoch < total_steps:
        phases.append(FitPhase(epoch, epochs, steps_per_epoch, epoch * steps_per_epoch))
    return phases
