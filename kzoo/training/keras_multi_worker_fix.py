"""A compatibility fix for Keras 3's `model.fit` under `tf.distribute` strategies.

Keras 3 (3.15 with TensorFlow 2.21 here) cannot `fit` a model under
`MultiWorkerMirroredStrategy`: https://github.com/keras-team/keras/issues/20585
(open; also https://github.com/tensorflow/tensorflow/issues/72388). Two places of
`keras/src/backend/tensorflow/trainer.py` break:

1. `TensorFlowTrainer._maybe_symbolic_build` pulls a batch from the distributed
   dataset and averages it over the replicas, `strategy.reduce("MEAN", batch,
   axis=None)`. With several workers the collective reduce cannot convert the
   batch's structure of `PerReplica` values: `ValueError: Attempt to convert a
   value (PerReplica:{...}) with an unsupported type`. Under `MirroredStrategy`
   the same reduce fails on a non-numeric input such as kzoo's bool
   `padding_mask`: `InvalidArgumentError: Value for attr 'T' of bool is not in
   the list of allowed values ... {{node AddN}}` (strings:
   https://github.com/keras-team/keras/issues/21172). And under any strategy it
   spends the dataset's first iterator on the build, so `fit` trains on the
   second one, which a seeded `shuffle` orders differently from a run without a
   strategy.
2. `reduce_per_replica` averages the step's metrics (scalars) over the workers
   with `strategy.reduce("MEAN", value, axis=0)`: `ValueError: Invalid
   reduction dimension 0 for input with 0 dimensions`.

The fix (`apply()`) replaces these two functions, and nothing else:

1. the symbolic build takes shapes and dtypes from the dataset's `element_spec`
   (all it needs): no data is read, reduced or communicated;
2. multi-worker mean reductions of scalars use `axis=None` (the mean over the
   replicas); every other reduction is Keras' own.

`kzoo.training.distribute` applies it under every `tf.distribute` strategy
(`mirrored`, `multi_worker`, `tpu`), never without one. Remove this module and its
call in `distribute.py` once `tests/training/test_distribute.py` reports
"keras#20585 fixed upstream": its worker processes first run
`unpatched_fit_error` and expect the errors above (`KNOWN_ERRORS`).

Example:
>>> from kzoo.training import keras_multi_worker_fix
>>> keras_multi_worker_fix.apply()
>>> keras_multi_worker_fix.is_applied()
True
>>> keras_multi_worker_fix.remove()
>>> keras_multi_worker_fix.is_applied()
False
"""

import keras
import numpy as np
import tensorflow as tf
from keras.src.backend.tensorflow import trainer as tf_trainer

# What an unpatched `fit` raises (item 1 of the module docstring).
KNOWN_ERRORS = {
    "multi_worker": "Attempt to convert a value (PerReplica",
    "mirrored": "Value for attr 'T' of bool is not in the list of allowed values",
}

_ORIGINAL = {
    "maybe_symbolic_build": tf_trainer.TensorFlowTrainer._maybe_symbolic_build,
    "reduce_per_replica": tf_trainer.reduce_per_replica,
}


def _maybe_symbolic_build(self, iterator=None, data_batch=None):
    if self._distribute_strategy is None:
        return  # As upstream: built when the step function is traced.
    if iterator is not None:
        # TensorSpecs carry the shapes and dtypes `_symbolic_build` reads.
        data_batch = iterator.data_adapter.get_tf_dataset().element_spec
    with self.distribute_strategy.scope():
        self._symbolic_build(data_batch=data_batch)


def _reduce_per_replica(values, strategy, reduction):
    if reduction in ("auto", "mean") and tf_trainer._collective_all_reduce_multi_worker(strategy):

        def mean(value):
            local = strategy.experimental_local_results(value)[0]
            return strategy.reduce("MEAN", value, axis=None if local.shape.rank == 0 else 0)

        return keras.tree.map_structure(mean, values)
    return _ORIGINAL["reduce_per_replica"](values, strategy, reduction)


def apply():
    """Patches Keras' TensorFlow trainer, for the whole process (idempotent)."""
    tf_trainer.TensorFlowTrainer._maybe_symbolic_build = _maybe_symbolic_build
    tf_trainer.reduce_per_replica = _reduce_per_replica


def remove():
    """Restores Keras' own functions."""
    tf_trainer.TensorFlowTrainer._maybe_symbolic_build = _ORIGINAL["maybe_symbolic_build"]
    tf_trainer.reduce_per_replica = _ORIGINAL["reduce_per_replica"]


def is_applied():
    return tf_trainer.reduce_per_replica is _reduce_per_replica


def unpatched_fit_error(strategy, features):
    """Fits a tiny model for one step under `strategy` with Keras' own code (the
    fix is lifted meanwhile); returns the error as text, or None if it trains.

    Every worker of a cluster must call it (the step runs collectives).

    Args:
        strategy: A `tf.distribute.Strategy`.
        features: A batch of 4 examples: a float array, or a dict of arrays whose
            `"x"` is one (the others are inputs the model ignores).
    """
    applied = is_applied()
    remove()
    try:
        with strategy.scope():
            inputs = keras.tree.map_structure(
                lambda v: keras.Input(v.shape[1:], dtype=v.dtype), features
            )
            x = inputs["x"] if isinstance(inputs, dict) else inputs
            model = keras.Model(inputs, keras.layers.Dense(1)(x))
            model.compile(optimizer="sgd", loss="mse")
        batch = (features, np.ones((4, 1), "float32"))
        model.fit(tf.data.Dataset.from_tensors(batch).repeat(), steps_per_epoch=1, verbose=0)
        return None
    except Exception as error:  # noqa: BLE001 (reported, not handled)
        return f"{type(error).__name__}: {error}"
    finally:
        if applied:
            apply()
