"""kzoo/layers and kzoo/models must run on JAX: keras.ops only, no TensorFlow."""

import ast
import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
AGNOSTIC_PACKAGES = [ROOT / "kzoo" / "layers", ROOT / "kzoo" / "models"]


def _jax_env():
    env = dict(os.environ, KERAS_BACKEND="jax", JAX_PLATFORMS="cpu")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _tensorflow_imports(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names = [node.module]
        for name in names:
            if name.split(".")[0] in ("tensorflow", "tensorflow_text", "tf_keras"):
                yield f"{path.relative_to(ROOT)}:{node.lineno} imports {name}"


def test_no_tensorflow_import_in_layers_or_models():
    offenders = [
        hit
        for package in AGNOSTIC_PACKAGES
        for path in sorted(package.rglob("*.py"))
        if "test" not in path.name
        for hit in _tensorflow_imports(path)
    ]
    assert not offenders, offenders


def test_the_scan_catches_a_tensorflow_import(tmp_path):
    bad = ROOT / "kzoo" / "layers" / "_probe_for_scan_test.py"
    bad.write_text("from tensorflow import nn\n")
    try:
        assert list(_tensorflow_imports(bad)) == [
            "kzoo/layers/_probe_for_scan_test.py:1 imports tensorflow"
        ]
    finally:
        bad.unlink()


def test_importing_layers_and_models_on_jax_loads_no_tensorflow():
    code = (
        "import sys, kzoo.layers, kzoo.models, keras;"
        "assert keras.backend.backend() == 'jax';"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in "
        "('tensorflow', 'tensorflow_text'));"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], env=_jax_env(), check=True, cwd=ROOT)


def _run_suite_on_jax(*paths):
    """Runs the tests in `path` on JAX, those marked slow (training runs, which
    the TensorFlow run covers) excepted."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider",
         "-m", "not slow", *(str(ROOT / "tests" / path) for path in paths)],
        env=_jax_env(),
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout


@pytest.mark.slow
def test_layer_suite_passes_on_jax():
    _run_suite_on_jax("layers")


MODEL_TEST_FILES = sorted(p.name for p in (ROOT / "tests" / "models").glob("test_*.py"))


@pytest.mark.slow
@pytest.mark.parametrize("half", [0, 1])
def test_model_suite_passes_on_jax(half):
    """Models, generation (compiled with jax.jit) and KerasHub conversion on JAX,
    in two halves so that both workers share them."""
    _run_suite_on_jax(*[f"models/{name}" for name in MODEL_TEST_FILES[half::2]])
