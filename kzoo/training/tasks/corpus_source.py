"""Where a run's text comes from: the built-in corpus, files, or a split of files.

Every file is streamed once through `kzoo.data.bad_records.BadRecords` when it is
resolved: with `data.on_bad_record: stop` a bad line (not UTF-8, longer than
`data.max_line_bytes`) stops the run with `file:line`; with `skip` it is counted,
and the pipelines read the files with `max_line_bytes`, which drops the same lines
in the graph (`kzoo.data.causal_lm.document_dataset`).
"""

import contextlib
import dataclasses
import os
import tempfile

from kzoo.data import text_files
from kzoo.data.bad_records import BadRecords, scan_lines
from kzoo.data.builtin_corpus import default_corpus
from kzoo.training.tasks.schema import BUILTIN


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


def builtin_documents(data_config):
    corpus = default_corpus()
    seed = data_config["seed"]
    train = corpus.documents(data_config["builtin_train_documents"], seed=2 * seed)
    validation = corpus.documents(data_config["builtin_validation_documents"], seed=2 * seed + 1)
    return corpus, train, validation


def resolve_corpus(data_config):
    """Resolves `data.train` / `data.validation` into a `CorpusSource`.

    With `validation: null`, non-builtin text is split: each training file's last
    `validation_fraction` of characters (after leaving out skipped bad lines) is
    held out (files are read into memory; give `data.validation` for corpora that
    do not fit).
    """
    train_records = BadRecords.from_config(data_config, "data.train")
    if data_config["train"] == BUILTIN:
        corpus, train, validation = builtin_documents(data_config)
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
