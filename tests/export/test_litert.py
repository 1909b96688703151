"""`kzoo export --format litert`: each .tflite, run by the LiteRT interpreter
(`ai-edge-litert`), answers as the Keras model does: the same greedy text for
causal LMs (`kzoo quantize`d int8; float in the full tier), the same labels, tags
and (to float tolerance) probabilities and embeddings for BERT, whose tokenizer
is inside the .tflite. Each conversion costs seconds: CI converts two models."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from kzoo import cli
from kzoo.export import litert_layout
from kzoo.export.bert_signatures import BertSignatures, sample_words
from kzoo.export.litert import export_litert, litert_family, write_litert
from kzoo.export.litert_bert import BertLiteRT, pack_dense
from kzoo.export.litert_driver import LiteRTGenerator, LiteRTModel, load_interpreter
from kzoo.export.litert_driver import main as driver_main
from kzoo.testing.tiers import full_only
from kzoo.testing.tiny_runs import EXPORTS, MODELS, bert_models, build_run, write_untrained_run
from kzoo.training.quantize import quantize_run
from kzoo.training.recipe import validate
from kzoo.training.run_directory import RunDirectory

pytestmark = pytest.mark.xdist_group("litert_export")

# Keras pads generate()'s buffer to a power of two: prompts of at most 3
# characters (+ the start token and 12 new tokens) need one compiled loop.
PROMPTS = ["", "ta", "mol"]
NEW_TOKENS = 12  # The tiny runs' export.max_new_tokens: cache_length 20 + 12 = 32.


def greedy_texts(model_or_generator, prompts=PROMPTS):
    if isinstance(model_or_generator, LiteRTGenerator):
        return [model_or_generator.generate(p, NEW_TOKENS) for p in prompts]
    return [model_or_generator.generate(p, max_new_tokens=NEW_TOKENS) for p in prompts]


# --- Causal LMs ---------------------------------------------------------------------


def wide_gpt_run(run_dir):
    """A tiny GPT whose projections have 1,024 weights or more (32 x 32, 32 x 64):
    the converter quantizes no smaller tensor."""
    keras.utils.set_random_seed(0)
    config = validate(
        {
            "model": {**MODELS["gpt"], "hidden_dim": 32, "intermediate_dim": 64},
            "tokenizer": {"kind": "char"},
            "data": {"sequence_length": 16},
            "train": {"sample_max_new_tokens": 8},
            "export": {"name": "tiny_gpt", **EXPORTS["gpt"]},
        },
        name="tiny_gpt",
    )
    write_untrained_run(run_dir, config)
    return run_dir


def test_a_kzoo_int8_run_exports_with_the_cli_and_the_driver_generates_what_keras_does(
    tmp_path, capsys
):
    """Keras' int8 matmuls have no TFLite kernel: the export dequantizes the run's
    weights and the converter quantizes them again (dynamic range), to Keras'
    very int8 values. The float path is the same without those two steps (its
    tests run in the full tier)."""
    run = str(tmp_path / "int8")
    quantize_run(wide_gpt_run(str(tmp_path / "gpt")), run, "int8")
    out = str(tmp_path / "litert")
    assert cli.main(["export", run, "--format", "litert", "--out", out]) == 0
    assert capsys.readouterr().out.strip() == f"Exported {out}"

    manifest = litert_layout.read_manifest(out)
    assert sorted(os.listdir(out)) == ["litert.json", "model.tflite", "tokenizer"]
    assert manifest["model_class"] == "GPTCausalLM" and manifest["quantized_run"] == "int8"
    assert manifest["quantization"] == "dynamic_int8" and manifest["custom_ops"] is None
    assert manifest["tokenizer"]["kind"] == "sentencepiece" and manifest["cache_length"] == 32
    decode = manifest["signatures"]["decode"]
    assert decode["inputs"]["token_ids"] == {"dtype": "int32", "shape": [1, 1]}
    assert decode["inputs"]["cache_0"]["shape"] == [1, 2, 32, 2, 16]
    assert manifest["signatures"]["prefill"]["inputs"]["token_ids"]["shape"] == [1, -1]

    model = RunDirectory(run).load_model()
    interpreter = load_interpreter(model_path=os.path.join(out, litert_layout.MODEL_FILE))
    interpreter.allocate_tensors()
    int8_tensors = [
        interpreter.get_tensor(t["index"])
        for t in interpreter.get_tensor_details()
        if t["dtype"] == np.int8
    ]
    kernels = [
        np.asarray(v).T  # A fully connected layer's weights are [out, in].
        for v in model.backbone.weights
        if v.path.endswith("kernel") and v.dtype == "int8"
    ]
    assert len(kernels) == 6  # query, key, value, output, two feed-forward
    for kernel in kernels:
        assert any(t.shape == kernel.shape and np.array_equal(t, kernel) for t in int8_tensors)

    expected = greedy_texts(model)
    assert greedy_texts(LiteRTGenerator(out)) == expected
    assert any(expected)  # Not only end tokens: the comparison compares something.

    # The driver's command line; an existing directory is refused before converting.
    assert driver_main([out, "--prompt", PROMPTS[1], "--max-new-tokens", str(NEW_TOKENS)]) == 0
    assert capsys.readouterr().out == expected[1] + "\n"
    assert cli.main(["export", run, "--format", "litert", "--out", out]) == 2
    assert "already exists and is not empty" in capsys.readouterr().err


@full_only("test_a_kzoo_int8_run_exports_with_the_cli_and_the_driver_generates_what_keras_does")
@pytest.mark.parametrize("family", ["gpt", "llama"])
def test_a_float_run_decodes_like_keras(tmp_path, family):
    """Llama: grouped key/value heads and a sliding window (8) shorter than the
    longest prompt; the endpoints are GPT's."""
    run = build_run(str(tmp_path / family), family)
    out = export_litert(run, str(tmp_path / "litert"))
    manifest = litert_layout.read_manifest(out)
    assert manifest["quantization"] is None and manifest["quantized_run"] is None
    prompts = [*PROMPTS, "molan teriv"]  # 12 tokens: past the window.
    expected = greedy_texts(RunDirectory(run).load_model(), prompts)
    assert greedy_texts(LiteRTGenerator(out), prompts) == expected


