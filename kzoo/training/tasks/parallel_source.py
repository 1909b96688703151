"""Where an encoder-decoder run's (source, target) pairs come from.

One of: the built-in generated tasks (`data.train: builtin`, one task or a
`data.mixture` of several with sampling rates), parallel tables (`data.train`:
TSV/CSV/JSONL paths with `data.source_column` / `data.target_column`), or two
line-aligned files (`data.train_source` + `data.train_target`). Validation pairs
come from the matching validation keys, or else the last
`data.validation_fraction` of the training pairs. Bad records of the files (see
`kzoo.data.bad_records`) stop the run or are skipped and counted per config key
(`data.on_bad_record`).
"""

import dataclasses

from kzoo.data import builtin_translation, parallel_files
from kzoo.data.bad_records import BadRecords
from kzoo.data.text_files import resolve_files, split_examples
from kzoo.training.tasks.schema import BUILTIN


@dataclasses.dataclass
class ParallelSource:
    """Training pairs per task and validation pairs.

    Attributes:
        tasks: `[(prefix, pairs)]`; prefixes are already in the sources (the
            prefix is kept to report per-task metrics). One entry unless a mixture.
        rates: Sampling rate of each task (None: one task).
        validation: `[{"source", "target"}]` of every task, prefixed.
        bad_records: `{config key: BadRecords}` of the files read ("data.train",
            "data.validation"); empty for built-in tasks.
    """

    tasks: list
    rates: list | None
    validation: list
    bad_records: dict = dataclasses.field(default_factory=dict)

    @property
    def train(self):
        return [pair for _, pairs in self.tasks for pair in pairs]


def resolve_pairs(data):
    """Reads (or generates) the pairs a recipe's `data` section names."""
    if data["train"] == BUILTIN and not (data["train_source"] or data["train_target"]):
        return _builtin(data)
    records = {key: BadRecords.from_config(data, key) for key in ("data.train", "data.validation")}
    if data["train_source"] or data["train_target"]:
        train = _line_aligned(data, "train", records["data.train"])
        validation = (
            _line_aligned(data, "validation", records["data.validation"])
            if (data["validation_source"] or data["validation_target"])
            else None
        )
    else:
        train = read_tables(data, data["train"], "data.train", records["data.train"])
        validation = (
            read_tables(data, data["validation"], "data.validation", records["data.validation"])
            if data["validation"] is not None
            else None
        )
    if validation is None:
        del records["data.validation"]
        train, validation = split_examples(train, data["validation_fraction"])
    prefix = data["task_prefix"]
    train, validation = with_prefix(train, prefix), with_prefix(validation, prefix)
    return ParallelSource([(prefix or "", train)], None, validation, records)


def _line_aligned(data, split, records):
    source, target = data[f"{split}_source"], data[f"{split}_target"]
    if not (source and target):
        missing = f"data.{split}_target" if source else f"data.{split}_source"
        raise ValueError(
            f"{missing}: required with data.{split}_source/"
            f"data.{split}_target (two line-aligned files)"
        )
    return parallel_files.read_line_aligned(
        source, target, key=f"data.{split}", bad_records=records
    )


def read_tables(data, patterns, key, bad_records=None):
    """Pairs of every parallel table that `patterns` match (columns from `data`);
    bad records go to `bad_records` (default: the policy of `data`)."""
    records = bad_records or BadRecords.from_config(data, key)
    pairs = []
    for path in resolve_files(patterns, key):
        pairs += parallel_files.read_parallel_table(
            path,
            source_column=data["source_column"],
            target_column=data["target_column"],
            header=data["header"],
            file_format=data["format"],
            key=key,
            bad_records=records,
        )
    return pairs


def _builtin(data):
    mixture = data["mixture"] or {data["builtin_task"]: 1.0}
    tasks, validation = [], []
    for task in mixture:
        prefix = builtin_translation.TASK_PREFIXES[task] if data["mixture"] else None
        train = builtin_translation.text_to_text_examples(
            task, data["builtin_train_examples"], seed=data["seed"], split="train"
        )
        held_out = builtin_translation.text_to_text_examples(
            task, data["builtin_validation_examples"], seed=data["seed"], split="validation"
        )
        tasks.append((prefix or "", with_prefix(_dicts(train), prefix)))
        validation += with_prefix(_dicts(held_out), prefix)
    rates = [float(rate) for rate in mixture.values()] if data["mixture"] else None
    return ParallelSource(tasks, rates, validation)


def _dicts(pairs):
    return [{"source": source, "target": target} for source, target in pairs]


def with_prefix(pairs, prefix):
    """`pairs` with `"prefix: "` before each source (unchanged without a prefix)."""
    if not prefix:
        return pairs
    return [{**pair, "source": f"{prefix}: {pair['source']}"} for pair in pairs]
