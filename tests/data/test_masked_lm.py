"""MLM masking: the selection rate, the 80/10/10 split, determinism, what is never masked."""

import numpy as np
import pytest
import tensorflow as tf

from kzoo.data.masked_lm import mask_tokens, max_predictions_for

MASK, VOCAB, FIRST = 4, 1000, 5


def _batch(rows, length, maskable_tokens, seed=0):
    rng = np.random.default_rng(seed)
    ids = np.zeros((rows, length), np.int32)
    ids[:, 0] = 2
    ids[:, 1 : maskable_tokens + 1] = rng.integers(FIRST, VOCAB, (rows, maskable_tokens))
    ids[:, maskable_tokens + 1] = 3
    return ids, ids >= FIRST


def _mask(ids, maskable, seed=(0, 0), **kwargs):
    out = mask_tokens(
        ids,
        maskable,
        tf.constant(seed),
        mask_id=MASK,
        vocabulary_size=VOCAB,
        first_random_id=FIRST,
        **kwargs,
    )
    return {k: v.numpy() for k, v in out.items()}


@pytest.mark.parametrize("maskable_tokens,length", [(3, 8), (7, 16), (120, 128)])
def test_selection_rate_is_15_percent_for_short_and_long_sequences(maskable_tokens, length):
    ids, maskable = _batch(4000, length, maskable_tokens)
    out = _mask(ids, maskable)
    rate = out["mask_weights"].sum() / maskable.sum()
    assert abs(rate - 0.15) < 0.01, rate


def test_tf_text_style_ceiling_would_over_mask_short_sequences():
    # The property the stochastic rounding fixes: ceil(0.15 * 3) / 3 = 33%.
    assert max_predictions_for(3) / 3 > 0.3
    ids, maskable = _batch(2000, 8, 3)
    assert _mask(ids, maskable)["mask_weights"].sum(axis=1).max() <= 1


def test_replacement_split_is_80_10_10_and_labels_are_the_originals():
    ids, maskable = _batch(3000, 64, 60)
    out = _mask(ids, maskable)
    used = out["mask_weights"] > 0
    rows = np.nonzero(used)[0]
    positions = out["mask_positions"][used]
    original = ids[rows, positions]
    new = out["token_ids"][rows, positions]
    np.testing.assert_array_equal(out["mask_ids"][used], original)
    masked = np.mean(new == MASK)
    kept = np.mean(new == original)
    assert abs(masked - 0.8) < 0.02 and abs(kept - (0.1 + 0.1 / VOCAB)) < 0.02
    changed = out["token_ids"] != ids
    selected = np.zeros_like(changed)
    selected[rows, positions] = True
    assert not np.any(changed & ~selected)  # nothing outside the selection changes


def test_special_tokens_and_padding_are_never_selected():
    ids, maskable = _batch(500, 16, 5)
    out = _mask(ids, maskable, selection_rate=0.9)
    used = out["mask_weights"] > 0
    rows = np.nonzero(used)[0]
    assert np.all(maskable[rows, out["mask_positions"][used]])
    assert np.all(out["mask_ids"][~used] == 0) and np.all(out["mask_positions"][~used] == 0)


def test_masks_are_deterministic_per_seed_and_differ_between_seeds():
    ids, maskable = _batch(8, 32, 30)
    first, again, other = (
        _mask(ids, maskable, (1, 5)),
        _mask(ids, maskable, (1, 5)),
        _mask(ids, maskable, (1, 6)),
    )
    np.testing.assert_array_equal(first["token_ids"], again["token_ids"])
    assert not np.array_equal(first["mask_positions"], other["mask_positions"])


def test_positions_are_sorted_within_used_slots():
    ids, maskable = _batch(50, 64, 60)
    out = _mask(ids, maskable)
    for row, weights in zip(out["mask_positions"], out["mask_weights"]):
        used = row[weights > 0]
        assert np.all(np.diff(used) > 0)
