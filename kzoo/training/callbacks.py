"""Keras callbacks of the trainer, one job each."""

import contextlib
import functools
import math
import time
import warnings

import keras
import numpy as np
import tensorflow as tf
from tensorboard.compat.proto import summary_pb2
from tensorboard.plugins.histogram import metadata as histogram_metadata
from tensorboard.util import tensor_util

from kzoo.training.optimizer import recorded_gradient_norm


class TimeBudget(keras.callbacks.Callback):
    """Stops training cleanly once `max_minutes` have passed (checked every batch).

    Training then ends like a finished run: callbacks' `on_train_end` run and the
    trainer saves everything. `stopped_early` tells whether the budget ended it.
    """

    def __init__(self, max_minutes):
        super().__init__()
        self.max_seconds = max_minutes * 60.0
        self.stopped_early = False

    def on_train_begin(self, logs=None):
        # A resumed run calls `fit` up to twice; the budget spans both.
        if not hasattr(self, "start"):
            self.start = time.monotonic()

    def on_train_batch_end(self, batch, logs=None):
        if time.monotonic() - self.start >= self.max_seconds:
            self.stopped_early = True
            self.model.stop_training = True


class StepLimit(keras.callbacks.Callback):
    """Stops after exactly `steps` optimizer steps (epochs are logging periods)."""

    def __init__(self, steps, taken=0):
        super().__init__()
        self.steps = steps
        self.taken = taken  # Batches trained so far (a resumed run starts above 0).

    def on_train_batch_end(self, batch, logs=None):
        self.taken += 1
        if self.taken >= self.steps:
            self.model.stop_training = True


class ProgressBar(keras.callbacks.ProgbarLogger):
    """Keras' progress bar (or, with `verbose=2`, its line per epoch), ended at
    the steps the epoch trained.

    Keras ends every epoch's bar at `steps_per_epoch`, so an epoch that training
    left early (`train.max_minutes`, `train.steps` mid-epoch) would read `250/250`
    after 1 step; here it reads `1/250`. Passed among `fit`'s callbacks, it
    replaces the one Keras would add.
    """

    def on_epoch_end(self, epoch, logs=None):
        if self.progbar is not None and self.target is not None and self.seen < self.target:
            self.progbar.update(self.seen, list((logs or {}).items()), finalize=True)
        else:
            super().on_epoch_end(epoch, logs)


class LanguageModelMetrics(keras.callbacks.Callback):
    """Adds learning rate, tokens/s and (for language models) perplexity to the
    epoch logs.

    Placed before the TensorBoard callback, so TensorBoard writes them with the
    losses: `epoch_perplexity` (train and validation), `epoch_learning_rate`,
    `epoch_tokens_per_second`.
    """

    def __init__(self, tokens_per_step, perplexity=True, loss_name="loss"):
        super().__init__()
        self.tokens_per_step = tokens_per_step
        self.perplexity = perplexity
        self.loss_name = loss_name  # A distilled run's is its task loss alone.

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = self.last_batch_end = time.monotonic()
        self.steps = 0

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        self.last_batch_end = time.monotonic()

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        # Training time only: validation runs between the last batch and here.
        seconds = max(self.last_batch_end - self.epoch_start, 1e-9)
        logs["tokens_per_second"] = self.steps * self.tokens_per_step / seconds
        logs["learning_rate"] = current_learning_rate(self.model.optimizer)
        for prefix in ("", "val_"):
            loss = logs.get(f"{prefix}{self.loss_name}")
            if self.perplexity and loss is not None:
                logs[f"{prefix}perplexity"] = math.exp(min(loss, 50.0))


class EpochMetrics(keras.callbacks.Callback):
    """Adds metrics computed by `compute(model) -> {name: float}` to the epoch logs.

    For metrics Keras cannot accumulate batch by batch (macro-F1, entity F1, exact
    match over answer spans). Placed before the TensorBoard callback, so they are
    written with the losses, as `epoch_{prefix}{name}`.
    """

    def __init__(self, compute, prefix="val_"):
        super().__init__()
        self.compute = compute
        self.prefix = prefix

    def on_epoch_end(self, epoch, logs=None):
        if logs is None:
            return
        for name, value in self.compute(self.model).items():
            logs[f"{self.prefix}{name}"] = float(value)


def current_learning_rate(optimizer):
    rate = optimizer.learning_rate
    return float(keras.ops.convert_to_numpy(rate))


