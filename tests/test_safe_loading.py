"""Nothing kzoo reads can run code: Keras `safe_mode`, no pickle, no unsafe YAML
(python-tagged recipes: tests/training/test_config.py)."""

import ast
import os

import keras
import pytest

from kzoo.testing import ROOT

# Modules that deserialize code.
FORBIDDEN_MODULES = {"pickle", "cloudpickle", "dill", "marshal", "shelve", "joblib"}
# Builtins and Keras layers that run code given as data.
FORBIDDEN_CALLS = {"eval", "exec", "Lambda", "enable_unsafe_deserialization"}
# PyYAML: everything that can construct Python objects; `safe_load`, `safe_load_all`,
# `SafeLoader` and the dumpers are fine.
UNSAFE_YAML = {
    "load",
    "load_all",
    "unsafe_load",
    "unsafe_load_all",
    "full_load",
    "full_load_all",
    "Loader",
    "UnsafeLoader",
    "FullLoader",
    "CLoader",
    "CUnsafeLoader",
    "CFullLoader",
    "*",
}
# Keywords that must be given as these literals when given at all: a variable could
# hold the unsafe value.
SAFE_KEYWORDS = {"safe_mode": True, "allow_pickle": False}


def _python_files():
    for directory, _, names in os.walk(os.path.join(ROOT, "kzoo")):
        for name in names:
            if name.endswith(".py"):
                yield os.path.join(directory, name)


def _yaml_names(tree):
    """The names the module `yaml` is bound to (`import yaml as y` binds `y`)."""
    names = {"yaml"}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.asname or a.name for a in node.names if a.name == "yaml"}
    return names


def _called_name(function):
    """`(owner, name)` of a call's function: `yaml.load` -> ("yaml", "load")."""
    if isinstance(function, ast.Attribute):
        owner = function.value.id if isinstance(function.value, ast.Name) else ""
        return owner, function.attr
    return "", getattr(function, "id", "")


def problems_in(source, where="<source>"):
    """Every use in `source` of something that could deserialize or run code."""
    tree = ast.parse(source, where)
    yaml_names = _yaml_names(tree)
    for node in ast.walk(tree):
        at = f"{where}:{getattr(node, 'lineno', 0)}"
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
            if FORBIDDEN_MODULES & {n.split(".")[0] for n in names}:
                yield f"{at}: imports {names}"
        elif isinstance(node, ast.ImportFrom):
            module = (node.module or "").split(".")[0]
            names = [a.name for a in node.names]
            if module in FORBIDDEN_MODULES:
                yield f"{at}: imports from {node.module}"
            elif module == "yaml" and UNSAFE_YAML & set(names):
                yield f"{at}: imports {sorted(UNSAFE_YAML & set(names))} from yaml"
            elif "enable_unsafe_deserialization" in names:
                yield f"{at}: imports enable_unsafe_deserialization"
        elif isinstance(node, ast.Call):
            owner, name = _called_name(node.func)
            if name in FORBIDDEN_CALLS:
                yield f"{at}: calls {owner + '.' if owner else ''}{name}"
            elif owner in yaml_names and name in UNSAFE_YAML:
                yield f"{at}: calls {owner}.{name}"
            for keyword in node.keywords:
                if keyword.arg in SAFE_KEYWORDS and not (
                    isinstance(keyword.value, ast.Constant)
                    and keyword.value.value is SAFE_KEYWORDS[keyword.arg]
                ):
                    yield f"{at}: {keyword.arg}={ast.unparse(keyword.value)}"


UNSAFE_SNIPPETS = [
    "import pickle",
    "import cloudpickle as cp",
    "from pickle import loads",
    "from joblib import load",
    "yaml.load(s)",
    "yaml.load(s, Loader=yaml.SafeLoader)",
    "yaml.load_all(s)",
    "yaml.unsafe_load(s)",
    "yaml.full_load_all(s)",
    "import yaml as y\ny.load(s)",
    "from yaml import load",
    "from yaml import load_all",
    "from yaml import safe_load, unsafe_load",
    "from yaml import *",
    "from yaml import UnsafeLoader",
    "eval('1')",
    "exec(code)",
    "keras.layers.Lambda(f)",
    "Lambda(f)",
    "keras.saving.load_model(p, safe_mode=False)",
    "keras.saving.load_model(p, safe_mode=safe)",
    "keras.saving.load_model(p, safe_mode=not strict)",
    "keras.saving.load_model(p, safe_mode=0)",
    "np.load(p, allow_pickle=True)",
    "np.load(p, allow_pickle=pickled)",
    "np.load(p, allow_pickle=1)",
    "keras.config.enable_unsafe_deserialization()",
    "from keras.config import enable_unsafe_deserialization",
]

SAFE_SNIPPETS = [
    "import yaml\nyaml.safe_load(s)\nyaml.safe_load_all(s)\nyaml.safe_dump(d)",
    "from yaml import safe_load, safe_dump, YAMLError, SafeLoader",
    "np.load(p)\nnp.load(p, allow_pickle=False)",
    "keras.saving.load_model(p, safe_mode=True)",
    "json.load(f)\ntf.saved_model.load(p)",
]


@pytest.mark.parametrize("snippet", UNSAFE_SNIPPETS)
def test_the_scan_flags_each_unsafe_pattern(snippet):
    assert len(list(problems_in(snippet))) == 1, snippet


@pytest.mark.parametrize("snippet", SAFE_SNIPPETS)
def test_the_scan_passes_safe_loading(snippet):
    assert list(problems_in(snippet)) == []


def test_no_kzoo_code_can_deserialize_code():
    problems = []
    for path in _python_files():
        with open(path, encoding="utf-8") as f:
            problems += problems_in(f.read(), os.path.relpath(path, ROOT))
    assert not problems, problems


def test_a_run_model_with_a_lambda_layer_is_refused(tmp_path):
    from kzoo.training.run_directory import RunDirectory

    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Lambda(lambda x: x * 2)(inputs))
    model.save(tmp_path / "model.keras")
    with pytest.raises(ValueError, match="safe_mode"):
        RunDirectory(tmp_path).load_model()
