"""kzoo/layers and kzoo/models must run on JAX: keras.ops only, no TensorFlow."""

import ast
import os
import pathlib
import subprocess
import sys

import pytest

from kzoo.testing.tiers import full_only

ROOT = pathlib.Path(__file__).resolve().parents[1]
AGNOSTIC_PACKAGES = [ROOT / "kzoo" / "layers", ROOT / "kzoo" / "models"]


def _jax_env():
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    # XLA's cheapest compilation, one thread: compiling is most of the suites' time.
    env["XLA_FLAGS"] = (
        "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true "
        "--xla_cpu_multi_thread_eigen=false"
    )
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _tensorflow_imports(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            if name.split(".")[0] in ("tensorflow", "tensorflow_text", "tf_keras"):
                yield f"{path.relative_to(ROOT)}:{node.lineno} imports {name}"


def test_no_tensorflow_import_in_layers_or_models():
    offenders = [
        hit
        for package in AGNOSTIC_PACKAGES
        for path in sorted(package.rglob("*.py"))
        if "test" not in path.name
        for hit in _tensorflow_imports(path)
    ]
    assert not offenders, offenders


def test_the_scan_catches_a_tensorflow_import(tmp_path):
    bad = ROOT / "kzoo" / "layers" / "_probe_for_scan_test.py"
    bad.write_text("from tensorflow import nn\n")
    try:
        assert list(_tensorflow_imports(bad)) == [
            "kzoo/layers/_probe_for_scan_test.py:1 imports tensorflow"
        ]
    finally:
        bad.unlink()


def test_importing_layers_and_models_on_jax_loads_no_tensorflow():
    code = (
        "import sys, kzoo.layers, kzoo.models, keras;"
        "assert keras.backend.backend() == 'jax';"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'tensorflow_text'));"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], env=_jax_env(), check=True, cwd=ROOT)


def _run_suite_on_jax(*paths, marks="not slow"):
    """Runs the tests in `paths` (files or node ids under tests/) on JAX; by default
    those marked slow are left out (see `JAX_SLOW_TESTS`)."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-x",
            "-p",
            "no:cacheprovider",
            "-m",
            marks,
            *(str(ROOT / "tests" / path) for path in paths),
        ],
        env=_jax_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout


# CI's share of the layer suite on JAX: every layer's contract (`run_layer_test`:
# build, call, config and `.keras` round trips, mixed precision), the caches equal
# to full passes, and what differs by backend (the attention paths against Keras's,
# the hashed dropout masks, write_at). The NumPy-reference and property tests
# (keras.ops arithmetic, run on TensorFlow in CI) run on JAX in `make test-full`.
JAX_CORE_LAYER_TESTS = [
    "layers/test_attention.py::test_layer_contract_self_attention",
    "layers/test_attention.py::test_layer_contract_cross_attention_with_padding",
    "layers/test_attention.py::test_kv_cache_equals_full_pass",
    "layers/test_attention.py::test_precomputed_cross_attention_cache",
    "layers/test_attention.py::test_attention_paths_equal_keras_dot_product_attention",
    "layers/test_dropout.py",
    "layers/test_embedding.py",
    "layers/test_grouped_attention.py::test_grouped_attention_round_trips_and_rejects_uneven_groups",
    "layers/test_normalization_and_feedforward.py::test_rms_norm_matches_formula",
    "layers/test_normalization_and_feedforward.py::test_feedforward_variants_match_numpy",
    "layers/test_position.py::test_sinusoidal_matches_formula",
    "layers/test_position.py::test_position_embedding_start_index",
    "layers/test_position.py::test_rotary_preserves_norm_and_depends_on_relative_position",
    "layers/test_position.py::test_relative_position_bias_layer",
    "layers/test_rope_scaling.py::test_scaled_rotary_round_trips_its_config",
    "layers/test_transformer.py::test_encoder_block_contract",
    "layers/test_transformer.py::test_decoder_block_contract",
    "layers/test_transformer.py::test_decoder_cache_equals_full_pass",
    "layers/test_write_at.py",
]


@pytest.mark.slow
def test_core_layer_tests_pass_on_jax():
    _run_suite_on_jax(*JAX_CORE_LAYER_TESTS)


@pytest.mark.slow
@full_only("test_core_layer_tests_pass_on_jax")
def test_layer_suite_passes_on_jax():
    _run_suite_on_jax("layers")


def test_every_layer_contract_runs_on_jax_in_ci():
    """A new layer's `run_layer_test` joins JAX_CORE_LAYER_TESTS."""
    listed = set(JAX_CORE_LAYER_TESTS)
    missing = []
    for path in sorted((ROOT / "tests" / "layers").glob("test_*.py")):
        relative = f"layers/{path.name}"
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.FunctionDef) and "run_layer_test(" in ast.unparse(node):
                if relative not in listed and f"{relative}::{node.name}" not in listed:
                    missing.append(f"{relative}::{node.name}")
    assert not missing, missing


