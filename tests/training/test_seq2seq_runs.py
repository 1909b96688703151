"""Encoder-decoder runs end to end: translation (Transformer and LSTM), T5
pretraining and fine-tuning from it, evaluate, TensorBoard, export, check-serving.

The tiny runs are trained once and shared (xdist group).
"""

import json
import os
import signal

import pytest

from kzoo.data import builtin_translation
from kzoo.testing import ROOT, assert_interrupted_run_resumes_to, tensorboard_tags
from kzoo.testing.init_from_checks import assert_fine_tuning_starts_from

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("seq2seq_runs")]

TINY = [
    "model.num_layers=1",
    "model.num_heads=2",
    "model.hidden_dim=16",
    "model.intermediate_dim=32",
    "model.max_sequence_length=48",
    "tokenizer.vocab_size=320",
    "data.batch_size=8",
    "data.builtin_train_examples=160",
    "data.builtin_validation_examples=16",
    "data.eval_examples=8",
    "data.max_source_length=40",
    "data.max_target_length=40",
    "export.max_prompt_tokens=40",
    "export.max_new_tokens=16",
    "export.num_beams=2",
    "train.warmup_steps=1",
    "train.steps=2",
    "train.steps_per_epoch=2",
    "data.bucket_boundaries=null",
]
T5_TINY = [o for o in TINY if not o.startswith(("model.num_heads", "data.max_target"))] + [
    "model.size=null",
    "model.num_heads=2",
    "data.builtin_train_documents=60",
    "data.builtin_validation_documents=30",
    "data.num_sentinels=8",
]


def _train(recipe, run_dir, overrides):
    from kzoo.training.recipe import load_recipe
    from kzoo.training.trainer import train

    config = load_recipe(os.path.join(ROOT, "recipes", recipe), overrides)
    return train(config, str(run_dir), verbose=0)


def _line_aligned_files(directory, count=60):
    pairs = builtin_translation.translation_pairs(count, seed=1)
    source, target = directory / "train.en", directory / "train.toy"
    source.write_text("".join(s + "\n" for s, _ in pairs))
    target.write_text("".join(t + "\n" for _, t in pairs))
    return source, target


def t5_fine_tuning(pretrained):
    return T5_TINY + [
        "data.max_target_length=40",
        f"train.init_from={pretrained}",
        "data.builtin_train_examples=60",
    ]


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    """An LSTM seq2seq run on line-aligned files, a T5 pretraining run and a T5
    fine-tuning run from it. (The Transformer's training differs from the LSTM's
    only by its backbone; its export is checked in tests/export.)"""
    root = tmp_path_factory.mktemp("seq2seq")
    runs = {name: root / name for name in ("lstm", "t5_pretrain", "t5")}
    source, target = _line_aligned_files(root)
    runs["lstm_summary"] = _train(
        "seq2seq_tiny.yaml",
        runs["lstm"],
        TINY
        + [
            f"data.train_source={source}",
            f"data.train_target={target}",
            "data.validation_fraction=0.2",
            "data.max_source_length=48",
            "data.max_target_length=48",
            "train.steps=null",
            "train.epochs=1",
            "model.architecture=lstm",
            "model.embedding_dim=8",
        ],
    )
    _train(
        "t5_tiny_pretrain.yaml",
        runs["t5_pretrain"],
        T5_TINY + ["data.max_source_length=32", "data.max_target_length=12"],
    )
    _train("t5_tiny_finetune.yaml", runs["t5"], t5_fine_tuning(runs["t5_pretrain"]))
    return runs


@pytest.mark.parametrize("name", ["lstm", "t5"])
def test_generation_metrics_and_samples_reach_tensorboard(runs, name):
    # Keras writes val_* logs to the validation/ writer without the prefix.
    expected = {
        "epoch_bleu",
        "epoch_rouge1",
        "epoch_rougeL",
        "epoch_exact_match",
        "epoch_accuracy",
        "epoch_learning_rate",
        "translations",
    }
    assert expected <= tensorboard_tags(runs[name])


def test_pretraining_logs_its_loss_and_no_samples(runs):
    tags = tensorboard_tags(runs["t5_pretrain"])
    assert {"epoch_loss", "epoch_accuracy"} <= tags
    assert "translations" not in tags and "samples" not in tags


