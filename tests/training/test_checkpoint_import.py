"""`kzoo import` end to end: a tiny GPT-2, BERT and T5 checkpoint in the Hugging Face
layout (weights and tokenizer files) becomes a run that `kzoo evaluate`/`generate`
take, that a fine-tuning recipe starts from (`train.init_from`), whose fine-tuned
run exports and passes `check-serving`; and `kzoo export --format huggingface`
writes a checkpoint that imports back with identical outputs.

The checkpoints here are written by kzoo (random weights sized to the tokenizers
of `kzoo.testing.hf_tokenizers`); that kzoo reads checkpoints written by
`transformers` exactly is `tests/models/test_hf_checkpoints.py`'s subject.
"""

import json
import os
import shutil

import numpy as np
import pytest

from kzoo.cli import main
from kzoo.testing import ROOT
from kzoo.testing.hf_tokenizers import (
    write_bert_tokenizer,
    write_gpt2_tokenizer,
    write_llama2_tokenizer,
    write_llama3_tokenizer,
    write_qwen2_tokenizer,
    write_t5_tokenizer,
)
from kzoo.testing.tiers import full_only
from kzoo.testing.tiny_recipes import TINY_BERT_OVERRIDES

pytestmark = [pytest.mark.slow]

WRITERS = {"gpt2": write_gpt2_tokenizer, "bert": write_bert_tokenizer, "t5": write_t5_tokenizer}


def _random_model(model_type, vocabulary_size):
    from kzoo.models import (
        BertBackbone,
        BertPretrainer,
        GPTBackbone,
        GPTCausalLM,
        Seq2SeqLM,
        T5Backbone,
    )

    sizes = dict(num_layers=1, num_heads=2, hidden_dim=16, intermediate_dim=32)
    if model_type == "gpt2":
        backbone = GPTBackbone(vocabulary_size, max_sequence_length=64, **sizes)
        return GPTCausalLM(backbone, end_token_id=0)
    if model_type == "bert":
        return BertPretrainer(BertBackbone(vocabulary_size, max_sequence_length=64, **sizes))
    backbone = T5Backbone(vocabulary_size, activation="gelu_approximate", **sizes)
    return Seq2SeqLM(backbone, start_token_id=0, end_token_id=1)


def write_checkpoint(directory, model_type, padding=0, heads=True):
    """A Hugging Face checkpoint directory: tokenizer files and random weights with
    `padding` embedding rows more than the tokenizer has tokens (`heads=False`:
    the backbone alone, as `BertModel` saves it)."""
    from kzoo.models.hf_checkpoints import export_hf_checkpoint
    from kzoo.tokenizers.hf_tokenizer_files import load_hf_tokenizer

    tokenizer_dir = WRITERS[model_type](os.path.join(directory + "-tokenizer"))
    size = load_hf_tokenizer(tokenizer_dir).vocabulary_size
    model = _random_model(model_type, size + padding)
    export_hf_checkpoint(model if heads else model.backbone, directory)
    for name in os.listdir(tokenizer_dir):
        shutil.copy(os.path.join(tokenizer_dir, name), directory)
    return directory


def _tensor_names(directory):
    from safetensors import safe_open

    with safe_open(os.path.join(directory, "model.safetensors"), framework="np") as f:
        return list(f.keys())


def _cli(*argv):
    assert main(list(argv)) == 0


def _fine_tune(recipe, run_dir, overrides):
    from kzoo.training.recipe import load_recipe
    from kzoo.training.trainer import train

    config = load_recipe(os.path.join(ROOT, "recipes", recipe), overrides)
    train(config, str(run_dir), verbose=0)


