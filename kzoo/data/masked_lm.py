"""Dynamic masked-language-model masking, in graph, for a batch of packed sequences.

BERT selects 15% of the maskable tokens of each sequence and replaces 80% of the
selected ones with [MASK], 10% with a random token and leaves 10% unchanged.
`tensorflow_text.RandomItemSelector` rounds the per-sequence count *up*, so a
sequence of 3 maskable tokens gets 1 prediction (33%) and short sequences are
over-masked. Here the count is rounded stochastically, `floor(rate * n + u)` with
`u ~ U[0, 1)`, whose expectation is exactly `rate * n` for every `n`: the selection
rate is 15% on average for short and long sequences alike, and never needs more
than `ceil(rate * length)` prediction slots.

Randomness is stateless (`tf.random.stateless_*`) and keyed by a seed tensor, so
the pipeline is deterministic for a seed and draws a new mask for every batch
(hence every epoch) when the key includes the batch counter.
"""

import math

import tensorflow as tf


def max_predictions_for(sequence_length, selection_rate=0.15):
    """Prediction slots a sequence of `sequence_length` tokens can need.

    Example:
    >>> max_predictions_for(128), max_predictions_for(8)
    (20, 2)
    """
    return max(1, math.ceil(selection_rate * sequence_length))


def mask_tokens(
    token_ids,
    maskable,
    seed,
    *,
    mask_id,
    vocabulary_size,
    first_random_id,
    selection_rate=0.15,
    mask_token_rate=0.8,
    random_token_rate=0.1,
    max_predictions=None,
):
    """Selects and corrupts tokens for masked-language modelling.

    Args:
        token_ids: int32 `[batch, length]`.
        maskable: bool `[batch, length]`, True where a token may be selected
            (not special, not padding).
        seed: int32/int64 `[2]` stateless seed.
        mask_id: The [MASK] id.
        vocabulary_size: Random replacements are drawn from
            `[first_random_id, vocabulary_size)`.
        first_random_id: The first non-special id.
        selection_rate: Expected share of maskable tokens selected.
        mask_token_rate: Share of selected tokens replaced by [MASK].
        random_token_rate: Share of selected tokens replaced by a random token
            (the rest are kept).
        max_predictions: Prediction slots per sequence; defaults to
            `max_predictions_for(length, selection_rate)`, which never drops a
            selection (a smaller value caps the count and lowers the rate).

    Returns:
        A dict: `token_ids` (corrupted), `mask_positions` int32 `[batch, P]`
        (selected positions first, in increasing order, then 0),
        `mask_ids` int32 `[batch, P]` (the original tokens, 0 in unused slots),
        `mask_weights` float32 `[batch, P]` (1.0 for used slots).

    Example:
    >>> ids = tf.constant([[2, 10, 11, 12, 13, 3, 0, 0]])
    >>> maskable = (ids >= 5)
    >>> out = mask_tokens(ids, maskable, tf.constant([0, 1]), mask_id=4,
    ...                   vocabulary_size=20, first_random_id=5, selection_rate=0.5)
    >>> out["mask_positions"].shape.as_list(), int(tf.reduce_sum(out["mask_weights"]))
    ([1, 4], 2)
    """
    token_ids = tf.convert_to_tensor(token_ids, tf.int32)
    maskable = tf.convert_to_tensor(maskable, tf.bool)
    length = token_ids.shape[1]
    if max_predictions is None:
        if length is None:
            raise ValueError("mask_tokens: give max_predictions for a dynamic length")
        max_predictions = max_predictions_for(length, selection_rate)
    batch = tf.shape(token_ids)[0]
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), 4)

    # How many: stochastic rounding of rate * n (expectation exactly rate * n).
    candidates = tf.reduce_sum(tf.cast(maskable, tf.float32), axis=1)
    jitter = tf.random.stateless_uniform([batch], seeds[0])
    count = tf.cast(tf.floor(selection_rate * candidates + jitter), tf.int32)
    count = tf.minimum(count, tf.minimum(max_predictions, tf.cast(candidates, tf.int32)))

    # Which: the first `count` maskable positions in a random order.
    scores = tf.random.stateless_uniform(tf.shape(token_ids), seeds[1])
    scores = tf.where(maskable, scores, 2.0)
    order = tf.argsort(scores, axis=1, stable=True)[:, :max_predictions]
    used = tf.range(max_predictions)[None, :] < count[:, None]
    full_length = tf.shape(token_ids)[1]
    positions = tf.sort(tf.where(used, order, full_length), axis=1)
    used = positions < full_length
    positions = tf.where(used, positions, 0)
    original = tf.gather(token_ids, positions, batch_dims=1)

    # What: [MASK], a random token, or the token itself.
    action = tf.random.stateless_uniform(tf.shape(positions), seeds[2])
    random_ids = tf.random.stateless_uniform(
        tf.shape(positions),
        seeds[3],
        minval=first_random_id,
        maxval=vocabulary_size,
        dtype=tf.int32,
    )
    replacement = tf.where(
        action < mask_token_rate,
        tf.cast(mask_id, tf.int32),
        tf.where(action < mask_token_rate + random_token_rate, random_ids, original),
    )
    rows = tf.broadcast_to(tf.range(batch)[:, None], tf.shape(positions))
    indices = tf.boolean_mask(tf.stack([rows, positions], axis=-1), used)
    corrupted = tf.tensor_scatter_nd_update(token_ids, indices, tf.boolean_mask(replacement, used))
    used_ids = tf.where(used, original, 0)
    return {
        "token_ids": corrupted,
        "mask_positions": positions,
        "mask_ids": used_ids,
        "mask_weights": tf.cast(used, tf.float32),
    }
