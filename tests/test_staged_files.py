"""`kzoo.staged_files`: the one atomic writer (a failed write keeps the old file and
leaves no temporary one), used by every module that writes files."""

import ast
import json
import os
import pathlib

import pytest

from kzoo import staged_files

ROOT = pathlib.Path(__file__).resolve().parents[1]
# The one module allowed a rename of its own: an export swaps a whole version
# directory, keeping the old one until the new one is in place.
OWN_RENAMES = {"kzoo/staged_files.py", "kzoo/export/saved_model.py"}


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