FINE_TUNING = {
    "gpt2": (
        "gpt_tiny.yaml",
        [
            "data.sequence_length=16",
            "data.batch_size=4",
            "data.builtin_train_documents=20",
            "data.builtin_validation_documents=4",
            "train.steps=2",
            "train.steps_per_epoch=2",
            "train.warmup_steps=1",
            "train.sample_max_new_tokens=8",
            "export.max_new_tokens=8",
            "export.max_prompt_tokens=32",
        ],
    ),
    "bert": (
        "bert_tiny_classify.yaml",
        [
            *TINY_BERT_OVERRIDES,
            "data.builtin_train_examples=16",
            "data.builtin_validation_examples=8",
            "train.epochs=1",
            "train.warmup_steps=1",
        ],
    ),
    "t5": (
        "t5_tiny_finetune.yaml",
        [
            "data.builtin_train_examples=16",
            "data.builtin_validation_examples=8",
            "data.eval_examples=2",
            "data.batch_size=8",
            "data.max_source_length=64",
            "data.max_target_length=64",
            "data.bucket_boundaries=null",
            "export.max_prompt_tokens=64",
            "export.max_new_tokens=8",
            "export.num_beams=2",
            "train.steps=2",
            "train.steps_per_epoch=2",
            "train.warmup_steps=1",
        ],
    ),
}


def _import(tmp_path, model_type):
    """`kzoo import` of a random `model_type` checkpoint with 3 padding rows: the
    imported run, checked."""
    from kzoo.training.run_directory import RunDirectory

    source = write_checkpoint(str(tmp_path / "hf"), model_type, padding=3)
    imported = tmp_path / "imported"
    _cli("import", source, "--run-dir", str(imported))
    run = RunDirectory(imported)
    summary = run.summary()
    assert summary["model_type"] == model_type and summary["format"] == "huggingface"
    assert summary["unused"] == []
    model = run.load_model()
    assert model.preprocessor is not None
    assert model.backbone.vocabulary_size == model.tokenizer.vocabulary_size + 3
    return imported, run


# CI takes GPT-2 and T5 the whole way. BERT's imported run is exported and served
# as imported (test_imported_bert_checkpoint_exports_and_serves: the export, not
# the fine-tuning, is most of the time); BERT fine-tuning from a pretrained run is
# test_bert_runs.py's subject.
@pytest.mark.parametrize(
    "model_type",
    [
        "gpt2",
        pytest.param(
            "bert",
            marks=full_only(
                "test_imported_bert_checkpoint_exports_and_serves and test_bert_runs.py::"
                "test_fine_tuning_starts_from_the_pretrained_encoder"
            ),
        ),
        "t5",
    ],
)
def test_imported_checkpoint_fine_tunes_exports_and_serves(tmp_path, model_type):
    from kzoo.export import export_run
    from kzoo.export.check_serving import check_serving
    from kzoo.training.run_directory import RunDirectory

    imported, run = _import(tmp_path, model_type)
    if model_type == "gpt2":  # The commands take an imported run as they take a trained one.
        (tmp_path / "held_out.txt").write_text("Some held-out text, twice. " * 40)
        # (--no-xla: XLA's default is test_generate_xla.py's and test_llama_runs.py's.)
        _cli("generate", str(imported), "--prompt", "Hello", "--max-new-tokens", "4", "--no-xla")
        _cli("evaluate", str(imported), "--data", str(tmp_path / "held_out.txt"))

    recipe, overrides = FINE_TUNING[model_type]
    tuned = tmp_path / "tuned"
    _fine_tune(recipe, tuned, [*overrides, f"train.init_from={imported}"])
    config = RunDirectory(tuned).config()
    assert config["tokenizer"]["kind"] == run.config()["tokenizer"]["kind"]
    if model_type == "t5":  # No bos in T5's vocabulary: the decoder starts from pad.
        preprocessor = RunDirectory(tuned).load_model().preprocessor
        assert preprocessor.start_token_id == preprocessor.tokenizer.pad_id == 0
    version = export_run(str(tuned), out_dir=str(tmp_path / "saved"), name=model_type)
    result = check_serving(version)
    assert result["ok"], result["checks"]


