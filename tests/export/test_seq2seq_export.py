"""Seq2seq and T5 runs exported for TF Serving: the signatures answer as `Seq2SeqLM` does.

The run directories are built by hand: a char SentencePiece vocabulary of the
built-in translation data, a tiny model and a `config.yaml` naming its family; the
export only reads those. The models are untrained; the seq2seq model's kernels
are scaled up so that its outputs depend on the source (at its initial scale it
repeats one character whatever the source). The Keras answers decode without XLA,
as the export does (XLA's equality is tests/models/test_generate_xla.py's).
"""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from kzoo.export import export_run, layout
from kzoo.export.check_serving import _recompute_expected, check_serving
from kzoo.export.saved_model import load_for_export
from kzoo.export.seq2seq_signatures import Seq2SeqSignatures, sample_pairs
from kzoo.testing.tiny_runs import SEQ2SEQ_EXPORT, build_seq2seq_run
from kzoo.tokenizers import load_tokenizer, train_sentencepiece
from kzoo.training.run_directory import RunDirectory

# One worker builds the exports once: session fixtures, tests kept together.
pytestmark = pytest.mark.xdist_group("seq2seq_export")

EXPORT = SEQ2SEQ_EXPORT
SOURCES = ["some kings help", "the dog", "a red apple sees"]
TARGETS = ["san rekoek jute", "", "ko varo"]
GREEDY = dict(
    strategy=["greedy"], temperature=[0.0], top_k=[0], top_p=[1.0], seed=[0], length_penalty=[0.0]
)


def build_run(run_dir, family):
    """An untrained `family` run; the seq2seq kernels scaled up (module docstring)."""
    return build_seq2seq_run(run_dir, family, kernel_scale=8.0)


@pytest.fixture(scope="session")
def exported(tmp_path_factory):
    run_dir = build_run(tmp_path_factory.mktemp("seq2seq_run"), "seq2seq")
    return run_dir, export_run(run_dir, out_dir=str(tmp_path_factory.mktemp("saved")))


@pytest.fixture(scope="session")
def keras_model(exported):
    return load_for_export(exported[0])[0]


@pytest.fixture(scope="session")
def served(exported):
    return tf.saved_model.load(exported[1])


def call(served, signature, **inputs):
    fn = served.signatures[signature]
    specs = fn.structured_input_signature[1]
    return fn(**{k: tf.constant(v, specs[k].dtype) for k, v in inputs.items()})


def translate(served, sources, max_new_tokens=8, signature="translate", **settings):
    return call(
        served,
        signature,
        sources=sources,
        max_new_tokens=[max_new_tokens],
        **{**GREEDY, **settings},
    )


def strings(tensor):
    return [t.decode("utf-8") for t in tensor.numpy().tolist()]


def test_signatures_and_assets(exported, served):
    assert set(served.signatures) == {"translate", "score", "translate_ids", "serving_default"}
    extra = os.path.join(exported[1], layout.ASSETS_EXTRA)
    with open(os.path.join(extra, layout.EXPORT_INFO_FILE), encoding="utf-8") as f:
        info = json.load(f)
    assert info["model_class"] == "Seq2SeqLM"
    assert info["limits"] == {
        "max_new_tokens": 10,
        "max_source_tokens": 24,
        "num_beams": 4,
        "capacity": 64,
    }
    assert set(info["signatures"]["translate"]["inputs"]) == {
        "sources",
        "max_new_tokens",
        "strategy",
        "temperature",
        "top_k",
        "top_p",
        "seed",
        "length_penalty",
    }
    examples = sorted(os.listdir(os.path.join(extra, layout.EXAMPLES_DIR)))
    assert examples == [
        "score.json",
        "serving_default.json",
        "translate.json",
        "translate_ids.json",
    ]


@pytest.mark.parametrize("signature", ["translate", "serving_default"])
def test_greedy_translation_equals_keras_generate(served, keras_model, signature):
    out = translate(served, SOURCES, signature=signature)
    expected = keras_model.generate(SOURCES, max_new_tokens=8, strategy="greedy", jit_compile=False)
    assert len(set(expected)) > 1  # the outputs depend on the source
    assert strings(out["targets"]) == expected
    assert out["target_ids"].shape == (3, 8)
    assert out["num_tokens"].numpy().tolist() == [
        len(keras_model.tokenizer.tokenize(t).numpy()) for t in expected
    ]


def test_beam_translation_equals_keras_generate(served, keras_model):
    out = translate(served, SOURCES, strategy=["beam"], length_penalty=[0.6])
    expected = keras_model.generate(
        SOURCES,
        max_new_tokens=8,
        strategy="beam",
        num_beams=4,
        length_penalty=0.6,
        jit_compile=False,
    )
    assert strings(out["targets"]) == expected


def test_sampling_with_a_seed_is_reproducible_and_equals_keras(served, keras_model):
    settings = dict(strategy=["sample"], temperature=[1.5], top_k=[0], top_p=[1.0])
    first = strings(translate(served, SOURCES, seed=[3], **settings)["targets"])
    again = strings(translate(served, SOURCES, seed=[3], **settings)["targets"])
    other = strings(translate(served, SOURCES, seed=[4], **settings)["targets"])
    assert first == again != other
    assert first == keras_model.generate(
        SOURCES, max_new_tokens=8, strategy="sample", temperature=1.5, seed=3, jit_compile=False
    )


