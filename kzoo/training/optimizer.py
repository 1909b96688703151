"""The optimizer of `kzoo train`: AdamW with warmup + cosine decay, recording the
gradient norm for TensorBoard."""

import keras
from keras import ops

# Not decayed: biases, normalization scales/offsets (GPT-2 / nanoGPT practice).
NO_WEIGHT_DECAY = ["bias", "gamma", "beta", "scale"]


def learning_rate_schedule(train_config, total_steps):
    """Linear warmup to `learning_rate`, then cosine decay to `min_learning_rate`
    at `total_steps` (or constant, for `decay: constant`)."""
    peak = train_config["learning_rate"]
    warmup = min(train_config["warmup_steps"], max(total_steps - 1, 0))
    floor = peak if train_config["decay"] == "constant" else train_config["min_learning_rate"]
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else peak,
        decay_steps=max(total_steps - warmup, 1),
        alpha=min(floor / peak, 1.0),
        warmup_target=peak if warmup else None,
        warmup_steps=warmup,
    )


def global_norm(grads):
    """`sqrt(sum of squares)` over every gradient (None skipped), in float32."""
    squares = [ops.sum(ops.square(ops.cast(g, "float32"))) for g in grads if g is not None]
    return ops.sqrt(ops.sum(ops.stack(squares))) if squares else ops.zeros((), "float32")


@keras.saving.register_keras_serializable(package="kzoo")
class AdamWWithGradientNorm(keras.optimizers.AdamW):
    """AdamW that keeps the global norm of each step's gradients, before clipping,
    in the variable `gradient_norm` (float32 scalar; 0 before the first step).

    The norm is computed in `apply` with `keras.ops`, so it is recorded on every
    backend, inside a compiled train step and under JAX's `stateless_apply`
    alike. Under `keras.mixed_precision.LossScaleOptimizer` (mixed_float16) the
    wrapper divides the gradients by the loss scale before calling `apply`, so
    the norm is of the unscaled gradients; a step the wrapper skips (non-finite
    gradients) leaves it unchanged. Under a TensorFlow `tf.distribute` strategy
    `apply` runs per replica, before the gradients are summed, and the first
    replica's norm is kept (the gradients Keras clips there too).

    Being an optimizer variable, `gradient_norm` is saved with the optimizer
    (step checkpoints, `model.keras`).

    Args:
        **kwargs: As for `keras.optimizers.AdamW`.

    Example:
    >>> import numpy as np
    >>> optimizer = AdamWWithGradientNorm(learning_rate=0.1, clipnorm=1.0)
    >>> weights = keras.Variable(np.zeros(2, "float32"))
    >>> optimizer.apply([np.array([3.0, 4.0], "float32")], [weights])
    >>> float(keras.ops.convert_to_numpy(optimizer.gradient_norm))
    5.0
    """

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.gradient_norm = self.add_variable(
            shape=(),
            initializer="zeros",
            dtype="float32",
            aggregation="only_first_replica",
            name="gradient_norm",
        )

    def apply(self, grads, trainable_variables=None):
        grads = list(grads)
        norm = global_norm(grads)
        if self.loss_scale_factor is not None:  # `apply` unscales by it
            norm = norm / self.loss_scale_factor
        result = super().apply(grads, trainable_variables)  # builds on the first call
        self.gradient_norm.assign(norm)
        return result


def recorded_gradient_norm(optimizer):
    """The `gradient_norm` variable of `optimizer` (or of the optimizer a
    `LossScaleOptimizer` wraps), or None when it does not record one."""
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)
    return getattr(optimizer, "gradient_norm", None)


def make_optimizer(train_config, total_steps):
    optimizer = AdamWWithGradientNorm(
        learning_rate=learning_rate_schedule(train_config, total_steps),
        weight_decay=train_config["weight_decay"],
        beta_1=train_config["beta_1"],
        beta_2=train_config["beta_2"],
        clipnorm=train_config["clipnorm"],
    )
    optimizer.exclude_from_weight_decay(var_names=NO_WEIGHT_DECAY)
    return optimizer
