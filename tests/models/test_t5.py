import numpy as np
import pytest

from kzoo.models import T5Backbone
from kzoo.testing import assert_cached_decoding_matches_full_pass, run_model_test, to_numpy
from kzoo.testing.tiny_models import TINY_TRANSFORMER

VOCAB, SOURCE, TARGET, HIDDEN = 40, 8, 6, TINY_TRANSFORMER["hidden_dim"]
CONFIG = dict(vocabulary_size=VOCAB, **TINY_TRANSFORMER, dropout=0.0)
V1_0 = dict(activation="relu", use_gated_activation=False, tie_embedding_weights=True)
V1_1 = dict(activation="gelu", use_gated_activation=True, tie_embedding_weights=False)
RNG = np.random.default_rng(0)
INPUTS = {
    "encoder_token_ids": RNG.integers(2, VOCAB, (2, SOURCE)).astype("int32"),
    "encoder_padding_mask": np.array([[1] * SOURCE, [1] * 5 + [0] * 3], "int32"),
    "decoder_token_ids": RNG.integers(2, VOCAB, (2, TARGET)).astype("int32"),
    "decoder_padding_mask": np.array([[1] * TARGET, [1] * 4 + [0] * 2], "int32"),
}


def build(dtype=None, **overrides):
    return T5Backbone(**{**CONFIG, **overrides}, dtype=dtype)


@pytest.mark.parametrize("version", [V1_0, V1_1], ids=["v1_0", "v1_1"])
def test_backbone_contract(version):
    run_model_test(
        lambda dtype=None: build(dtype, **version),
        INPUTS,
        {
            "encoder_sequence_output": (2, SOURCE, HIDDEN),
            "decoder_sequence_output": (2, TARGET, HIDDEN),
        },
    )


def test_architecture_details():
    backbone = build(key_value_dim=4, **V1_1)
    assert backbone.get_config()["key_value_dim"] == 4
    block = backbone.decoder_transformer_layers[1]
    assert block.norm_first and block.normalization == "rms_norm"
    assert block.feedforward.activation == "gated-gelu_exact"
    assert block.self_attention.scale == 1.0 and block.self_attention.key_dim == 4
    # No biases anywhere; one relative position bias per stack.
    assert not any("bias" in w.path and "relative" not in w.path for w in backbone.weights)
    assert [w.path for w in backbone.weights if "relative" in w.path] == [
        "encoder_relative_position_bias/embeddings",
        "decoder_relative_position_bias/embeddings",
    ]
    assert backbone.encoder_relative_position_bias.bidirectional
    assert backbone.decoder_relative_position_bias.bidirectional is False
    with pytest.raises(ValueError, match="activation must be one of .* received 'swish'"):
        build(activation="swish")


def test_query_initialisation_folds_the_logit_scale():
    backbone = build(hidden_dim=64, num_heads=4, intermediate_dim=256, **V1_0)
    attention = backbone.encoder_transformer_layers[0].self_attention
    query_std = np.std(to_numpy(attention.query_dense.kernel))
    key_std = np.std(to_numpy(attention.key_dense.kernel))
    assert key_std == pytest.approx(64**-0.5, rel=0.1)
    assert query_std == pytest.approx((64 * 16) ** -0.5, rel=0.1)


def test_encoder_ignores_padding_and_decoder_is_causal():
    backbone = build(**V1_1)
    base = to_numpy(backbone(INPUTS))
    changed = {k: v.copy() for k, v in INPUTS.items()}
    changed["encoder_token_ids"][1, 5:] = 3  # padded source tokens
    changed["decoder_token_ids"][:, 3:] = 7  # future target tokens
    out = to_numpy(backbone(changed))
    np.testing.assert_allclose(
        out["encoder_sequence_output"][1, :5], base["encoder_sequence_output"][1, :5], atol=1e-5
    )
    np.testing.assert_allclose(
        out["decoder_sequence_output"][:, :3], base["decoder_sequence_output"][:, :3], atol=1e-5
    )


