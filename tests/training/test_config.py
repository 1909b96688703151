import pytest

from kzoo.training.config import ConfigError, apply_overrides, parse_override, read_yaml
from kzoo.training.recipe import load_recipe, validate


@pytest.mark.parametrize(
    "raw,message",
    [
        ({"train": {"stepz": 3}}, r"train\.stepz: unknown key; valid keys: .*steps"),
        ({"train": {"steps": "abc"}}, r"train\.steps: expected int, got str 'abc'"),
        ({"train": {"steps": 1.5}}, r"train\.steps: expected int, got float 1\.5"),
        ({"train": {"learning_rate": -1.0}}, r"train\.learning_rate: must be > 0, got -1\.0"),
        ({"train": {"precision": "fp8"}}, r"train\.precision: must be one of .*'fp8'"),
        ({"model": {"family": "bart"}}, r"model\.family: must be one of .*'bart'"),
        ({"model": {"family": "lstm", "num_heads": 2}}, r"model\.num_heads: unknown key"),
        (
            {"data": {"sequence_length": 999}},
            r"data\.sequence_length: 999 exceeds model\.max_sequence_length 256",
        ),
        ({"data": {"batch_size": None}}, r"data\.batch_size: must not be null"),
        ({"tokenizer": {"vocab_size": None}}, r"tokenizer\.vocab_size: required"),
        ({"train": {"use_bias": True}}, r"train\.use_bias: unknown key"),
        ({"data": "x"}, r"data: expected a mapping, got str"),
        (
            {"model": {"max_sequence_length": 32}, "data": {"sequence_length": 16}},
            r"train\.sample_max_new_tokens: 48 must be below model\.max_sequence_length 32",
        ),
        (
            {"export": {"max_prompt_tokens": 200, "max_new_tokens": 64}},
            r"export\.max_prompt_tokens \+ export\.max_new_tokens: 200 \+ 64 exceeds",
        ),
    ],
)
def test_bad_values_name_the_key(raw, message):
    with pytest.raises(ConfigError, match=message):
        validate(raw)


def test_defaults_are_filled_and_ints_accepted_for_floats():
    config = validate({"train": {"learning_rate": 1}})
    assert config["train"]["learning_rate"] == 1
    assert config["model"]["family"] == "gpt"
    assert config["export"]["name"] == "recipe"


def test_overrides_parse_yaml_scalars():
    assert parse_override("train.steps=100") == (["train", "steps"], 100)
    assert parse_override("train.jit_compile=true") == (["train", "jit_compile"], True)
    assert parse_override("data.train=a/*.txt") == (["data", "train"], "a/*.txt")
    assert parse_override("data.train=[a.txt, b.txt]") == (["data", "train"], ["a.txt", "b.txt"])
    raw = apply_overrides({"train": {"steps": 1}}, ["train.steps=5", "model.hidden_dim=8"])
    assert raw == {"train": {"steps": 5}, "model": {"hidden_dim": 8}}
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        parse_override("train.steps")
    with pytest.raises(ConfigError, match="unknown section 'trian'"):
        apply_overrides({}, ["trian.steps=3"])
    with pytest.raises(ConfigError, match="SECTION.KEY"):
        parse_override("steps=3")
    # A key of a mapping-valued key (train.lora.rank), and 1e-4 read as a float.
    raw = apply_overrides({"train": {"lora": None}}, ["train.lora.rank=4", "train.lora.alpha=8"])
    assert raw == {"train": {"lora": {"rank": 4, "alpha": 8}}}
    assert parse_override("train.learning_rate=3e-4") == (["train", "learning_rate"], 3e-4)
    with pytest.raises(ConfigError, match="SECTION.KEY"):
        parse_override("train.lora.rank.x=3")


