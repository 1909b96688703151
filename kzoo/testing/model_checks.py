"""`run_model_test`: the checks every kzoo backbone and task model must pass
(keras only, so they run on TensorFlow and JAX)."""

import os
import tempfile

import keras
import numpy as np

from kzoo.testing.outputs import assert_all_close, to_numpy


def _slice_length(inputs, length):
    return keras.tree.map_structure(lambda a: a[:, :length], inputs)


def run_model_test(
    build_model, inputs, expected_output_shape, run_mixed_precision=True, mixed_precision_atol=0.1
):
    """Runs the checks every kzoo backbone and task model must pass.

    1. Output shape; a shorter sequence length also works (variable lengths).
    2. `get_config` -> `from_config` with the same weights gives the same outputs.
    3. `.keras` save and load with `safe_mode=True` gives the same outputs.
    4. Built with `dtype="mixed_bfloat16"` and the same weights, the outputs stay
       close to float32 (and the variables stay float32).

    Args:
        build_model: `build_model(dtype=None) -> keras.Model`.
        inputs: Input dict of `(batch, length)` arrays.
        expected_output_shape: Shape of the output for `inputs` (a dict of shapes
            for dict outputs).

    Returns:
        The model and its outputs.
    """
    model = build_model()
    outputs = model(inputs)
    shapes = keras.tree.map_structure(lambda t: tuple(t.shape), outputs)
    assert shapes == expected_output_shape, (shapes, expected_output_shape)
    length = keras.tree.flatten(inputs)[0].shape[1]
    shorter = model(_slice_length(inputs, length - 1))
    for tensor in keras.tree.flatten(shorter):
        if len(tensor.shape) >= 3:  # sequence outputs follow the input length
            assert tensor.shape[1] == length - 1, tensor.shape

    restored = type(model).from_config(model.get_config())
    restored.set_weights(model.get_weights())
    assert_all_close(restored(inputs), outputs)

    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "round_trip.keras")
        model.save(path)
        loaded = keras.saving.load_model(path, safe_mode=True)
    assert type(loaded) is type(model)
    assert_all_close(loaded(inputs), outputs)

    if run_mixed_precision:
        mixed = build_model(dtype="mixed_bfloat16")
        mixed.set_weights(model.get_weights())
        assert all(w.dtype == "float32" for w in mixed.weights)
        assert_all_close(
            mixed(inputs), outputs, atol=mixed_precision_atol, rtol=mixed_precision_atol
        )
    return model, outputs


def assert_cached_decoding_matches_full_pass(backbone, inputs, prefix_length=2, atol=1e-5):
    """An encoder-decoder backbone decodes the same with its cache as in one full pass.

    The decoder runs `decode_with_cache` on the first `prefix_length` target tokens,
    then one token at a time; its hidden states must match `backbone(inputs)`'s
    `decoder_sequence_output` (every target position unmasked), and `encode` must
    match its `encoder_sequence_output`.

    Args:
        backbone: A backbone with `encode`, `decoder_cache` and `decode_with_cache`.
        inputs: Its input dict (`encoder_token_ids`, `encoder_padding_mask`,
            `decoder_token_ids`, ...).
        prefix_length: How many tokens the first cached step decodes.
        atol: Tolerance.

    Returns:
        The decoder cache made for the inputs' target length (before decoding).
    """
    ids = inputs["decoder_token_ids"]
    target_length = ids.shape[1]
    full = to_numpy(backbone({**inputs, "decoder_padding_mask": np.ones_like(ids)}))
    encoder_output = backbone.encode(inputs["encoder_token_ids"], inputs["encoder_padding_mask"])
    assert_all_close(encoder_output, full["encoder_sequence_output"], atol=atol)
    cache = backbone.decoder_cache(encoder_output, inputs["encoder_padding_mask"], target_length)
    hidden, step_cache = backbone.decode_with_cache(ids[:, :prefix_length], cache, 0)
    steps = [to_numpy(hidden)]
    for t in range(prefix_length, target_length):
        hidden, step_cache = backbone.decode_with_cache(ids[:, t : t + 1], step_cache, t)
        steps.append(to_numpy(hidden))
    np.testing.assert_allclose(
        np.concatenate(steps, axis=1), full["decoder_sequence_output"], atol=atol
    )
    return cache


def sequence_log_likelihood(logits, token_ids, padding_mask):
    """What a language model's `score` must return, from its logits: per row, the
    sum over the real positions `t >= 1` of `log softmax(logits[t - 1])[token_ids[t]]`
    (NumPy)."""
    logits = to_numpy(logits)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    token_ids, padding_mask = np.asarray(token_ids), np.asarray(padding_mask)
    return [
        sum(log_probs[b, t - 1, token_ids[b, t]] for t in range(1, token_ids.shape[1]) if mask[t])
        for b, mask in enumerate(padding_mask)
    ]
