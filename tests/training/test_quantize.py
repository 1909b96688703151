"""`kzoo quantize`: a quantized copy of a run, which reloads quantized, stays close
to the float model and goes through the rest of the workflow."""

import os

import keras
import numpy as np
import pytest

from kzoo.testing.tiers import full_only
from kzoo.testing.tiny_runs import build_run, build_seq2seq_run
from kzoo.training.quantize import quantize_run
from kzoo.training.run_directory import RunDirectory

GPT_INPUTS = {
    "token_ids": np.array([[1, 5, 3, 4, 2, 7]], "int32"),
    "padding_mask": np.ones((1, 6), "int32"),
}


@pytest.fixture(scope="module")
def gpt_run(tmp_path_factory):
    return build_run(str(tmp_path_factory.mktemp("quantize") / "gpt"), "gpt")


def _relative_error(actual, expected):
    return float(np.abs(actual - expected).max() / np.abs(expected).max())


@pytest.mark.parametrize("mode, tolerance", [("int8", 0.02), ("int4", 0.25)])
def test_a_quantized_run_reloads_quantized_and_close_to_the_float_one(
    gpt_run, tmp_path, mode, tolerance
):
    summary = quantize_run(gpt_run, str(tmp_path / mode), mode)
    assert summary["mode"] == mode and summary["quantized_from"] == gpt_run
    assert summary["model_bytes"]["after"] < summary["model_bytes"]["before"]
    model = RunDirectory(str(tmp_path / mode)).load_model()
    query = model.backbone.get_layer("transformer_layer_0").self_attention.query_dense
    assert query.quantization_mode == mode and query._kernel.dtype == "int8"
    assert model.backbone.token_embedding.quantization_mode == mode
    expected = np.asarray(RunDirectory(gpt_run).load_model()(GPT_INPUTS))
    quantized = np.asarray(model(GPT_INPUTS))
    assert _relative_error(quantized, expected) < tolerance
    # A reloaded quantized model saves (and reloads) quantized again.
    model.save(tmp_path / "again.keras")
    again = keras.saving.load_model(tmp_path / "again.keras", compile=False)
    assert again.backbone.token_embedding.quantization_mode == mode
    np.testing.assert_allclose(np.asarray(again(GPT_INPUTS)), quantized, atol=1e-6)
    # The run is a run: its tokenizer and config came along.
    assert RunDirectory(str(tmp_path / mode)).tokenizer_kind() == "sentencepiece"
    assert RunDirectory(str(tmp_path / mode)).config()["model"]["family"] == "gpt"


@full_only(
    "test_a_quantized_run_reloads_quantized_and_close_to_the_float_one (the policy map is "
    "FunctionalModel's, which every backbone shares)"
)
def test_a_t5_run_quantizes_and_reloads(tmp_path):
    run = build_seq2seq_run(str(tmp_path / "t5"), "t5")
    quantize_run(run, str(tmp_path / "t5_int8"), "int8")
    model = RunDirectory(str(tmp_path / "t5_int8")).load_model()
    modes = {w.path.split("/")[-1]: w.dtype for w in model.backbone.weights}
    assert modes["kernel"] == "int8"
    inputs = {
        "encoder_token_ids": np.array([[3, 4, 5, 1]], "int32"),
        "encoder_padding_mask": np.ones((1, 4), "int32"),
        "decoder_token_ids": np.array([[0, 3, 4]], "int32"),
        "decoder_padding_mask": np.ones((1, 3), "int32"),
    }
    expected = np.asarray(RunDirectory(run).load_model()(inputs))
    assert _relative_error(np.asarray(model(inputs)), expected) < 0.02


def test_errors_name_the_problem_and_write_nothing(gpt_run, tmp_path):
    with pytest.raises(ValueError, match="--mode: must be one of int8, int4, got 'int2'"):
        quantize_run(gpt_run, str(tmp_path / "new"), "int2")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="full: already exists and is not empty"):
        quantize_run(gpt_run, str(tmp_path / "full"), "int8")
    assert os.listdir(tmp_path / "full") == ["keep.txt"]
    (tmp_path / "untrained").mkdir()
    with pytest.raises(FileNotFoundError):
        quantize_run(str(tmp_path / "untrained"), str(tmp_path / "new"), "int8")
    assert not (tmp_path / "new").exists()


SENTENCE = "the cat sat on the mat and the dog ran to the park. "


@pytest.mark.slow
def test_a_gptq_calibrated_run_reloads_and_serves(gpt_run, tmp_path, capsys):
    """`--calibration FILES`: Keras' GPTQ on the blocks' projections, block by block;
    the run reloads calibrated (the zero points saved: `kzoo.layers.Dense`), stays
    close to the float model on the calibration text, and its SavedModel passes
    check-serving."""
    from kzoo import cli

    text = tmp_path / "calibration.txt"
    text.write_text(SENTENCE * 100)
    quantized, out = str(tmp_path / "gptq"), str(tmp_path / "saved_models")
    args = ["quantize", gpt_run, "--mode", "int4", "--calibration", str(text)]
    assert cli.main([*args, "--run-dir", quantized]) == 0
    assert "to int4 (gptq)" in capsys.readouterr().out
    run = RunDirectory(quantized)
    assert run.summary()["method"] == "gptq"
    model = run.load_model()
    query = model.backbone.get_layer("transformer_layer_0").self_attention.query_dense
    assert query.quantization_mode == "gptq" and query.dtype_policy.name.startswith("gptq/4/")
    ids = run.tokenizer().tokenize(SENTENCE).numpy()[None, :32]
    inputs = {"token_ids": ids, "padding_mask": np.ones_like(ids)}
    expected = np.asarray(RunDirectory(gpt_run).load_model()(inputs))
    assert _relative_error(np.asarray(model(inputs)), expected) < 0.25
    assert cli.main(["export", quantized, "--out", out, "--name", "gptq", "--version", "1"]) == 0
    assert cli.main(["check-serving", os.path.join(out, "gptq", "1")]) == 0
    assert "serving check passed" in capsys.readouterr().out


def test_calibration_refusals_name_the_problem(tmp_path):
    from kzoo.testing.tiny_runs import build_bert_run

    text = tmp_path / "calibration.txt"
    text.write_text("too short")
    gpt = build_run(str(tmp_path / "gpt"), "gpt")
    with pytest.raises(ValueError, match="--calibration: the files hold 9 tokens, fewer than"):
        quantize_run(gpt, str(tmp_path / "new"), "int4", calibration=[str(text)])
    bert = build_bert_run(str(tmp_path / "bert"), "classify")
    with pytest.raises(ValueError, match="GPTQ calibrates decoder-only models"):
        quantize_run(bert, str(tmp_path / "new"), "int8", calibration=[str(text)])
    with pytest.raises(FileNotFoundError, match="--calibration"):
        quantize_run(gpt, str(tmp_path / "new"), "int8", calibration=[str(tmp_path / "no.txt")])
    assert not (tmp_path / "new").exists()


def test_a_reloaded_llama_run_quantizes(tmp_path):
    """A reloaded Llama holds a weightless rotary layer, which Keras' `quantize`
    (refusing unbuilt layers) must pass over."""
    run = build_run(str(tmp_path / "llama"), "llama")
    quantize_run(run, str(tmp_path / "int8"), "int8")
    model = RunDirectory(str(tmp_path / "int8")).load_model()
    expected = np.asarray(RunDirectory(run).load_model()(GPT_INPUTS))
    assert _relative_error(np.asarray(model(GPT_INPUTS)), expected) < 0.02
