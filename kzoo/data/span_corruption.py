"""T5's span-corruption objective, in graph, for tf.data pipelines.

A block of raw tokens is split into alternating spans of kept and noise tokens,
starting with a kept span and ending with a noise span. Each noise span is replaced
in the inputs by one sentinel (`sentinel_ids[i]` for the `i`-th span), and the
targets list every sentinel followed by the tokens it hides:

    tokens   a b c d e f g h       (noise spans: c d, h)
    inputs   a b <0> e f g <1>
    targets  <0> c d <1> h

Exactly `round(length * noise_density)` tokens are noise (at least 1, at most
`length - 1`) in `max(1, round(num_noise / mean_noise_span_length))` spans, as in
T5's `random_spans_noise_mask`. The counts are computed in float64 with
round-half-to-even both in graph and in Python, so `span_corruption_lengths` knows
the exact inputs length in advance: with its `tokens_length`, every example's
`source_ids` (inputs plus end id) has exactly `inputs_length` tokens.

Randomness is stateless (`tf.random.stateless_*`) and keyed by a seed of shape
`[2]`; `span_corruption_dataset` keys it by `(seed, element index)`, so a dataset
is the same for the same seed and every block gets its own noise.
"""

import numpy as np
import tensorflow as tf


def _span_counts(length, noise_density, mean_noise_span_length):
    """`(num_noise_tokens, num_noise_spans)` for a static length, as in graph."""
    num_noise = min(max(round(length * noise_density), 1), length - 1)
    num_spans = max(1, round(num_noise / mean_noise_span_length))
    return num_noise, min(num_spans, num_noise, length - num_noise)


def _check_rates(noise_density, mean_noise_span_length):
    if not 0.0 < noise_density < 1.0:
        raise ValueError(f"noise_density: expected a value in (0, 1), got {noise_density!r}")
    if not mean_noise_span_length >= 1.0:
        raise ValueError(
            f"mean_noise_span_length: expected a value >= 1, got {mean_noise_span_length!r}"
        )


def _random_segmentation(num_items, num_segments, seed):
    """Lengths of a random split of `num_items` items into `num_segments` non-empty runs."""
    starts_segment = tf.range(num_items - 1) < num_segments - 1
    order = tf.argsort(tf.random.stateless_uniform([num_items - 1], seed))
    starts_segment = tf.pad(tf.cast(tf.gather(starts_segment, order), tf.int32), [[1, 0]])
    segment_id = tf.cumsum(starts_segment)
    return tf.math.segment_sum(tf.ones_like(segment_id), segment_id)


def random_spans_noise_mask(length, noise_density=0.15, mean_noise_span_length=3.0, seed=(0, 0)):
    """A random noise mask of alternating kept / noise spans (T5's).

    Args:
        length: Tokens in the sequence, an int or scalar int tensor.
        noise_density: Share of noise tokens, `round(length * noise_density)`
            clamped to `[1, length - 1]`.
        mean_noise_span_length: Average noise span length; there are
            `max(1, round(num_noise / mean_noise_span_length))` spans.
        seed: Stateless seed, int `[2]`.

    Returns:
        A bool `[length]` tensor, True at noise tokens; it starts with a kept token.

    Example:
    >>> mask = random_spans_noise_mask(20, seed=[1, 2])
    >>> int(tf.reduce_sum(tf.cast(mask, tf.int32))), bool(mask[0])
    (3, False)
    """
    _check_rates(noise_density, mean_noise_span_length)
    original_length = tf.cast(length, tf.int32)
    length = tf.maximum(original_length, 2)  # avoids degenerate counts, as T5 does
    num_noise = tf.cast(tf.round(tf.cast(length, tf.float64) * noise_density), tf.int32)
    num_noise = tf.clip_by_value(num_noise, 1, length - 1)
    num_spans = tf.cast(tf.round(tf.cast(num_noise, tf.float64) / mean_noise_span_length), tf.int32)
    num_spans = tf.minimum(tf.maximum(num_spans, 1), tf.minimum(num_noise, length - num_noise))
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 2)
    noise_lengths = _random_segmentation(num_noise, num_spans, seeds[0])
    kept_lengths = _random_segmentation(length - num_noise, num_spans, seeds[1])
    span_lengths = tf.reshape(tf.stack([kept_lengths, noise_lengths], axis=1), [-1])
    span_is_noise = tf.tile([False, True], [num_spans])
    return tf.repeat(span_is_noise, span_lengths)[:original_length]


