"""Model families a recipe can name in `model.family`: their keys and builders.

Each family declares the schema of its `model` section and how to build the model
from that section and a tokenizer. BERT, seq2seq and T5 add entries here.
"""

import keras

from kzoo.training.config import ConfigError, Field, fraction, in_range, positive

FAMILY_KEY = Field(
    (str,), "gpt", choices=("gpt", "lstm", "bert", "seq2seq", "t5"), doc="model family"
)
BERT_TASKS = ("pretrain", "classify", "tag", "qa")
T5_TASKS = ("pretrain", "finetune")
ENCODER_DECODER_FAMILIES = ("seq2seq", "t5")
_LABEL_SMOOTHING = Field(
    (float,),
    0.1,
    in_range(0.0, 0.99),
    doc="share of the target probability spread over the vocabulary",
)

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
        "task": Field(
            (str,),
            "pretrain",
            choices=BERT_TASKS,
            doc="pretrain (MLM + NSP), classify, tag (BIO) or qa (spans)",
        ),
        "size": Field(
            (str,),
            None,
            nullable=True,
            choices=("tiny", "mini", "small", "medium", "base", "large"),
            doc="a named encoder size (kzoo.models.bert.BERT_SIZES); "
            "replaces num_layers/num_heads/hidden_dim/intermediate_dim",
        ),
        "num_layers": Field((int,), 2, positive),
        "num_heads": Field((int,), 2, positive),
        "hidden_dim": Field((int,), 64, positive),
        "intermediate_dim": Field((int,), 256, positive),
        "dropout": Field((float,), 0.1, fraction),
        "max_sequence_length": Field((int,), 128, positive, doc="positions"),
        "num_segments": Field((int,), 2, positive),
        "classifier_dropout": Field((float,), 0.1, fraction, doc="dropout before a task head"),
    },
    "seq2seq": {
        "family": FAMILY_KEY,
        "architecture": Field(
            (str,),
            "transformer",
            choices=("transformer", "lstm"),
            doc="the Transformer or the LSTM-with-attention baseline",
        ),
        "size": Field(
            (str,),
            None,
            nullable=True,
            choices=("tiny", "small", "base", "big"),
            doc="transformer: a named size (kzoo.models.SEQ2SEQ_SIZES)",
        ),
        "num_layers": Field((int,), 2, positive, doc="blocks (LSTMs) per stack"),
        "num_heads": Field((int,), 2, positive),
        "hidden_dim": Field((int,), 128, positive),
        "intermediate_dim": Field((int,), 512, positive),
        "embedding_dim": Field((int,), 128, positive, doc="lstm: token embedding width"),
        "bidirectional": Field((bool,), True, doc="lstm: bidirectional encoder"),
        "dropout": Field((float,), 0.1, fraction),
        "norm_first": Field((bool,), False, doc="transformer: pre-norm blocks"),
        "max_sequence_length": Field(
            (int,), 128, positive, doc="longest source or generated target"
        ),
        "label_smoothing": _LABEL_SMOOTHING,
    },
    "t5": {
        "family": FAMILY_KEY,
        "task": Field(
            (str,),
            "pretrain",
            choices=T5_TASKS,
            doc="pretrain (span corruption) or finetune (text-to-text)",
        ),
        "size": Field(
            (str,),
            None,
            nullable=True,
            choices=("tiny", "small", "base", "large"),
            doc="a named size (kzoo.models.T5_SIZES)",
        ),
        "num_layers": Field((int,), 2, positive),
        "num_heads": Field((int,), 4, positive),
        "hidden_dim": Field((int,), 128, positive),
        "intermediate_dim": Field((int,), 512, positive),
        "key_value_dim": Field((int,), None, positive, nullable=True),
        "dropout": Field((float,), 0.1, fraction),
        "activation": Field(
            (str,), "gelu_approximate", choices=("relu", "gelu", "gelu_approximate")
        ),
        "use_gated_activation": Field((bool,), True, doc="T5 v1.1 (true) or v1.0"),
        "tie_embedding_weights": Field((bool,), False, doc="T5 v1.0 (true) or v1.1"),
        "max_sequence_length": Field(
            (int,), 512, positive, doc="longest source or generated target"
        ),
        "label_smoothing": Field((float,), 0.0, in_range(0.0, 0.99)),
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
        "format": Field(
            (str,),
            None,
            choices=("tsv", "csv", "jsonl"),
            nullable=True,
            doc="classification files; null: from the file extension",
        ),
        "text_column": Field((str, int), "text", doc="column name or 0-based index"),
        "text_pair_column": Field(
            (str, int), None, nullable=True, doc="second text of a pair task"
        ),
        "label_column": Field((str, int), "label"),
        "header": Field(
            (bool,), None, nullable=True, doc="tsv/csv header row; null: yes iff columns are names"
        ),
        "builtin_task": Field(
            (str,),
            "acceptability",
            choices=("acceptability", "next_sentence"),
            doc="built-in classification task",
        ),
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
    }
}


