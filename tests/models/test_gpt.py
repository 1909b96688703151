import keras
import numpy as np
import pytest

from kzoo.models import GPTBackbone, GPTCausalLM
from kzoo.testing import run_model_test, to_numpy
from kzoo.testing.model_checks import sequence_log_likelihood
from kzoo.testing.tiny_models import TINY_TRANSFORMER

# The cache is the subject here; that XLA decodes as the plain graph does, for
# every family and strategy, is tests/models/test_generate_xla.py's (and each XLA
# compile costs seconds).
NO_XLA = False

VOCAB, LENGTH = 40, 10
CONFIG = dict(vocabulary_size=VOCAB, **TINY_TRANSFORMER, max_sequence_length=24)
RNG = np.random.default_rng(0)
INPUTS = {
    "token_ids": RNG.integers(2, VOCAB, (2, LENGTH)).astype("int32"),
    "padding_mask": np.array([[1] * LENGTH, [1] * 7 + [0] * 3], "int32"),
}


def build_lm(dtype=None, **overrides):
    return GPTCausalLM(GPTBackbone(**{**CONFIG, **overrides}, dtype=dtype), end_token_id=1)


def test_backbone_contract():
    run_model_test(lambda dtype=None: GPTBackbone(**CONFIG, dtype=dtype), INPUTS, (2, LENGTH, 16))


def test_causal_lm_contract_and_tied_head():
    lm, logits = run_model_test(build_lm, INPUTS, (2, LENGTH, VOCAB))
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    # Tied: no output kernel besides the token embedding.
    names = [w.path for w in lm.weights]
    assert sum("embeddings" in n and "token" in n for n in names) == 1
    hidden = to_numpy(lm.backbone(INPUTS))
    table = to_numpy(lm.backbone.token_embedding.embeddings)
    np.testing.assert_allclose(to_numpy(logits), hidden @ table.T, rtol=1e-4, atol=1e-5)


def test_residual_projections_get_scaled_init():
    backbone = GPTBackbone(**{**CONFIG, "num_layers": 8, "hidden_dim": 64, "intermediate_dim": 256})
    block = backbone.transformer_layers[0]
    query_std = np.std(to_numpy(block.self_attention.query_dense.kernel))
    output_std = np.std(to_numpy(block.feedforward.output_dense.kernel))
    assert query_std == pytest.approx(0.02, rel=0.1)
    assert output_std == pytest.approx(0.02 / 4, rel=0.1)  # 1 / sqrt(2 * 8)


def test_backbone_is_causal_and_ignores_padding():
    backbone = GPTBackbone(**CONFIG)
    base = to_numpy(backbone(INPUTS))
    changed = {k: v.copy() for k, v in INPUTS.items()}
    changed["token_ids"][:, 6:] = 3
    np.testing.assert_allclose(to_numpy(backbone(changed))[:, :6], base[:, :6], atol=1e-5)
    # Right padding: padded tokens never reach real positions.
    padded = {k: v.copy() for k, v in INPUTS.items()}
    padded["token_ids"][1, 7:] = 5
    np.testing.assert_allclose(to_numpy(backbone(padded))[1, :7], base[1, :7], atol=1e-5)


def test_call_with_cache_matches_full_forward():
    backbone = GPTBackbone(**CONFIG)
    ids = INPUTS["token_ids"]
    full = to_numpy(backbone({"token_ids": ids, "padding_mask": np.ones_like(ids)}))
    cache = backbone.empty_cache(2, LENGTH)
    hidden, cache = backbone.call_with_cache(ids[:, :4], cache, 0)
    steps = [to_numpy(hidden)]
    for t in range(4, LENGTH):
        hidden, cache = backbone.call_with_cache(ids[:, t : t + 1], cache, t)
        steps.append(to_numpy(hidden))
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-5)


@pytest.mark.parametrize("strategy", ["greedy", "beam"])
def test_cached_and_uncached_generation_agree(strategy):
    lm = build_lm()
    prompts = [[1, 5, 9], [1, 7, 8, 9, 10, 11]]
    cached = lm.generate(prompts, max_new_tokens=8, strategy=strategy, jit_compile=NO_XLA)
    uncached = lm.generate(
        prompts, max_new_tokens=8, strategy=strategy, use_cache=False, jit_compile=NO_XLA
    )
    assert cached == uncached
    # Random weights may pick the end token first: a row can be empty.
    assert all(len(row) <= 8 for row in cached)


