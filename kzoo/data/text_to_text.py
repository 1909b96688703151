"""Text-to-text task mixtures: T5-style task prefixes and rate-weighted sampling.

Every task is a dataset of `{"source": tf.string, "target": tf.string}` examples.
A task's prefix is written in front of its sources (`"translate: " + source`), so
one model can tell the tasks apart, and `mixture_dataset` draws each example from
task `i` with probability `rates[i] / sum(rates)`.
"""

import numbers

import tensorflow as tf


def add_prefix(dataset, prefix):
    """Writes `prefix + ": "` in front of every `source` (nothing for an empty prefix).

    Args:
        dataset: A dataset of dicts with a scalar `tf.string` `"source"`; other keys
            are kept as they are.
        prefix: The task prefix, a `str`; `""` or `None` leaves sources unchanged.

    Returns:
        A `tf.data.Dataset` with the same structure.

    Example:
    >>> pairs = tf.data.Dataset.from_tensor_slices({"source": ["hi"], "target": ["salut"]})
    >>> [e["source"].numpy() for e in add_prefix(pairs, "translate")]
    [b'translate: hi']
    """
    if not prefix:
        return dataset
    head = tf.constant(f"{prefix}: ")

    def prefixed(example):
        example = dict(example)
        example["source"] = tf.strings.join([head, example["source"]])
        return example

    return dataset.map(prefixed, num_parallel_calls=tf.data.AUTOTUNE)


def _weights(prefixes, rates):
    """Sampling weights from `rates` (equal when None), checked and normalised."""
    if rates is None:
        return [1.0 / len(prefixes)] * len(prefixes)
    rates = list(rates)
    if len(rates) != len(prefixes):
        raise ValueError(
            f"data.mixture: got {len(rates)} rates for {len(prefixes)} tasks "
            f"{prefixes!r}; give one rate per task"
        )
    for prefix, rate in zip(prefixes, rates):
        if not isinstance(rate, numbers.Real) or not rate >= 0:  # NaN fails too
            raise ValueError(
                f"data.mixture: the rate of task {prefix!r} must be a number >= 0, got {rate!r}"
            )
    total = float(sum(rates))
    if total <= 0:
        raise ValueError(
            f"data.mixture: all rates are zero ({rates!r} for tasks {prefixes!r}); "
            "give at least one task a positive rate"
        )
    return [rate / total for rate in rates]


def mixture_dataset(tasks, rates=None, seed=0):
    """Samples a mixture of prefixed text-to-text tasks.

    Each example is drawn from task `i` with probability `rates[i] / sum(rates)`
    (`tf.data.Dataset.sample_from_datasets`); the order is the same for the same
    seed. Only `"source"` and `"target"` are kept, so tasks may carry other keys.
    Sampling goes on while any task has examples: repeat the tasks (the usual
    case) to keep the proportions for an unbounded stream.

    Args:
        tasks: A list of `(prefix, dataset)` pairs, each dataset of
            `{"source", "target"}` scalar strings.
        rates: One non-negative number per task; `None` samples tasks equally.
        seed: The sampling seed, an int.

    Returns:
        A `tf.data.Dataset` of `{"source", "target"}` scalar `tf.string`.

    Example:
    >>> def task(source):
    ...     return tf.data.Dataset.from_tensors({"source": source, "target": "x"}).repeat()
    >>> mixed = mixture_dataset([("a", task("1")), ("b", task("2"))], rates=[1, 0])
    >>> [e["source"].numpy() for e in mixed.take(2)]
    [b'a: 1', b'a: 1']
    """
    tasks = list(tasks)
    if not tasks:
        raise ValueError("data.mixture: expected at least one (prefix, dataset) task, got []")
    for task in tasks:
        if not (
            isinstance(task, (tuple, list))
            and len(task) == 2
            and isinstance(task[1], tf.data.Dataset)
        ):
            raise ValueError(
                f"data.mixture: expected (prefix, tf.data.Dataset) pairs, got {task!r}"
            )
    prefixes = [prefix for prefix, _ in tasks]
    weights = _weights(prefixes, rates)

    def source_and_target(example):
        return {"source": example["source"], "target": example["target"]}

    datasets = [add_prefix(dataset, prefix).map(source_and_target) for prefix, dataset in tasks]
    return tf.data.Dataset.sample_from_datasets(datasets, weights=weights, seed=seed)
