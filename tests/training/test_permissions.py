"""Files kzoo writes get the umask's mode, as `open` and `os.makedirs` give it, even
those staged in a temporary file or directory and renamed into place."""

import os
import stat

import keras
import pytest

from kzoo import staged_files
from kzoo.data.builtin_corpus import BuiltinCorpus
from kzoo.tokenizers.model_file import write_model_file
from kzoo.tokenizers.wordpiece_trainer import write_vocabulary
from kzoo.training import checkpoints
from kzoo.training.recipe import validate
from kzoo.training.run_directory import RunDirectory

# umask -> (file mode, directory mode)
MODES = {0o022: (0o644, 0o755), 0o077: (0o600, 0o700)}


@pytest.fixture(params=sorted(MODES), ids=lambda mask: f"umask{mask:03o}")
def umask(request):
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def modes_under(root):
    """`{path relative to root: permission bits}` of `root` and everything in it."""
    found = {".": stat.S_IMODE(os.stat(root).st_mode)}
    for directory, names, files in os.walk(root):
        for name in names + files:
            path = os.path.join(directory, name)
            found[os.path.relpath(path, root)] = stat.S_IMODE(os.stat(path).st_mode)
    return found


def assert_umask_modes(root, umask):
    file_mode, directory_mode = MODES[umask]
    expected = {
        path: directory_mode if os.path.isdir(os.path.join(root, path)) else file_mode
        for path in modes_under(root)
    }
    assert {p: oct(m) for p, m in modes_under(root).items()} == {
        p: oct(m) for p, m in expected.items()
    }


def test_run_files_and_checkpoints_follow_the_umask(tmp_path, umask):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    run = RunDirectory(run_dir)
    run.write_config(validate({}))
    run.write_summary({"steps": 1})
    write_model_file(str(run_dir), b"proto")
    write_vocabulary(str(run_dir / "wordpiece"), ["[PAD]", "a"], lowercase=True)
    (run_dir / "projector").mkdir()
    staged_files.write_text_atomic(str(run_dir / "projector" / "metadata.tsv"), "a\n")
    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    model.optimizer.build(model.trainable_variables)
    checkpoints.write(run.checkpoints_dir, model, {"step": 1})
    assert os.path.isdir(run_dir / RunDirectory.CHECKPOINTS / "step-00000001")
    assert_umask_modes(str(run_dir), umask)


def test_the_builtin_corpus_files_follow_the_umask(tmp_path, umask):
    BuiltinCorpus().write(str(tmp_path / "corpus"), num_train=2, num_validation=1)
    assert_umask_modes(str(tmp_path / "corpus"), umask)
