"""Text-to-text mixtures: prefixes, sampling proportions, determinism, errors."""

import collections

import pytest
import tensorflow as tf

from kzoo.training.tasks.text_sources import add_prefix, mixture_dataset


def _task(name, count=5):
    sources = [f"{name} {i}" for i in range(count)]
    targets = [f"out {i}" for i in range(count)]
    return tf.data.Dataset.from_tensor_slices({"source": sources, "target": targets})


def _sources(dataset, count):
    batch = next(dataset.take(count).batch(count).as_numpy_iterator())
    return [source.decode() for source in batch["source"]]


def test_prefix_is_written_before_the_source_only():
    examples = list(add_prefix(_task("hello", 2), "summarize").as_numpy_iterator())
    assert [e["source"] for e in examples] == [b"summarize: hello 0", b"summarize: hello 1"]
    assert [e["target"] for e in examples] == [b"out 0", b"out 1"]


@pytest.mark.parametrize("prefix", ["", None])
def test_empty_prefix_leaves_the_source_unchanged(prefix):
    assert _sources(add_prefix(_task("x", 2), prefix), 2) == ["x 0", "x 1"]


@pytest.mark.parametrize(
    "rates,expected",
    [
        ([5, 3, 2], [0.5, 0.3, 0.2]),
        ([0.1, 0.1, 0.2], [0.25, 0.25, 0.5]),
        (None, [1 / 3, 1 / 3, 1 / 3]),
    ],
)
def test_sampling_proportions_follow_the_rates(rates, expected):
    tasks = [(p, _task(p).repeat()) for p in ("a", "b", "c")]
    draws = 4000
    sources = _sources(mixture_dataset(tasks, rates, seed=1), draws)
    counts = collections.Counter(s.split(":")[0] for s in sources)
    for prefix, share in zip("abc", expected):
        assert abs(counts[prefix] / draws - share) < 0.03, (prefix, counts)


def test_every_source_carries_its_task_prefix():
    tasks = [("translate", _task("en").repeat()), ("", _task("raw").repeat())]
    for source in _sources(mixture_dataset(tasks, seed=0), 50):
        assert source.startswith("translate: en ") or source.startswith("raw ")


def test_same_seed_same_order_other_seed_other_order():
    def order(seed):
        tasks = [(p, _task(p).repeat()) for p in ("a", "b")]
        return _sources(mixture_dataset(tasks, [1, 1], seed=seed), 200)

    assert order(3) == order(3)
    assert order(3) != order(4)


def test_extra_keys_are_dropped_so_tasks_can_differ():
    extra = _task("q").map(lambda e: {**e, "id": tf.constant(1)})
    mixed = mixture_dataset([("qa", extra.repeat()), ("t", _task("w").repeat())])
    assert set(mixed.element_spec) == {"source", "target"}


@pytest.mark.parametrize(
    "rates,message",
    [
        ([1, -1], r"data.mixture: the rate of task 'b' must be a number >= 0, got -1"),
        ([0, 0], r"data.mixture: all rates are zero"),
        ([1], r"data.mixture: got 1 rates for 2 tasks \['a', 'b'\]"),
        ([1, float("nan")], r"task 'b'"),
    ],
)
def test_bad_rates_are_clear_errors(rates, message):
    tasks = [("a", _task("a")), ("b", _task("b"))]
    with pytest.raises(ValueError, match=message):
        mixture_dataset(tasks, rates)


def test_bad_tasks_are_clear_errors():
    with pytest.raises(ValueError, match="data.mixture: expected at least one"):
        mixture_dataset([])
    with pytest.raises(ValueError, match=r"data.mixture: expected \(prefix, tf.data.Dataset\)"):
        mixture_dataset([("a", ["not a dataset"])])
