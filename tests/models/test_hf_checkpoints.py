"""Hugging Face checkpoints into kzoo: parity with `transformers` (committed outputs),
export round trips, and the errors of a strict loader."""

import functools
import json
import os
import shutil

import numpy as np
import pytest

from kzoo.models.hf_checkpoints import export_hf_checkpoint, load_hf_checkpoint
from kzoo.models.safetensors_checkpoint import SafetensorsCheckpoint
from kzoo.testing.hf_fixtures import hf_fixture, write_random_gpt2_checkpoint

GPT2 = ["gpt2", "gpt2_odd", "gpt2_sharded", "gpt2_bf16"]
BERT = ["bert", "bert_base_only"]
T5 = ["t5_v1_0", "t5_v1_1"]
LLAMA = ["llama", "mistral", "qwen2"]  # Llama-3 rope scaling, GQA; sliding window; biases


@functools.cache
def loaded(name):
    directory, reference = hf_fixture(name)
    model, report = load_hf_checkpoint(directory)
    return model, report, reference


def _int32(reference, *keys):
    return {key: reference[key].astype("int32") for key in keys}


def outputs(name, model, reference):
    """kzoo's outputs for the fixture's inputs, keyed as in `reference.npz`."""
    if name.startswith("gpt2") or name in LLAMA:
        return {"logits": model(_int32(reference, "token_ids", "padding_mask"))}
    if name.startswith("t5"):
        keys = ("encoder_token_ids", "encoder_padding_mask")
        keys += ("decoder_token_ids", "decoder_padding_mask")
        inputs = _int32(reference, *keys)
        encoder = model.backbone(inputs)["encoder_sequence_output"]
        return {"logits": model(inputs), "encoder_sequence_output": encoder}
    inputs = _int32(reference, "token_ids", "segment_ids", "padding_mask")
    backbone = model.backbone(inputs)
    batch, length = inputs["token_ids"].shape
    positions = np.tile(np.arange(length, dtype="int32"), (batch, 1))
    heads = model({**inputs, "mask_positions": positions})
    return {
        "sequence_output": backbone["sequence_output"],
        "pooled_output": backbone["pooled_output"],
        "mlm_logits": heads["mlm"],
        "nsp_logits": heads["nsp"],
    }


def _real_positions(name, reference):
    """Outputs are compared where the reference attends (padded queries differ)."""
    if name.startswith("t5"):
        return reference["decoder_padding_mask"].astype(bool)
    return reference["padding_mask"].astype(bool)


def assert_matches(name, model, reference, atol=1e-4):
    found = outputs(name, model, reference)
    compared = 0
    for key, expected in reference.items():
        if key not in found:
            continue
        actual = np.asarray(found[key])
        if actual.ndim == 3 and key != "encoder_sequence_output":
            mask = _real_positions(name, reference)
            actual, expected = actual[mask], expected[mask]
        elif key == "encoder_sequence_output":
            mask = reference["encoder_padding_mask"].astype(bool)
            actual, expected = actual[mask], expected[mask]
        np.testing.assert_allclose(actual, expected, atol=atol, rtol=0, err_msg=f"{name}: {key}")
        compared += 1
    assert compared >= 1


@pytest.mark.parametrize("name", GPT2 + BERT + T5 + LLAMA)
def test_outputs_match_transformers(name):
    model, report, reference = loaded(name)
    assert report.unused == []
    assert_matches(name, model, reference)


@pytest.mark.parametrize("name", ["gpt2", "gpt2_odd", "t5_v1_0", "t5_v1_1", *LLAMA])
def test_greedy_generation_matches_transformers(name):
    model, _, reference = loaded(name)
    model.end_token_id = -1  # the reference ran without an end token: 32 tokens each
    if not name.startswith("t5"):
        prompts = [reference["prompt_0"].tolist(), reference["prompt_1"].tolist()]
        expected = [reference["generated_0"].tolist(), reference["generated_1"].tolist()]
    else:
        sources = zip(reference["encoder_token_ids"], reference["encoder_padding_mask"])
        prompts = [row[mask.astype(bool)].tolist() for row, mask in sources]
        expected = reference["generated"].tolist()
    assert model.generate(prompts, max_new_tokens=32) == expected


def test_missing_heads_start_fresh_and_are_reported():
    _, report, _ = loaded("bert_base_only")
    assert report.fresh == ["mlm head", "nsp head"]
    assert "starting fresh: mlm head, nsp head" in report.summary()
    assert loaded("bert")[1].fresh == []


def test_bfloat16_checkpoint_loads_as_float32():
    model, _, _ = loaded("gpt2_bf16")
    embedding = model.backbone.token_embedding.embeddings
    assert str(embedding.dtype) == "float32"
    full = loaded("gpt2")[0].backbone.token_embedding.embeddings
    # bfloat16 keeps 8 bits of mantissa: close to, not equal to, the float32 weights.
    difference = np.abs(np.asarray(embedding) - np.asarray(full))
    assert 0 < difference.max() < 1e-2


