"""kzoo.export: an LSTM run (no `generate` or `score` methods) exports too."""

import json

import numpy as np
import pytest
import tensorflow as tf

from kzoo.export import export_run, load_for_export

# One worker builds the exports once: session fixtures, tests kept together.
pytestmark = pytest.mark.xdist_group("lstm_export")

PROMPTS = ["", "ta", "molan teriv"]


@pytest.fixture(scope="session")
def exported(make_run, tmp_path_factory):
    run_dir = make_run("lstm")
    path = export_run(run_dir, out_dir=str(tmp_path_factory.mktemp("saved_models")))
    return run_dir, path


@pytest.fixture(scope="session")
def keras_model(exported):
    return load_for_export(exported[0])


@pytest.fixture(scope="session")
def served(exported):
    return tf.saved_model.load(exported[1]).signatures


def forward_logits(model, ids):
    ids = np.asarray([ids], "int32")
    return np.asarray(model({"token_ids": ids, "padding_mask": np.ones_like(ids)}))[0]


def greedy_by_full_forward_passes(model, tokenizer, prompt, max_new_tokens):
    """Greedy decoding the slow, obvious way: argmax of a full pass per token."""
    ids = [model.end_token_id] + tokenizer.tokenize(prompt).numpy().tolist()
    generated = []
    for _ in range(max_new_tokens):
        token = int(forward_logits(model, ids + generated)[-1].argmax())
        if token == model.end_token_id:
            break
        generated.append(token)
    return tokenizer.detokenize(generated or [0]).numpy().decode("utf-8"), len(generated)


def test_greedy_generation_equals_full_forward_passes(served, keras_model):
    model, tokenizer = keras_model
    out = served["generate"](
        prompts=tf.constant(PROMPTS),
        max_new_tokens=tf.constant([8]),
        temperature=tf.constant([0.0]),
        top_k=tf.constant([0]),
        top_p=tf.constant([1.0]),
        seed=tf.constant([0]),
    )
    expected = [greedy_by_full_forward_passes(model, tokenizer, p, 8) for p in PROMPTS]
    assert [v.decode("utf-8") for v in out["generated"].numpy()] == [e[0] for e in expected]
    assert out["token_count"].numpy().tolist() == [e[1] for e in expected]


def test_score_equals_log_softmax_of_the_logits(served, keras_model):
    model, tokenizer = keras_model
    texts = ["ta molan", "", "x"]  # "x" is not in the corpus alphabet: <unk>.
    out = served["score"](texts=tf.constant(texts))
    for text, score, count in zip(texts, out["log_likelihood"].numpy(), out["num_tokens"].numpy()):
        ids = [model.end_token_id] + tokenizer.tokenize(text).numpy().tolist()
        logits = forward_logits(model, ids).astype("float64")
        log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        expected = sum(log_probs[t, ids[t + 1]] for t in range(len(ids) - 1))
        np.testing.assert_allclose(score, expected, rtol=1e-4, atol=1e-6)
        assert count == len(ids) - 1


def test_export_records_the_lstm_and_its_unbounded_context(exported):
    info = json.load(open(f"{exported[1]}/assets.extra/kzoo_export.json"))
    assert info["model_class"] == "LSTMLanguageModel"
    assert info["limits"] == {"max_new_tokens": 64, "max_prompt_tokens": 128, "context": None}


@pytest.mark.slow
def test_check_serving_passes_on_the_lstm(exported, kzoo_cli):
    result = kzoo_cli("check-serving", exported[1], "--json")
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    assert json.loads(result.stdout)["ok"]
