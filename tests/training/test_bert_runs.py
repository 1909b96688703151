"""BERT runs end to end: pretrain, fine-tune from it, evaluate, export, check-serving.

One tiny pretraining run feeds the fine-tuning runs (`train.init_from`); the tests
share them (xdist group), so each is trained once.
"""

import json
import os

import pytest

from kzoo.data import builtin_tasks
from kzoo.testing import ROOT, tensorboard_tags
from kzoo.testing.init_from_checks import assert_fine_tuning_starts_from
from kzoo.testing.tiers import full_only
from kzoo.testing.tiny_recipes import TINY_BERT_OVERRIDES

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("bert_runs")]

TINY_BERT = [*TINY_BERT_OVERRIDES, "train.warmup_steps=1"]
PRETRAIN = [
    "data.builtin_train_documents=40",
    "data.builtin_validation_documents=10",
    "train.steps=4",
    "train.steps_per_epoch=2",
]
FINE_TUNE = [
    "data.builtin_train_examples=48",
    "data.builtin_validation_examples=16",
    "train.epochs=1",
]


def _train(recipe, run_dir, overrides):
    from kzoo.training.recipe import load_recipe
    from kzoo.training.trainer import train

    config = load_recipe(os.path.join(ROOT, "recipes", recipe), TINY_BERT + overrides)
    return train(config, str(run_dir), verbose=0)


@pytest.fixture(scope="session")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("bert")
    pretrain = root / "pretrain"
    _train("bert_tiny_pretrain.yaml", pretrain, PRETRAIN)
    runs = {"pretrain": pretrain}
    # The size is the pretrained encoder's (the run's config.yaml says so), not mini.
    init = [f"train.init_from={pretrain}", "model.size=mini"]
    for task, recipe in (
        ("classify", "bert_tiny_classify.yaml"),
        ("tag", "bert_tiny_tagging.yaml"),
        ("qa", "bert_tiny_qa.yaml"),
    ):
        runs[task] = root / task
        extra = (
            ["data.max_query_tokens=8", "data.doc_stride=8", "data.max_answer_tokens=4"]
            if task == "qa"
            else []
        )
        _train(recipe, runs[task], init + FINE_TUNE + extra)
    return runs


@pytest.mark.parametrize(
    "task,metrics",
    [
        ("pretrain", {"epoch_mlm_accuracy", "epoch_nsp_accuracy", "epoch_mlm_loss"}),
        ("classify", {"epoch_accuracy", "epoch_macro_f1", "epoch_learning_rate"}),
        ("tag", {"epoch_entity_f1", "epoch_accuracy"}),
        ("qa", {"epoch_exact_match", "epoch_f1"}),
    ],
)
def test_task_metrics_reach_tensorboard(runs, task, metrics):
    # Keras writes val_* logs to the validation/ writer without the prefix.
    assert metrics <= tensorboard_tags(runs[task])


@pytest.mark.parametrize(
    "task,keys",
    [
        ("pretrain", {"mlm_accuracy", "nsp_accuracy", "mlm_loss", "nsp_loss"}),
        ("classify", {"accuracy", "macro_f1"}),
        ("tag", {"entity_f1", "entity_precision", "entity_recall", "accuracy"}),
        ("qa", {"exact_match", "f1"}),
    ],
)
def test_evaluate_json_reports_the_task_metrics(runs, task, keys):
    from kzoo.training.evaluate import evaluate_run

    result = evaluate_run(str(runs[task]))
    assert keys <= set(result)
    assert all(0.0 <= result[k] <= 100.0 for k in keys if "loss" not in k)


def test_fine_tuning_starts_from_the_pretrained_encoder(runs):
    config = assert_fine_tuning_starts_from(runs["classify"], runs["pretrain"])
    assert config["model"]["size"] is None and config["model"]["hidden_dim"] == 16
    assert config["model"]["num_layers"] == 1
    with open(runs["classify"] / "vocab.txt") as a, open(runs["pretrain"] / "vocab.txt") as b:
        assert a.read() == b.read()


def test_unknown_label_at_evaluation_names_file_and_line(runs, tmp_path):
    from kzoo.training.evaluate import evaluate_run

    path = tmp_path / "eval.tsv"
    path.write_text("text\tlabel\nta molan.\tgood\nki sato.\tmaybe\n")
    with pytest.raises(ValueError, match=rf"{path}:3: unknown label 'maybe'"):
        evaluate_run(str(runs["classify"]), data=[str(path)])


def test_classification_from_user_files(tmp_path):
    paths = builtin_tasks.write_builtin_task(
        tmp_path / "data", "pair_classification", num_train=40, num_validation=16, seed=3
    )
    _train(
        "bert_tiny_classify.yaml",
        tmp_path / "run",
        [
            f"data.train={paths['train']}",
            f"data.validation={paths['validation']}",
            "data.text_pair_column=text_pair",
            "train.epochs=1",
            "tokenizer.vocab_size=200",
        ],
    )
    model_config = json.load(open(tmp_path / "run" / "summary.json"))
    assert model_config["steps"] == 40 // 8


# Each task's export of a trained run; CI checks two (the fill_mask and tag
# signatures pass check-serving in the multi-task export of test_signatures.py).
_IN_SIGNATURES_TEST = full_only("tests/export/test_signatures.py (every BERT signature)")


@pytest.mark.parametrize(
    "task,signature",
    [
        pytest.param("pretrain", "fill_mask", marks=_IN_SIGNATURES_TEST),
        ("classify", "classify"),
        pytest.param("tag", "tag", marks=_IN_SIGNATURES_TEST),
        ("qa", "answer"),
    ],
)
def test_export_passes_check_serving(runs, tmp_path, task, signature):
    from kzoo.export import export_run
    from kzoo.export.check_serving import check_serving

    version = export_run(str(runs[task]), out_dir=str(tmp_path), name=f"bert_{task}")
    result = check_serving(version)
    assert result["ok"], result["checks"]
    info = json.load(open(os.path.join(version, "assets.extra", "kzoo_export.json")))
    assert {signature, "embed", "serving_default"} <= set(info["signatures"])