@pytest.mark.parametrize("name", ["lstm", "t5"])
def test_evaluate_reports_beam_and_greedy_metrics(runs, name):
    from kzoo.training.evaluate import evaluate_run

    result = evaluate_run(str(runs[name]))
    for prefix in ("", "greedy_"):
        assert 0.0 <= result[f"{prefix}bleu"] <= 100.0
        for key in ("rouge1", "rouge2", "rougeL", "exact_match"):
            assert 0.0 <= result[f"{prefix}{key}"] <= 1.0
    assert result["num_beams"] == 2 and result["examples"] > 0
    assert result["loss"] > 0 and 0 <= result["accuracy"] <= 1


def test_evaluate_pretraining_run(runs):
    from kzoo.training.evaluate import evaluate_run

    result = evaluate_run(str(runs["t5_pretrain"]))
    assert result["loss"] > 0 and 0 <= result["accuracy"] <= 1 and result["blocks"] > 0


def test_fine_tuning_starts_from_the_pretrained_t5(runs):
    from kzoo.tokenizers import load_tokenizer

    config = assert_fine_tuning_starts_from(runs["t5"], runs["t5_pretrain"])
    assert config["model"]["hidden_dim"] == 16 and config["model"]["num_layers"] == 1
    tokenizer = load_tokenizer(str(runs["t5"]))
    assert len(tokenizer.sentinel_ids) == 8
    assert (runs["t5"] / "tokenizer.model").read_bytes() == (
        runs["t5_pretrain"] / "tokenizer.model"
    ).read_bytes()


def test_line_aligned_files_make_the_expected_epoch(runs):
    assert runs["lstm_summary"]["steps"] == (60 - 12) // 8  # every pair fits


def test_parallel_tsv_with_a_task_prefix(tmp_path):
    from kzoo.training.recipe import load_recipe
    from kzoo.training.tasks.registry import task_for

    train_tsv, valid_tsv = builtin_translation.write_builtin_translation(tmp_path / "tsv", 40, 16)
    config = load_recipe(
        os.path.join(ROOT, "recipes", "seq2seq_tiny.yaml"),
        TINY
        + [f"data.train={train_tsv}", f"data.validation={valid_tsv}", "data.task_prefix=translate"],
    )
    source = task_for(config).resolve_data()
    assert len(source.train) == 40 and len(source.validation) == 16
    expected = builtin_translation.translation_pairs(40)[0]
    assert source.train[0]["source"] == "translate: " + expected[0]
    assert source.train[0]["target"] == expected[1]


def test_line_count_mismatch_names_both_files_and_writes_nothing(tmp_path):
    source, target = tmp_path / "a.en", tmp_path / "a.toy"
    source.write_text("one .\ntwo .\nthree .\n")
    target.write_text("un .\ndeux .\n")
    with pytest.raises(ValueError, match=rf"{source} has 3 lines but {target} has 2"):
        _train(
            "seq2seq_tiny.yaml",
            tmp_path / "run",
            TINY + [f"data.train_source={source}", f"data.train_target={target}"],
        )
    assert not (tmp_path / "run").exists()


def test_t5_run_exports_generate(runs, tmp_path):
    """`kzoo check-serving` on a seq2seq export is tested in
    tests/export/test_seq2seq_export.py; here a T5 run exports `generate`."""
    from kzoo.export import export_run

    version = export_run(str(runs["t5"]), out_dir=str(tmp_path), name="t5")
    info = json.load(open(os.path.join(version, "assets.extra", "kzoo_export.json")))
    assert {"generate", "generate_ids", "score", "serving_default"} <= set(info["signatures"])


def test_t5_fine_tuning_interrupted_mid_epoch_resumes_to_the_same_weights(
    runs, tmp_path, monkeypatch
):
    overrides = t5_fine_tuning(runs["t5_pretrain"])
    assert_interrupted_run_resumes_to(
        runs["t5"],
        tmp_path / "run",
        lambda run_dir: _train("t5_tiny_finetune.yaml", run_dir, overrides),
        monkeypatch,
        {1: signal.SIGINT},
    )
