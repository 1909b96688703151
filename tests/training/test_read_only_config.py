"""A validated config is read-only: tasks return what they derive (named sizes,
`train.init_from`'s shapes). That the run's config.yaml holds it is checked by the
fine-tuning runs (tests/training/test_bert_runs.py, test_seq2seq_runs.py)."""

import types

import pytest
import yaml

from kzoo.training.read_only_config import updated
from kzoo.training.recipe import validate
from kzoo.training.run_directory import RunDirectory
from kzoo.training.tasks.registry import task_for


def test_a_validated_config_refuses_writes():
    config = validate({"data": {"train": ["a.txt", "b.txt"]}})
    writes = [
        lambda: config["train"].__setitem__("steps", 5),
        lambda: config["data"].update(batch_size=4),
        lambda: config["data"]["train"].append("c.txt"),
        lambda: config["train"]["sample_prompts"].__setitem__(0, "x"),
        lambda: config.__setitem__("data", {}),
        lambda: config["model"].pop("family"),
    ]
    for write in writes:
        with pytest.raises(TypeError, match="read-only.*updated"):
            write()
    assert config["train"]["steps"] is None and config["data"]["batch_size"] == 32
    assert config["data"]["train"] == ["a.txt", "b.txt"]


def test_updated_returns_a_new_read_only_config_and_keeps_the_old():
    config = validate({})
    new = updated(config, data={"batch_size": 4})
    assert new["data"]["batch_size"] == 4 and config["data"]["batch_size"] == 32
    assert new["train"] == config["train"]
    with pytest.raises(TypeError):
        new["data"]["batch_size"] = 8


def test_a_validated_config_round_trips_through_config_yaml(tmp_path):
    config = validate(
        {
            "model": {"family": "seq2seq"},
            "data": {"bucket_boundaries": [8, 16], "train": [str(tmp_path / "x.tsv")]},
            "train": {"sample_prompts": ["a", "b"]},
        }
    )
    run = RunDirectory(str(tmp_path))
    run.write_config(config)
    assert validate(run.config()) == config


@pytest.mark.parametrize(
    "model, expected",
    [
        ({"family": "bert", "size": "mini"}, {"hidden_dim": 256, "num_layers": 4}),
        ({"family": "t5", "size": "small"}, {"hidden_dim": 512, "num_layers": 6}),
        ({"family": "seq2seq", "size": "big"}, {"hidden_dim": 1024, "dropout": 0.3}),
        ({"family": "seq2seq", "size": "big", "architecture": "lstm"}, {"hidden_dim": 128}),
    ],
)
def test_a_named_size_is_returned_not_written(model, expected):
    kind = "wordpiece" if model["family"] == "bert" else "bpe"
    config = validate({"model": model, "tokenizer": {"kind": kind}})
    derived = task_for(config).derived_config(model=None)
    assert {key: derived["model"][key] for key in expected} == expected
    assert derived["model"]["size"] == model["size"]
    assert config["model"]["hidden_dim"] == (64 if model["family"] == "bert" else 128)


@pytest.mark.parametrize(
    "family, task, keys",
    [
        ("bert", "classify", {"num_layers": 3, "num_segments": 2, "max_sequence_length": 96}),
        ("t5", "finetune", {"num_layers": 3, "key_value_dim": 8, "activation": "relu"}),
    ],
)
def test_init_from_shapes_come_from_the_built_model(tmp_path, monkeypatch, family, task, keys):
    from kzoo.training.tasks.bert_pretrain import ENCODER_KEYS
    from kzoo.training.tasks.seq2seq import T5_KEYS

    monkeypatch.chdir(tmp_path)
    kind = "wordpiece" if family == "bert" else "bpe"
    config = validate(
        {
            "model": {"family": family, "task": task, "size": "tiny"},
            "tokenizer": {"kind": kind},
            "train": {"init_from": "pretrained"},
        }
    )
    tokenizer = {"kind": kind, "lowercase": False, "vocab_size": 321}
    (tmp_path / "pretrained").mkdir()
    (tmp_path / "pretrained" / "config.yaml").write_text(yaml.safe_dump({"tokenizer": tokenizer}))
    shape = {key: 7 for key in (ENCODER_KEYS if family == "bert" else T5_KEYS)}
    model = types.SimpleNamespace(backbone=types.SimpleNamespace(**{**shape, **keys}))
    derived = task_for(config).derived_config(model)
    assert {key: derived["model"][key] for key in keys} == keys
    assert {key: derived["tokenizer"][key] for key in tokenizer} == tokenizer
    assert derived["model"]["size"] is None
    assert derived["train"]["init_from"] == str(tmp_path / "pretrained")
    assert config["model"]["size"] == "tiny" and config["train"]["init_from"] == "pretrained"


@pytest.mark.parametrize("init_from", [None, "pretrained"])
def test_the_same_recipe_resumes_a_run_whose_keys_the_task_derived(tmp_path, init_from):
    """`kzoo train RECIPE --run-dir RUN` again on an unfinished sized (or
    init_from) run: config.yaml holds the derived keys, which the recipe's
    defaults (hidden_dim 64, size "mini") do not repeat; other keys still count."""
    from kzoo.training.config import ConfigError
    from kzoo.training.trainer import resumable_config

    train = {"init_from": str(tmp_path / init_from)} if init_from else {}
    config = validate(
        {
            "model": {"family": "bert", "task": "classify", "size": "mini"},
            "tokenizer": {"kind": "wordpiece"},
            "train": train,
        }
    )
    if init_from:
        shape = {"num_layers": 3, "hidden_dim": 24, "num_heads": 3, "intermediate_dim": 48}
        derived = updated(config, model={**shape, "size": None})
    else:
        derived = task_for(config).derived_config(model=None)
    assert derived["model"]["hidden_dim"] != config["model"]["hidden_dim"]
    run = RunDirectory(str(tmp_path / "run"))
    run.write_config(derived)
    assert resumable_config(config, run.path)["model"] == derived["model"]
    changed = updated(config, train={"learning_rate": 0.5})
    with pytest.raises(ConfigError, match=r"^train\.learning_rate: 0\.5 differs from "):
        resumable_config(changed, run.path)