# Reading Hugging Face checkpoints is NumPy and safetensors, the same on every
# backend; their parity tests run on TensorFlow only (minutes of JAX compilation).
TENSORFLOW_ONLY = ("test_hf_checkpoints.py", "test_hf_reference.py")
MODEL_TEST_FILES = sorted(
    p.name for p in (ROOT / "tests" / "models").glob("test_*.py") if p.name not in TENSORFLOW_ONLY
)
# CI's share of the model suite on JAX: the GPT backbone's contract (build, call,
# config and `.keras` round trip, masking), cached generation equal to uncached
# (compiled with jax.jit) for GPT, Llama and T5's seq2seq LM, and the generation
# utilities (sampling RNG, beam search). The other backbones' contracts (Llama,
# BERT, LSTM, T5, seq2seq; on TensorFlow in CI) and every other fast model test
# run on JAX in `make test-full` (test_model_suite_passes_on_jax).
JAX_CORE_MODEL_TESTS = [
    "models/test_gpt.py::test_backbone_contract",
    "models/test_gpt.py::test_cached_and_uncached_generation_agree",
    "models/test_llama.py::test_cached_and_uncached_generation_agree",
    "models/test_t5.py::test_seq2seq_lm_on_t5_generates_with_cache_as_without",
    "models/test_generation.py",
]


@pytest.mark.slow
@pytest.mark.parametrize("half", [0, 1])
def test_core_model_tests_pass_on_jax(half):
    """In two halves, so that both workers share them."""
    _run_suite_on_jax(*JAX_CORE_MODEL_TESTS[half::2])


@pytest.mark.slow
@full_only("test_core_model_tests_pass_on_jax")
@pytest.mark.parametrize("half", [0, 1])
def test_model_suite_passes_on_jax(half):
    """Models, generation (compiled with jax.jit) and KerasHub conversion on JAX,
    in two halves so that both workers share them."""
    _run_suite_on_jax(*[f"models/{name}" for name in MODEL_TEST_FILES[half::2]])


# The slow model tests whose subject is backend-specific (compiled decoding loops,
# the sampling RNG, weight conversion) pass on JAX too (KZOO_JAX_SLOW=1; outside CI's
# time budget, about 1.5 minutes of JAX on 2 cores). The other slow model tests
# run on TensorFlow only: they fit models or count sampling frequencies, which is
# backend-independent keras.ops arithmetic already covered on JAX by the fast fit
# and generation tests, and would add minutes of op-by-op JAX execution.
JAX_SLOW_TESTS = [
    "models/test_seq2seq.py::test_beam_search_finds_at_least_the_greedy_score",
    "models/test_seq2seq.py::test_sampling_is_reproducible_with_a_seed",
    "models/test_t5.py::test_from_keras_hub_t5_gives_identical_outputs",
]
JAX_SKIPPED_SLOW_TESTS = [
    "models/test_bert_tasks.py::test_fit_updates_the_model_but_not_padding_tokens",
    "models/test_bert_tasks.py::test_pretrainer_fit_weights_the_masked_lm_loss_per_position",
    "models/test_generation.py::test_sampled_frequencies_follow_the_softmax",
    "models/test_seq2seq.py::test_beam_search_with_one_beam_is_greedy_and_caching_does_not_matter",
    "models/test_seq2seq.py::test_fit_on_a_copy_task_reduces_the_loss",
    "models/test_seq2seq.py::test_lstm_contract",
    "models/test_seq2seq.py::test_lstm_untied_head_and_odd_width_error",
    "models/test_seq2seq.py::test_lstm_greedy_and_one_beam_generation_match_full_passes",
    "models/test_seq2seq.py::test_lstm_fit_on_a_copy_task_reduces_the_loss",
]


@pytest.mark.skipif(
    os.environ.get("KZOO_JAX_SLOW") != "1", reason="minutes of JAX time: KZOO_JAX_SLOW=1 runs them"
)
def test_backend_specific_slow_model_tests_pass_on_jax():
    _run_suite_on_jax(*JAX_SLOW_TESTS, marks="slow")


def test_every_slow_model_test_is_listed_as_run_or_skipped_on_jax():
    """The README says which slow model tests run on JAX: a new one must be sorted."""
    listed = {name.split("::")[1] for name in JAX_SLOW_TESTS + JAX_SKIPPED_SLOW_TESTS}
    slow = set()
    for path in sorted((ROOT / "tests" / "models").glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef) and "slow" in ast.unparse(node):
                # decorated with pytest.mark.slow, or a parametrized slow case
                if any("slow" in ast.unparse(d) for d in node.decorator_list):
                    slow.add(node.name)
    assert slow == listed
