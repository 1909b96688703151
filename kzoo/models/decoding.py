"""Decoding loops shared by every family: greedy, sampling and beam search.

All loops run inside one `keras.ops.while_loop` over a fixed-size token buffer and a
fixed-size cache, so they compile under XLA, run under `jax.jit` and export to a
SavedModel. A model plugs in through a *step function*:

    step_fn(tokens, cache, index) -> (next_logits, cache)

which feeds `tokens` (shape `(batch,)`) at position `index` and returns the float
logits of the following position (shape `(batch, vocab)`) and the updated cache
(any nested structure of tensors whose first axis is the batch).

Prompts are right-padded in the buffer; `prompt_lengths` says how long each is. The
loop starts at the shortest prompt; rows whose prompt is longer keep their prompt
tokens until it ends. A row stops at its first generated `end_id`; later positions
hold `pad_id`. Sampling randomness comes from a counter-based integer hash of
(seed, position, row, token), so a seed gives the same tokens on every backend and
in the exported SavedModel.
"""

import keras
from keras import ops

from kzoo.layers.hash_random import hash_uniform
from kzoo.layers.write_at import write_at

_NEG_INF = -1e9


def filter_logits(logits, top_k=0, top_p=1.0):
    """Keeps the `top_k` most likely tokens and the smallest set whose probability
    reaches `top_p`; the rest get -inf-like logits. `top_k <= 0` and `top_p >= 1`
    disable each filter. Both may be tensors (serving inputs)."""
    vocab = ops.shape(logits)[-1]
    sorted_logits = ops.flip(ops.sort(logits, axis=-1), axis=-1)
    k = ops.where(top_k > 0, ops.minimum(top_k, vocab), vocab)
    kth = ops.take(sorted_logits, ops.cast(k - 1, "int32"), axis=-1)[:, None]
    probs = ops.softmax(sorted_logits, axis=-1)
    # Probability mass strictly above each sorted token: keep while it is < top_p.
    mass_before = ops.cumsum(probs, axis=-1) - probs
    keep_sorted = mass_before < ops.cast(top_p, probs.dtype)
    # The smallest kept logit; ties with it are kept too.
    pth = ops.min(ops.where(keep_sorted, sorted_logits, 3e38), axis=-1, keepdims=True)
    threshold = ops.maximum(kth, pth)
    return ops.where(logits >= threshold, logits, _NEG_INF)


def choose_tokens(logits, step, temperature=0.0, top_k=0, top_p=1.0, seed=0):
    """Greedy when `temperature <= 0`, else samples from the filtered softmax of
    `logits / temperature` (Gumbel-max with the hash RNG).

    A scalar `temperature` tensor (a serving input) picks the branch with
    `keras.ops.cond`, so greedy requests skip the sampling work (a sort of the
    vocabulary, the hash RNG) at every step; a per-row tensor selects per row.
    """
    logits = ops.cast(logits, "float32")

    def greedy():
        return ops.cast(ops.argmax(logits, axis=-1), "int32")

    def sampled():
        safe_temperature = ops.maximum(ops.cast(temperature, "float32"), 1e-6)
        filtered = filter_logits(logits / safe_temperature, top_k, top_p)
        uniform = hash_uniform(seed, step, ops.shape(logits))
        gumbel = -ops.log(-ops.log(uniform))
        return ops.cast(ops.argmax(filtered + gumbel, axis=-1), "int32")

    if isinstance(temperature, (int, float)):  # Known when the loop is built.
        return sampled() if temperature > 0 else greedy()
    if len(ops.shape(temperature)) == 0:
        return ops.cond(temperature > 0, sampled, greedy)
    return ops.where(temperature > 0, sampled(), greedy())


def stepwise_prefill(step_fn, cache, token_ids, length):
    """Feeds positions `0 .. length-1` one at a time (for recurrent models).

    Returns the logits for position `length` and the cache after the prefix.
    """
    batch = ops.shape(token_ids)[0]
    logits, cache = step_fn(_column(token_ids, 0), cache, 0)

    def body(index, cache, logits):
        logits, cache = step_fn(_column(token_ids, index), cache, index)
        return index + 1, cache, ops.cast(logits, "float32")

    _, cache, logits = ops.while_loop(
        lambda index, cache, logits: index < length,
        body,
        (ops.ones((), "int32"), cache, ops.cast(logits, "float32")),
    )
    return ops.reshape(logits, (batch, -1)), cache


def _write_column(buffer, index, column):
    return write_at(buffer, column[:, None], index)