class TensorBoard(keras.callbacks.TensorBoard):
    """Keras' TensorBoard callback with epoch summaries that are always written.

    With an integer `update_freq`, Keras keeps `tf.summary.record_if(step %
    update_freq == 0)` active during `fit`, so epoch-end scalars are silently
    dropped whenever an epoch's last step is not a multiple of `update_freq`
    (Keras 3.15). Epoch summaries are forced on here.

    Step-level scalars continue from the optimizer's iteration count, so a
    resumed run (and the second `fit` of a resume) does not restart them at 0.
    """

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        iterations = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))
        self._global_train_batch = iterations
        self._previous_epoch_iterations = iterations
        self._pop_writer()  # The one Keras pushed at step 0.
        self._push_writer(self._train_writer, self._global_train_batch)

    def on_epoch_end(self, epoch, logs=None):
        with tf.summary.record_if(True):
            super().on_epoch_end(epoch, logs)

    def _log_weights(self, epoch):
        """Weight histograms (`histogram_freq`), as Keras' tags, but each weight
        once (Keras loops over `model.layers`, where a tied embedding is a layer
        of both the backbone and the task head, and writes it twice) and counted
        in NumPy, all in one write (`tf.summary.histogram` runs ~20 eager ops per
        weight: a second per epoch for a one-layer model)."""
        summary = summary_pb2.Summary()
        for weight in self.model.weights:  # deduplicated
            name = weight.path.replace(":", "_")
            summary.value.append(
                histogram_value(f"{name}/histogram", keras.ops.convert_to_numpy(weight))
            )
        with self._train_writer.as_default():
            tf.summary.experimental.write_raw_pb(summary.SerializeToString(), step=epoch)
        self._train_writer.flush()


def histogram_value(tag, data, buckets=30):
    """A `Summary.Value` of TensorBoard's histogram plugin: `buckets` equal-width
    buckets from the minimum to the maximum of `data`, as `tf.summary.histogram`
    writes them (`[left edge, right edge, count]` rows).

    Example:
    >>> value = histogram_value("w", np.array([0.0, 1.0, 1.0, 3.0]), buckets=3)
    >>> tensor_util.make_ndarray(value.tensor).tolist()
    [[0.0, 1.0, 1.0], [1.0, 2.0, 2.0], [2.0, 3.0, 1.0]]
    """
    data = np.asarray(data, np.float64).ravel()
    low, high = (float(data.min()), float(data.max())) if data.size else (0.0, 0.0)
    if not data.size:
        counts = np.zeros(buckets)
    elif high == low:  # All in the last bucket, as TensorBoard's own summary op.
        counts = np.zeros(buckets)
        counts[-1] = data.size
    else:
        width = (high - low) / buckets
        index = np.minimum(np.floor((data - low) / width).astype(np.int64), buckets - 1)
        counts = np.bincount(index, minlength=buckets)
    edges = np.linspace(low, high, buckets + 1)
    rows = np.stack([edges[:-1], edges[1:], counts], axis=1).astype(np.float64)
    return summary_pb2.Summary.Value(
        tag=tag,
        metadata=histogram_metadata.create_summary_metadata(None, None),
        tensor=tensor_util.make_tensor_proto(rows),
    )


def warns_instead_of_failing(what):
    """Decorates a monitoring callback's hook so that an error in it warns (once
    per callback) instead of stopping training: a heatmap that cannot be written
    must not end a 10-hour run. `what` completes "could not ...".

    Example:
    >>> class Flaky(keras.callbacks.Callback):
    ...     @warns_instead_of_failing("draw the weather")
    ...     def on_epoch_end(self, epoch, logs=None):
    ...         raise OSError("disk full")
    >>> callback = Flaky()
    >>> with warnings.catch_warnings(record=True) as caught:
    ...     warnings.simplefilter("always")
    ...     for epoch in range(3):
    ...         callback.on_epoch_end(epoch)
    >>> len(caught), str(caught[0].message)
    (1, 'Flaky could not draw the weather (OSError: disk full); training goes on without it')
    """

    def decorate(hook):
        @functools.wraps(hook)
        def guarded(self, *args, **kwargs):
            try:
                return hook(self, *args, **kwargs)
            except Exception as error:  # noqa: BLE001 (monitoring must not stop training)
                if not getattr(self, "_reported_failure", False):
                    self._reported_failure = True
                    warnings.warn(
                        f"{type(self).__name__} could not {what} "
                        f"({type(error).__name__}: {error}); training goes on without it",
                        RuntimeWarning,
                        stacklevel=2,
                    )

        return guarded

    return decorate


