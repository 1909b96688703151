"""Losses Keras lacks: sparse cross-entropy with label smoothing."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="kzoo")
class SparseCrossentropyWithSmoothing(keras.losses.Loss):
    """Cross-entropy of integer labels against logits, with label smoothing.

    The target distribution puts `1 - label_smoothing` on the label and spreads
    `label_smoothing` uniformly over the vocabulary (as `CategoricalCrossentropy(
    label_smoothing=...)` does on one-hot labels), without materialising one-hot
    labels: `(1 - e) * nll + e * mean_v(-log p_v)`. Keras's
    `SparseCategoricalCrossentropy` has no smoothing option.

    Args:
        label_smoothing: `e` in [0, 1); 0 is the plain sparse cross-entropy.

    Example:
    >>> import numpy as np
    >>> loss = SparseCrossentropyWithSmoothing(label_smoothing=0.1)
    >>> logits = np.log(np.array([[0.7, 0.2, 0.1]], "float32"))
    >>> plain = -np.log(0.7)
    >>> uniform = -np.log([0.7, 0.2, 0.1]).mean()
    >>> bool(np.isclose(float(loss(np.array([0]), logits)), 0.9 * plain + 0.1 * uniform))
    True
    """

    def __init__(self, label_smoothing=0.0, name="sparse_crossentropy_with_smoothing", **kwargs):
        super().__init__(name=name, **kwargs)
        if not 0.0 <= label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1); received {label_smoothing}")
        self.label_smoothing = label_smoothing

    def call(self, y_true, y_pred):
        log_probs = ops.log_softmax(ops.cast(y_pred, "float32"), axis=-1)
        labels = ops.cast(y_true, "int32")[..., None]
        nll = -ops.take_along_axis(log_probs, labels, axis=-1)[..., 0]
        if not self.label_smoothing:
            return nll
        uniform = -ops.mean(log_probs, axis=-1)
        return (1.0 - self.label_smoothing) * nll + self.label_smoothing * uniform

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}
