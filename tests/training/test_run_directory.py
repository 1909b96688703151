"""`RunDirectory`: the one owner of a run directory's file names; no other module
joins them."""

import ast
import os
import pathlib

import pytest

from kzoo.training.run_directory import RunDirectory

ROOT = pathlib.Path(__file__).resolve().parents[2]
OWNER = "kzoo/training/run_directory.py"
# A tokenizer's files are its package's format, read and written in the directory
# it is given; the run directory passes its own.
TOKENIZER_FILES = {"tokenizer.model", "vocab.txt", "wordpiece.json"}
TOKENIZER_PACKAGE = "kzoo/tokenizers/"
RUN_FILES = {"config.yaml", ".lock", "model.keras", "summary.json", "checkpoints", "tensorboard"}
# The constants that name them (`RunDirectory.CONFIG`, before it `run_files.CONFIG`).
RUN_FILE_CONSTANTS = {
    "CONFIG",
    "LOCK",
    "LOCK_FILE",
    "MODEL",
    "SUMMARY",
    "CHECKPOINTS",
    "TENSORBOARD",
}
TOKENIZER_FILE_CONSTANTS = {"TOKENIZER_FILENAME", "VOCAB_FILENAME", "SETTINGS_FILENAME"}


def _is_path_join(call):
    func = call.func
    return (
        isinstance(func, ast.Attribute)
        and func.attr == "join"
        and isinstance(func.value, ast.Attribute)
        and func.value.attr == "path"
    )


def _names_a_run_file(node, names, constants):
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value.split("/")[0] in names
    if isinstance(node, ast.JoinedStr):  # f"{run_dir}/config.yaml"
        return any(
            isinstance(part, ast.Constant) and part.value.lstrip("/").split("/")[0] in names
            for part in node.values[1:]
        )
    name = getattr(node, "attr", None) or getattr(node, "id", None)
    return name in constants


def run_file_joins(package_dir):
    """`["path:line"]` where a module other than the owner joins a run-file name
    onto a directory (`os.path.join`, an f-string path, `pathlib`'s `/`)."""
    package_dir = pathlib.Path(package_dir)
    found = []
    for path in sorted(package_dir.rglob("*.py")):
        module = path.relative_to(package_dir.parent).as_posix()
        if module == OWNER:
            continue
        names, constants = RUN_FILES, RUN_FILE_CONSTANTS
        if not module.startswith(TOKENIZER_PACKAGE):
            names, constants = names | TOKENIZER_FILES, constants | TOKENIZER_FILE_CONSTANTS
        for node in ast.walk(ast.parse(path.read_text(), module)):
            if isinstance(node, ast.Call) and _is_path_join(node):
                parts = node.args[1:]
            elif isinstance(node, ast.BinOp) and isinstance(node.op, ast.Div):
                parts = [node.right]
            elif isinstance(node, ast.JoinedStr):
                parts = [node]
            else:
                continue
            if any(_names_a_run_file(part, names, constants) for part in parts):
                found.append(f"{module}:{node.lineno}")
    return found


def test_no_module_but_the_owner_joins_run_file_names():
    assert run_file_joins(ROOT / "kzoo") == []


def test_the_owner_knows_every_file_of_a_trained_run():
    run = RunDirectory("runs/x")
    paths = [run.config_path, run.lock_path, run.model_path, run.summary_path]
    paths += [run.checkpoints_dir, run.tensorboard_dir()]
    assert {os.path.basename(p) for p in paths} == RUN_FILES
    assert run.tensorboard_dir("projector") == os.path.join("runs/x", "tensorboard", "projector")
    with pytest.raises(ValueError, match=r"tensorboard_dir: 'plots' is not one of \['train'"):
        run.tensorboard_dir("plots")


def test_a_directory_without_a_run_says_so(tmp_path):
    run = RunDirectory(tmp_path)
    assert not run.has_config() and not run.is_finished() and run.tokenizer_kind() is None
    with pytest.raises(FileNotFoundError, match="not a kzoo run directory \\(no config.yaml\\)"):
        run.config()
    with pytest.raises(FileNotFoundError, match=r"no trained model \(model.keras\); train one"):
        run.load_model()
    with pytest.raises(FileNotFoundError, match="holds no trained tokenizer"):
        RunDirectory(tmp_path / "new").copy_tokenizer_from(run)


@pytest.mark.parametrize(
    "files, kind",
    [
        ({"tokenizer.model": b"proto"}, "sentencepiece"),
        ({"vocab.txt": b"[PAD]\n", "wordpiece.json": b"{}"}, "wordpiece"),
        ({"vocab.txt": b"[PAD]\n"}, "wordpiece"),
    ],
)
def test_init_from_copies_the_tokenizer_files(tmp_path, files, kind):
    source = tmp_path / "pretrained"
    source.mkdir()
    for name, data in files.items():
        (source / name).write_bytes(data)
    (source / "model.keras").write_bytes(b"not copied")
    run = RunDirectory(tmp_path / "finetune")
    run.copy_tokenizer_from(str(source))
    assert RunDirectory(source).tokenizer_kind() == run.tokenizer_kind() == kind
    assert sorted(os.listdir(run.path)) == sorted(files)
    assert all((tmp_path / "finetune" / n).read_bytes() == d for n, d in files.items())
