"""The README's example runs, and so does every docstring example of every kzoo
module (found by walking the package: a new module's examples run without being
listed anywhere)."""

import doctest
import importlib
import pathlib
import pkgutil
import re

import pytest

import kzoo

ROOT = pathlib.Path(__file__).resolve().parents[1]

# Modules whose examples cannot run in CI, each with the reason. Empty today: every
# example runs on 2 CPU cores in seconds.
SKIPPED_MODULES = {}


def modules_with_examples():
    """The names of the kzoo modules whose source holds a `>>>` example, sorted."""
    names = []
    for module in pkgutil.walk_packages(kzoo.__path__, "kzoo."):
        spec = module.module_finder.find_spec(module.name)
        source = pathlib.Path(spec.origin).read_text(encoding="utf-8")
        if ">>> " in source:
            names.append(module.name)
    return sorted(names)


EXAMPLE_MODULES = modules_with_examples()


def test_readme_layer_example_runs():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    example = next(block for block in blocks if "kzoo import layers" in block)
    exec(compile(example, "README.md", "exec"), {})


@pytest.mark.parametrize("module_name", EXAMPLE_MODULES)
def test_docstring_examples(module_name):
    if module_name in SKIPPED_MODULES:
        pytest.skip(SKIPPED_MODULES[module_name])
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{module_name}: its `>>>` lines are in no docstring"
    assert result.failed == 0, f"{module_name}: {result.failed} example(s) failed (stdout)"


def test_the_walk_finds_every_package_and_the_skip_list_is_current():
    assert {"kzoo.layers.attention", "kzoo.export.names", "kzoo.testing.outputs"} <= set(
        EXAMPLE_MODULES
    )
    stale = sorted(set(SKIPPED_MODULES) - set(EXAMPLE_MODULES))
    assert not stale, f"SKIPPED_MODULES names modules without examples (or gone): {stale}"