def test_exponent_floats_in_a_recipe_are_floats(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("train:\n  learning_rate: 1e-4\n  min_learning_rate: 5E-6\n")
    config = validate(read_yaml(recipe))
    assert config["train"]["learning_rate"] == 1e-4
    assert config["train"]["min_learning_rate"] == 5e-6


def test_yaml_errors_name_file_and_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  steps: 3\n  lr: [1, 2\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml:\d+: invalid YAML"):
        read_yaml(bad)
    with pytest.raises(ConfigError, match="config file not found"):
        read_yaml(tmp_path / "missing.yaml")
    unknown = tmp_path / "unknown.yaml"
    unknown.write_text("optimizer: {}\n")
    with pytest.raises(ConfigError, match="unknown section 'optimizer'"):
        read_yaml(unknown)


def test_yaml_is_read_safely(tmp_path):
    evil = tmp_path / "evil.yaml"
    evil.write_text("train: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="invalid YAML"):
        read_yaml(evil)


def test_every_shipped_recipe_validates():
    import glob
    import os

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    recipes = sorted(glob.glob(os.path.join(root, "recipes", "*.yaml")))
    assert recipes
    for path in recipes:
        config = load_recipe(path)
        assert config["export"]["name"] == os.path.splitext(os.path.basename(path))[0]


def test_bert_recipes_validate_and_reject_mismatches():
    import os

    from kzoo.testing import ROOT

    for name in ("pretrain", "classify", "tagging", "qa"):
        config = load_recipe(os.path.join(ROOT, "recipes", f"bert_tiny_{name}.yaml"))
        assert config["model"]["family"] == "bert"
    base = {"model": {"family": "bert", "task": "classify"}, "tokenizer": {"kind": "wordpiece"}}
    with pytest.raises(ConfigError, match="tokenizer.kind: 'bpe' does not suit"):
        validate({**base, "tokenizer": {"kind": "bpe"}})
    with pytest.raises(ConfigError, match="train.init_from: only fine-tuning"):
        validate(
            {
                **base,
                "model": {"family": "bert", "task": "pretrain"},
                "train": {"init_from": "runs/x"},
            }
        )
    with pytest.raises(ConfigError, match="data.max_query_tokens"):
        validate(
            {
                **base,
                "model": {"family": "bert", "task": "qa"},
                "data": {"sequence_length": 32, "max_query_tokens": 24},
            }
        )
    with pytest.raises(ConfigError, match="data.label_column"):  # BERT-only data key
        validate({"data": {"label_column": "y"}})
    with pytest.raises(ConfigError, match="model.size"):
        validate({**base, "model": {"family": "bert", "size": "huge"}})


@pytest.mark.parametrize(
    "raw,message",
    [
        (
            {"model": {"family": "seq2seq"}, "tokenizer": {"kind": "wordpiece"}},
            "tokenizer.kind: 'wordpiece' does not suit model.family 'seq2seq'",
        ),
        (
            {"model": {"family": "seq2seq"}, "train": {"init_from": "runs/x"}},
            "train.init_from: only fine-tuning",
        ),
        (
            {"model": {"family": "t5", "task": "pretrain"}, "train": {"init_from": "runs/x"}},
            "train.init_from: only fine-tuning",
        ),
        (
            {
                "model": {"family": "seq2seq", "max_sequence_length": 32},
                "data": {"max_source_length": 40},
            },
            "data.max_source_length: 40 exceeds model.max_sequence_length 32",
        ),
        (
            {
                "model": {"family": "seq2seq", "max_sequence_length": 64},
                "export": {"max_new_tokens": 64, "max_prompt_tokens": 32},
            },
            "export.max_new_tokens: 65 exceeds",
        ),
        (
            {"model": {"family": "seq2seq"}, "data": {"bucket_boundaries": [16, 8]}},
            "data.bucket_boundaries: must be increasing",
        ),
        (
            {"model": {"family": "t5", "task": "finetune"}, "data": {"mixture": {"sing": 1}}},
            "data.mixture: unknown built-in task 'sing'",
        ),
        (
            {"model": {"family": "t5", "task": "finetune"}, "data": {"mixture": {"translate": -1}}},
            "data.mixture.translate: the rate must be a number >= 0",
        ),
        (
            {"model": {"family": "t5", "task": "finetune"}, "data": {"mixture": {"plural": 0}}},
            "data.mixture: at least one rate must be > 0",
        ),
        ({"model": {"family": "seq2seq", "architecture": "gru"}}, "model.architecture"),
        ({"model": {"family": "gpt"}, "data": {"source_column": "en"}}, "data.source_column"),
    ],
)
def test_encoder_decoder_recipes_reject_mismatches(raw, message):
    with pytest.raises(ConfigError, match=message):
        validate(raw)


def test_t5_pretraining_target_length_must_fit_the_spans():
    from kzoo.training.tasks.registry import task_for

    config = validate(
        {
            "model": {"family": "t5", "task": "pretrain"},
            "data": {"max_source_length": 64, "max_target_length": 12},
        }
    )
    with pytest.raises(ValueError, match="data.max_target_length: 12 is too short .* at least 15"):
        task_for(config).lengths()


def test_seq2seq_loss_is_a_mean_over_real_target_tokens():
    import numpy as np

    from kzoo.training.tasks.registry import task_for

    loss = task_for(
        validate({"model": {"family": "seq2seq", "label_smoothing": 0.0}})
    ).compile_args()["loss"]
    labels = np.array([[0, 1]])
    logits = np.log(np.array([[[0.5, 0.5], [0.9, 0.1]]], "float32"))
    weights = np.array([[1.0, 0.0]])  # the second position is padding
    assert float(loss(labels, logits, weights)) == pytest.approx(np.log(2.0), rel=1e-5)


def test_a_named_size_is_one_of_the_familys_size_table():
    from kzoo.models import SEQ2SEQ_SIZES, T5_SIZES
    from kzoo.models.bert import BERT_SIZES
    from kzoo.training.tasks.bert_schema import BERT
    from kzoo.training.tasks.seq2seq_schema import SEQ2SEQ, T5

    for schema, sizes in ((BERT, BERT_SIZES), (SEQ2SEQ, SEQ2SEQ_SIZES), (T5, T5_SIZES)):
        assert schema.model["size"].choices == tuple(sizes)