_SEQ2SEQ_DATA = {
    "format": Field(
        (str,),
        None,
        choices=("tsv", "csv", "jsonl"),
        nullable=True,
        doc="parallel table files; null: from the file extension",
    ),
    "source_column": Field((str, int), "source", doc="column name or 0-based index"),
    "target_column": Field((str, int), "target"),
    "header": Field(
        (bool,), None, nullable=True, doc="tsv/csv header row; null: yes iff columns are names"
    ),
    "train_source": Field(
        (str,),
        None,
        nullable=True,
        path=True,
        doc="line-aligned source file (with data.train_target)",
    ),
    "train_target": Field((str,), None, nullable=True, path=True),
    "validation_source": Field((str,), None, nullable=True, path=True),
    "validation_target": Field((str,), None, nullable=True, path=True),
    "task_prefix": Field(
        (str,), None, nullable=True, doc="text-to-text prefix put before each source ('prefix: ')"
    ),
    "max_source_length": Field((int,), 64, positive, doc="tokens, end token included"),
    "max_target_length": Field((int,), 64, positive, doc="tokens, start token included"),
    "bucket_boundaries": Field(
        (list,),
        None,
        nullable=True,
        doc="batch by length into these padded lengths; "
        "null: pad every batch to the maximum lengths",
    ),
    "builtin_task": Field(
        (str,),
        "translate",
        choices=("translate", "plural", "subject"),
        doc="built-in text-to-text task (kzoo.data.builtin_translation)",
    ),
    "builtin_train_examples": Field((int,), 20000, positive),
    "builtin_validation_examples": Field((int,), 500, positive),
    "eval_examples": Field(
        (int,), 200, positive, doc="validation examples decoded for BLEU/ROUGE each epoch"
    ),
}

_T5_DATA = {
    **_SEQ2SEQ_DATA,
    "mixture": Field(
        (dict,),
        None,
        nullable=True,
        doc="finetune: built-in tasks and their sampling rates, e.g. "
        "{translate: 2, plural: 1}; null: data.builtin_task alone",
    ),
    "noise_density": Field(
        (float,), 0.15, in_range(0.01, 0.9), doc="pretrain: share of tokens corrupted"
    ),
    "mean_noise_span_length": Field((float,), 3.0, in_range(1.0, 100.0)),
    "num_sentinels": Field((int,), 32, positive, doc="sentinel tokens reserved in the vocabulary"),
    "builtin_train_documents": Field((int,), 4000, positive),
    "builtin_validation_documents": Field((int,), 200, positive),
}

DATA_EXTRAS["seq2seq"] = _SEQ2SEQ_DATA
DATA_EXTRAS["t5"] = _T5_DATA


def data_extras(raw_model_section):
    family = (raw_model_section or {}).get("family", FAMILY_KEY.default)
    return DATA_EXTRAS.get(family, {})


def model_schema(raw_model_section):
    family = (raw_model_section or {}).get("family", FAMILY_KEY.default)
    if family not in MODEL_SCHEMAS:
        raise ConfigError(f"model.family: must be one of {sorted(MODEL_SCHEMAS)}, got {family!r}")
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
    """The longest sequence a decoder-only model accepts (None: unbounded, or an
    encoder-decoder, whose lengths are checked against its own keys)."""
    if model_config["family"] in ENCODER_DECODER_FAMILIES:
        return None
    return model_config.get("max_sequence_length")


def count_parameters(model):
    return int(sum(keras.ops.size(w) for w in model.trainable_weights))
