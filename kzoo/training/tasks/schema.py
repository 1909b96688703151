"""What a model family declares beside its tasks: `FamilySchema`, and the `data`
keys every family shares (`DATA_SCHEMA`).

Each schema module (`causal_lm_schema`: GPT and LSTM, `bert_schema`,
`seq2seq_schema`: seq2seq and T5) holds the `FamilySchema` of each of its
families; `kzoo.training.tasks.registry` names them, and `kzoo.training.recipe`
assembles a recipe's schema from the family's entry and the shared sections
(`tokenizer`, `train`, `monitor`, `export`).
"""

import dataclasses

from kzoo.training.config import Field, fraction, non_negative, positive

# `data.train: builtin`: the family's built-in text (not a path).
BUILTIN = "builtin"


@dataclasses.dataclass(frozen=True)
class FamilySchema:
    """The recipe keys of one `model.family`, its checks and its tasks.

    Attributes:
        model: `{key: Field}` of the `model` section (`family` aside, which every
            family has).
        data: `{key: Field}` the family adds to (or redefines in) `DATA_SCHEMA`.
        tasks: `{model.task: "module:Class"}`: the `Task` training each
            `model.task` (imported when used); key None for a family without
            `model.task`.
        tokenizer_kinds: The `tokenizer.kind`s it trains with.
        fine_tuning_tasks: The `model.task`s that may start from `train.init_from`.
        encoder_decoder: Whether `model.max_sequence_length` bounds source and target
            lengths (the family's own keys) rather than `data.sequence_length`.
        check: `check(config)`: the family's consistency checks of a validated
            config (raising `ConfigError`), or None.
    """

    model: dict
    data: dict
    tasks: dict
    tokenizer_kinds: tuple = ("bpe", "unigram", "char")
    fine_tuning_tasks: tuple = ()
    encoder_decoder: bool = False
    check: object = None


def task_field(tasks, doc):
    """`model.task` of a family with several `tasks` (`pretrain` by default)."""
    return Field((str,), "pretrain", choices=tuple(tasks), doc=doc)


def size_field(sizes, table, applies_to=""):
    """`model.size`: one of `sizes`, the names of the family's table of sizes
    `table`; null: the recipe's own dimensions."""
    return Field(
        (str,),
        None,
        nullable=True,
        choices=sizes,
        doc=f"{applies_to}a named size ({table}); "
        "replaces num_layers/num_heads/hidden_dim/intermediate_dim",
    )


def transformer_fields(num_layers, num_heads, hidden_dim, intermediate_dim):
    """The `model` keys of a Transformer's dimensions, with these defaults."""
    return {
        "num_layers": Field((int,), num_layers, positive),
        "num_heads": Field((int,), num_heads, positive),
        "hidden_dim": Field((int,), hidden_dim, positive),
        "intermediate_dim": Field((int,), intermediate_dim, positive),
    }


def table_fields(files):
    """`data.format` and `data.header` of a family that reads `files` as tables
    (`kzoo.data.table_files`)."""
    return {
        "format": Field(
            (str,),
            None,
            choices=("tsv", "csv", "jsonl"),
            nullable=True,
            doc=f"{files}; null: from the file extension",
        ),
        "header": Field(
            (bool,), None, nullable=True, doc="tsv/csv header row; null: yes iff columns are names"
        ),
    }


DATA_SCHEMA = {
    "train": Field((str, list), BUILTIN, path=True, doc="'builtin', a path/glob, or a list"),
    "validation": Field(
        (str, list),
        None,
        nullable=True,
        path=True,
        doc="null: builtin held-out text, or a split of train",
    ),
    "validation_fraction": Field(
        (float,),
        0.1,
        fraction,
        doc="share of train characters held out when validation is null and train is not builtin",
    ),
    "sequence_length": Field((int,), 64, positive),
    "batch_size": Field((int,), 32, positive),
    "shuffle_buffer": Field((int,), 10_000, positive),
    "builtin_train_documents": Field((int,), 4000, positive),
    "builtin_validation_documents": Field((int,), 200, positive),
    "num_parallel_calls": Field(
        (int,), None, positive, nullable=True, doc="null: tf.data.AUTOTUNE"
    ),
    "seed": Field((int,), 0, non_negative),
    "on_bad_record": Field(
        (str,),
        "stop",
        choices=("stop", "skip"),
        doc="a bad record in the data files (a line that is not "
        "UTF-8 or longer than data.max_line_bytes, a table "
        "row with the wrong number of fields, an empty field "
        "or invalid JSON): stop with file:line, or skip it "
        "(a bad line drops its row, pair or CoNLL sentence) "
        "and count it in the log and TensorBoard",
    ),
    "max_line_bytes": Field(
        (int,),
        1_048_576,
        positive,
        doc="a line of more bytes than this (its newline not counted) is a bad record",
    ),
}
