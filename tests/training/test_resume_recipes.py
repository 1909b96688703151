"""Every shipped recipe, with its default monitors and samples, interrupted
mid-epoch and resumed: the same weights and the same TensorBoard events as an
uninterrupted run.

Only sizes and steps are shrunk: 4 steps in epochs of 2, a signal after step 1,
so the resume runs two `fit` calls (the rest of epoch 0, then epoch 1), as a run
interrupted mid-epoch does (`kzoo.training.resume.fit_phases`). A monitor that
fails warns, and pytest.ini turns that warning into an error.
"""

import glob
import os
import signal

import pytest

from kzoo.testing import ROOT, TINY_OVERRIDES, assert_same_weights, interrupt_at, tensorboard_events
from kzoo.testing.tiny_recipes import TINY_BERT_OVERRIDES

STEPS = ["train.steps=4", "train.steps_per_epoch=2", "train.warmup_steps=1"]
EPOCHS = ["train.epochs=2", "train.warmup_steps=1"]  # recipes that count epochs
GPT = [o for o in TINY_OVERRIDES if not o.startswith(("train.steps", "train.warmup"))]
LSTM = [
    "model.embedding_dim=8",
    "model.hidden_dim=16",
    *[o for o in GPT if o.startswith(("tokenizer.", "data.", "train."))],
]
BERT = TINY_BERT_OVERRIDES
BERT_FINE_TUNE = (
    BERT
    + EPOCHS
    + [  # 16 examples: 2 batches an epoch
        "data.builtin_train_examples=16",
        "data.builtin_validation_examples=8",
    ]
)
SEQ2SEQ = [
    "model.num_layers=1",
    "model.num_heads=2",
    "model.hidden_dim=16",
    "model.intermediate_dim=32",
    "tokenizer.vocab_size=320",
    "data.batch_size=8",
    "data.builtin_train_examples=64",
    "data.builtin_validation_examples=16",
    "data.eval_examples=2",
    *STEPS,
]
T5 = [o for o in SEQ2SEQ if not o.startswith("model.num_heads")] + [
    "model.size=null",
    "model.num_heads=2",
]

SHAKESPEARE_CHAR = [  # data.train: the `shakespeare` fixture's file
    "model.num_layers=1",
    "model.hidden_dim=16",
    "model.intermediate_dim=32",
    "data.sequence_length=16",
    "data.batch_size=8",
    "train.validation_steps=2",
    "train.sample_max_new_tokens=8",
    "train.log_every=2",
    *STEPS,
]

RECIPES = {
    "gpt_tiny": GPT + STEPS,
    "gpt_shakespeare_char": SHAKESPEARE_CHAR,
    # Issue 21's modern decoder, at the GPT recipes' tiny sizes (4 query heads of
    # width 4 sharing 2 key/value heads).
    "llama_tiny": GPT + STEPS,
    "llama_shakespeare_char": SHAKESPEARE_CHAR,
    "lstm_tiny": LSTM + STEPS,
    "bert_tiny_pretrain": BERT
    + STEPS
    + ["data.builtin_train_documents=40", "data.builtin_validation_documents=4"],
    "bert_tiny_classify": BERT_FINE_TUNE,
    "bert_tiny_tagging": BERT_FINE_TUNE,
    "bert_tiny_qa": BERT
    + STEPS
    + [  # Windows per example vary: steps, not epochs.
        "data.builtin_train_examples=8",
        "data.builtin_validation_examples=2",
        "data.max_query_tokens=8",
        "data.doc_stride=8",
        "data.max_answer_tokens=4",
    ],
    "seq2seq_tiny": SEQ2SEQ,
    "t5_tiny_pretrain": T5
    + [
        "data.builtin_train_documents=40",
        "data.builtin_validation_documents=4",
        "data.num_sentinels=8",
    ],
    # Without the length buckets (each bucket traces the train step again); the
    # seq2seq_tiny run resumes with them.
    "t5_tiny_finetune": T5 + ["data.builtin_train_examples=64", "data.bucket_boundaries=null"],
    # The real-size recipes (issue 20) at the same tiny sizes; those that default
    # to the user's files train on built-in data (or the `shakespeare` fixture's).
    "gpt_small_text": GPT + STEPS,
    "bert_small_classify": BERT_FINE_TUNE,
    "bert_small_tagging": BERT_FINE_TUNE,
    "bert_small_qa": BERT
    + STEPS
    + [
        "data.builtin_train_examples=8",
        "data.builtin_validation_examples=2",
        "data.max_query_tokens=8",
        "data.doc_stride=8",
        "data.max_answer_tokens=4",
    ],
    "seq2seq_small_translate": SEQ2SEQ + ["data.train=builtin", "data.bucket_boundaries=null"],
    "t5_small_finetune": T5
    + ["data.train=builtin", "data.builtin_train_examples=64", "data.bucket_boundaries=null"],
}
# Recipes whose data.train is a text file: the `shakespeare` fixture's.
TEXT_FILE_RECIPES = ("gpt_shakespeare_char", "gpt_small_text", "llama_shakespeare_char")