def test_imported_bert_checkpoint_exports_and_serves(tmp_path):
    """An imported BERT run, as imported (its pretraining heads), exports its
    fill_mask signature and passes check-serving."""
    from kzoo.export import export_run
    from kzoo.export.check_serving import check_serving

    imported, _ = _import(tmp_path, "bert")
    version = export_run(str(imported), out_dir=str(tmp_path / "saved"), name="bert")
    info = json.load(open(os.path.join(version, "assets.extra", "kzoo_export.json")))
    assert "fill_mask" in info["signatures"]
    result = check_serving(version)
    assert result["ok"], result["checks"]


def test_bert_checkpoint_without_heads_reports_them_fresh(tmp_path, capsys):
    source = write_checkpoint(str(tmp_path / "bert"), "bert", heads=False)
    assert not any(name.startswith("cls.") for name in _tensor_names(source))
    _cli("import", source, "--run-dir", str(tmp_path / "run"))
    fresh = json.load(open(tmp_path / "run" / "summary.json"))["fresh"]
    assert fresh and "started fresh" in capsys.readouterr().out


def test_huggingface_export_imports_back_with_identical_outputs(tmp_path):
    from kzoo.training.run_directory import RunDirectory

    source = write_checkpoint(str(tmp_path / "hf"), "gpt2")
    _cli("import", source, "--run-dir", str(tmp_path / "run"))
    _cli("export", str(tmp_path / "run"), "--format", "huggingface", "--out", str(tmp_path / "out"))
    assert {"config.json", "model.safetensors", "vocab.json", "merges.txt"} <= set(
        os.listdir(tmp_path / "out")
    )
    _cli("import", str(tmp_path / "out"), "--run-dir", str(tmp_path / "again"))
    first, again = (RunDirectory(tmp_path / name).load_model() for name in ("run", "again"))
    ids = np.array([[5, 17, 3, 250, 9, 0]], "int32")
    inputs = {"token_ids": ids, "padding_mask": np.ones_like(ids, bool)}
    np.testing.assert_allclose(
        np.asarray(again(inputs)), np.asarray(first(inputs)), rtol=0, atol=1e-6
    )
    texts = ["Café 😀  spaces\nline", "x" * 40]
    assert again.tokenizer.tokenize(texts).to_list() == first.tokenizer.tokenize(texts).to_list()


def test_import_errors_name_the_problem_and_write_nothing(tmp_path, capsys):
    source = write_checkpoint(str(tmp_path / "hf"), "gpt2")
    config_path = os.path.join(source, "config.json")
    config = json.load(open(config_path))
    json.dump({**config, "model_type": "gemma"}, open(config_path, "w"))
    assert main(["import", source, "--run-dir", str(tmp_path / "run")]) == 2
    assert (
        "model_type 'gemma' is not supported; supported: bert, gpt2, llama, mistral, qwen2, t5"
        in (capsys.readouterr().err)
    )
    assert not os.path.exists(tmp_path / "run")

    json.dump(config, open(config_path, "w"))
    os.remove(os.path.join(source, "vocab.json"))
    os.remove(os.path.join(source, "tokenizer.json"))
    assert main(["import", source, "--run-dir", str(tmp_path / "run")]) == 2
    assert source in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "run")

    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "keep.txt").write_text("mine")
    assert main(["import", str(tmp_path / "nothing"), "--run-dir", str(tmp_path / "taken")]) == 2
    assert "no such checkpoint directory" in capsys.readouterr().err
    assert (tmp_path / "taken" / "keep.txt").read_text() == "mine"