def span_corruption_lengths(inputs_length, noise_density=0.15, mean_noise_span_length=3.0):
    """Raw tokens per example so that the corrupted inputs fill `inputs_length`.

    A port of T5's `random_spans_helper` (one sentinel per span, one end id).

    Args:
        inputs_length: Wanted length of `source_ids` (kept tokens, one sentinel per
            noise span, the end id).
        noise_density: As in `random_spans_noise_mask`.
        mean_noise_span_length: As in `random_spans_noise_mask`.

    Returns:
        `(tokens_length, targets_length)`: raw tokens to cut per example, and the
        length of its `target_ids` (one sentinel per span, noise tokens, end id).

    Example:
    >>> span_corruption_lengths(512)
    (568, 114)
    """
    if not isinstance(inputs_length, int) or inputs_length < 3:
        raise ValueError(f"inputs_length: expected an int >= 3, got {inputs_length!r}")
    _check_rates(noise_density, mean_noise_span_length)

    def lengths(tokens_length):
        num_noise, num_spans = _span_counts(tokens_length, noise_density, mean_noise_span_length)
        return tokens_length - num_noise + num_spans + 1, num_noise + num_spans + 1

    tokens_length = inputs_length - 1
    while lengths(tokens_length + 1)[0] <= inputs_length:
        tokens_length += 1
    return tokens_length, lengths(tokens_length)[1]


def corrupt_spans(
    token_ids, sentinel_ids, noise_density=0.15, mean_noise_span_length=3.0, seed=(0, 0)
):
    """Corrupts one token sequence into T5 `(inputs, targets)` (no end id).

    Args:
        token_ids: 1-D int32 tokens; none of them may be a sentinel.
        sentinel_ids: Python list of ints, `sentinel_ids[i]` marks the `i`-th span.
        noise_density: As in `random_spans_noise_mask`.
        mean_noise_span_length: As in `random_spans_noise_mask`.
        seed: Stateless seed, int `[2]`.

    Returns:
        `(inputs, targets)`, 1-D int32: the kept tokens with each noise span
        replaced by its sentinel, and each sentinel followed by its span's tokens.

    Example:
    >>> tokens = tf.range(10, 30)
    >>> inputs, targets = corrupt_spans(tokens, [1, 2, 3], noise_density=0.3,
    ...                                 mean_noise_span_length=2.0, seed=[0, 1])
    >>> inputs.numpy().tolist()
    [10, 11, 12, 1, 15, 16, 17, 2, 20, 21, 22, 23, 24, 25, 26, 27, 3]
    >>> targets.numpy().tolist()
    [1, 13, 14, 2, 18, 19, 3, 28, 29]
    >>> reconstruct(inputs, targets, [1, 2, 3]) == list(range(10, 30))
    True
    """
    sentinel_ids = [int(i) for i in sentinel_ids]
    if not sentinel_ids:
        raise ValueError("sentinel_ids: expected at least one sentinel id, got []")
    token_ids = tf.convert_to_tensor(token_ids, tf.int32)
    _check_sentinels(token_ids.shape[0], sentinel_ids, noise_density, mean_noise_span_length)
    noise = random_spans_noise_mask(tf.size(token_ids), noise_density, mean_noise_span_length, seed)
    continues = noise & tf.pad(noise[:-1], [[1, 0]])
    starts = noise & ~continues
    span_index = tf.cumsum(tf.cast(starts, tf.int32)) - 1
    check = tf.debugging.assert_less(
        tf.reduce_max(tf.concat([span_index, [-1]], 0)),
        len(sentinel_ids),
        message=f"sentinel_ids: a sequence has more noise spans than the "
        f"{len(sentinel_ids)} sentinel ids given",
    )
    with tf.control_dependencies([check]):
        sentinels = tf.gather(sentinel_ids, tf.clip_by_value(span_index, 0, len(sentinel_ids) - 1))
    inputs = tf.boolean_mask(tf.where(starts, sentinels, token_ids), ~continues)
    # Targets: every noise token, preceded by its sentinel where a span starts.
    pairs = tf.stack([sentinels, token_ids], axis=1)
    keep = tf.stack([starts, noise], axis=1)
    return inputs, tf.boolean_mask(pairs, keep)


