"""Where paths are relative to: a recipe file's to its folder, `--set`'s to the working
directory; a run's `config.yaml` stores them absolute, or relative to the run for data
inside it, so a run works from any directory and moves with the data it holds."""

import json
import os
import shutil
import signal

import pytest
import yaml

from kzoo.cli import main
from kzoo.data.builtin_corpus import BuiltinCorpus
from kzoo.testing import ROOT, TINY_OVERRIDES, interrupt_at
from kzoo.training.recipe import load_recipe, read_recipe, validate
from kzoo.training.run_directory import RunDirectory
from kzoo.training.sweep import runner

SETS = [arg for override in TINY_OVERRIDES for arg in ("--set", override)]


def _write(path, text=""):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _tiny_recipe(path, data):
    """The gpt_tiny recipe with `data` keys, written to `path`."""
    with open(os.path.join(ROOT, "recipes", "gpt_tiny.yaml"), encoding="utf-8") as f:
        recipe = yaml.safe_load(f)
    recipe["data"].update(data)
    _write(path, yaml.safe_dump(recipe))
    return path


def _corpus(path, documents, seed):
    return _write(path, "\n".join(BuiltinCorpus().documents(documents, seed=seed)) + "\n")


def test_recipe_paths_are_relative_to_its_folder_and_set_paths_to_the_cwd(tmp_path, monkeypatch):
    recipe = _tiny_recipe(
        tmp_path / "project" / "recipes" / "r.yaml",
        {"train": ["../corpus/*.txt", "/elsewhere/b.txt"]},
    )
    _write(tmp_path / "project" / "corpus" / "a.txt", "a\n")
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    config = load_recipe("../project/recipes/r.yaml", ["data.validation=held/out.txt"])
    assert config["data"]["train"] == [
        str(tmp_path / "project" / "corpus" / "*.txt"),
        "/elsewhere/b.txt",
    ]
    assert config["data"]["validation"] == str(tmp_path / "cwd" / "held" / "out.txt")
    assert load_recipe(str(recipe), ["data.train=builtin"])["data"]["train"] == "builtin"
    # Every path-valued key, the seq2seq files and train.init_from included.
    seq2seq = _write(
        tmp_path / "project" / "s.yaml",
        yaml.safe_dump(
            {
                "model": {"family": "t5", "task": "finetune"},
                "data": {
                    "train_source": "en.txt",
                    "train_target": "de.txt",
                    "validation_source": "sub/en.txt",
                    "validation_target": None,
                },
                "train": {"init_from": "../runs/t5_pretrain"},
            }
        ),
    )
    raw = read_recipe(str(seq2seq))
    assert raw["data"] == {
        "train_source": str(tmp_path / "project" / "en.txt"),
        "train_target": str(tmp_path / "project" / "de.txt"),
        "validation_source": str(tmp_path / "project" / "sub" / "en.txt"),
        "validation_target": None,
    }
    assert raw["train"]["init_from"] == str(tmp_path / "runs" / "t5_pretrain")


def test_sweep_trials_take_recipe_paths_from_the_recipe_folder(tmp_path, monkeypatch):
    _corpus(tmp_path / "project" / "corpus" / "train.txt", 40, seed=0)
    _tiny_recipe(tmp_path / "project" / "r.yaml", {"train": "corpus/train.txt"})
    monkeypatch.chdir(tmp_path)
    plan = runner.plan_sweep(
        "project/r.yaml", ["train.learning_rate=0.01,0.003"], TINY_OVERRIDES, out_dir="sweep"
    )
    assert {t.config["data"]["train"] for t in plan.trials} == {
        str(tmp_path / "project" / "corpus" / "train.txt")
    }


