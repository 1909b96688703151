"""Model families a recipe can name in `model.family`: their keys and builders.

Each family declares the schema of its `model` section and how to build the model
from that section and a tokenizer. BERT, seq2seq and T5 add entries here.
"""

import keras

from kzoo.training.config import ConfigError, Field, fraction, positive

FAMILY_KEY = Field((str,), "gpt", choices=("gpt", "lstm"), doc="model family")

MODEL_SCHEMAS = {
    "gpt": {
        "family": FAMILY_KEY,
        "num_layers": Field((int,), 2, positive),
        "num_heads": Field((int,), 2, positive),
        "hidden_dim": Field((int,), 64, positive),
        "intermediate_dim": Field((int,), 256, positive),
        "dropout": Field((float,), 0.0, fraction),
        "max_sequence_length": Field((int,), 256, positive, doc="context (positions)"),
    },
    "lstm": {
        "family": FAMILY_KEY,
        "embedding_dim": Field((int,), 64, positive),
        "hidden_dim": Field((int,), 256, positive),
        "num_layers": Field((int,), 1, positive),
        "dropout": Field((float,), 0.0, fraction),
    },
}


def model_schema(raw_model_section):
    family = (raw_model_section or {}).get("family", FAMILY_KEY.default)
    if family not in MODEL_SCHEMAS:
        raise ConfigError(
            f"model.family: must be one of {sorted(MODEL_SCHEMAS)}, got {family!r}"
        )
    return MODEL_SCHEMAS[family]


def build_model(model_config, tokenizer, dtype=None):
    """Builds the family's trainable model around `tokenizer` (vocabulary, end id)."""
    from kzoo.models import GPTBackbone, GPTCausalLM, LSTMLanguageModel

    settings = {k: v for k, v in model_config.items() if k != "family"}
    vocabulary_size = int(tokenizer.vocabulary_size)
    if model_config["family"] == "gpt":
        backbone = GPTBackbone(vocabulary_size=vocabulary_size, dtype=dtype, **settings)
        return GPTCausalLM(backbone, tokenizer=tokenizer)
    if model_config["family"] == "lstm":
        return LSTMLanguageModel(
            vocabulary_size=vocabulary_size,
            end_token_id=int(tokenizer.eos_id),
            dtype=dtype,
            **settings,
        )
    raise ConfigError(f"model.family: no builder for {model_config['family']!r}")


def context_length(model_config):
    """The longest sequence the model accepts (None: unbounded)."""
    return model_config.get("max_sequence_length")


def count_parameters(model):
    return int(sum(keras.ops.size(w) for w in model.trainable_weights))
