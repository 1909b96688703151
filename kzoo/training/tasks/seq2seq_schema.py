"""The recipe keys of the translation models (`model.family: seq2seq`), trained by
`kzoo.training.tasks.seq2seq`, and the `data` keys and checks every
encoder-decoder family (T5 too, `t5_schema`) shares."""

from kzoo.training.config import ConfigError, Field, fraction, in_range, positive
from kzoo.training.tasks.schema import FamilySchema, size_field, table_fields, transformer_fields

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
