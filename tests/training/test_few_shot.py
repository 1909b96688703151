"""Zero- and few-shot multiple-choice evaluation: task files, built-in tasks, the
scoring against known log-likelihoods, and a run against its export."""

import json
import math
import os
from unittest import mock

import keras
import numpy as np
import pytest
import tensorflow as tf

from kzoo.data.builtin_choice_tasks import builtin_choice_task
from kzoo.data.builtin_corpus import default_corpus
from kzoo.data.builtin_tasks import ungrammatical_positions
from kzoo.data.choice_tasks import ChoiceExample, ChoiceTask, read_choice_task
from kzoo.metrics.multiple_choice import (
    ChoiceRequest,
    ModelChoiceScorer,
    choice_requests,
    evaluate_choice_task,
    few_shot_contexts,
)
from kzoo.testing.tiny_runs import write_untrained_run
from kzoo.training.recipe import validate
from kzoo.training.run_directory import RunDirectory

VOCABULARY = 7


# --- A model whose log-likelihoods are known ------------------------------------------


class BigramStub:
    """Logits at position t depend on token t only: `TABLE[token]`."""

    end_token_id = 0
    TABLE = np.random.default_rng(0).normal(size=(VOCABULARY, VOCABULARY)).astype("float32")

    def __call__(self, inputs):
        return self.TABLE[np.asarray(inputs["token_ids"])]


class CharStub:
    """Each character is one token: `ord(c) % 6 + 1` (0 is the end token)."""

    def tokenize(self, texts):
        rows = [[ord(c) % 6 + 1 for c in t.decode()] for t in texts.numpy()]
        return tf.ragged.constant(rows, dtype=tf.int32, ragged_rank=1, inner_shape=())


def bigram_log_likelihood(context, continuation, keep=None):
    ids = [0] + [ord(c) % 6 + 1 for c in context + continuation]
    ids = ids[-keep:] if keep else ids
    table = BigramStub.TABLE.astype("float64")
    log_probs = table - np.log(np.exp(table).sum(-1, keepdims=True))
    pairs = list(zip(ids, ids[1:]))[-len(continuation) :]
    return sum(log_probs[a, b] for a, b in pairs)


def test_scores_are_the_continuations_log_likelihoods_in_any_batching():
    requests = [
        ChoiceRequest(0, 0, "abc", " d"),
        ChoiceRequest(0, 1, "abc", " defgh"),
        ChoiceRequest(1, 0, "", " x"),
        ChoiceRequest(1, 1, "a long context here", " y"),
    ]
    expected = [bigram_log_likelihood(r.context, r.continuation) for r in requests]
    for batch_size in (1, 3, 8):
        scores = ModelChoiceScorer(BigramStub(), CharStub(), batch_size=batch_size)(requests)
        np.testing.assert_allclose(scores, expected, rtol=1e-5)
    # A row longer than the context keeps its last tokens.
    scores = ModelChoiceScorer(BigramStub(), CharStub(), context=8)(requests)
    expected[3] = bigram_log_likelihood("a long context here", " y", keep=8)
    np.testing.assert_allclose(scores, expected, rtol=1e-5)
    with pytest.raises(ValueError, match="example 0, choice 1: the continuation is 6 tokens"):
        ModelChoiceScorer(BigramStub(), CharStub(), context=6)(requests)


def test_acc_takes_the_sum_and_acc_norm_divides_by_characters():
    examples = (
        ChoiceExample("q", ("a", "bbbbbb"), 1),
        ChoiceExample("q", ("cc", "d"), 0),
        ChoiceExample("q", ("e", "ff"), 0),
    )
    scores = [
        [-2.0, -6.0],  # acc: wrong (-2 > -6); per character -2 < -1: acc_norm right
        [-4.0, -2.0],  # acc: wrong; per character -2 == -2: a tie goes to the first, right
        [-1.0, -4.0],  # both right
    ]
    task = ChoiceTask("t", examples, (), "t.jsonl")

    def scorer(requests):
        return [scores[r.example][r.choice] for r in requests]

    result = evaluate_choice_task(task, scorer)
    assert (result["acc"], result["acc_norm"], result["examples"]) == (1 / 3, 1.0, 3)
    assert math.isclose(result["acc_stderr"], np.std([0, 0, 1], ddof=1) / math.sqrt(3))
    assert result["acc_norm_stderr"] == 0.0