def test_score_equals_keras_score(served, keras_model):
    out = call(served, "score", sources=SOURCES, targets=TARGETS)
    tokenizer = keras_model.tokenizer
    rows = []
    for source, target in zip(SOURCES, TARGETS):
        source_ids = tokenizer.tokenize(source).numpy().tolist() + [3]
        target_ids = [2] + tokenizer.tokenize(target).numpy().tolist() + [3]
        ll = keras_model.score(
            {
                "encoder_token_ids": np.array([source_ids], "int32"),
                "encoder_padding_mask": np.ones((1, len(source_ids)), "int32"),
                "decoder_token_ids": np.array([target_ids], "int32"),
                "decoder_padding_mask": np.ones((1, len(target_ids)), "int32"),
            }
        )
        rows.append((float(keras.ops.convert_to_numpy(ll)[0]), len(target_ids) - 1))
    np.testing.assert_allclose(
        out["log_likelihood"].numpy(), [r[0] for r in rows], rtol=1e-4, atol=1e-5
    )
    assert (
        out["num_tokens"].numpy().tolist()
        == [r[1] for r in rows]
        == [len(TARGETS[0]) + 1, 1, len(TARGETS[2]) + 1]
    )


def test_ids_variant_equals_greedy_ids(served, keras_model):
    rows = [keras_model.tokenizer.tokenize(s).numpy().tolist() + [3] for s in SOURCES]
    width = max(map(len, rows))
    padded = [row + [0] * (width - len(row)) for row in rows]
    out = call(served, "translate_ids", source_ids=padded, max_new_tokens=[8], **GREEDY)
    greedy = translate(served, SOURCES)
    assert out["target_ids"].numpy().tolist() == greedy["target_ids"].numpy().tolist()
    assert out["num_tokens"].numpy().tolist() == greedy["num_tokens"].numpy().tolist()
    expected = keras_model.generate(rows, max_new_tokens=8, strategy="greedy", jit_compile=False)
    assert [
        row[:n] for row, n in zip(out["target_ids"].numpy().tolist(), out["num_tokens"].numpy())
    ] == expected


def test_long_sources_are_cut_and_max_new_tokens_capped(served, keras_model):
    long_source = " ".join(SOURCES * 4)  # 140 characters: far over 24 tokens
    out = translate(served, [long_source, SOURCES[0]], max_new_tokens=1000)
    assert out["target_ids"].shape == (2, EXPORT["max_new_tokens"])
    cut = keras_model.tokenizer.tokenize(long_source).numpy().tolist()[:23] + [3]
    expected = keras_model.generate(
        [cut], max_new_tokens=EXPORT["max_new_tokens"], jit_compile=False
    )
    assert out["num_tokens"].numpy()[0] == len(expected[0])
    assert out["target_ids"].numpy()[0, : len(expected[0])].tolist() == expected[0]
    scored = call(served, "score", sources=[long_source], targets=[long_source])
    assert scored["num_tokens"].numpy().tolist() == [63]  # capacity - 2 tokens + end


def test_a_bad_strategy_is_a_clear_error(served):
    with pytest.raises(
        tf.errors.InvalidArgumentError, match="strategy: expected one of greedy, sample, beam"
    ):
        translate(served, SOURCES, strategy=["nucleus"])
    with pytest.raises(tf.errors.InvalidArgumentError, match="same value"):
        translate(served, SOURCES[:2], strategy=["greedy", "beam"])


@pytest.mark.slow
def test_check_serving_passes(exported):
    result = check_serving(exported[1])
    assert result["ok"], json.dumps(result["checks"], indent=1)
    assert "6 requests match" in result["checks"]["keras_match"]["detail"]


def test_check_serving_recomputes_the_keras_outputs_from_the_run(exported, tmp_path):
    version_dir = exported[1]
    with open(_recompute_expected(version_dir, str(tmp_path)), encoding="utf-8") as f:
        recomputed = json.load(f)
    with open(os.path.join(version_dir, layout.ASSETS_EXTRA, layout.EXPECTED_FILE)) as f:
        stored = json.load(f)
    assert recomputed == stored


def test_t5_endpoints_are_named_generate(tmp_path):
    run = RunDirectory(build_run(tmp_path, "t5"))
    signatures = Seq2SeqSignatures.from_model(run.load_model(), EXPORT, run=run)
    assert list(signatures.input_specs()) == ["generate", "score", "generate_ids"]
    assert signatures.start_id == 0 and signatures.limits.num_beams == 4


def test_sample_pairs_fall_back_to_the_vocabulary(tmp_path):
    train_sentencepiece(texts=["to be or not to be"], model_type="char", output_dir=str(tmp_path))
    tokenizer = load_tokenizer(str(tmp_path))
    pairs = sample_pairs(tokenizer)
    texts = [text for pair in pairs for text in pair]
    assert len(pairs) == 2 and all(texts[:2])
    assert tokenizer.unk_id not in tokenizer.tokenize(texts).flat_values.numpy()
