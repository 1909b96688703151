import numpy as np
import pytest

from kzoo.layers import TransformerDecoderBlock, TransformerEncoderBlock
from kzoo.testing import assert_all_close, run_layer_test, to_numpy

BATCH, LENGTH, SOURCE_LEN, HIDDEN, HEADS = 2, 6, 7, 8, 2
RNG = np.random.default_rng(0)
X = RNG.normal(size=(BATCH, LENGTH, HIDDEN)).astype("float32")
MEMORY = RNG.normal(size=(BATCH, SOURCE_LEN, HIDDEN)).astype("float32")
PADDING = np.array([[1] * LENGTH, [1] * (LENGTH - 2) + [0, 0]], bool)
MEMORY_PADDING = np.array([[1] * SOURCE_LEN, [1] * (SOURCE_LEN - 3) + [0] * 3], bool)

VARIANTS = {
    "post_norm_layer_norm": {"activation": "gelu"},
    "pre_norm_rms_no_bias": {
        "norm_first": True,
        "normalization": "rms_norm",
        "use_bias": False,
        "activation": "gated-gelu",
        "attention_scale": 1.0,
    },
    "pre_norm_rotary": {"norm_first": True, "rotary_max_wavelength": 100},
}


def block_kwargs(variant, **extra):
    return {"num_heads": HEADS, "intermediate_dim": 16, **VARIANTS[variant], **extra}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_encoder_block_contract(variant):
    run_layer_test(
        TransformerEncoderBlock,
        block_kwargs(variant, dropout=0.1),
        {"inputs": X, "padding_mask": PADDING},
        expected_output_shape=X.shape,
    )


@pytest.mark.parametrize("cross_attention", [False, True])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_decoder_block_contract(variant, cross_attention):
    inputs = {"decoder_sequence": X, "decoder_padding_mask": PADDING}
    if cross_attention:
        inputs.update(encoder_sequence=MEMORY, encoder_padding_mask=MEMORY_PADDING)
    run_layer_test(
        TransformerDecoderBlock,
        block_kwargs(variant, cross_attention=cross_attention),
        inputs,
        expected_output_shape=X.shape,
    )


def test_encoder_padding_does_not_leak():
    block = TransformerEncoderBlock(**block_kwargs("post_norm_layer_norm"))
    base = to_numpy(block(X, padding_mask=PADDING))
    noisy = X.copy()
    noisy[1, -2:] = 50.0
    out = to_numpy(block(noisy, padding_mask=PADDING))
    np.testing.assert_allclose(out[1, :-2], base[1, :-2], atol=1e-5)


def test_encoder_attention_bias_changes_output():
    block = TransformerEncoderBlock(**block_kwargs("pre_norm_rms_no_bias"))
    bias = RNG.normal(size=(1, HEADS, LENGTH, LENGTH)).astype("float32")
    assert not np.allclose(to_numpy(block(X)), to_numpy(block(X, attention_bias=bias)))


@pytest.mark.parametrize("cross_attention", [False, True])
def test_decoder_block_is_causal(cross_attention):
    block = TransformerDecoderBlock(
        **block_kwargs("pre_norm_rotary", cross_attention=cross_attention)
    )
    memory = MEMORY if cross_attention else None
    base = to_numpy(block(X, memory))
    for t in range(LENGTH - 1):
        changed = X.copy()
        changed[:, t + 1 :] += 1.0
        out = to_numpy(block(changed, memory))
        np.testing.assert_allclose(out[:, : t + 1], base[:, : t + 1], atol=1e-5)


@pytest.mark.parametrize("cross_attention", [False, True])
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_decoder_cache_equals_full_pass(variant, cross_attention):
    block = TransformerDecoderBlock(**block_kwargs(variant, cross_attention=cross_attention))
    memory = MEMORY if cross_attention else None
    memory_padding = MEMORY_PADDING if cross_attention else None
    full = to_numpy(block(X, memory, encoder_padding_mask=memory_padding))
    key_dim = HIDDEN // HEADS
    cache = np.zeros((BATCH, 2, LENGTH, HEADS, key_dim), "float32")
    cross_cache = block.compute_cross_attention_cache(MEMORY) if cross_attention else None
    steps = []
    for t in range(LENGTH):
        out, cache = block(
            X[:, t : t + 1],
            encoder_padding_mask=memory_padding,
            self_attention_cache=cache,
            self_attention_cache_update_index=t,
            cross_attention_cache=cross_cache,
        )
        steps.append(to_numpy(out))
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-5)


def test_decoder_errors_are_explicit():
    block = TransformerDecoderBlock(**block_kwargs("post_norm_layer_norm", cross_attention=True))
    block(X, MEMORY)
    with pytest.raises(ValueError, match="cross_attention=True: pass encoder_sequence"):
        block(X)
    with pytest.raises(ValueError, match="self_attention_cache_update_index"):
        block(X, MEMORY, self_attention_cache=np.zeros((BATCH, 2, LENGTH, HEADS, 4), "float32"))


def test_residual_dropout_only_in_training():
    block = TransformerEncoderBlock(**block_kwargs("post_norm_layer_norm", dropout=0.5))
    inference = to_numpy(block(X))
    assert_all_close(block(X, training=False), inference)
    assert not np.allclose(to_numpy(block(X, training=True)), inference)


def test_output_kernel_initializer_reaches_residual_projections():
    block = TransformerEncoderBlock(
        **block_kwargs("post_norm_layer_norm"),
        kernel_initializer="ones",
        output_kernel_initializer="zeros",
    )
    block(X)
    assert np.all(to_numpy(block.self_attention.output_dense.kernel) == 0)
    assert np.all(to_numpy(block.feedforward.output_dense.kernel) == 0)
    assert np.all(to_numpy(block.self_attention.query_dense.kernel) == 1)
