"""Boolean attention masks: padding, explicit, causal and sliding-window."""

import keras  # noqa: F401 (docstring example)
from keras import ops


def causal_mask(query_length, key_length, query_start=0, sliding_window=None):
    """Boolean `(query_length, key_length)`: key `j` is visible to query `i` iff
    `j <= query_start + i` (and, with a `sliding_window` `W`, iff also
    `query_start + i - j < W`: each query sees itself and the `W - 1` keys before).

    Example:
    >>> keras.ops.convert_to_numpy(causal_mask(4, 4, sliding_window=2)).astype(int)
    array([[1, 0, 0, 0],
           [1, 1, 0, 0],
           [0, 1, 1, 0],
           [0, 0, 1, 1]])
    """
    query_positions = (ops.arange(query_length) + query_start)[:, None]
    key_positions = ops.arange(key_length)[None, :]
    mask = key_positions <= query_positions
    if sliding_window is not None:
        mask = ops.logical_and(mask, query_positions - key_positions < sliding_window)
    return mask


def merge_masks(
    query_length,
    key_length,
    padding_mask=None,
    attention_mask=None,
    use_causal_mask=False,
    query_start=0,
    sliding_window=None,
):
    """Combines padding, explicit and causal masks into one boolean mask.

    Args:
        padding_mask: `(batch, key_length)`, true for real key tokens.
        attention_mask: `(batch, query_length, key_length)`, true where allowed.
        use_causal_mask: Whether queries may only see keys at or before them.
        query_start: Absolute position of the first query (cached decoding).
        sliding_window: With `use_causal_mask`, how many keys (itself included)
            each query sees at most (Mistral); None: all before it.

    Returns:
        `None` when nothing is masked, else a boolean tensor broadcastable to
        `(batch, query_length, key_length)`.
    """
    mask = None
    if padding_mask is not None:
        mask = ops.cast(padding_mask, "bool")[:, None, :]
    if attention_mask is not None:
        explicit = ops.cast(attention_mask, "bool")
        mask = explicit if mask is None else ops.logical_and(mask, explicit)
    if use_causal_mask:
        causal = causal_mask(query_length, key_length, query_start, sliding_window)[None]
        mask = causal if mask is None else ops.logical_and(mask, causal)
    return mask
