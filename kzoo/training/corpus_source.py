"""Where a run's text comes from: the built-in corpus, files, or a split of files."""

import dataclasses

from kzoo.data import text_files
from kzoo.data.builtin_corpus import default_corpus
from kzoo.training.recipe import BUILTIN


@dataclasses.dataclass
class CorpusSource:
    """Train and validation documents as keyword arguments of the pipelines
    (`{"files": [...]}` or `{"texts": [...]}`); `builtin` is the generating corpus
    when the text is the built-in one (it knows the true entropy rate)."""

    train: dict
    validation: dict
    builtin: object = None


def builtin_documents(data_config):
    corpus = default_corpus()
    seed = data_config["seed"]
    train = corpus.documents(data_config["builtin_train_documents"], seed=2 * seed)
    validation = corpus.documents(
        data_config["builtin_validation_documents"], seed=2 * seed + 1
    )
    return corpus, train, validation


def resolve_corpus(data_config):
    """Resolves `data.train` / `data.validation` into a `CorpusSource`.

    With `validation: null`, non-builtin text is split: each training file's last
    `validation_fraction` of characters is held out (files are read into memory;
    give `data.validation` for corpora that do not fit).
    """
    if data_config["train"] == BUILTIN:
        corpus, train, validation = builtin_documents(data_config)
        if data_config["validation"] not in (None, BUILTIN):
            files = text_files.resolve_text_files(data_config["validation"], "data.validation")
            return CorpusSource({"texts": train}, {"files": files}, None)
        return CorpusSource({"texts": train}, {"texts": validation}, corpus)
    train_files = text_files.resolve_text_files(data_config["train"], "data.train")
    if data_config["validation"] is not None:
        validation_files = text_files.resolve_text_files(
            data_config["validation"], "data.validation"
        )
        return CorpusSource({"files": train_files}, {"files": validation_files})
    fraction = data_config["validation_fraction"]
    if fraction == 0:
        return CorpusSource({"files": train_files}, {})
    pieces = [text_files.split_text_file(path, fraction) for path in train_files]
    return CorpusSource(
        {"texts": [train for train, _ in pieces]},
        {"texts": [validation for _, validation in pieces if validation]},
    )
