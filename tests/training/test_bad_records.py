"""`data.on_bad_record` through a task's make_data: skip counts the bad lines in
`DataPlan.bad_records` and gives the batches of the files without them; stop names
file:line before anything is read into a pipeline."""

import numpy as np
import pytest

from kzoo.data.causal_lm import causal_lm_dataset
from kzoo.tokenizers import load_tokenizer, train_sentencepiece
from kzoo.training.recipe import validate
from kzoo.training.tasks.registry import task_for

LINES = [f"line {i}: the quick brown fox jumps over the lazy dog\n" for i in range(300)]


def write_corpora(directory):
    """Corrupt train/validation files and their clean twins."""
    train = LINES[:200]
    validation = LINES[200:]
    corrupt_train = (
        train[:60] + ["bad \udcff line\n"] + train[60:150] + ["x" * 300 + "\n"] + train[150:]
    )
    corrupt_validation = validation[:50] + ["\udcfe\n"] + validation[50:]
    paths = {}
    for name, lines in (
        ("train", corrupt_train),
        ("validation", corrupt_validation),
        ("clean_train", train),
        ("clean_validation", validation),
    ):
        paths[name] = directory / f"{name}.txt"
        paths[name].write_bytes("".join(lines).encode("utf-8", "surrogateescape"))
    return {name: str(path) for name, path in paths.items()}


def config(train, validation, policy):
    return validate(
        {
            "model": {
                "family": "gpt",
                "num_layers": 1,
                "num_heads": 1,
                "hidden_dim": 8,
                "intermediate_dim": 16,
                "max_sequence_length": 32,
            },
            "tokenizer": {"kind": "char", "vocab_size": None},
            "data": {
                "train": train,
                "validation": validation,
                "sequence_length": 16,
                "batch_size": 4,
                "on_bad_record": policy,
                "max_line_bytes": 200,
            },
            "train": {"steps": 10, "validation_steps": 3, "sample_max_new_tokens": 8},
            "export": {"max_new_tokens": 8, "max_prompt_tokens": 16},
        }
    )


def plan_of(config, run_dir):
    task = task_for(config)
    task.resolve_data()
    run_dir.mkdir()
    tokenizer = task.make_tokenizer(str(run_dir))
    return tokenizer, task.make_data(tokenizer)


def test_skip_counts_and_gives_the_clean_batches_stop_names_file_line(tmp_path):
    paths = write_corpora(tmp_path)
    tokenizer, plan = plan_of(
        config(paths["train"], paths["validation"], "skip"), tmp_path / "skip"
    )
    records = plan.bad_records
    assert {key: r.count for key, r in records.items()} == {"data.train": 2, "data.validation": 1}
    assert [location.split(": ")[0] for location in records["data.train"].locations] == [
        f"{paths['train']}:61",
        f"{paths['train']}:152",
    ]
    assert (
        records["data.validation"]
        .summary()
        .startswith(
            f"data.validation: skipped 1 bad record(s), first: {paths['validation']}:51: "
            "invalid UTF-8"
        )
    )

    # The tokenizer learned the clean text; the validation batches are the clean file's.
    train_sentencepiece(files=paths["clean_train"], model_type="char", output_dir=str(tmp_path))
    clean_tokenizer = load_tokenizer(str(tmp_path))
    assert tokenizer.vocabulary_size == clean_tokenizer.vocabulary_size
    clean = causal_lm_dataset(tokenizer, 16, 4, files=paths["clean_validation"], shuffle=False)
    assert plan.validation_steps == 3
    batches = list(plan.validation.take(3))
    clean_batches = list(clean.take(3))
    for (features, labels), (clean_features, clean_labels) in zip(batches, clean_batches):
        np.testing.assert_array_equal(features["token_ids"], clean_features["token_ids"])
        np.testing.assert_array_equal(labels, clean_labels)

    with pytest.raises(ValueError, match=f"^{paths['train']}:61: invalid UTF-8 at byte"):
        task_for(config(paths["train"], paths["validation"], "stop")).resolve_data()


def test_the_trainer_logs_skipped_counts_and_writes_them_to_tensorboard(tmp_path, capsys):
    from kzoo.data.bad_records import BadRecords
    from kzoo.testing import tensorboard_tags
    from kzoo.training.trainer import report_bad_records

    train = BadRecords("skip", key="data.train")
    train.found("a.txt", 3, "invalid UTF-8")
    records = {"data.train": train, "data.validation": BadRecords("skip", key="data.validation")}
    event_dir = tmp_path / "tensorboard" / "train"
    assert report_bad_records(records, str(event_dir)) == {"data.train": 1, "data.validation": 0}
    assert capsys.readouterr().out.startswith(
        "data.train: skipped 1 bad record(s), first: a.txt:3: invalid UTF-8"
    )
    assert {
        "data/skipped_records/data.train",
        "data/skipped_records/data.validation",
    } <= tensorboard_tags(tmp_path)
