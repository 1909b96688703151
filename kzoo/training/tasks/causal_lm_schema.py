"""The recipe keys of the causal language models (`model.family` gpt, lstm),
trained by `kzoo.training.tasks.causal_lm`."""

from kzoo.training.config import ConfigError, Field, fraction, positive
from kzoo.training.tasks.schema import FamilySchema, transformer_fields

TASKS = {None: "kzoo.training.tasks.causal_lm:CausalLMTask"}


def check_gpt(config):
    """The exported decoding buffer and the TensorBoard samples fit the context."""
    context = config["model"]["max_sequence_length"]
    for key in ("sample_max_new_tokens",):
        if config["train"][key] >= context:
            raise ConfigError(
                f"train.{key}: {config['train'][key]} must be below "
                f"model.max_sequence_length {context} (room for the prompt)"
            )
    export = config["export"]
    if export["max_prompt_tokens"] + export["max_new_tokens"] > context:
        raise ConfigError(
            f"export.max_prompt_tokens + export.max_new_tokens: "
            f"{export['max_prompt_tokens']} + {export['max_new_tokens']} exceeds "
            f"model.max_sequence_length {context} (the exported decoding buffer)"
        )


GPT = FamilySchema(
    model={
        **transformer_fields(num_layers=2, num_heads=2, hidden_dim=64, intermediate_dim=256),
        "dropout": Field((float,), 0.0, fraction),
        "max_sequence_length": Field((int,), 256, positive, doc="context (positions)"),
    },
    data={},
    tasks=TASKS,
    check=check_gpt,
    tokenizer_kinds=("bpe", "unigram", "char", "byte_bpe"),
    fine_tuning_tasks=(None,),  # continued pretraining of an imported or trained GPT
)

LSTM = FamilySchema(
    model={
        "embedding_dim": Field((int,), 64, positive),
        "hidden_dim": Field((int,), 256, positive),
        "num_layers": Field((int,), 1, positive),
        "dropout": Field((float,), 0.0, fraction),
    },
    data={},
    tasks=TASKS,
)