def _column(buffer, index):
    return ops.squeeze(ops.slice(buffer, (0, index), (ops.shape(buffer)[0], 1)), 1)


def decode(
    step_fn,
    logits,
    cache,
    token_ids,
    prompt_lengths,
    max_new_tokens,
    end_id,
    pad_id=0,
    temperature=0.0,
    top_k=0,
    top_p=1.0,
    seed=0,
):
    """Greedy or sampled decoding.

    Args:
        step_fn: See the module docstring.
        logits: Logits for the first position to fill, `(batch, vocab)`: the
            position `min(prompt_lengths)`.
        cache: The cache after the prompt prefill.
        token_ids: `(batch, max_length)` int32 buffer, prompts right-padded.
        prompt_lengths: `(batch,)` prompt lengths, each >= 1.
        max_new_tokens: Each row generates at most this many tokens (the buffer
            must have room: `max_length >= max(prompt_lengths) + max_new_tokens`).
        end_id: Token that ends a row.
        pad_id: Token written after a row has ended.
        temperature, top_k, top_p, seed: See `choose_tokens`.

    Returns:
        `(token_ids, generated_mask)`: the filled buffer and a boolean mask of
        the generated (non-prompt, non-pad) positions, the end token included.
    """
    prompt_lengths, start, stop_index, row_stops = _bounds(
        token_ids, prompt_lengths, max_new_tokens
    )
    done = prompt_lengths >= row_stops

    def cond(index, token_ids, cache, logits, done):
        return ops.logical_and(index < stop_index, ops.logical_not(ops.all(done)))

    def body(index, token_ids, cache, logits, done):
        chosen = choose_tokens(logits, index, temperature, top_k, top_p, seed)
        in_prompt = index < prompt_lengths
        tokens = ops.where(in_prompt, _column(token_ids, index), chosen)
        tokens = ops.where(done, pad_id, tokens)
        token_ids = _write_column(token_ids, index, tokens)
        done = _update_done(done, tokens, in_prompt, index, row_stops, end_id)
        logits, cache = step_fn(tokens, cache, index)
        return index + 1, token_ids, cache, ops.cast(logits, "float32"), done

    _, token_ids, _, _, _ = ops.while_loop(
        cond, body, (start, token_ids, cache, ops.cast(logits, "float32"), done)
    )
    return token_ids, generated_mask(token_ids, prompt_lengths, row_stops, end_id)


def _bounds(token_ids, prompt_lengths, max_new_tokens):
    """(prompt_lengths, first index, loop stop index, per-row stop index)."""
    prompt_lengths = ops.cast(prompt_lengths, "int32")
    max_new_tokens = ops.maximum(ops.cast(max_new_tokens, "int32"), 0)
    row_stops = ops.minimum(prompt_lengths + max_new_tokens, ops.shape(token_ids)[1])
    return prompt_lengths, ops.min(prompt_lengths), ops.max(row_stops), row_stops


def _update_done(done, tokens, in_prompt, index, row_stops, end_id):
    """A row is done after its first generated end token or its last position."""
    ended = ops.logical_and(ops.logical_not(in_prompt), tokens == end_id)
    return ops.logical_or(ops.logical_or(done, ended), index + 1 >= row_stops)


def generated_mask(token_ids, prompt_lengths, row_stops, end_id):
    """Positions after the prompt, before the row's stop, up to the first end token."""
    positions = ops.arange(ops.shape(token_ids)[1])[None, :]
    after_prompt = positions >= ops.cast(prompt_lengths, "int32")[:, None]
    generated = ops.logical_and(after_prompt, positions < row_stops[:, None])
    is_end = ops.logical_and(generated, token_ids == end_id)
    # Positions strictly after the first end token are not generated.
    ends_before = ops.cumsum(ops.cast(is_end, "int32"), axis=1) - ops.cast(is_end, "int32")
    return ops.logical_and(generated, ends_before == 0)


def _repeat_beams(structure, num_beams):
    return keras.tree.map_structure(lambda t: ops.repeat(t, num_beams, axis=0), structure)


def _gather_beams(structure, indices):
    return keras.tree.map_structure(lambda t: ops.take(t, indices, axis=0), structure)


