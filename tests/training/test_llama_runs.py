"""A `model.family: llama` run end to end: trained by the causal-LM task, resumed
from by `train.init_from`, generated from by `kzoo generate`, exported with the
causal LM signatures and checked by `check-serving`."""

import pytest

from kzoo.cli import main
from kzoo.testing.tiers import full_only
from kzoo.testing.tiny_recipes import load_tiny_recipe

# llama_tiny at the tiny GPT sizes: 4 query heads of width 4 on 2 key/value heads.
TINY_LLAMA = ["train.steps=2", "train.steps_per_epoch=2", "train.warmup_steps=1"]


@pytest.fixture(scope="module")
def llama_run(tmp_path_factory):
    from kzoo.training.trainer import train

    run_dir = tmp_path_factory.mktemp("llama_run")
    train(load_tiny_recipe(*TINY_LLAMA, recipe="llama_tiny"), str(run_dir), verbose=0)
    return run_dir


def test_llama_recipe_trains_a_llama(llama_run):
    from kzoo.models import LlamaCausalLM
    from kzoo.training.run_directory import RunDirectory

    run = RunDirectory(llama_run)
    model = run.load_model()
    assert type(model) is LlamaCausalLM and model.preprocessor is not None
    assert run.config()["model"]["family"] == "llama"
    backbone = model.backbone
    assert (backbone.num_heads, backbone.num_key_value_heads, backbone.head_dim) == (4, 2, 4)
    assert tuple(backbone.empty_cache(1, 8)[0].shape) == (1, 2, 8, 2, 4)


@full_only(
    "tests/training/test_checkpoint_import.py (GPT-2 continued pretraining with train.init_from; "
    "the causal-LM task is the same for Llama)"
)
def test_continued_pretraining_keeps_the_pretrained_shapes(llama_run, tmp_path):
    from kzoo.training.run_directory import RunDirectory
    from kzoo.training.trainer import train

    config = load_tiny_recipe(
        *TINY_LLAMA, f"train.init_from={llama_run}", "model.num_key_value_heads=4",
        recipe="llama_tiny",
    )  # fmt: skip
    train(config, str(tmp_path / "tuned"), verbose=0)
    derived = RunDirectory(tmp_path / "tuned").config()["model"]
    assert derived["num_key_value_heads"] == 2 and derived["rope_theta"] == 10000.0


def test_llama_run_generates_exports_and_serves(llama_run, tmp_path, capsys):
    from kzoo.export import export_run
    from kzoo.export.check_serving import check_serving

    assert main(["generate", str(llama_run), "--prompt", "zo", "--max-new-tokens", "4"]) == 0
    assert capsys.readouterr().out.strip()
    version = export_run(str(llama_run), out_dir=str(tmp_path / "saved"), name="llama")
    result = check_serving(version)
    assert result["ok"], result["checks"]


def test_bad_llama_heads_are_a_recipe_error():
    from kzoo.training.config import ConfigError

    with pytest.raises(
        ConfigError, match="num_key_value_heads=3': 3 must divide model.num_heads 4"
    ):
        load_tiny_recipe("model.num_key_value_heads=3", recipe="llama_tiny")
    with pytest.raises(
        ConfigError,
        match=r"rope_scaling.*rope_type 'yarn' needs \['original_max_position_embeddings'\]",
    ):
        load_tiny_recipe("model.rope_scaling={rope_type: yarn, factor: 2.0}", recipe="llama_tiny")