# --- Few-shot contexts ----------------------------------------------------------------


def test_shots_are_train_examples_with_their_answer_a_blank_line_apart():
    train = tuple(ChoiceExample(f"c{i}", (f"a{i}", f"b{i}"), i % 2) for i in range(6))
    evaluated = tuple(ChoiceExample(f"q{i}", ("y", "n"), 0) for i in range(20))
    task = ChoiceTask("t", evaluated, train, "t.jsonl")
    contexts = few_shot_contexts(task, 2, seed=5)
    assert contexts == few_shot_contexts(task, 2, seed=5)
    assert contexts != few_shot_contexts(task, 2, seed=6)
    answers = {f"c{i} {'b' if i % 2 else 'a'}{i}" for i in range(6)}
    for number, context in enumerate(contexts):
        *shots, query = context.split("\n\n")
        assert query == f"q{number}" and len(set(shots)) == 2 and set(shots) <= answers
    assert few_shot_contexts(task, 0) == [f"q{i}" for i in range(20)]
    requests = choice_requests(task, 1, seed=5)
    assert [(r.example, r.choice, r.continuation) for r in requests[:2]] == [
        (0, 0, " y"),
        (0, 1, " n"),
    ]
    with pytest.raises(ValueError, match=r"t.jsonl has 6 train examples .* 7 shots need"):
        few_shot_contexts(task, 7)


# --- Task files -----------------------------------------------------------------------

GOOD = '{"context": "a", "choices": ["b", "c"], "label": 1}'


@pytest.mark.parametrize(
    "line, message",
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object, got list"),
        ('{"context": "a", "label": 0}', 'missing "choices"'),
        ('{"context": 3, "choices": ["b", "c"], "label": 0}', '"context": must be a string'),
        ('{"context": "a", "choices": ["b"], "label": 0}', '"choices": must be a list of at'),
        ('{"context": "a", "choices": ["b", ""], "label": 0}', "non-empty strings"),
        ('{"context": "a", "choices": ["b", "c"], "label": true}', r'"label": must be an'),
        ('{"context": "a", "choices": ["b", "c"], "label": -1}', r"in \[0, 2\)"),
        ('{"context": "a", "choices": ["b", "c"], "label": 0, "split": "dev"}', '"split"'),
    ],
)
def test_a_bad_line_names_the_file_line_and_key(tmp_path, line, message):
    path = tmp_path / "task.jsonl"
    path.write_text(f"{GOOD}\n\n{line}\n")
    with pytest.raises(ValueError, match=message) as caught:
        read_choice_task(str(path))
    assert str(caught.value).startswith(f"{path}:3: ")


def test_a_task_file_reads_its_splits(tmp_path):
    path = tmp_path / "animals.jsonl"
    train = '{"context": "x", "choices": ["y", "z"], "label": 0, "split": "train", "id": 7}'
    path.write_text(f"{GOOD}\n{train}\n")
    task = read_choice_task(str(path))
    assert task.name == "animals"
    assert task.examples == (ChoiceExample("a", ("b", "c"), 1, 1),)
    assert task.train == (ChoiceExample("x", ("y", "z"), 0, 2),)
    path.write_text(f"{train}\n")
    with pytest.raises(ValueError, match="animals.jsonl: no examples to evaluate"):
        read_choice_task(str(path))


# --- Built-in tasks -------------------------------------------------------------------


def test_builtin_tasks_are_deterministic_and_their_labels_right():
    corpus = default_corpus()
    grammar = builtin_choice_task("grammar", num_train=5, num_validation=30)
    assert grammar == builtin_choice_task("grammar", num_train=5, num_validation=30)
    assert grammar != builtin_choice_task("grammar", num_train=5, num_validation=30, seed=1)
    for example in grammar.examples + grammar.train:
        for index, choice in enumerate(example.choices):
            symbols = corpus.parse(f"{example.context} {choice}")
            assert bool(ungrammatical_positions(symbols)) == (index != example.label)
    completion = builtin_choice_task("completion", num_train=5, num_validation=30)
    symbols, matrix = corpus.symbols, corpus.transition_matrix
    for example in completion.examples:
        previous = symbols.index(corpus.parse(example.context)[-1])
        probabilities = [matrix[previous, symbols.index(c)] for c in example.choices]
        assert [p > 0 for p in probabilities] == [i == example.label for i in range(4)]
    assert {e.label for e in completion.examples} == {0, 1, 2, 3}
    with pytest.raises(ValueError, match="builtin:grammar, builtin:completion"):
        builtin_choice_task("hellaswag")