def test_config_yaml_stores_paths_absolute_or_inside_the_run_relative(tmp_path, monkeypatch):
    run_dir = tmp_path / "runs" / "x"
    monkeypatch.chdir(tmp_path)
    config = validate(
        {
            "data": {
                "train": ["runs/x/data/*.txt", "corpus/b.txt"],
                "validation": str(run_dir / "valid.txt"),
            }
        }
    )
    run_dir.mkdir(parents=True)
    RunDirectory("runs/x").write_config(config)
    with open(run_dir / RunDirectory.CONFIG, encoding="utf-8") as f:
        saved = yaml.safe_load(f)["data"]
    assert (saved["train"], saved["validation"]) == (
        ["data/*.txt", str(tmp_path / "corpus" / "b.txt")],
        "valid.txt",
    )
    # Read from anywhere, and after a move: inside paths follow the run.
    shutil.move(run_dir, tmp_path / "moved")
    monkeypatch.chdir(ROOT)
    data = RunDirectory(tmp_path / "moved").config()["data"]
    assert (data["train"], data["validation"]) == (
        [str(tmp_path / "moved" / "data" / "*.txt"), str(tmp_path / "corpus" / "b.txt")],
        str(tmp_path / "moved" / "valid.txt"),
    )


def test_a_run_written_before_paths_were_stored_absolute_still_reads(tmp_path, monkeypatch):
    """Older runs kept `data.train: train.txt` as typed, relative to the directory
    that started them: from there, such a path still resolves."""
    run_dir = tmp_path / "runs" / "old"
    _write(
        run_dir / RunDirectory.CONFIG,
        yaml.safe_dump({"data": {"train": "corpus/*.txt", "validation": "valid.txt"}}),
    )
    _write(tmp_path / "corpus" / "a.txt", "a\n")
    _write(run_dir / "valid.txt", "b\n")  # inside the run: the new rule wins
    monkeypatch.chdir(tmp_path)
    data = RunDirectory("runs/old").config()["data"]
    assert (data["train"], data["validation"]) == (
        str(tmp_path / "corpus" / "*.txt"),
        str(run_dir / "valid.txt"),
    )
    monkeypatch.chdir(ROOT)  # elsewhere: relative to the run, as new runs are
    assert RunDirectory(run_dir).config()["data"]["train"] == str(run_dir / "corpus" / "*.txt")


@pytest.mark.slow
def test_a_run_trains_resumes_and_evaluates_from_other_directories_and_moves(
    tmp_path, monkeypatch, capsys
):
    """Train from `work/` with a recipe in `project/recipes/` (data.train
    `../corpus/train.txt`) and `--set data.validation` inside the run directory;
    resume from `project/`; move the run, evaluate it from `project/corpus/`."""
    _tiny_recipe(tmp_path / "project" / "recipes" / "tiny.yaml", {"train": "../corpus/train.txt"})
    _corpus(tmp_path / "project" / "corpus" / "train.txt", 60, seed=0)
    _corpus(tmp_path / "work" / "runs" / "x" / "held_out" / "valid.txt", 10, seed=1)
    monkeypatch.chdir(tmp_path / "work")
    interrupt_at(monkeypatch, {3: signal.SIGTERM})
    assert (
        main(
            [
                "train",
                "../project/recipes/tiny.yaml",
                "--run-dir",
                "runs/x",
                *SETS,
                "--set",
                "data.validation=runs/x/held_out/*.txt",
            ]
        )
        == 128 + signal.SIGTERM
    )
    with open(tmp_path / "work" / "runs" / "x" / RunDirectory.CONFIG, encoding="utf-8") as f:
        saved = yaml.safe_load(f)["data"]
    assert (saved["train"], saved["validation"]) == (
        str(tmp_path / "project" / "corpus" / "train.txt"),
        "held_out/*.txt",
    )
    capsys.readouterr()

    monkeypatch.chdir(tmp_path / "project")
    assert main(["train", "--resume", "../work/runs/x"]) == 0, capsys.readouterr().err
    summary = RunDirectory(tmp_path / "work" / "runs" / "x").summary()
    assert (summary["resumed_from_step"], summary["steps"]) == (3, 6)

    shutil.move(tmp_path / "work" / "runs" / "x", tmp_path / "moved")
    monkeypatch.chdir(tmp_path / "project" / "corpus")
    capsys.readouterr()
    assert main(["evaluate", "../../moved", "--json"]) == 0, capsys.readouterr().err
    own = json.loads(capsys.readouterr().out)
    # `--data` paths: relative to the working directory.
    assert main(["evaluate", "../../moved", "--data", "train.txt", "--json"]) == 0
    given = json.loads(capsys.readouterr().out)
    assert own["loss"] > 0 and given["loss"] > 0 and own["loss"] != given["loss"]