def beam_search(
    step_fn,
    logits,
    cache,
    token_ids,
    prompt_lengths,
    max_new_tokens,
    end_id,
    pad_id=0,
    num_beams=4,
    length_penalty=0.0,
):
    """Beam search; arguments as for `decode`.

    Beams live in the batch axis (`batch * num_beams` rows), so `step_fn` and the
    cache need nothing special. A finished beam extends with pads at no cost; at
    the end each beam's log-probability is divided by `generated_length **
    length_penalty` (0 = plain log-probability) and the best beam is returned.

    Returns:
        `(token_ids, generated_mask, scores)` for the best beam of each row.
    """
    batch = ops.shape(token_ids)[0]
    prompt_lengths, start, stop_index, row_stops = _bounds(
        token_ids, prompt_lengths, max_new_tokens
    )
    cache = _repeat_beams(cache, num_beams)
    token_ids = _repeat_beams(token_ids, num_beams)
    logits = _repeat_beams(ops.cast(logits, "float32"), num_beams)
    beam_prompt_lengths = ops.repeat(prompt_lengths, num_beams, axis=0)
    beam_row_stops = ops.repeat(row_stops, num_beams, axis=0)
    # Only the first beam is live at the start, so beams never duplicate.
    first_beam = ops.cast(ops.arange(num_beams) == 0, "float32")
    scores = ops.tile((1.0 - first_beam)[None, :] * _NEG_INF, (batch, 1))
    done = beam_prompt_lengths >= beam_row_stops
    row_offsets = ops.repeat(ops.arange(batch) * num_beams, num_beams)

    def cond(index, token_ids, cache, logits, scores, done):
        return ops.logical_and(index < stop_index, ops.logical_not(ops.all(done)))

    def body(index, token_ids, cache, logits, scores, done):
        vocab = ops.shape(logits)[-1]
        log_probs = ops.log_softmax(logits, axis=-1)
        in_prompt = index < beam_prompt_lengths
        forced = ops.where(in_prompt, _column(token_ids, index), pad_id)
        forced_only = ops.where(ops.arange(vocab)[None, :] == forced[:, None], 0.0, _NEG_INF)
        log_probs = ops.where(ops.logical_or(in_prompt, done)[:, None], forced_only, log_probs)
        candidates = ops.reshape(scores, (-1, 1)) + log_probs
        candidates = ops.reshape(candidates, (batch, num_beams * vocab))
        scores, flat = ops.top_k(candidates, num_beams)
        beam = ops.reshape(flat // vocab, (-1,))
        tokens = ops.cast(ops.reshape(flat % vocab, (-1,)), "int32")
        source = row_offsets + ops.cast(beam, "int32")
        token_ids, cache, done = _gather_beams((token_ids, cache, done), source)
        token_ids = _write_column(token_ids, index, tokens)
        done = _update_done(done, tokens, in_prompt, index, beam_row_stops, end_id)
        logits, cache = step_fn(tokens, cache, index)
        return index + 1, token_ids, cache, ops.cast(logits, "float32"), scores, done

    _, token_ids, _, _, scores, _ = ops.while_loop(
        cond, body, (start, token_ids, cache, logits, scores, done)
    )
    mask = generated_mask(token_ids, beam_prompt_lengths, beam_row_stops, end_id)
    lengths = ops.maximum(ops.sum(ops.cast(mask, "float32"), axis=1), 1.0)
    normalized = ops.reshape(scores, (-1,)) / ops.power(lengths, length_penalty)
    best = ops.argmax(ops.reshape(normalized, (batch, num_beams)), axis=1)
    source = ops.arange(batch) * num_beams + ops.cast(best, "int32")
    token_ids, mask, best_scores = _gather_beams(
        (token_ids, mask, ops.reshape(normalized, (-1,))), source
    )
    return token_ids, mask, best_scores


def decode_with_strategy(*loop, strategy="greedy", num_beams=4, length_penalty=0.0, **sampling):
    """Runs the greedy, sampling or beam loop (pad id 0).

    Args:
        *loop: `step_fn, logits, cache, token_ids, prompt_lengths, max_new_tokens,
            end_id`, as for `decode`.
        strategy: `"greedy"`, `"sample"` or `"beam"`.
        num_beams, length_penalty: See `beam_search` (beam only).
        **sampling: `temperature`, `top_k`, `top_p`, `seed` of `decode` (greedy and
            sampling; greedy ignores the temperature).

    Returns:
        `(token_ids, generated_mask, scores)`; scores are the beam scores, zeros
        for greedy and sampling.
    """
    if strategy == "beam":
        return beam_search(*loop, 0, num_beams=num_beams, length_penalty=length_penalty)
    if strategy == "greedy":
        sampling["temperature"] = 0.0
    ids, mask = decode(*loop, 0, **sampling)
    return ids, mask, ops.zeros((ops.shape(ids)[0],), "float32")
