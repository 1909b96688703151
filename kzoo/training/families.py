"""Model families a recipe can name in `model.family`: their keys and builders.

Each family declares the schema of its `model` section and how to build the model
from that section and a tokenizer. BERT, seq2seq and T5 add entries here.
"""

import keras

from kzoo.training.config import ConfigError, Field, fraction, in_range, positive

FAMILY_KEY = Field((str,), "gpt", choices=("gpt", "lstm", "bert"), doc="model family")
BERT_TASKS = ("pretrain", "classify", "tag", "qa")

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
    "bert": {
        "family": FAMILY_KEY,
        "task": Field((str,), "pretrain", choices=BERT_TASKS,
                      doc="pretrain (MLM + NSP), classify, tag (BIO) or qa (spans)"),
        "size": Field((str,), None, nullable=True,
                      choices=("tiny", "mini", "small", "medium", "base", "large"),
                      doc="a named encoder size (kzoo.models.bert.BERT_SIZES); "
                          "replaces num_layers/num_heads/hidden_dim/intermediate_dim"),
        "num_layers": Field((int,), 2, positive),
        "num_heads": Field((int,), 2, positive),
        "hidden_dim": Field((int,), 64, positive),
        "intermediate_dim": Field((int,), 256, positive),
        "dropout": Field((float,), 0.1, fraction),
        "max_sequence_length": Field((int,), 128, positive, doc="positions"),
        "num_segments": Field((int,), 2, positive),
        "classifier_dropout": Field((float,), 0.1, fraction, doc="dropout before a task head"),
    },
    "lstm": {
        "family": FAMILY_KEY,
        "embedding_dim": Field((int,), 64, positive),
        "hidden_dim": Field((int,), 256, positive),
        "num_layers": Field((int,), 1, positive),
        "dropout": Field((float,), 0.0, fraction),
    },
}


# Keys a family adds to the `data` section.
DATA_EXTRAS = {
    "bert": {
        "format": Field((str,), None, choices=("tsv", "csv", "jsonl"), nullable=True,
                        doc="classification files; null: from the file extension"),
        "text_column": Field((str, int), "text", doc="column name or 0-based index"),
        "text_pair_column": Field((str, int), None, nullable=True,
                                  doc="second text of a pair task"),
        "label_column": Field((str, int), "label"),
        "header": Field((bool,), None, nullable=True,
                        doc="tsv/csv header row; null: yes iff columns are names"),
        "builtin_task": Field((str,), "acceptability",
                              choices=("acceptability", "next_sentence"),
                              doc="built-in classification task"),
        "builtin_train_examples": Field((int,), 2000, positive),
        "builtin_validation_examples": Field((int,), 400, positive),
        "mlm_selection_rate": Field((float,), 0.15, fraction),
        "mlm_mask_token_rate": Field((float,), 0.8, in_range(0.0, 1.0)),
        "mlm_random_token_rate": Field((float,), 0.1, in_range(0.0, 1.0)),
        "nsp_random_probability": Field((float,), 0.5, in_range(0.0, 1.0)),
        "short_sequence_probability": Field((float,), 0.1, in_range(0.0, 1.0)),
        "max_query_tokens": Field((int,), 24, positive, doc="qa: longer questions are cut"),
        "doc_stride": Field((int,), 32, positive, doc="qa: tokens between context windows"),
        "max_answer_tokens": Field((int,), 16, positive, doc="qa: longest predicted answer"),
    },
}


def data_extras(raw_model_section):
    family = (raw_model_section or {}).get("family", FAMILY_KEY.default)
    return DATA_EXTRAS.get(family, {})


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