def test_unsupported_runs_and_options_are_refused_by_name(tmp_path):
    run = build_run(str(tmp_path / "lstm"), "lstm")
    with pytest.raises(ValueError, match="holds a LSTMLanguageModel; kzoo export --format litert"):
        export_litert(run, str(tmp_path / "out"))
    with pytest.raises(ValueError, match="--quantize: expected one of"):
        export_litert(run, str(tmp_path / "out"), quantize="int4")
    assert not os.path.exists(tmp_path / "out")


# --- BERT ---------------------------------------------------------------------------


def _texts(tokenizer):
    """Vocabulary words, accents and punctuation, an empty text and one longer
    than the sequence length."""
    w = sample_words(tokenizer)
    return [
        f"{w[0].capitalize()} {w[1]}, {w[2]}!",
        "Café déjà-vu: it's ok?",
        "",
        " ".join(w[i % 12] for i in range(40)) + ".",
    ]


class ClassifyAndTag:
    """A pair classifier's and a tagger's endpoints (they share an encoder) in one
    .tflite: one conversion instead of two."""

    custom_ops = "tensorflow_text"

    def __init__(self, classifier, tagger):
        self.classifier, self.tagger = BertLiteRT(classifier), BertLiteRT(tagger)

    def trackables(self):
        return [self.classifier.model, self.tagger.model]

    def endpoints(self):
        return {**self.classifier.endpoints(), "tag": self.tagger.endpoints()["tag"]}

    def sample_inputs(self):
        return {**self.classifier.sample_inputs(), "tag": self.tagger.sample_inputs()["tag"]}

    def manifest(self):
        return self.classifier.manifest()

    def write_assets(self, directory):
        return self.classifier.write_assets(directory)


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    """`(models, LiteRT directory)`: untrained BERT task models and the export of
    the classifier's and tagger's endpoints."""
    root = tmp_path_factory.mktemp("litert_bert")
    _, models = bert_models(str(root))
    for task in ("classify", "tag", "pretrain"):
        assert litert_family(models[task]) is BertLiteRT
    builder = ClassifyAndTag(models["classify"], models["tag"])
    return models, write_litert(builder, str(root / "litert"))