# --- A run and its export -------------------------------------------------------------


@pytest.fixture(scope="module")
def run_and_export(tmp_path_factory):
    """An untrained tiny GPT with room for a shot of the built-in tasks, exported
    without assets.extra (its reference outputs are not needed here)."""
    from kzoo.export import export_run, saved_model

    directory = tmp_path_factory.mktemp("few_shot")
    run_dir = str(directory / "run")
    keras.utils.set_random_seed(0)
    config = validate(
        {
            "model": {
                "family": "gpt",
                "num_layers": 1,
                "num_heads": 2,
                "hidden_dim": 16,
                "intermediate_dim": 32,
                "max_sequence_length": 256,
            },
            "tokenizer": {"kind": "char"},
            "data": {"sequence_length": 16},
            "export": {"name": "few_shot", "max_new_tokens": 8, "max_prompt_tokens": 16},
        },
        name="few_shot",
    )
    write_untrained_run(run_dir, config)
    with mock.patch.object(saved_model, "write_assets_extra", lambda *args: None):
        path = export_run(run_dir, out_dir=str(directory / "saved_models"))
    return run_dir, path


def small(name, examples=12):
    task = builtin_choice_task(name, num_train=4, num_validation=examples)
    return ChoiceTask(name, task.examples, task.train, task.source)


def test_a_run_and_its_saved_model_score_alike(run_and_export):
    from kzoo.export.choice_scoring import SavedModelChoiceScorer, evaluate_saved_model_choices
    from kzoo.training.evaluate import evaluate_choice_tasks

    run_dir, path = run_and_export
    tasks = [small("grammar"), small("completion")]
    from_run = evaluate_choice_tasks(run_dir, tasks, shots=(0, 1), seed=3)
    from_export = evaluate_saved_model_choices(path, tasks, shots=(0, 1), seed=3)
    assert from_run["results"] == from_export["results"]
    assert [(r["task"], r["shots"]) for r in from_run["results"]] == [
        ("grammar", 0),
        ("grammar", 1),
        ("completion", 0),
        ("completion", 1),
    ]
    # The log-likelihoods themselves agree, not just the argmax.
    run = RunDirectory(run_dir)
    model = run.load_model()
    requests = choice_requests(tasks[1], 1, seed=3)
    np.testing.assert_allclose(
        ModelChoiceScorer(model, run.tokenizer(model))(requests),
        SavedModelChoiceScorer(path)(requests),
        rtol=1e-4,
    )
    written = run.few_shot_results()
    assert written["completion/1shot"] == from_run["results"][3]


def test_cli_scores_tasks_and_refuses_bad_ones(run_and_export, tmp_path, capsys):
    from kzoo.cli import main

    run_dir, path = run_and_export
    task_file = tmp_path / "mine.jsonl"
    task_file.write_text('{"context": "zo", "choices": ["kufe", "a"], "label": 0}\n')
    status = main(["evaluate", run_dir, "--tasks", str(task_file), "--shots", "0", "--json"])
    out = capsys.readouterr().out
    assert status == 0
    result = json.loads(out.strip().splitlines()[-1])
    assert result["results"][0]["task"] == "mine" and result["results"][0]["examples"] == 1
    assert main(["evaluate", path, "--tasks", str(task_file)]) == 0
    assert "mine" in capsys.readouterr().out.splitlines()[-1]
    for args, message in [
        (["--tasks", "builtin:nope"], "unknown built-in task builtin:nope"),
        (["--tasks", str(tmp_path / "none.jsonl")], "none.jsonl: no such file"),
        (["--tasks", str(task_file), "--shots", "-1"], "--shots: must be >= 0"),
        (["--tasks", str(task_file), "--shots", "1"], "mine.jsonl has 0 train examples"),
    ]:
        assert main(["evaluate", run_dir, *args]) == 2
        assert message in capsys.readouterr().err
    assert os.path.isfile(RunDirectory(run_dir).few_shot_path)
