"""Which families a recipe can name, and which `Task` trains it: a lazy registry.

`FAMILIES` maps each `model.family` to its `FamilySchema`
(`kzoo.training.tasks.schema`) as a `"module:NAME"` string, imported on first use:
validating a GPT recipe reads only `causal_lm_schema`, and `task_for` imports only
the task module of the recipe's family and task (BERT's pull in keras_hub). A
family's schema lists its tasks the same way (`FamilySchema.tasks`).

Adding a family is one entry here, and its `FamilySchema` in a schema module
beside its task module.
"""

import importlib

from kzoo.training.config import ConfigError, Field

FAMILIES = {
    "gpt": "kzoo.training.tasks.causal_lm_schema:GPT",
    "llama": "kzoo.training.tasks.causal_lm_schema:LLAMA",
    "lstm": "kzoo.training.tasks.causal_lm_schema:LSTM",
    "bert": "kzoo.training.tasks.bert_schema:BERT",
    "seq2seq": "kzoo.training.tasks.seq2seq_schema:SEQ2SEQ",
    "t5": "kzoo.training.tasks.seq2seq_schema:T5",
}

DEFAULT_FAMILY = "gpt"


def _load(reference):
    """The object a `"module:NAME"` string names."""
    module, _, name = reference.partition(":")
    return getattr(importlib.import_module(module), name)


def family_schema(family):
    """The `FamilySchema` of `model.family`.

    Raises:
        ConfigError: `family` is not registered; the message names those that are.
    """
    if not isinstance(family, str) or family not in FAMILIES:
        raise ConfigError(f"model.family: must be one of {sorted(FAMILIES)}, got {family!r}")
    return _load(FAMILIES[family])


def model_schema(raw_model_section):
    """`{key: Field}` of a (raw) `model` section: `family`, then the family's keys.

    Raises:
        ConfigError: An unknown `model.family`.
    """
    model = raw_model_section if isinstance(raw_model_section, dict) else {}
    family = family_schema(model.get("family", DEFAULT_FAMILY))
    key = Field((str,), DEFAULT_FAMILY, choices=tuple(FAMILIES), doc="model family")
    return {"family": key, **family.model}


def task_for(config):
    """The `Task` of a validated recipe, by its `model.family` and `model.task`.

    Raises:
        ConfigError: No task is registered for them; the message names those that are.
    """
    family, task = config["model"]["family"], config["model"].get("task")
    tasks = family_schema(family).tasks
    if task not in tasks:
        raise ConfigError(
            f"model.task: no task {task!r} is registered for model.family {family!r}; "
            f"registered: {list(tasks)}"
        )
    return _load(tasks[task])(config)