def test_float16_checkpoint_loads(tmp_path):
    path = write_random_gpt2_checkpoint(
        tmp_path / "f16",
        dtype="float16",
        vocab_size=30,
        n_positions=8,
        n_embd=8,
        n_layer=1,
        n_head=2,
    )
    model, report = load_hf_checkpoint(path)
    with SafetensorsCheckpoint(path) as checkpoint:
        expected = checkpoint.get("wte.weight")
    assert report.unused == []
    np.testing.assert_array_equal(model.backbone.token_embedding.embeddings.numpy(), expected)


@pytest.mark.parametrize(
    "name", ["gpt2_odd", "bert", "bert_base_only", "t5_v1_0", "t5_v1_1", *LLAMA]
)
def test_export_and_reload_gives_identical_outputs(name, tmp_path):
    model, _, reference = loaded(name)
    path = export_hf_checkpoint(model, tmp_path / name)
    assert sorted(os.listdir(path)) == ["config.json", "model.safetensors"]
    again, report = load_hf_checkpoint(path)
    assert report.unused == [] and report.fresh == []
    before, after = outputs(name, model, reference), outputs(name, again, reference)
    for key in before:
        np.testing.assert_array_equal(np.asarray(after[key]), np.asarray(before[key]))


def test_padded_vocabulary_takes_the_checkpoint_rows(tmp_path):
    path = tmp_path / "padded"
    write_random_gpt2_checkpoint(path, vocab_size=32, n_positions=8, n_embd=8, n_layer=1, n_head=2)
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "vocab_size": 29}))
    model, _ = load_hf_checkpoint(path)
    assert model.backbone.vocabulary_size == 32


# --- Errors ------------------------------------------------------------------


def _copy(name, tmp_path):
    return shutil.copytree(hf_fixture(name)[0], tmp_path / name)


def test_wrong_shape_names_tensor_shapes_and_file(tmp_path):
    path = _copy("gpt2", tmp_path)
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "n_inner": 100}))
    with pytest.raises(ValueError) as error:
        load_hf_checkpoint(path)
    message = str(error.value)
    assert "'transformer.h.0.mlp.c_fc.weight' has shape (32, 128)" in message
    assert "expects (32, 100)" in message
    assert str(path / "model.safetensors") in message


def test_missing_tensor_is_named(tmp_path):
    from safetensors.numpy import load_file, save_file

    path = _copy("gpt2", tmp_path)
    tensors = load_file(path / "model.safetensors")
    del tensors["transformer.h.1.ln_2.bias"]
    save_file(tensors, path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(ValueError, match=r"no tensor 'transformer.h.1.ln_2.bias'.*shape \(32,\)"):
        load_hf_checkpoint(path)


def test_missing_shard_names_index_and_shard(tmp_path):
    path = _copy("gpt2_sharded", tmp_path)
    os.unlink(path / "model-00002-of-00003.safetensors")
    with pytest.raises(ValueError) as error:
        load_hf_checkpoint(path)
    assert "model.safetensors.index.json" in str(error.value)
    assert "shard 'model-00002-of-00003.safetensors' is missing" in str(error.value)


def test_unsupported_model_type_lists_supported(tmp_path):
    path = _copy("gpt2", tmp_path)
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "model_type": "gemma"}))
    with pytest.raises(
        ValueError,
        match="model_type 'gemma' is not supported; supported: bert, gpt2, llama, mistral, qwen2, t5",
    ):
        load_hf_checkpoint(path)


def test_not_a_checkpoint_directory(tmp_path):
    with pytest.raises(ValueError, match="no config.json"):
        load_hf_checkpoint(tmp_path)
    (tmp_path / "config.json").write_text('{"model_type": "gpt2"}')
    with pytest.raises(ValueError, match="neither model.safetensors nor"):
        load_hf_checkpoint(tmp_path)


def test_unsupported_option_is_named(tmp_path):
    path = _copy("t5_v1_0", tmp_path)
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "feed_forward_proj": "gated-swish"}))
    with pytest.raises(ValueError, match="feed_forward_proj='gated-swish' is not supported"):
        load_hf_checkpoint(path)


def test_qwen2_window_over_some_layers_only_is_refused(tmp_path):
    path = _copy("qwen2", tmp_path)
    config = json.loads((path / "config.json").read_text())
    window = {"use_sliding_window": True, "sliding_window": 4, "max_window_layers": 1}
    (path / "config.json").write_text(json.dumps({**config, **window}))
    with pytest.raises(ValueError, match="max_window_layers 1 of 2 layers"):
        load_hf_checkpoint(path)
    (path / "config.json").write_text(json.dumps({**config, **window, "max_window_layers": 0}))
    model, _ = load_hf_checkpoint(path)
    assert model.backbone.sliding_window == 4
