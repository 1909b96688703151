"""Where a task's text comes from: corpora (files or built-in) for language
modelling and span corruption; parallel pairs, task prefixes and text-to-text
mixtures for seq2seq.

- Corpora (`resolve_corpus` -> `CorpusSource`): the built-in corpus, text files,
  or a split of text files.
- Pairs (`resolve_pairs` -> `ParallelSource`): the built-in generated tasks
  (`data.train: builtin`, one task or a `data.mixture` of several with sampling
  rates), parallel tables (`data.train`: TSV/CSV/JSONL paths with
  `data.source_column` / `data.target_column`), or two line-aligned files
  (`data.train_source` + `data.train_target`). Validation pairs come from the
  matching validation keys, or else the last `data.validation_fraction` of the
  training pairs.
- Text-to-text (`add_prefix`, `mixture_dataset`): T5-style task prefixes written
  in front of the sources (`"translate: " + source`), so one model can tell the
  tasks apart, and rate-weighted sampling of tasks.

Bad records (`kzoo.data.bad_records`): every file is streamed once through
`BadRecords` when it is resolved: with `data.on_bad_record: stop` a bad line (not
UTF-8, longer than `data.max_line_bytes`, a bad table row) stops the run with
`file:line`; with `skip` it is counted per config key, and the text pipelines read
the files with `max_line_bytes`, which drops the same lines in the graph
(`kzoo.data.causal_lm.document_dataset`).
"""

import contextlib
import dataclasses
import numbers
import os
import tempfile

import tensorflow as tf

from kzoo.data import builtin_translation, parallel_files, text_files
from kzoo.data.bad_records import BadRecords, scan_lines
from kzoo.data.builtin_corpus import default_corpus
from kzoo.training.tasks.schema import BUILTIN

# === Corpora: language modelling and span corruption ===


@dataclasses.dataclass
class CorpusSource:
    """Train and validation documents as keyword arguments of the pipelines
    (`{"files": [...]}`, plus `"max_line_bytes"` when bad lines of the files are to
    be dropped, or `{"texts": [...]}`); `builtin` is the generating corpus when the
    text is the built-in one (it knows the true entropy rate); `bad_records` maps
    the config keys whose files were read to their `BadRecords`."""

    train: dict
    validation: dict
    builtin: object = None
    bad_records: dict = dataclasses.field(default_factory=dict)

    @contextlib.contextmanager
    def tokenizer_documents(self):
        """The training documents for tokenizer training, which reads whole files:
        `{"files": [...]}` or `{"texts": [...]}`, each file with skipped bad lines
        replaced by a temporary copy without them."""
        files = self.train.get("files")
        records = self.bad_records.get("data.train")
        if files is None or records is None or not records.paths:
            yield {name: self.train[name] for name in ("files", "texts") if name in self.train}
            return
        with tempfile.TemporaryDirectory(prefix="kzoo-corpus-") as directory:
            copies = []
            for index, path in enumerate(files):
                if path in records.paths:
                    copy = os.path.join(directory, f"{index}-{os.path.basename(path)}")
                    path = _copy_good_lines(path, copy, records.max_line_bytes)
                copies.append(path)
            yield {"files": copies}


def resolve_corpus(data_config):
    """Resolves `data.train` / `data.validation` into a `CorpusSource`.

    With `validation: null`, non-builtin text is split: each training file's last
    `validation_fraction` of characters (after leaving out skipped bad lines) is
    held out (files are read into memory; give `data.validation` for corpora that
    do not fit).
    """
    train_records = BadRecords.from_config(data_config, "data.train")
    if data_config["train"] == BUILTIN:
        corpus, train, validation = _builtin_corpus(data_config)
        if data_config["validation"] not in (None, BUILTIN):
            records = BadRecords.from_config(data_config, "data.validation")
            files = _files(data_config["validation"], records)
            return CorpusSource({"texts": train}, files, None, {records.key: records})
        return CorpusSource({"texts": train}, {"texts": validation}, corpus)
    if data_config["validation"] is not None:
        records = BadRecords.from_config(data_config, "data.validation")
        train = _files(data_config["train"], train_records)
        return CorpusSource(
            train,
            _files(data_config["validation"], records),
            bad_records={train_records.key: train_records, records.key: records},
        )
    fraction = data_config["validation_fraction"]
    if fraction == 0:
        return CorpusSource(
            _files(data_config["train"], train_records),
            {},
            bad_records={train_records.key: train_records},
        )
    train_files = text_files.resolve_text_files(data_config["train"], "data.train", validate=False)
    pieces = [
        text_files.split_text_file(path, fraction, bad_records=train_records)
        for path in train_files
    ]
    return CorpusSource(
        {"texts": [train for train, _ in pieces]},
        {"texts": [validation for _, validation in pieces if validation]},
        bad_records={train_records.key: train_records},
    )


def _builtin_corpus(data_config):
    """`(corpus, train documents, validation documents)` of the built-in corpus."""
    corpus = default_corpus()
    seed = data_config["seed"]
    train = corpus.documents(data_config["builtin_train_documents"], seed=2 * seed)
    validation = corpus.documents(data_config["builtin_validation_documents"], seed=2 * seed + 1)
    return corpus, train, validation


def _files(patterns, records):
    """`{"files": [...]}` of `patterns`, each file checked by `records`."""
    files = text_files.resolve_text_files(patterns, records.key, bad_records=records)
    if records.count:
        return {"files": files, "max_line_bytes": records.max_line_bytes}
    return {"files": files}


