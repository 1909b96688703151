"""`kzoo.staged_files`: the one atomic writer (a failed write keeps the old file and
leaves no temporary one), used by every module that writes files."""

import ast
import json
import os
import pathlib

import pytest

from kzoo import staged_files

ROOT = pathlib.Path(__file__).resolve().parents[1]
# The one module allowed a rename of its own.
OWN_RENAMES = {"kzoo/staged_files.py"}


def _fail_after_writing(tmp):
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("{half")
    raise OSError(28, "No space left on device")


@pytest.mark.parametrize(
    "write",
    [
        lambda path: staged_files.atomic_write(path, _fail_after_writing),
        lambda path: staged_files.write_json_atomic(path, {"bad": object()}),
    ],
    ids=["atomic_write", "write_json_atomic"],
)
def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path, write):
    path = tmp_path / "summary.json"
    staged_files.write_json_atomic(path, {"steps": 1})
    with pytest.raises((OSError, TypeError)):
        write(path)
    assert json.loads(path.read_text()) == {"steps": 1}
    assert os.listdir(tmp_path) == ["summary.json"]


def test_writes_replace_the_file_and_create_its_directory(tmp_path):
    path = tmp_path / "new" / "model.keras"
    seen = []

    def write(tmp):
        seen.append(tmp)
        pathlib.Path(tmp).write_bytes(b"one")

    assert staged_files.atomic_write(path, write) == path
    # A hidden sibling with the same extension (Keras checks `.keras`).
    assert os.path.dirname(seen[0]) == str(path.parent) and seen[0].endswith(".keras")
    assert os.path.basename(seen[0]).startswith(".tmp-")
    staged_files.write_bytes_atomic(path, b"two")
    staged_files.write_text_atomic(tmp_path / "new" / "a.txt", "a\r\nb\n")
    assert path.read_bytes() == b"two"
    assert (tmp_path / "new" / "a.txt").read_bytes() == b"a\r\nb\n"
    assert sorted(os.listdir(path.parent)) == ["a.txt", "model.keras"]


def test_a_failed_directory_write_keeps_the_old_directory(tmp_path):
    target = tmp_path / "step-00000001"

    def fill(value):
        def write(tmp):
            pathlib.Path(tmp, "state.json").write_text(value)
            if value == "fails":
                raise OSError(28, "No space left on device")

        return write

    staged_files.atomic_directory(target, fill("old"))
    with pytest.raises(OSError):
        staged_files.atomic_directory(target, fill("fails"), replace=True)
    assert (target / "state.json").read_text() == "old"
    assert os.listdir(tmp_path) == ["step-00000001"]
    staged_files.atomic_directory(target, fill("new"), replace=True)
    assert (target / "state.json").read_text() == "new"


def test_a_directory_is_replaced_only_when_allowed_and_the_old_one_comes_back(
    tmp_path, monkeypatch
):
    target = tmp_path / "1"

    def fill(tmp):
        pathlib.Path(tmp, "new.txt").write_text("new")

    target.mkdir()
    (target / "old.txt").write_text("old")
    with pytest.raises(FileExistsError, match=f"{target} already exists and is not empty"):
        staged_files.atomic_directory(target, fill)
    rename = os.rename

    def rename_fails_for_the_new_directory(src, dst):
        if os.path.basename(src).startswith(".tmp-1-"):
            raise OSError(16, "Device or resource busy")
        rename(src, dst)

    monkeypatch.setattr(os, "rename", rename_fails_for_the_new_directory)
    with pytest.raises(OSError, match="busy"):
        staged_files.atomic_directory(target, fill, replace=True)
    assert os.listdir(target) == ["old.txt"] and os.listdir(tmp_path) == ["1"]
    monkeypatch.setattr(os, "rename", rename)
    staged_files.atomic_directory(target, fill, replace=True)
    assert os.listdir(target) == ["new.txt"] and os.listdir(tmp_path) == ["1"]


def test_a_directory_mode_is_set_whatever_the_umask(tmp_path):
    def fill(tmp):
        os.mkdir(os.path.join(tmp, "variables"))
        pathlib.Path(tmp, "variables", "data").write_bytes(b"1")

    old_mask = os.umask(0o077)
    try:
        staged_files.atomic_directory(tmp_path / "1", fill, mode=0o755)
        staged_files.atomic_directory(tmp_path / "2", fill)
    finally:
        os.umask(old_mask)
    modes = {
        path.relative_to(tmp_path).as_posix(): oct(path.stat().st_mode & 0o777)
        for path in sorted(tmp_path.rglob("*"))
    }
    assert modes == {
        "1": "0o755",
        "1/variables": "0o755",
        "1/variables/data": "0o644",
        "2": "0o700",
        "2/variables": "0o700",
        "2/variables/data": "0o600",
    }


def renames_outside_the_helper(package_dir):
    """`["path:line"]` of the `os.replace`/`os.rename` calls under `package_dir`
    outside `OWN_RENAMES`."""
    found = []
    for path in sorted(pathlib.Path(package_dir).rglob("*.py")):
        name = path.relative_to(pathlib.Path(package_dir).parent).as_posix()
        if name in OWN_RENAMES:
            continue
        for node in ast.walk(ast.parse(path.read_text(), name)):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("replace", "rename")
                and isinstance(node.func.value, ast.Name)
                and node.func.value.id == "os"
            ):
                found.append(f"{name}:{node.lineno}")
    return found


def test_every_writer_renames_through_the_helper():
    assert renames_outside_the_helper(ROOT / "kzoo") == []
