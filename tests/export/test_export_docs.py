"""The docstring examples of kzoo.export run."""

import doctest
import importlib

import pytest

MODULES = [
    "names",
    "scoring",
    "causal_lm_signatures",
    "archive",
    "serving_requests",
    "serving_files",
    "serving_generate",
    "keras_reference",
    "saved_model",
    "check_serving",
    "serving_probe",
]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(f"kzoo.export.{name}")
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"kzoo.export.{name} has no runnable example"
    assert result.failed == 0