def test_every_shipped_recipe_is_covered():
    shipped = {
        os.path.basename(path)[: -len(".yaml")]
        for path in glob.glob(os.path.join(ROOT, "recipes", "*.yaml"))
    }
    assert shipped == set(RECIPES)


@pytest.fixture(scope="module")
def shakespeare(tmp_path_factory):
    """A small text file for the character-level recipe (its default file,
    tinyshakespeare, is not in the repository)."""
    from kzoo.data import builtin_tasks

    path = tmp_path_factory.mktemp("data") / "shakespeare.txt"
    lines = [" ".join(document) for document in builtin_tasks.pretraining_documents(40)]
    path.write_text("ROMEO:\n" + "\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def _train(recipe, run_dir, shakespeare):
    from kzoo.training.recipe import load_recipe
    from kzoo.training.trainer import train

    overrides = RECIPES[recipe]
    if recipe in TEXT_FILE_RECIPES:
        overrides = overrides + [f"data.train={shakespeare}"]
    config = load_recipe(os.path.join(ROOT, "recipes", f"{recipe}.yaml"), overrides)
    return train(config, str(run_dir), verbose=0)


# CI resumes one recipe of each kind of run (the causal-LM and BERT fine-tuning
# tasks, with their epoch-end writers: samples, task metrics), within the suite's
# time budget (the seq2seq task is resumed in test_seq2seq_runs.py); `make test-recipes`
# (KZOO_ALL_RECIPES=1) resumes all of them. The others share their task classes
# or their resume path with these: gpt_shakespeare_char (gpt_tiny with characters;
# llama_tiny and llama_shakespeare_char the same task with another backbone,
# trained end to end in test_llama_runs.py), lstm_tiny (gpt_tiny's causal-LM task
# and resume path with the LSTM model; in CI the LSTM takes a training step with
# the task's loss in test_precision.py::test_one_xla_step_at_mixed_float16[lstm],
# its model is tests/models/test_lstm.py's subject, and an LSTM run exports and
# passes check-serving in tests/export/test_export_lstm.py), bert_tiny_classify and
# bert_tiny_tagging (BERT fine-tuning, as QA), bert_tiny_pretrain (its seeded
# masking is tests/data/test_bert_pipelines.py's subject), seq2seq_tiny,
# t5_tiny_pretrain and t5_tiny_finetune (the seq2seq task, resumed in
# test_seq2seq_runs.py; translation tables are written there too), and the real-size recipes of issue 20 (the same
# task classes at other sizes).
IN_CI = ("gpt_tiny", "bert_tiny_qa")
ALL_RECIPES = os.environ.get("KZOO_ALL_RECIPES") == "1"


# Each recipe trains its own runs (no xdist group: the workers share them out).
@pytest.mark.slow
@pytest.mark.parametrize(
    "recipe",
    [
        recipe
        if recipe in IN_CI
        else pytest.param(
            recipe,
            marks=pytest.mark.skipif(
                not ALL_RECIPES, reason="make test-recipes (KZOO_ALL_RECIPES=1) resumes it"
            ),
        )
        for recipe in sorted(RECIPES)
    ],
)
def test_recipe_interrupted_mid_epoch_resumes_to_the_uninterrupted_run(
    recipe, tmp_path, monkeypatch, shakespeare
):
    from kzoo.training.resume import TrainingInterrupted

    reference = _train(recipe, tmp_path / "reference", shakespeare)
    assert reference["steps"] == 4 and len(reference["history"]["loss"]) == 2

    interrupt_at(monkeypatch, {1: signal.SIGTERM})
    with pytest.raises(TrainingInterrupted):
        _train(recipe, tmp_path / "run", shakespeare)
    resumed = _train(recipe, tmp_path / "run", shakespeare)

    assert resumed["resumed_from_step"] == 1 and resumed["steps"] == 4
    assert resumed["history"].keys() == reference["history"].keys()
    assert_same_weights(tmp_path / "reference", tmp_path / "run")
    # Every monitor wrote what it writes uninterrupted, the epoch after the
    # resume's second `fit` included.
    expected = tensorboard_events(tmp_path / "reference" / "tensorboard")
    assert expected["train", "epoch_loss"] == [0, 1]
    assert tensorboard_events(tmp_path / "run" / "tensorboard") == expected
