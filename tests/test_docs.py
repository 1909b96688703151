"""The README's example and the docstring examples of public classes must run."""

import doctest
import importlib
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCTEST_MODULES = [
    "kzoo.layers.attention",
    "kzoo.layers.dropout",
    "kzoo.layers.feedforward",
    "kzoo.layers.normalization",
    "kzoo.layers.position",
    "kzoo.layers.transformer",
    "kzoo.layers.write_at",
    "kzoo.models.bert.bert_backbone",
    "kzoo.models.bert.bert_classifier",
    "kzoo.models.bert.bert_masked_lm_head",
    "kzoo.models.bert.bert_pretrainer",
    "kzoo.models.bert.bert_question_answerer",
    "kzoo.models.bert.bert_token_classifier",
    "kzoo.models.gpt.gpt_backbone",
    "kzoo.models.gpt.gpt_causal_lm",
    "kzoo.models.lstm.lstm_language_model",
    "kzoo.models.seq2seq.seq2seq_backbone",
    "kzoo.models.seq2seq.seq2seq_lm",
    "kzoo.models.seq2seq.lstm_seq2seq_backbone",
    "kzoo.models.t5.t5_backbone",
    "kzoo.models.t5.t5_presets",
    "kzoo.models.text_generation",
    "kzoo.training.losses",
    "kzoo.training.monitoring.attention_maps",
    "kzoo.training.callbacks",
    "kzoo.training.monitoring.embedding_projector",
    "kzoo.training.monitoring.graph_summary",
    "kzoo.training.optimizer",
    "kzoo.training.monitoring.profiling",
    "kzoo.training.sweep.grid",
    "kzoo.training.distribute",
    "kzoo.training.keras_multi_worker_fix",
    "kzoo.data.span_corruption",
    "kzoo.data.text_to_text",
    "kzoo.data.builtin_translation",
    "kzoo.data.parallel_files",
    "kzoo.data.seq2seq_pipeline",
    "kzoo.metrics.text_metrics",
    "kzoo.data.builtin_corpus",
    "kzoo.data.text_files",
    "kzoo.data.causal_lm",
    "kzoo.data.labelled_files",
    "kzoo.data.table_files",
    "kzoo.data.bad_records",
    "kzoo.data.line_ends",
    "kzoo.training.checkpoints",
    "kzoo.training.resume",
    "kzoo.training.run_lock",
    "kzoo.data.builtin_tasks",
    "kzoo.metrics.task_metrics",
    "kzoo.data.masked_lm",
    "kzoo.models.bert.bert_presets",
    "kzoo.data.next_sentence_pairs",
    "kzoo.data.bert_pretraining",
    "kzoo.data.bert_inputs",
    "kzoo.data.qa_windows",
    "kzoo.data.qa_answers",
    "kzoo.tokenizers.sentencepiece_trainer",
    "kzoo.tokenizers.sentencepiece_tokenizer",
    "kzoo.tokenizers.wordpiece_trainer",
    "kzoo.tokenizers.wordpiece_tokenizer",
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