def test_keras_hub_preset_imports_with_the_same_outputs(tmp_path):
    import keras_hub

    from kzoo.tokenizers.hf_tokenizer_files import load_hf_tokenizer
    from kzoo.training.run_directory import RunDirectory

    tokenizer_dir = write_gpt2_tokenizer(str(tmp_path / "tokenizer"))
    vocabulary = json.load(open(os.path.join(tokenizer_dir, "vocab.json"), encoding="utf-8"))
    with open(os.path.join(tokenizer_dir, "merges.txt"), encoding="utf-8") as file:
        merges = [line.rstrip("\n") for line in file if not line.startswith("#")]
    preset = str(tmp_path / "preset")
    hub = keras_hub.models.GPT2Backbone(
        vocabulary_size=len(vocabulary),
        num_layers=1,
        num_heads=2,
        hidden_dim=16,
        intermediate_dim=32,
        max_sequence_length=32,
    )
    hub.save_to_preset(preset)
    keras_hub.models.GPT2Tokenizer(vocabulary, merges).save_to_preset(preset)

    _cli("import", preset, "--run-dir", str(tmp_path / "run"))
    run = RunDirectory(tmp_path / "run")
    assert run.summary()["format"] == "keras_hub"
    model = run.load_model()
    ids = np.array([[5, 17, 3, 250, 9, 0]], "int32")
    inputs = {"token_ids": ids, "padding_mask": np.ones_like(ids, bool)}
    np.testing.assert_allclose(
        np.asarray(model.backbone(inputs)), np.asarray(hub(inputs)), rtol=0, atol=1e-5
    )
    texts = ["Café 😀  spaces\nline", "x" * 40]
    reference = load_hf_tokenizer(tokenizer_dir)
    assert model.tokenizer.tokenize(texts).to_list() == reference.tokenize(texts).to_list()


LLAMA_FAMILY = {  # model_type: (tokenizer, LlamaBackbone options)
    "llama": (write_llama2_tokenizer, {}),
    "mistral": (write_llama3_tokenizer, {"sliding_window": 4, "tie_embedding_weights": False}),
    "qwen2": (write_qwen2_tokenizer, {"attention_bias": True, "attention_output_bias": False}),
}


@pytest.mark.parametrize("model_type", sorted(LLAMA_FAMILY))
def test_llama_family_checkpoints_import_and_export_back(tmp_path, model_type):
    from kzoo.models import LlamaBackbone, LlamaCausalLM
    from kzoo.models.hf_checkpoints import export_hf_checkpoint
    from kzoo.tokenizers.hf_tokenizer_files import load_hf_tokenizer
    from kzoo.training.run_directory import RunDirectory

    write, options = LLAMA_FAMILY[model_type]
    source = str(tmp_path / "hf")
    tokenizer_dir = write(str(tmp_path / "tokenizer"))
    rows = load_hf_tokenizer(tokenizer_dir).vocabulary_size + 2
    backbone = LlamaBackbone(
        rows, 2, 4, 16, 24, num_key_value_heads=2, max_sequence_length=64, **options
    )
    original = LlamaCausalLM(backbone, end_token_id=1)
    export_hf_checkpoint(original, source)
    config = json.load(open(os.path.join(source, "config.json")))
    json.dump({**config, "model_type": model_type}, open(os.path.join(source, "config.json"), "w"))
    for name in os.listdir(tokenizer_dir):
        shutil.copy(os.path.join(tokenizer_dir, name), source)

    _cli("import", source, "--run-dir", str(tmp_path / "run"))
    _cli("export", str(tmp_path / "run"), "--format", "huggingface", "--out", str(tmp_path / "out"))
    _cli("import", str(tmp_path / "out"), "--run-dir", str(tmp_path / "again"))
    ids = np.array([[5, 17, 3, 250, 9, 0, 8, 8]], "int32")
    inputs = {"token_ids": ids, "padding_mask": np.ones_like(ids, bool)}
    expected = np.asarray(original(inputs))
    for name in ("run", "again"):
        model = RunDirectory(tmp_path / name).load_model()
        assert model.backbone.get_config() | {"name": None} == backbone.get_config() | {
            "name": None
        }
        np.testing.assert_allclose(np.asarray(model(inputs)), expected, rtol=0, atol=1e-5)
