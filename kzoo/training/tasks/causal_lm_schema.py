"""The recipe keys of the causal language models (`model.family` gpt, llama, lstm),
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


def check_llama(config):
    """GPT's checks, then the heads: key/value heads divide the query heads, the
    width splits into heads, and `rope_scaling` is one Hugging Face knows."""
    check_gpt(config)
    model = config["model"]
    kv_heads = model["num_key_value_heads"] or model["num_heads"]
    if model["num_heads"] % kv_heads:
        raise ConfigError(
            f"model.num_key_value_heads: {kv_heads} must divide model.num_heads "
            f"{model['num_heads']} (each key/value head serves a group of query heads)"
        )
    if model["head_dim"] is None and model["hidden_dim"] % model["num_heads"]:
        raise ConfigError(
            f"model.hidden_dim: {model['hidden_dim']} must be a multiple of model.num_heads "
            f"{model['num_heads']}, or set model.head_dim"
        )
    if model["rope_scaling"] is None:
        return
    # Imported only here: validating a recipe does not start Keras otherwise.
    from kzoo.layers.rope_scaling import rope_type

    try:
        rope_type(model["rope_scaling"])
    except ValueError as error:
        raise ConfigError(f"model.{error}") from None


def optional_positive(doc):
    return Field((int,), None, positive, nullable=True, doc=doc)


LLAMA = FamilySchema(
    model={
        **transformer_fields(num_layers=2, num_heads=4, hidden_dim=64, intermediate_dim=176),
        "num_key_value_heads": optional_positive("grouped-query attention; null: num_heads"),
        "head_dim": optional_positive("features per head; null: hidden_dim / num_heads"),
        "rope_theta": Field((float,), 10000.0, positive, doc="rotary base wavelength"),
        "rope_scaling": Field(
            (dict,), None, nullable=True, doc="Hugging Face rope_scaling: linear, llama3, yarn"
        ),
        "layer_norm_epsilon": Field((float,), 1e-6, positive, doc="RMSNorm epsilon"),
        "tie_embedding_weights": Field((bool,), True, doc="output projection = token embedding"),
        "attention_bias": Field((bool,), False, doc="query/key/value biases (Qwen2)"),
        "attention_output_bias": Field((bool,), None, nullable=True, doc="null: as attention_bias"),
        "feedforward_bias": Field((bool,), False),
        "sliding_window": optional_positive("keys each query sees at most (Mistral)"),
        "dropout": Field((float,), 0.0, fraction),
        "max_sequence_length": Field((int,), 256, positive, doc="context (positions)"),
    },
    data={},
    tasks=TASKS,
    check=check_llama,
    tokenizer_kinds=("bpe", "unigram", "char", "byte_bpe"),
    fine_tuning_tasks=(None,),  # continued pretraining of an imported or trained Llama
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
