"""The Python side of `generate()`, shared by every task model that generates.

The decoding loops themselves are `keras.ops` code in `kzoo.models.decoding`;
this module turns strings into padded id buffers and back, checks the user's
options and keeps one compiled loop per setting.
"""

import numpy as np
from keras import ops

STRATEGIES = ("greedy", "sample", "beam")


class CompiledFunctions:
    """Compiled generation loops by settings. A plain object, not a dict, so
    Keras/SavedModel tracking leaves it alone (exports work after generating)."""

    def __init__(self):
        self.by_key = {}

    def get(self, key, build):
        """The function for `key`, built once by `build()`."""
        if key not in self.by_key:
            self.by_key[key] = build()
        return self.by_key[key]


def check_options(strategy, temperature, max_new_tokens, capacity):
    """Raises a ValueError naming the bad `generate()` argument."""
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}; received {strategy!r}")
    if strategy == "sample" and temperature <= 0:
        raise ValueError(f"temperature must be > 0 for sampling; received {temperature}")
    if not 0 < max_new_tokens < capacity:
        raise ValueError(
            f"max_new_tokens must be in [1, {capacity - 1}] (max_sequence_length "
            f"is {capacity}); received {max_new_tokens}"
        )


def prompt_rows(inputs):
    """`(rows, single, is_text)`: the prompts of `inputs` as a list of strings or
    of id lists, whether one prompt was given, and whether they are text.

    `inputs` is a string, a list of strings or of id lists, or the same as a NumPy
    array or a tensor (bytes are decoded as UTF-8); a 1-D array of ids is one
    prompt.

    Example:
    >>> prompt_rows(np.array([[5, 6], [7, 8]]))
    ([[5, 6], [7, 8]], False, False)
    >>> prompt_rows(np.array([5, 6]))
    ([[5, 6]], True, False)
    >>> prompt_rows(np.array([b"ab", b"c"], dtype=object))
    (['ab', 'c'], False, True)
    """
    if hasattr(inputs, "to_list"):  # a tf.RaggedTensor
        inputs = inputs.to_list()
    elif not isinstance(inputs, (str, bytes, list, tuple)):
        inputs = ops.convert_to_numpy(inputs).tolist()
    if isinstance(inputs, (str, bytes)):
        return [_text(inputs)], True, True
    inputs = list(inputs)
    if inputs and isinstance(inputs[0], (str, bytes)):
        return [_text(text) for text in inputs], False, True
    if inputs and not isinstance(inputs[0], (list, tuple)) and not hasattr(inputs[0], "__len__"):
        return [inputs], True, False  # one prompt of ids
    return inputs, False, False


def _text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def input_ids(model, inputs, is_text, what="prompt"):
    """Token-id lists of `inputs` (strings need `model.tokenizer`)."""
    if not inputs:
        raise ValueError(f"generate() needs at least one {what}; received none")
    if not is_text:
        rows = [[int(t) for t in row] for row in inputs]
        if any(len(row) == 0 for row in rows):
            raise ValueError(f"token-id {what}s must not be empty")
        return rows
    if model.tokenizer is None:
        raise ValueError(
            f"string {what}s need a tokenizer: {type(model).__name__}(..., tokenizer=...)"
        )
    tokenized = model.tokenizer.tokenize(list(inputs))
    tokenized = tokenized.to_list() if hasattr(tokenized, "to_list") else tokenized
    return [[int(t) for t in ids] for ids in tokenized]


def generated_ids(ids, mask, end_id):
    """Per row, the generated ids (`mask`) without the end token."""
    ids, mask = ops.convert_to_numpy(ids), ops.convert_to_numpy(mask)
    return [[int(t) for t in row[keep] if t != end_id] for row, keep in zip(ids, mask)]


def detokenize(tokenizer, ids):
    """One id list back to a Python string."""
    text = tokenizer.detokenize([ids] if ids else [[]])
    text = ops.convert_to_numpy(text) if not isinstance(text, (list, str)) else text
    value = text[0] if not isinstance(text, str) else text
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def outputs(model, rows, is_text, single):
    """What `generate()` returns: strings for string inputs, else id lists."""
    if is_text:
        rows = [detokenize(model.tokenizer, ids) for ids in rows]
    return rows[0] if single else rows


def round_up(length, capacity):
    """The next power of two, capped at `capacity`: buffers of a bounded set of
    shapes, so a compiled loop is traced a few times, not once per length."""
    return min(capacity, 1 << (max(length, 1) - 1).bit_length())


def right_pad(rows, length):
    """`(ids, mask)` int32 arrays of `rows` right-padded with zeros to `length`."""
    ids = np.zeros((len(rows), length), "int32")
    mask = np.zeros((len(rows), length), "int32")
    for i, row in enumerate(rows):
        ids[i, : len(row)], mask[i, : len(row)] = row, 1
    return ids, mask
