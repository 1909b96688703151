"""Training: recipes, the `model.fit` trainer, TensorBoard callbacks, evaluation.

TensorFlow-only (tf.data, tf.summary); imported on use, never by `kzoo.models`.
"""