def _copy_good_lines(path, copy, max_line_bytes):
    with open(copy, "w", encoding="utf-8", newline="") as file:
        for _, text, _ in scan_lines(path, max_line_bytes):
            if text is not None:
                file.write(text)
    return copy


# === Parallel pairs: seq2seq and text-to-text ===


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
        return _builtin_pairs(data)
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
        train, validation = text_files.split_examples(train, data["validation_fraction"])
    prefix = data["task_prefix"]
    train, validation = with_prefix(train, prefix), with_prefix(validation, prefix)
    return ParallelSource([(prefix or "", train)], None, validation, records)


def read_tables(data, patterns, key, bad_records=None):
    """Pairs of every parallel table that `patterns` match (columns from `data`);
    bad records go to `bad_records` (default: the policy of `data`)."""
    records = bad_records or BadRecords.from_config(data, key)
    pairs = []
    for path in text_files.resolve_files(patterns, key):
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


def _builtin_pairs(data):
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


# === Task prefixes and mixtures ===


def _head(prefix):
    """What a task prefix writes in front of a source."""
    return f"{prefix}: "


def with_prefix(pairs, prefix):
    """`pairs` (a list of dicts) with `"prefix: "` before each source (unchanged
    without a prefix); `add_prefix` does the same to a dataset."""
    if not prefix:
        return pairs
    return [{**pair, "source": f"{_head(prefix)}{pair['source']}"} for pair in pairs]


def add_prefix(dataset, prefix):
    """Writes `prefix + ": "` in front of every `source` (nothing for an empty prefix).

    Args:
        dataset: A dataset of dicts with a scalar `tf.string` `"source"`; other keys
            are kept as they are.
        prefix: The task prefix, a `str`; `""` or `None` leaves sources unchanged.

    Returns:
        A `tf.data.Dataset` with the same structure.

    Example:
    >>> pairs = tf.data.Dataset.from_tensor_slices({"source": ["hi"], "target": ["salut"]})
    >>> [e["source"].numpy() for e in add_prefix(pairs, "translate")]
    [b'translate: hi']
    """
    if not prefix:
        return dataset
    head = tf.constant(_head(prefix))

    def prefixed(example):
        example = dict(example)
        example["source"] = tf.strings.join([head, example["source"]])
        return example

    return dataset.map(prefixed, num_parallel_calls=tf.data.AUTOTUNE)


def _weights(prefixes, rates):
    """Sampling weights from `rates` (equal when None), checked and normalised."""
    if rates is None:
        return [1.0 / len(prefixes)] * len(prefixes)
    rates = list(rates)
    if len(rates) != len(prefixes):
        raise ValueError(
            f"data.mixture: got {len(rates)} rates for {len(prefixes)} tasks "
            f"{prefixes!r}; give one rate per task"
        )
    for prefix, rate in zip(prefixes, rates):
        if not isinstance(rate, numbers.Real) or not rate >= 0:  # NaN fails too
            raise ValueError(
                f"data.mixture: the rate of task {prefix!r} must be a number >= 0, got {rate!r}"
            )
    total = float(sum(rates))
    if total <= 0:
        raise ValueError(
            f"data.mixture: all rates are zero ({rates!r} for tasks {prefixes!r}); "
            "give at least one task a positive rate"
        )
    return [rate / total for rate in rates]


def mixture_dataset(tasks, rates=None, seed=0):
    """Samples a mixture of prefixed text-to-text tasks.

    Each example is drawn from task `i` with probability `rates[i] / sum(rates)`
    (`tf.data.Dataset.sample_from_datasets`); the order is the same for the same
    seed. Only `"source"` and `"target"` are kept, so tasks may carry other keys.
    Sampling goes on while any task has examples: repeat the tasks (the usual
    case) to keep the proportions for an unbounded stream.

    Args:
        tasks: A list of `(prefix, dataset)` pairs, each dataset of
            `{"source", "target"}` scalar strings.
        rates: One non-negative number per task; `None` samples tasks equally.
        seed: The sampling seed, an int.

    Returns:
        A `tf.data.Dataset` of `{"source", "target"}` scalar `tf.string`.

    Example:
    >>> def task(source):
    ...     return tf.data.Dataset.from_tensors({"source": source, "target": "x"}).repeat()
    >>> mixed = mixture_dataset([("a", task("1")), ("b", task("2"))], rates=[1, 0])
    >>> [e["source"].numpy() for e in mixed.take(2)]
    [b'a: 1', b'a: 1']
    """
    tasks = list(tasks)
    if not tasks:
        raise ValueError("data.mixture: expected at least one (prefix, dataset) task, got []")
    for task in tasks:
        if not (
            isinstance(task, (tuple, list))
            and len(task) == 2
            and isinstance(task[1], tf.data.Dataset)
        ):
            raise ValueError(
                f"data.mixture: expected (prefix, tf.data.Dataset) pairs, got {task!r}"
            )
    prefixes = [prefix for prefix, _ in tasks]
    weights = _weights(prefixes, rates)

    def source_and_target(example):
        return {"source": example["source"], "target": example["target"]}

    datasets = [add_prefix(dataset, prefix).map(source_and_target) for prefix, dataset in tasks]
    return tf.data.Dataset.sample_from_datasets(datasets, weights=weights, seed=seed)
