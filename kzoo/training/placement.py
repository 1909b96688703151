"""`Placement`: where a run trains, as the trainer sees it (the base of every
`train.strategy`; `kzoo.training.distribute` picks one)."""

import contextlib

import keras  # noqa: F401 (docstring example)


class Placement:
    """Where a run trains: one device (`train.strategy: default`).

    `scope()` wraps building, compiling, restoring, `fit` and saving the model;
    `is_chief` tells whether this process writes the run directory.

    Example:
    >>> placement = Placement()
    >>> placement.name, placement.num_replicas, placement.is_chief
    ('default', 1, True)
    >>> with placement.scope():
    ...     model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    """

    name = "default"
    num_replicas = 1
    is_chief = True

    def scope(self):
        return contextlib.nullcontext()

    def prepare(self, dataset):
        """A `tf.data` input of `fit` (or None), ready for the replicas."""
        return dataset

    def jit_compile(self, requested):
        """`train.jit_compile` as the strategy can honour it."""
        return requested

    def agree(self, what, value):
        """Checks that every worker has the same int `value` (a no-op on one host)."""

    def check_model(self, model):
        """Called on the model built in `scope()`; raises if it was not placed as
        the strategy says."""
