"""Hugging Face checkpoints in and out: the registry of families by `model_type`.

Each family module (`kzoo/models/<family>/hf_checkpoint.py`) gives
`backbone_config_from_hf(hf_config)`, `build_model(checkpoint, dtype)`,
`load_hf_weights(model, checkpoint)`, `hf_config_from(model)` and
`hf_tensors_from(model)`; a new family adds one entry to `FAMILIES`.
"""

import importlib

from kzoo.models.safetensors_checkpoint import SafetensorsCheckpoint, write_safetensors

# `model_type` -> the module that maps it, and the kzoo task model it becomes.
FAMILIES = {
    "bert": "kzoo.models.bert.hf_checkpoint",  # BertPretrainer
    "gpt2": "kzoo.models.gpt.hf_checkpoint",  # GPTCausalLM
    "llama": "kzoo.models.llama.hf_checkpoint",  # LlamaCausalLM
    "mistral": "kzoo.models.llama.hf_checkpoint",
    "qwen2": "kzoo.models.llama.hf_checkpoint",
    "t5": "kzoo.models.t5.hf_checkpoint",  # Seq2SeqLM on a T5Backbone
}
# kzoo model classes (the task model or its backbone) -> model_type, for export.
_CLASSES = {
    "BertPretrainer": "bert",
    "BertBackbone": "bert",
    "GPTCausalLM": "gpt2",
    "GPTBackbone": "gpt2",
    "LlamaCausalLM": "llama",
    "LlamaBackbone": "llama",
    "T5Backbone": "t5",
}


def family(model_type, source="config.json"):
    """The family module of `model_type`.

    Raises:
        ValueError: `model_type` is not supported (the message lists those that are).
    """
    if model_type not in FAMILIES:
        raise ValueError(
            f"{source}: model_type {model_type!r} is not supported; supported: "
            f"{', '.join(sorted(FAMILIES))}"
        )
    return importlib.import_module(FAMILIES[model_type])


def model_type_of(model):
    """The Hugging Face `model_type` of a kzoo task model or backbone."""
    backbone = getattr(model, "backbone", model)
    for cls in (type(model), type(backbone)):
        if cls.__name__ in _CLASSES:
            return _CLASSES[cls.__name__]
    raise ValueError(
        f"{type(model).__name__} has no Hugging Face form; supported: "
        f"{', '.join(sorted(_CLASSES))} (and Seq2SeqLM on a T5Backbone)"
    )


def load_hf_checkpoint(directory, dtype=None):
    """Builds the kzoo task model of a Hugging Face checkpoint directory and loads it.

    GPT-2 becomes a `GPTCausalLM`, BERT a `BertPretrainer` (heads the checkpoint
    lacks start fresh: see the report), T5 a `Seq2SeqLM` on a `T5Backbone`. The
    vocabulary size is the checkpoint's embedding rows (padded vocabularies keep
    their rows). Tensors are read one at a time.

    Args:
        directory: Holds `config.json` and `model.safetensors` (or the sharded
            `model.safetensors.index.json` and its shards).
        dtype: Optional Keras dtype policy of the model, e.g. `"mixed_bfloat16"`.

    Returns:
        `(model, report)`: the task model and a
        `kzoo.models.hf_weight_map.HFLoadReport` (`fresh`, `unused`, `summary()`).

    Example:
    >>> import tempfile
    >>> from kzoo.models import GPTBackbone, GPTCausalLM
    >>> lm = GPTCausalLM(GPTBackbone(vocabulary_size=20, num_layers=1, num_heads=2,
    ...                              hidden_dim=8, intermediate_dim=16,
    ...                              max_sequence_length=8), end_token_id=1)
    >>> path = export_hf_checkpoint(lm, tempfile.mkdtemp() + "/gpt2")
    >>> model, report = load_hf_checkpoint(path)
    >>> type(model).__name__, report.loaded, report.fresh
    ('GPTCausalLM', 16, [])
    """
    with SafetensorsCheckpoint(directory) as checkpoint:
        module = family(checkpoint.config.get("model_type"), f"{directory}/config.json")
        model = module.build_model(checkpoint, dtype=dtype)
        report = module.load_hf_weights(model, checkpoint)
    return model, report


def load_hf_weights(model, directory):
    """Loads a checkpoint directory into an existing kzoo model of its family (task
    model or backbone); returns the `HFLoadReport`."""
    with SafetensorsCheckpoint(directory) as checkpoint:
        module = family(checkpoint.config.get("model_type"), f"{directory}/config.json")
        return module.load_hf_weights(model, checkpoint)


def export_hf_checkpoint(model, directory, replace=False):
    """Writes a kzoo model as a Hugging Face checkpoint: `config.json` and
    `model.safetensors` (float32), atomically; returns `directory`.

    Tokenizer files are not written here.
    """
    module = family(model_type_of(model), type(model).__name__)
    return write_safetensors(
        module.hf_tensors_from(model), directory, module.hf_config_from(model), replace=replace
    )
