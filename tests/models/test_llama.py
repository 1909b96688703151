import keras
import numpy as np
import pytest

from kzoo.models import GPTBackbone, LlamaBackbone, LlamaCausalLM
from kzoo.testing import run_model_test, to_numpy
from kzoo.testing.model_checks import sequence_log_likelihood

# The cache is the subject here; that XLA decodes as the plain graph does, for
# every family and strategy, is tests/models/test_generate_xla.py's (and each XLA
# compile costs seconds).
NO_XLA = False

VOCAB, LENGTH = 40, 10
# Four query heads sharing two key/value heads.
CONFIG = dict(
    vocabulary_size=VOCAB,
    num_layers=2,
    num_heads=4,
    num_key_value_heads=2,
    hidden_dim=16,
    intermediate_dim=32,
    max_sequence_length=24,
)
RNG = np.random.default_rng(0)
INPUTS = {
    "token_ids": RNG.integers(2, VOCAB, (2, LENGTH)).astype("int32"),
    "padding_mask": np.array([[1] * LENGTH, [1] * 7 + [0] * 3], "int32"),
}
# The options of the checkpoints the backbone covers.
VARIANTS = {
    "llama2": {},
    "multi_query": {"num_key_value_heads": 1},
    "llama3": {
        "rope_theta": 500000.0,
        "rope_scaling": {
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8,
        },
    },
    "mistral": {"sliding_window": 3, "tie_embedding_weights": False},
    "qwen2": {"attention_bias": True, "attention_output_bias": False, "rope_theta": 1e6},
    "yarn": {
        "rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 8}
    },
}


def build_lm(dtype=None, **overrides):
    return LlamaCausalLM(LlamaBackbone(**{**CONFIG, **overrides}, dtype=dtype), end_token_id=1)


def test_backbone_contract():
    run_model_test(lambda dtype=None: LlamaBackbone(**CONFIG, dtype=dtype), INPUTS, (2, LENGTH, 16))


@pytest.mark.parametrize("variant", ["mistral", "qwen2"])
def test_causal_lm_contract(variant):
    lm, logits = run_model_test(
        lambda dtype=None: build_lm(dtype, **VARIANTS[variant]), INPUTS, (2, LENGTH, VOCAB)
    )
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    assert lm.backbone.get_config()["rope_theta"] == VARIANTS[variant].get("rope_theta", 1e4)


def test_layout_is_llama_s():
    """RMSNorm, SwiGLU, no biases, no position embedding; tied by default, and the
    untied head is the embedding's separate reverse matrix."""
    lm = build_lm(tie_embedding_weights=False)
    names = sorted(w.path for w in lm.weights)
    assert not [n for n in names if "bias" in n or "position" in n], names
    assert sum("gate_dense" in n for n in names) == 2  # one per layer
    block = lm.backbone.transformer_layers[0]
    assert type(block.self_attention_norm).__name__ == "RMSNorm"
    assert block.feedforward.activation == "gated-silu"
    hidden = to_numpy(lm.backbone(INPUTS))
    head = to_numpy(lm.backbone.token_embedding.reverse_embeddings)
    np.testing.assert_allclose(to_numpy(lm(INPUTS)), hidden @ head, rtol=1e-4, atol=1e-5)
    tied = build_lm()
    assert len(tied.weights) == len(lm.weights) - 1


def test_equal_size_recipes_match_gpt_within_a_tenth_of_a_percent():
    """The sizes recipes/llama_tiny.yaml names against gpt_tiny.yaml."""

    def count(model):
        return sum(int(np.prod(w.shape)) for w in model.weights)

    gpt = GPTBackbone(512, 2, 2, 64, 256, max_sequence_length=128)
    llama = LlamaBackbone(512, 2, 4, 64, 217, num_key_value_heads=2, max_sequence_length=128)
    assert (count(gpt), count(llama)) == (141056, 140992)


