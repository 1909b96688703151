"""Nothing kzoo reads can run code: Keras `safe_mode`, no pickle, no unsafe YAML
(python-tagged recipes: tests/training/test_config.py)."""

import ast
import os

import keras
import pytest

from tests.conftest import ROOT

# Calls and keywords that would deserialize or run code from a file.
FORBIDDEN_MODULES = {"pickle", "cloudpickle", "dill", "marshal", "shelve", "joblib"}
FORBIDDEN_CALLS = {"eval", "exec", "load", "unsafe_load", "full_load", "Lambda"}
FORBIDDEN_KEYWORDS = {("safe_mode", False), ("allow_pickle", True)}


def _python_files():
    for directory, _, names in os.walk(os.path.join(ROOT, "kzoo")):
        for name in names:
            if name.endswith(".py"):
                yield os.path.join(directory, name)


def _problems(path):
    with open(path, encoding="utf-8") as f:
        tree = ast.parse(f.read(), path)
    for node in ast.walk(tree):
        where = f"{os.path.relpath(path, ROOT)}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
            if FORBIDDEN_MODULES & {n.split(".")[0] for n in names}:
                yield f"{where}: imports {names}"
        elif isinstance(node, ast.Call):
            function = node.func
            name = function.attr if isinstance(function, ast.Attribute) else getattr(
                function, "id", "")
            owner = getattr(function.value, "id", "") if isinstance(
                function, ast.Attribute) else ""
            # yaml.load / yaml.full_load / yaml.unsafe_load; np.load is checked
            # through its allow_pickle keyword.
            if name in FORBIDDEN_CALLS and (name != "load" or owner == "yaml"):
                yield f"{where}: calls {owner + '.' if owner else ''}{name}"
            for keyword in node.keywords:
                if isinstance(keyword.value, ast.Constant) and (
                        keyword.arg, keyword.value.value) in FORBIDDEN_KEYWORDS:
                    yield f"{where}: {keyword.arg}={keyword.value.value}"


def test_the_checker_finds_each_forbidden_pattern(tmp_path):
    path = tmp_path / "bad.py"
    path.write_text("import pickle\nimport yaml\nyaml.load(s)\neval('1')\n"
                    "keras.layers.Lambda(f)\nload_model(p, safe_mode=False)\n"
                    "np.load(p, allow_pickle=True)\nnp.load(p)\n")
    assert len(list(_problems(str(path)))) == 6


def test_no_kzoo_code_can_deserialize_code():
    problems = [p for path in _python_files() for p in _problems(path)]
    assert not problems, problems


def test_a_run_model_with_a_lambda_layer_is_refused(tmp_path):
    from kzoo.training.evaluate import load_run_model

    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    model.save(tmp_path / "model.keras")
    with pytest.raises(ValueError, match="safe_mode"):
        load_run_model(str(tmp_path))