@pytest.mark.parametrize("version", [V1_0, V1_1], ids=["tied", "untied"])
def test_logits(version):
    backbone = build(**version)
    hidden = to_numpy(backbone(INPUTS)["decoder_sequence_output"])
    if version["tie_embedding_weights"]:
        expected = hidden * HIDDEN**-0.5 @ to_numpy(backbone.token_embedding.embeddings).T
    else:
        expected = hidden @ to_numpy(backbone.token_embedding.reverse_embeddings)
    np.testing.assert_allclose(to_numpy(backbone.logits(hidden)), expected, rtol=1e-4, atol=1e-5)


def test_decode_with_cache_matches_full_decoder():
    assert_cached_decoding_matches_full_pass(build(**V1_1), INPUTS)


@pytest.mark.slow  # also on JAX: JAX_SLOW_TESTS in tests/test_backend_agnostic.py
@pytest.mark.parametrize("version", [V1_0, V1_1], ids=["v1_0", "v1_1"])
def test_from_keras_hub_t5_gives_identical_outputs(version):
    keras_hub = pytest.importorskip("keras_hub")
    from kzoo.convert import from_keras_hub

    hub = keras_hub.models.T5Backbone(**CONFIG, **version)
    # Random, non-trivial norm scales so that a misplaced norm shows.
    for weight in hub.weights:
        if weight.path.endswith("weight"):
            weight.assign(RNG.uniform(0.5, 1.5, weight.shape).astype("float32"))
    ours = from_keras_hub(hub)
    assert isinstance(ours, T5Backbone)
    assert ours.activation == version["activation"]
    expected, actual = to_numpy(hub(INPUTS)), to_numpy(ours(INPUTS))
    for key, real in (("encoder_sequence_output", 5), ("decoder_sequence_output", 4)):
        np.testing.assert_allclose(actual[key][0], expected[key][0], atol=1e-5)
        np.testing.assert_allclose(actual[key][1, :real], expected[key][1, :real], atol=1e-5)
    hub_lm = keras_hub.models.T5Seq2SeqLM(backbone=hub, preprocessor=None)
    np.testing.assert_allclose(
        to_numpy(ours.logits(actual["decoder_sequence_output"]))[0],
        to_numpy(hub_lm(INPUTS))[0],
        atol=1e-4,
    )


def test_seq2seq_lm_on_t5_generates_with_cache_as_without():
    from kzoo.models import Seq2SeqLM

    lm = Seq2SeqLM(build(**V1_1), start_token_id=0, end_token_id=1)
    sources = INPUTS["encoder_token_ids"], INPUTS["encoder_padding_mask"]
    cached, uncached = (
        [to_numpy(t) for t in lm.generate_ids(*sources, 5, use_cache=use_cache)[:2]]
        for use_cache in (True, False)
    )
    np.testing.assert_array_equal(cached[0], uncached[0])
    np.testing.assert_array_equal(cached[1], uncached[1])
    assert lm.get_config()["backbone"]["config"]["max_sequence_length"] == 512


def test_quantized_untied_backbone_reloads(tmp_path):
    # An untied (v1.1) head was re-initialized in `__init__`, which failed on the
    # int8 head that `load_model` rebuilds ("Cannot convert 0.0 to ... int8").
    import keras

    backbone = build(**V1_1)
    backbone.quantize("int8")
    expected = to_numpy(backbone(INPUTS)["decoder_sequence_output"])
    backbone.save(tmp_path / "int8.keras")
    reloaded = keras.saving.load_model(tmp_path / "int8.keras", compile=False)
    assert reloaded.token_embedding.quantization_mode == "int8"
    actual = to_numpy(reloaded(INPUTS)["decoder_sequence_output"])
    np.testing.assert_allclose(actual, expected, atol=1e-6)
