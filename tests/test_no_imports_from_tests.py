"""Shared test code lives in kzoo/testing: no test, benchmark or kzoo module imports
a module of `tests/` or a `conftest.py` (fixtures reach tests through pytest)."""

import ast
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SCANNED = ["tests", "benchmarks", "kzoo"]


def imports_from_tests(source, filename):
    """`"FILE:LINE imports NAME"` for each import of `tests`, `tests.*` or a
    `conftest` module, and each relative import (which, under `tests/`, is one)."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            names = ["." * node.level + (node.module or "")]
        else:
            continue
        for name in names:
            parts = name.lstrip(".").split(".")
            if name.startswith(".") or parts[0] == "tests" or "conftest" in parts:
                found.append(f"{filename}:{node.lineno} imports {name}")
    return found


def test_no_module_imports_from_tests_or_conftest():
    offenders = []
    for folder in SCANNED:
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = str(path.relative_to(ROOT))
            offenders += imports_from_tests(path.read_text(encoding="utf-8"), relative)
    assert not offenders, "import these from kzoo.testing instead: " + "; ".join(offenders)


@pytest.mark.parametrize(
    "line",
    [
        "from tests.conftest import ROOT",
        "import tests.export.tiny_runs",
        "from conftest import ROOT",
        "from .conftest import ROOT",
        "from . import tiny_runs",
        "def f():\n    from tests.tokenizers.test_sentencepiece import make_corpus",
    ],
)
def test_the_scan_catches_an_import_from_tests(line):
    assert len(imports_from_tests(line, "probe.py")) == 1


def test_the_scan_allows_kzoo_testing():
    assert imports_from_tests("from kzoo.testing import ROOT, tiny_runs", "probe.py") == []


def test_only_tests_and_benchmarks_import_kzoo_testing():
    """kzoo/testing sits on top of the house: no other kzoo module imports it."""
    offenders = []
    for path in sorted((ROOT / "kzoo").rglob("*.py")):
        if (ROOT / "kzoo" / "testing") in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            if any(name == "kzoo.testing" or name.startswith("kzoo.testing.") for name in names):
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, offenders