class GradientNorm(keras.callbacks.Callback):
    """Adds `gradient_norm` to the batch logs every `every` steps, so the
    TensorBoard callback after it writes `batch_gradient_norm` next to
    `batch_loss`.

    The value is the global norm of the step's gradients before clipping, as the
    optimizer recorded it (`kzoo.training.optimizer.AdamWWithGradientNorm`);
    with an optimizer that records none, nothing is added. Steps count from the
    optimizer's iterations, as the TensorBoard callback's do, so a resumed run
    logs at the same steps as an uninterrupted one.

    Args:
        every: Steps between values (`train.log_every`).
    """

    def __init__(self, every):
        super().__init__()
        self.every = every
        self.step = 0

    @warns_instead_of_failing("read the gradient norm")
    def on_train_begin(self, logs=None):
        self.step = int(keras.ops.convert_to_numpy(self.model.optimizer.iterations))

    @warns_instead_of_failing("read the gradient norm")
    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if logs is None or self.step % self.every:
            return
        # Looked up here: the optimizer creates its variables at the first step.
        norm = recorded_gradient_norm(self.model.optimizer)
        if norm is not None:
            logs["gradient_norm"] = float(keras.ops.convert_to_numpy(norm))


class SummaryCallback(keras.callbacks.Callback):
    """A callback that writes TensorBoard summaries into `log_dir`.

    The writer opens at the first write and `on_train_end` closes it; the next
    write opens a new one, since a resumed run calls `fit` twice with the same
    callbacks (`kzoo.training.resume.fit_phases`).
    """

    def __init__(self, log_dir):
        super().__init__()
        self.log_dir = log_dir
        self.writer = None

    @contextlib.contextmanager
    def summaries(self):
        """Summaries written inside go to `log_dir` (at every step), flushed after."""
        if self.writer is None:
            self.writer = tf.summary.create_file_writer(self.log_dir)
        with self.writer.as_default(), tf.summary.record_if(True):
            yield
        self.writer.flush()

    def on_train_end(self, logs=None):
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class _TextTable(SummaryCallback):
    """Writes a markdown table as TensorBoard text."""

    def write_table(self, tag, header, rows, step):
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(_cell(value) for value in row) + " |" for row in rows]
        with self.summaries():
            tf.summary.text(tag, "\n".join(lines), step=step)


class TextSamples(_TextTable):
    """Generates from fixed prompts every epoch and logs them as TensorBoard text.

    Args:
        log_dir: Event directory of the samples (e.g. `RUN/tensorboard/samples`).
        prompts: Prompt strings (an empty string starts a new document).
        max_new_tokens: Tokens per sample.

    The samples are decoded without XLA (`jit_compile=False`): a few short rows
    per epoch, where compiling the decoding loop (seconds to tens of seconds at
    real size, and its memory in the middle of training) costs more than it saves.
    """

    def __init__(self, log_dir, prompts, max_new_tokens):
        super().__init__(log_dir)
        self.prompts = list(prompts)
        self.max_new_tokens = max_new_tokens

    def on_epoch_end(self, epoch, logs=None):
        generate = getattr(self.model, "generate", None)
        if generate is None or not self.prompts:
            return
        samples = generate(self.prompts, max_new_tokens=self.max_new_tokens, jit_compile=False)
        self.write_table("samples", ("prompt", "sample"), zip(self.prompts, samples), epoch + 1)


class GenerationMetrics(_TextTable):
    """Decodes validation sources every epoch (greedy), adds `score(predictions,
    references)` to the epoch logs as `val_{name}`, and logs the first pairs as a
    source | reference | output table (TensorBoard text, tag `translations`).

    Placed before the TensorBoard callback, so the scores are written with the
    losses.

    Args:
        log_dir: Event directory of the table (e.g. `RUN/tensorboard/samples`).
        pairs: `[{"source", "target"}]` to decode.
        decode: `decode(model, sources) -> predictions`.
        score: `score(predictions, references) -> {name: float}`.
        num_samples: Pairs shown in the table.
    """

    def __init__(self, log_dir, pairs, decode, score, num_samples=8):
        super().__init__(log_dir)
        self.pairs = list(pairs)
        self.decode = decode
        self.score = score
        self.num_samples = num_samples

    def on_epoch_end(self, epoch, logs=None):
        predictions = self.decode(self.model, [p["source"] for p in self.pairs])
        references = [p["target"] for p in self.pairs]
        if logs is not None:
            for name, value in self.score(predictions, references).items():
                logs[f"val_{name}"] = float(value)
        rows = [
            (p["source"], p["target"], o)
            for p, o in zip(self.pairs[: self.num_samples], predictions)
        ]
        self.write_table("translations", ("source", "reference", "output"), rows, epoch + 1)


def _cell(text):
    escaped = text.replace("|", "\\|").replace("\n", " ⏎ ")
    return escaped if escaped.strip() else "(empty)"