def test_backbone_is_causal_and_ignores_padding():
    backbone = LlamaBackbone(**CONFIG)
    base = to_numpy(backbone(INPUTS))
    changed = {k: v.copy() for k, v in INPUTS.items()}
    changed["token_ids"][:, 6:] = 3
    np.testing.assert_allclose(to_numpy(backbone(changed))[:, :6], base[:, :6], atol=1e-5)
    padded = {k: v.copy() for k, v in INPUTS.items()}
    padded["token_ids"][1, 7:] = 5
    np.testing.assert_allclose(to_numpy(backbone(padded))[1, :7], base[1, :7], atol=1e-5)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_call_with_cache_matches_full_forward(variant):
    backbone = LlamaBackbone(**{**CONFIG, **VARIANTS[variant]})
    ids = INPUTS["token_ids"]
    full = to_numpy(backbone({"token_ids": ids, "padding_mask": np.ones_like(ids)}))
    cache = backbone.empty_cache(2, LENGTH)
    hidden, cache = backbone.call_with_cache(ids[:, :4], cache, 0)
    steps = [to_numpy(hidden)]
    for t in range(4, LENGTH):
        hidden, cache = backbone.call_with_cache(ids[:, t : t + 1], cache, t)
        steps.append(to_numpy(hidden))
    np.testing.assert_allclose(np.concatenate(steps, axis=1), full, atol=1e-5)


def test_grouped_cache_keeps_the_key_value_heads_only():
    """8 query heads on 2 key/value heads: a 4x smaller cache than 8 on 8."""
    sizes = dict(num_layers=2, num_heads=8, hidden_dim=32, intermediate_dim=32)
    grouped = LlamaBackbone(VOCAB, **sizes, num_key_value_heads=2)
    full = LlamaBackbone(VOCAB, **sizes)
    grouped_cache, full_cache = grouped.empty_cache(3, 16), full.empty_cache(3, 16)
    assert [tuple(c.shape) for c in grouped_cache] == [(3, 2, 16, 2, 4)] * 2
    assert [tuple(c.shape) for c in full_cache] == [(3, 2, 16, 8, 4)] * 2

    def nbytes(cache):
        return sum(to_numpy(c).nbytes for c in cache)

    assert nbytes(full_cache) == 4 * nbytes(grouped_cache) == 4 * 2 * 3 * 2 * 16 * 2 * 4 * 4
    # Decoding writes into the same shapes (no repeated heads in the cache).
    _, written = grouped.call_with_cache(INPUTS["token_ids"][:1], grouped.empty_cache(1, 16), 0)
    assert [tuple(c.shape) for c in written] == [(1, 2, 16, 2, 4)] * 2


@pytest.mark.parametrize("strategy", ["greedy", "sample", "beam"])
def test_cached_and_uncached_generation_agree(strategy):
    """Grouped heads and a sliding window shorter than the prompts, untied."""
    lm = build_lm(**VARIANTS["mistral"])
    prompts = [[1, 5, 9], [1, 7, 8, 9, 10, 11]]
    options = {"seed": 3, "top_k": 5} if strategy == "sample" else {}
    cached = lm.generate(
        prompts, max_new_tokens=8, strategy=strategy, jit_compile=NO_XLA, **options
    )
    uncached = lm.generate(
        prompts, max_new_tokens=8, strategy=strategy, use_cache=False, jit_compile=NO_XLA, **options
    )
    assert cached == uncached
    assert all(len(row) <= 8 for row in cached)


def test_score_is_the_sum_of_next_token_log_probs():
    lm = build_lm()
    ids, mask = INPUTS["token_ids"], INPUTS["padding_mask"]
    expected = sequence_log_likelihood(lm(INPUTS), ids, mask)
    np.testing.assert_allclose(to_numpy(lm.score(ids, mask)), expected, rtol=1e-5)


def test_bad_head_counts_and_rope_scaling_are_clear_errors():
    with pytest.raises(ValueError, match="num_key_value_heads: 3 must divide num_heads 4"):
        LlamaBackbone(**{**CONFIG, "num_key_value_heads": 3})
    with pytest.raises(ValueError, match=r"rope_scaling: rope_type 'linear' needs \['factor'\]"):
        LlamaBackbone(**CONFIG, rope_scaling={"rope_type": "linear"})


def test_mixed_precision_survives_saving(tmp_path):
    lm = build_lm(dtype="mixed_bfloat16")
    lm.save(tmp_path / "lm.keras")
    loaded = keras.saving.load_model(tmp_path / "lm.keras", safe_mode=True)
    assert type(loaded) is LlamaCausalLM
    assert loaded.backbone.transformer_layers[0].compute_dtype == "bfloat16"
    assert loaded.backbone.empty_cache(1, 4)[0].dtype == lm.backbone.empty_cache(1, 4)[0].dtype
