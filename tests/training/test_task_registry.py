"""The lazy registry of families and tasks (`kzoo.training.tasks.registry`)."""

import pytest

from kzoo.training.config import ConfigError
from kzoo.training.recipe import validate
from kzoo.training.tasks import registry
from kzoo.training.tasks.base import Task


@pytest.mark.parametrize("family", sorted(registry.FAMILIES))
def test_every_registered_family_has_a_schema_and_tasks(family):
    schema = registry.family_schema(family)
    assert "family" not in schema.model and schema.tasks
    for reference in schema.tasks.values():
        assert issubclass(registry._load(reference), Task)
    if "task" in schema.model:  # `model.task` offers exactly the registered tasks
        assert schema.model["task"].choices == tuple(schema.tasks)
    else:
        assert list(schema.tasks) == [None]


def test_an_unknown_family_or_task_names_the_registered_ones():
    with pytest.raises(
        ConfigError,
        match=r"model\.family: must be one of \['bert', 'gpt', 'llama', 'lstm', 'seq2seq', 't5'\], "
        r"got 'bart'",
    ):
        registry.task_for({"model": {"family": "bart"}})
    with pytest.raises(
        ConfigError,
        match=r"model\.task: no task 'summarize' is registered for model\.family 'bert'; "
        r"registered: \['pretrain', 'classify', 'tag', 'qa'\]",
    ):
        registry.task_for({"model": {"family": "bert", "task": "summarize"}})


def test_a_family_is_imported_only_when_a_recipe_names_it(monkeypatch):
    # Were BERT's schema or tasks imported for a GPT recipe, this would fail.
    monkeypatch.setitem(registry.FAMILIES, "bert", "kzoo.training.tasks.no_such_module:BERT")
    task = registry.task_for(validate({"model": {"family": "gpt"}}))
    assert type(task).__name__ == "CausalLMTask"
    with pytest.raises(ModuleNotFoundError, match="no_such_module"):
        validate({"model": {"family": "bert"}})


def test_a_new_family_is_one_registry_entry(monkeypatch):
    monkeypatch.setitem(registry.FAMILIES, "toy", "kzoo.training.tasks.causal_lm_schema:LSTM")
    config = validate({"model": {"family": "toy", "hidden_dim": 8}})
    assert config["model"] == {
        "family": "toy",
        "embedding_dim": 64,
        "hidden_dim": 8,
        "num_layers": 1,
        "dropout": 0.0,
    }
    assert type(registry.task_for(config)).__name__ == "CausalLMTask"
