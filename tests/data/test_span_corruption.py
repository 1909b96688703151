"""T5 span corruption: noise counts and span lengths, reconstruction, lengths, determinism."""

import functools

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from kzoo.data.span_corruption import (
    corrupt_spans,
    random_spans_noise_mask,
    reconstruct,
    span_corruption_dataset,
    span_corruption_lengths,
    token_blocks,
)

SENTINELS = list(range(1, 301))  # ids 1..300; real tokens are >= 1000
END = 0


@functools.cache
def _graph_corrupt_spans(density, mean_span):
    """`corrupt_spans` as a graph function of dynamic length (fast, like in tf.data)."""
    return tf.function(
        lambda tokens, seed: corrupt_spans(tokens, SENTINELS, density, mean_span, seed),
        input_signature=[tf.TensorSpec([None], tf.int32), tf.TensorSpec([2], tf.int64)],
        autograph=False,
    )


def _masks(length, count, **kwargs):
    masks = tf.data.Dataset.range(count).map(
        lambda i: random_spans_noise_mask(length, seed=tf.stack([i, 7]), **kwargs)
    )
    return np.stack(list(masks.batch(count).as_numpy_iterator())[0])


def _spans(mask):
    """Lengths of the runs of True in a 1-D bool array."""
    edges = np.diff(np.concatenate([[0], mask.astype(int), [0]]))
    return np.nonzero(edges == -1)[0] - np.nonzero(edges == 1)[0]


@pytest.mark.parametrize("length", [100, 114, 568])
def test_noise_density_is_exactly_rounded_and_15_percent_overall(length):
    masks = _masks(length, 300)
    assert np.all(masks.sum(axis=1) == round(length * 0.15))
    assert abs(masks.mean() - 0.15) < 0.01


@pytest.mark.parametrize("length,expected", [(2, 1), (5, 1), (10, 2), (30, 4), (37, 6)])
def test_noise_count_rounds_half_to_even_and_keeps_one_of_each(length, expected):
    # 10 * 0.15 = 1.5 -> 2 and 30 * 0.15 = 4.5 -> 4, like Python's round().
    assert (
        int(random_spans_noise_mask(length).numpy().sum())
        == expected
        == max(1, min(round(length * 0.15), length - 1))
    )


def test_mean_noise_span_length_is_about_3_and_spans_start_with_kept_tokens():
    masks = _masks(568, 300)
    span_lengths = np.concatenate([_spans(m) for m in masks])
    assert abs(span_lengths.mean() - 3.0) < 0.3, span_lengths.mean()
    assert len(set(span_lengths.tolist())) > 3  # lengths vary: random segmentation
    assert not masks[:, 0].any()
    assert masks[:, -1].all()  # kept and noise spans alternate, noise last


def test_mask_is_deterministic_per_seed():
    first = random_spans_noise_mask(100, seed=[3, 4]).numpy()
    np.testing.assert_array_equal(first, random_spans_noise_mask(100, seed=[3, 4]).numpy())
    assert not np.array_equal(first, random_spans_noise_mask(100, seed=[3, 5]).numpy())


@settings(max_examples=40, deadline=None)
@given(
    length=st.integers(2, 300),
    density=st.sampled_from([0.15, 0.5]),
    mean_span=st.sampled_from([1.0, 3.0, 8.0]),
    seed=st.integers(0, 2**31 - 1),
)
def test_inputs_and_targets_reconstruct_the_original(length, density, mean_span, seed):
    tokens = np.random.default_rng(seed).integers(1000, 2000, length).astype(np.int32)
    seed = tf.constant([seed, 1], tf.int64)
    inputs, targets = _graph_corrupt_spans(density, mean_span)(tokens, seed)
    inputs, targets = inputs.numpy(), targets.numpy()
    assert reconstruct(inputs, targets, SENTINELS) == tokens.tolist()
    num_spans = np.isin(inputs, SENTINELS).sum()
    assert num_spans == np.isin(targets, SENTINELS).sum() >= 1
    assert len(inputs) + len(targets) == length + 2 * num_spans


