"""The README's example and the docstring examples of public classes must run."""

import doctest
import importlib
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCTEST_MODULES = [
    "kzoo.layers.attention",
    "kzoo.layers.feedforward",
    "kzoo.layers.normalization",
    "kzoo.layers.position",
    "kzoo.layers.transformer",
    "kzoo.layers.write_at",
    "kzoo.models.bert.bert_backbone",
    "kzoo.models.gpt.gpt_backbone",
    "kzoo.models.gpt.gpt_causal_lm",
    "kzoo.models.lstm.lstm_language_model",
    "kzoo.data.builtin_corpus",
    "kzoo.data.text_files",
    "kzoo.data.causal_lm",
    "kzoo.tokenizers.sentencepiece_trainer",
    "kzoo.tokenizers.sentencepiece_tokenizer",
]


def test_readme_layer_example_runs():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    example = next(block for block in blocks if "kzoo import layers" in block)
    exec(compile(example, "README.md", "exec"), {})


@pytest.mark.parametrize("module_name", DOCTEST_MODULES)
def test_docstring_examples(module_name):
    module = importlib.import_module(module_name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0, f"{module_name} has no runnable example"
    assert result.failed == 0
