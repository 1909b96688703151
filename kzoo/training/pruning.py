"""Magnitude pruning during training (`train.prune`).

Keras 3 has no pruning tool (the TF Model Optimization Toolkit needs Keras 2), so
kzoo keeps one binary mask per prunable kernel and, after every optimizer update,
multiplies the kernel by it. Every `frequency` steps from `begin_step` to
`end_step` the masks are recomputed: each kernel keeps its largest-magnitude
weights, and the fraction it drops follows TFMOT's polynomial schedule,

    sparsity(t) = target * (1 - (1 - p) ** 3),  p = (t - begin) / (end - begin),

fast at first and gentle near the end. Prunable kernels are every kernel of a
dense, einsum-dense or recurrent layer (attention and feed-forward projections,
task heads, LSTM cells); embeddings, norms and biases stay dense. The masks are
saved in every checkpoint (`kzoo.training.checkpoints`, `extra/...` arrays), so a
resumed run continues with the same ones; the per-layer sparsity reaches
TensorBoard (`RUN/tensorboard/train`, `pruning/...`). The pruned weights are
exact zeros in `model.keras` and in every export made from it.
"""

import keras
import numpy as np

from kzoo.training.config import Field, non_negative, positive

PRUNE_SCHEMA = {
    "target_sparsity": Field(
        (float,),
        0.5,
        lambda v: None if 0 < v < 1 else "must be in (0, 1)",
        doc="fraction of each prunable kernel's weights set to zero at end_step",
    ),
    "begin_step": Field((int,), 0, non_negative, doc="the step the first masks are made at"),
    "end_step": Field(
        (int,),
        None,
        positive,
        nullable=True,
        doc="the step the target is reached at; null: the run's last step",
    ),
    "frequency": Field((int,), 100, positive, doc="steps between mask updates"),
}

# Kernel variable names that are pruned (Dense, EinsumDense, LSTM cells).
PRUNABLE = ("kernel", "recurrent_kernel")


def prunable_kernels(model):
    """`[Variable]`: the trainable kernels `train.prune` masks, in model order."""
    return [
        v
        for v in model.trainable_variables
        if len(v.shape) >= 2 and v.path.rsplit("/", 1)[-1] in PRUNABLE
    ]


def scheduled_sparsity(step, target, begin, end):
    """The sparsity the schedule asks for at `step` (0 before `begin`).

    Example:
    >>> [round(scheduled_sparsity(t, 0.5, 0, 100), 3) for t in (0, 50, 100, 200)]
    [0.0, 0.438, 0.5, 0.5]
    """
    if step < begin:
        return 0.0
    progress = min(1.0, (step - begin) / max(end - begin, 1))
    return target * (1.0 - (1.0 - progress) ** 3)


def magnitude_mask(weights, sparsity):
    """A 0/1 array shaped as `weights` that zeroes its `sparsity` fraction of
    smallest magnitudes (rounded down to whole weights).

    Example:
    >>> magnitude_mask(np.array([[0.1, -3.0], [2.0, -0.5]]), 0.5).tolist()
    [[0.0, 1.0], [1.0, 0.0]]
    """
    flat = np.abs(np.asarray(weights, np.float64)).ravel()
    drop = int(sparsity * flat.size)
    mask = np.ones(flat.size, np.float32)
    if drop:
        mask[np.argpartition(flat, drop - 1)[:drop]] = 0.0
    return mask.reshape(np.shape(weights))


class Pruner(keras.callbacks.Callback):
    """Keeps `model`'s prunable kernels masked, on the schedule of `settings`.

    Place it before the checkpoint and TensorBoard callbacks: it masks the weights
    a checkpoint saves and adds `sparsity` to the epoch logs.

    Args:
        model: The task model (built).
        settings: The validated `train.prune` mapping.
        total_steps: The run's planned steps (`end_step` when it is null).
        event_dir: Where the per-layer sparsity is written (TensorBoard).
        step: The steps already trained (a resumed run's).

    Example:
    >>> model = keras.Sequential([keras.Input((8,)), keras.layers.Dense(4)])
    >>> pruner = Pruner(model, {"target_sparsity": 0.5, "begin_step": 0,
    ...                         "end_step": 1, "frequency": 1}, total_steps=1)
    >>> pruner.update_masks(step=1)
    >>> float((model.layers[0].kernel.numpy() == 0).mean())
    0.5
    """

    def __init__(self, model, settings, total_steps, event_dir=None, step=0):
        super().__init__()
        self.kernels = prunable_kernels(model)
        if not self.kernels:
            raise ValueError(f"train.prune: {model.name} has no dense kernels to prune")
        self.target = settings["target_sparsity"]
        self.begin = settings["begin_step"]
        self.end = settings["end_step"] or total_steps
        self.frequency = settings["frequency"]
        self.event_dir = event_dir
        self._writer = None
        self.step = step
        self.masks = [
            keras.Variable(np.ones(v.shape, "float32"), trainable=False, name="prune_mask")
            for v in self.kernels
        ]

    @property
    def checkpoint_variables(self):
        """`{name: Variable}` of the masks, for `kzoo.training.checkpoints`."""
        return {f"prune_mask/{i}": mask for i, mask in enumerate(self.masks)}

    def update_masks(self, step):
        """New masks for the schedule's sparsity at `step`, applied at once."""
        sparsity = scheduled_sparsity(step, self.target, self.begin, self.end)
        for kernel, mask in zip(self.kernels, self.masks):
            mask.assign(magnitude_mask(keras.ops.convert_to_numpy(kernel), sparsity))
        self.apply_masks()

    def apply_masks(self):
        for kernel, mask in zip(self.kernels, self.masks):
            kernel.assign(kernel * keras.ops.cast(mask, kernel.dtype))

    def sparsities(self):
        """`{kernel path: fraction of zeros}` of the masks now."""
        return {
            kernel.path: 1.0 - float(keras.ops.mean(mask))
            for kernel, mask in zip(self.kernels, self.masks)
        }

    def overall_sparsity(self):
        zeros = sum(float(keras.ops.sum(1.0 - mask)) for mask in self.masks)
        return zeros / sum(int(np.prod(mask.shape)) for mask in self.masks)

    def _due(self, step):
        if step < self.begin or step > self.end:
            return False
        return (step - self.begin) % self.frequency == 0 or step == self.end

    def on_train_batch_end(self, batch, logs=None):
        self.step += 1
        if self._due(self.step):
            self.update_masks(self.step)
            self._write_summaries()
        else:
            self.apply_masks()

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["sparsity"] = self.overall_sparsity()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _write_summaries(self):
        if self.event_dir is None:
            return
        import tensorflow as tf  # Not at import: the recipe schema reads this module.

        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.event_dir)
        with self._writer.as_default(), tf.summary.record_if(True):
            tf.summary.scalar("pruning/sparsity", self.overall_sparsity(), step=self.step)
            tf.summary.scalar(
                "pruning/target_sparsity",
                scheduled_sparsity(self.step, self.target, self.begin, self.end),
                step=self.step,
            )
            for path, value in self.sparsities().items():
                tf.summary.scalar(f"pruning/sparsity/{path}", value, step=self.step)
        self._writer.flush()