def test_sentinels_are_used_in_order():
    tokens = tf.range(1000, 1200)
    inputs, targets = corrupt_spans(tokens, SENTINELS, seed=[0, 0])
    used = [t for t in inputs.numpy().tolist() if t in SENTINELS]
    assert used == SENTINELS[: len(used)] and len(used) == round(30 / 3.0)
    assert [t for t in targets.numpy().tolist() if t in SENTINELS] == used
    assert targets[0] == SENTINELS[0]


@pytest.mark.parametrize(
    "inputs_length,expected", [(32, (34, 8)), (64, (70, 14)), (128, (141, 29)), (512, (568, 114))]
)
def test_lengths_fill_the_inputs_exactly(inputs_length, expected):
    assert span_corruption_lengths(inputs_length) == expected
    tokens_length, targets_length = expected
    chunks = tf.data.Dataset.from_tensor_slices(
        tf.ragged.constant([list(range(1000, 1000 + 7 * tokens_length + 5))])
    )
    blocks = token_blocks(chunks, tokens_length)
    assert blocks.element_spec.shape.as_list() == [tokens_length]
    examples = list(span_corruption_dataset(blocks, SENTINELS, END).as_numpy_iterator())
    assert len(examples) == 7
    for example in examples:
        assert len(example["source_ids"]) == inputs_length
        assert len(example["target_ids"]) == targets_length
        assert example["source_ids"][-1] == example["target_ids"][-1] == END


def test_token_blocks_are_consecutive_and_drop_the_tail():
    chunks = tf.data.Dataset.from_tensor_slices(tf.ragged.constant([[1, 2], [3, 4, 5, 6, 7]]))
    blocks = [b.tolist() for b in token_blocks(chunks, 3).as_numpy_iterator()]
    assert blocks == [[1, 2, 3], [4, 5, 6]]


def _examples(seed, count=20):
    blocks = tf.data.Dataset.from_tensors(tf.range(1000, 1100)).repeat(count)
    dataset = span_corruption_dataset(blocks, SENTINELS, END, seed=seed)
    return [
        (e["source_ids"].tolist(), e["target_ids"].tolist()) for e in dataset.as_numpy_iterator()
    ]


def test_dataset_is_deterministic_per_seed_and_differs_between_elements():
    first = _examples(seed=5)
    assert first == _examples(seed=5)
    assert first != _examples(seed=6)
    assert len(set(map(str, first))) == len(first)  # same block, new noise each time
    for source, target in first:
        assert reconstruct(source[:-1], target[:-1], SENTINELS) == list(range(1000, 1100))


def test_too_few_sentinels_is_a_clear_error():
    blocks = tf.data.Dataset.from_tensors(tf.range(1000, 1568))
    with pytest.raises(
        ValueError,
        match=r"sentinel_ids: a block of 568 tokens has 28 "
        r"noise spans but only 10 sentinel ids",
    ):
        span_corruption_dataset(blocks, SENTINELS[:10], END)
    with pytest.raises(ValueError, match="sentinel_ids: a block of 568 tokens"):
        corrupt_spans(tf.range(1000, 1568), SENTINELS[:10])
    with pytest.raises(ValueError, match="sentinel_ids: expected at least one"):
        corrupt_spans(tf.range(1000, 1010), [])


def test_too_few_sentinels_for_dynamic_lengths_fails_at_run_time():
    blocks = tf.data.Dataset.from_generator(
        lambda: iter([np.arange(1000, 1568, dtype=np.int32)]),
        output_signature=tf.TensorSpec([None], tf.int32),
    )
    dataset = span_corruption_dataset(blocks, SENTINELS[:10], END)
    with pytest.raises(tf.errors.InvalidArgumentError, match="more noise spans than the 10"):
        list(dataset)


def test_invalid_arguments_name_the_argument():
    with pytest.raises(ValueError, match="noise_density"):
        span_corruption_lengths(512, noise_density=1.5)
    with pytest.raises(ValueError, match="inputs_length"):
        span_corruption_lengths(0)
    with pytest.raises(ValueError, match="block_length"):
        token_blocks(tf.data.Dataset.range(3), 0)