def _check_sentinels(length, sentinel_ids, noise_density, mean_noise_span_length):
    """Raises when a sequence of static `length` has more spans than sentinels."""
    if length is None or length < 2:
        return
    _, num_spans = _span_counts(length, noise_density, mean_noise_span_length)
    if num_spans > len(sentinel_ids):
        raise ValueError(
            f"sentinel_ids: a block of {length} tokens has {num_spans} noise spans but "
            f"only {len(sentinel_ids)} sentinel ids were given; give at least {num_spans}"
        )


def span_corruption_dataset(
    token_blocks, sentinel_ids, end_id, noise_density=0.15, mean_noise_span_length=3.0, seed=0
):
    """Maps token blocks to T5 span-corruption examples.

    Args:
        token_blocks: A dataset of 1-D int32 blocks, e.g. `token_blocks(chunks,
            span_corruption_lengths(inputs_length)[0])`.
        sentinel_ids: Python list of ints, at least as many as noise spans per block.
        end_id: The end-of-sequence id appended to inputs and targets.
        noise_density: As in `random_spans_noise_mask`.
        mean_noise_span_length: As in `random_spans_noise_mask`.
        seed: An int; element `i` draws its noise with the key `(seed, i)`.

    Returns:
        A `tf.data.Dataset` of `{"source_ids", "target_ids"}`, 1-D int32.

    Example:
    >>> tokens_length, targets_length = span_corruption_lengths(32)
    >>> chunks = tf.data.Dataset.from_tensor_slices(tf.ragged.constant([list(range(100, 200))]))
    >>> blocks = token_blocks(chunks, tokens_length)  # 100 tokens -> 2 blocks of 34
    >>> examples = span_corruption_dataset(blocks, list(range(1, 11)), end_id=0)
    >>> [(len(e["source_ids"]), len(e["target_ids"])) for e in examples], targets_length
    ([(32, 8), (32, 8)], 8)
    """
    _check_rates(noise_density, mean_noise_span_length)
    sentinel_ids = [int(i) for i in sentinel_ids]
    length = token_blocks.element_spec.shape[0]
    _check_sentinels(length, sentinel_ids, noise_density, mean_noise_span_length)
    end = tf.constant([end_id], tf.int32)

    def to_example(index, block):
        key = tf.stack([tf.constant(seed, tf.int64), index])
        inputs, targets = corrupt_spans(
            tf.cast(block, tf.int32), sentinel_ids, noise_density, mean_noise_span_length, key
        )
        return {
            "source_ids": tf.concat([inputs, end], 0),
            "target_ids": tf.concat([targets, end], 0),
        }

    return token_blocks.enumerate().map(to_example, num_parallel_calls=tf.data.AUTOTUNE)


def token_blocks(chunks, block_length):
    """Cuts a stream of token chunks into consecutive blocks of `block_length` tokens.

    The tail of fewer than `block_length` tokens is dropped.

    Example:
    >>> stream = tf.ragged.constant([[0, 1, 2], [3, 4, 5, 6]])
    >>> blocks = token_blocks(tf.data.Dataset.from_tensor_slices(stream), 3)
    >>> [b.numpy().tolist() for b in blocks]
    [[0, 1, 2], [3, 4, 5]]
    """
    if not isinstance(block_length, int) or block_length < 1:
        raise ValueError(f"block_length: expected a positive int, got {block_length!r}")
    blocks = chunks.rebatch(block_length, drop_remainder=True)
    return blocks.map(lambda block: tf.ensure_shape(block, [block_length]))


def reconstruct(inputs, targets, sentinel_ids):
    """Merges span-corrupted `inputs` and `targets` back into the original tokens.

    Example:
    >>> reconstruct([5, 1, 8, 2], [1, 6, 7, 2, 9], sentinel_ids=[1, 2])
    [5, 6, 7, 8, 9]
    """
    sentinels = {int(s) for s in sentinel_ids}
    spans, current = {}, None
    for token in np.asarray(targets).tolist():
        if token in sentinels:
            current = spans.setdefault(token, [])
        elif current is None:
            raise ValueError(f"targets: expected a sentinel first, got {token}")
        else:
            current.append(token)
    tokens = []
    for token in np.asarray(inputs).tolist():
        tokens.extend(spans.get(token, []) if token in sentinels else [token])
    return tokens