def test_generate_sampling_and_argument_errors():
    lm = build_lm()
    a = lm.generate([[1, 4]], max_new_tokens=6, strategy="sample", seed=1, top_k=5)
    assert a == lm.generate([[1, 4]], max_new_tokens=6, strategy="sample", seed=1, top_k=5)
    with pytest.raises(ValueError, match="strategy must be one of"):
        lm.generate([[1]], strategy="nucleus")
    with pytest.raises(ValueError, match=r"max_new_tokens must be in \[1, 23\]"):
        lm.generate([[1]], max_new_tokens=24)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        lm.generate([[1]], strategy="sample", temperature=0)
    with pytest.raises(ValueError, match="need a tokenizer"):
        lm.generate("hello", max_new_tokens=4)


def test_generate_takes_arrays_and_tensors_of_ids():
    lm = build_lm()
    prompts = [[1, 5, 9], [1, 7, 8]]
    expected = lm.generate(prompts, max_new_tokens=4)
    assert lm.generate(np.array(prompts), max_new_tokens=4) == expected
    assert lm.generate(keras.ops.convert_to_tensor(prompts), max_new_tokens=4) == expected
    assert lm.generate(tuple(np.array(prompts)), max_new_tokens=4) == expected
    # A 1-D array (or list) of ids is one prompt: one continuation back.
    assert lm.generate(np.array(prompts[0]), max_new_tokens=4) == expected[0]
    assert lm.generate(prompts[0], max_new_tokens=4) == expected[0]
    with pytest.raises(ValueError, match="at least one prompt"):
        lm.generate(np.zeros((0, 3), "int32"), max_new_tokens=4)


def test_long_prompts_keep_their_last_tokens():
    lm = build_lm()
    long_prompt = list(RNG.integers(2, VOCAB, 40))
    out = lm.generate([long_prompt], max_new_tokens=4)
    assert out == lm.generate([long_prompt[-20:]], max_new_tokens=4)


def test_score_is_the_sum_of_next_token_log_probs():
    lm = build_lm()
    ids, mask = INPUTS["token_ids"], INPUTS["padding_mask"]
    expected = sequence_log_likelihood(lm(INPUTS), ids, mask)
    np.testing.assert_allclose(to_numpy(lm.score(ids, mask)), expected, rtol=1e-5)


def test_from_keras_hub_gpt2_gives_identical_outputs():
    keras_hub = pytest.importorskip("keras_hub")
    from kzoo.convert import from_keras_hub

    hub = keras_hub.models.GPT2Backbone(**CONFIG)
    ours = from_keras_hub(hub)
    assert isinstance(ours, GPTBackbone)
    expected, actual = to_numpy(hub(INPUTS)), to_numpy(ours(INPUTS))
    np.testing.assert_allclose(actual[0], expected[0], atol=1e-5)
    np.testing.assert_allclose(actual[1, :7], expected[1, :7], atol=1e-5)
    with pytest.raises(TypeError, match="cannot convert builtins.int; supported"):
        from_keras_hub(3)
    with pytest.raises(TypeError, match="cannot convert kzoo.*GPTBackbone"):
        from_keras_hub(ours)


def test_greedy_generation_matches_keras_hub_token_for_token():
    # What benchmarks/generation.py times: the same weights give the same tokens.
    keras_hub = pytest.importorskip("keras_hub")
    from kzoo.convert import from_keras_hub

    keras.utils.set_random_seed(3)
    hub = keras_hub.models.GPT2CausalLM(
        keras_hub.models.GPT2Backbone(**CONFIG, dropout=0.0), preprocessor=None
    )
    hub.compile(sampler="greedy")
    ours = GPTCausalLM(from_keras_hub(hub.backbone), end_token_id=-1)  # never ends
    prompt, new = 5, 12
    ids = np.zeros((2, prompt + new), "int32")
    ids[:, :prompt] = RNG.integers(1, VOCAB, (2, prompt))
    expected = hub.generate({"token_ids": ids, "padding_mask": ids > 0}, stop_token_ids=None)[
        "token_ids"
    ]
    actual, generated, _ = ours.generate_ids(ids, np.full((2,), prompt, "int32"), new)
    np.testing.assert_array_equal(to_numpy(actual), np.asarray(expected))
    assert to_numpy(generated)[:, prompt:].all()


def test_mixed_precision_survives_saving(tmp_path):
    lm = build_lm(dtype="mixed_bfloat16")
    assert lm.backbone.dtype_policy.name == "mixed_bfloat16"
    lm.save(tmp_path / "lm.keras")
    loaded = keras.saving.load_model(tmp_path / "lm.keras", safe_mode=True)
    assert loaded.backbone.dtype_policy.name == "mixed_bfloat16"
    assert loaded.backbone.transformer_layers[0].compute_dtype == "bfloat16"
