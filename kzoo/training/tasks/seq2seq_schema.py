"""The recipe keys of the encoder-decoder families: the translation models
(`model.family: seq2seq`, `SEQ2SEQ`), trained by `kzoo.training.tasks.seq2seq`, and
T5 (`model.family: t5`, `T5`): span-corruption pretraining
(`kzoo.training.tasks.t5_pretrain`) and text-to-text fine-tuning (`seq2seq`); and
the `data` keys (`PAIR_DATA`) and checks (`check_encoder_decoder`) they share."""

from kzoo.data.builtin_translation import check_mixture
from kzoo.training.config import ConfigError, Field, fraction, in_range, positive
from kzoo.training.tasks.schema import (
    FamilySchema,
    size_field,
    table_fields,
    task_field,
    transformer_fields,
)

LABEL_SMOOTHING = Field(
    (float,),
    0.1,
    in_range(0.0, 0.99),
    doc="share of the target probability spread over the vocabulary",
)

# The `data` keys of (source, target) pairs.
PAIR_DATA = {
    **table_fields("parallel table files"),
    "source_column": Field((str, int), "source", doc="column name or 0-based index"),
    "target_column": Field((str, int), "target"),
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


def check_encoder_decoder(config):
    """Lengths within `model.max_sequence_length`, valid buckets, room for a target."""
    data, export = config["data"], config["export"]
    context = config["model"]["max_sequence_length"]
    for key, value in (
        ("data.max_source_length", data["max_source_length"]),
        ("data.max_target_length", data["max_target_length"]),
        ("export.max_prompt_tokens", export["max_prompt_tokens"]),
        ("export.max_new_tokens", export["max_new_tokens"] + 1),
    ):
        if value > context:
            raise ConfigError(f"{key}: {value} exceeds model.max_sequence_length {context}")
    boundaries = data["bucket_boundaries"]
    if boundaries is not None and (
        not all(isinstance(b, int) and not isinstance(b, bool) and b > 0 for b in boundaries)
        or list(boundaries) != sorted(set(boundaries))
    ):
        raise ConfigError(
            f"data.bucket_boundaries: must be increasing positive integers, got {boundaries!r}"
        )
    if data["max_target_length"] < 2:
        raise ConfigError(
            "data.max_target_length: must be >= 2 (the start token and at least one target token)"
        )


SEQ2SEQ = FamilySchema(
    model={
        "architecture": Field(
            (str,),
            "transformer",
            choices=("transformer", "lstm"),
            doc="the Transformer or the LSTM-with-attention baseline",
        ),
        "size": size_field(
            ("tiny", "small", "base", "big"), "kzoo.models.SEQ2SEQ_SIZES", "transformer: "
        ),
        # num_layers: blocks (LSTMs) per stack.
        **transformer_fields(num_layers=2, num_heads=2, hidden_dim=128, intermediate_dim=512),
        "embedding_dim": Field((int,), 128, positive, doc="lstm: token embedding width"),
        "bidirectional": Field((bool,), True, doc="lstm: bidirectional encoder"),
        "dropout": Field((float,), 0.1, fraction),
        "norm_first": Field((bool,), False, doc="transformer: pre-norm blocks"),
        "max_sequence_length": Field(
            (int,), 128, positive, doc="longest source or generated target"
        ),
        "label_smoothing": LABEL_SMOOTHING,
    },
    data=PAIR_DATA,
    tasks={None: "kzoo.training.tasks.seq2seq:Seq2SeqTask"},
    encoder_decoder=True,
    check=check_encoder_decoder,
)


T5_TASKS = {
    "pretrain": "kzoo.training.tasks.t5_pretrain:T5PretrainTask",
    "finetune": "kzoo.training.tasks.seq2seq:Seq2SeqTask",
}


def check_t5(config):
    """The encoder-decoder checks, and a valid `data.mixture`."""
    check_encoder_decoder(config)
    try:
        check_mixture(config["data"]["mixture"])
    except ValueError as error:
        raise ConfigError(str(error)) from None


T5 = FamilySchema(
    model={
        "task": task_field(T5_TASKS, "pretrain (span corruption) or finetune (text-to-text)"),
        "size": size_field(("tiny", "small", "base", "large"), "kzoo.models.T5_SIZES"),
        **transformer_fields(num_layers=2, num_heads=4, hidden_dim=128, intermediate_dim=512),
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
    data={
        **PAIR_DATA,
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
        "num_sentinels": Field(
            (int,), 32, positive, doc="sentinel tokens reserved in the vocabulary"
        ),
        "builtin_train_documents": Field((int,), 4000, positive),
        "builtin_validation_documents": Field((int,), 200, positive),
    },
    tasks=T5_TASKS,
    fine_tuning_tasks=("finetune",),
    encoder_decoder=True,
    check=check_t5,
)