def test_bert_classify_and_embed_with_the_tokenizer_inside(bert):
    models, out = bert
    manifest = litert_layout.read_manifest(out)
    assert sorted(os.listdir(out)) == ["litert.json", "model.tflite"]  # No tokenizer beside.
    assert manifest["custom_ops"] == "tensorflow_text" and manifest["pairs"] is True
    assert manifest["labels"] == ["next", "random"]
    assert manifest["signatures"]["classify"]["inputs"]["texts"] == {
        "dtype": "string",
        "shape": [-1],
    }

    model = models["classify"]
    texts = _texts(model.tokenizer)
    pairs = [texts[1], texts[3], "", texts[0]]
    lite = LiteRTModel(out)
    reference = BertSignatures(model)
    got = lite.run("classify", texts=texts, text_pairs=pairs)
    expected = reference.classify(tf.constant(texts), tf.constant(pairs))
    np.testing.assert_array_equal(got["label"], expected["label"].numpy())
    np.testing.assert_array_equal(got["label_id"], expected["label_id"].numpy())
    np.testing.assert_allclose(got["probabilities"], expected["probabilities"], atol=1e-5)
    embedding = lite.run("embed", texts=texts)["embedding"]
    np.testing.assert_allclose(
        embedding, reference.embed(tf.constant(texts))["embedding"], atol=1e-5
    )
    assert lite.run("classify", texts=[], text_pairs=[])["label"].shape == (0,)


def test_bert_tag_returns_the_words_and_tags_of_the_saved_model_signature(bert):
    models, out = bert
    tagger = models["tag"]
    texts = _texts(tagger.tokenizer)
    got = LiteRTModel(out).run("tag", texts=texts)
    expected = BertSignatures(tagger).tag(tf.constant(texts))
    np.testing.assert_array_equal(got["num_words"], expected["num_tokens"])
    for row, text in enumerate(texts):  # The last has words past the length: "O".
        count = int(got["num_words"][row])
        spans = zip(got["start_byte"][row][:count], got["end_byte"][row][:count])
        words = [text.encode()[start:end] for start, end in spans]
        assert words == list(expected["tokens"].numpy()[row][:count])
        assert list(got["tags"][row][:count]) == list(expected["tags"].numpy()[row][:count])


def test_the_export_tokenizes_and_packs_as_the_training_pipeline(bert):
    preprocessor = bert[0]["classify"].preprocessor
    tokenizer = preprocessor.tokenizer
    texts = _texts(tokenizer)
    # The export's own normalizer and WordPiece ops give the tokenizer's ids.
    litert_ids = BertLiteRT(bert[0]["classify"]).tokenize(tf.constant(texts)).to_list()
    assert litert_ids == tokenizer.tokenize(texts).to_list()
    for pairs in (None, [texts[3], texts[0], "", texts[1]]):
        expected = preprocessor.text_inputs(
            tf.constant(texts), None if pairs is None else tf.constant(pairs)
        )
        segments = [tokenizer.tokenize(texts)] + ([tokenizer.tokenize(pairs)] if pairs else [])
        got = pack_dense(
            segments,
            preprocessor.sequence_length,
            tokenizer.cls_id,
            tokenizer.sep_id,
            tokenizer.pad_id,
        )
        for key in expected:
            np.testing.assert_array_equal(got[key], expected[key], err_msg=key)
