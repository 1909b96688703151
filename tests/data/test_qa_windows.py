"""kzoo.data.qa_windows and qa_answers: BERT extractive QA windows, labels and answers."""

import numpy as np
import pytest
import tensorflow as tf

from kzoo.data.builtin_tasks import qa_examples
from kzoo.data.qa_answers import best_answers, predict_answers, qa_metrics
from kzoo.data.qa_windows import (
    answer_token_positions,
    char_to_byte_offsets,
    qa_dataset,
    qa_eval_windows,
    qa_windows,
)
from kzoo.tokenizers.wordpiece_tokenizer import load_wordpiece_tokenizer
from kzoo.tokenizers.wordpiece_trainer import train_wordpiece

EXAMPLES = qa_examples(30, seed=0)
CAFE = "Café au lait, s'il vous plaît: Crème brûlée et thé."
# W = 20 - 3 - 5 = 12 context tokens per window, a new one every 5 tokens.
SETTINGS = dict(sequence_length=20, max_query_tokens=5, doc_stride=5)


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    texts = [e["context"] + " " + e["question"] for e in EXAMPLES] + [CAFE] * 5
    directory = tmp_path_factory.mktemp("wordpiece")
    train_wordpiece(output_dir=str(directory), vocab_size=300, texts=texts)
    return load_wordpiece_tokenizer(str(directory))


def windows_of(tokenizer, examples, **settings):
    settings = settings or SETTINGS
    return {
        key: value.numpy()
        for key, value in qa_windows(
            tokenizer,
            [e["question"] for e in examples],
            [e["context"] for e in examples],
            **settings,
        ).items()
    }


def byte_spans(examples):
    spans = [
        char_to_byte_offsets(e["context"], e["answers"][0]["answer_start"], e["answers"][0]["text"])
        for e in examples
    ]
    return np.array(spans, np.int64).T


def oracle_logits(windows, starts, ends):
    """Logits that put (almost) all the mass on the labelled positions."""
    length = windows["token_ids"].shape[1]
    return 20.0 * tf.one_hot(starts, length), 20.0 * tf.one_hot(ends, length)


def test_windows_cover_the_context_with_the_stride(tokenizer):
    examples = [{"question": e["question"], "context": e["context"]} for e in EXAMPLES[:6]]
    examples.append({"question": "a b c d e f g h i", "context": "pove gosegun"})
    windows = windows_of(tokenizer, examples)
    assert set(windows) == {
        "token_ids",
        "segment_ids",
        "padding_mask",
        "example_index",
        "token_starts",
        "token_ends",
        "token_indices",
    }
    assert windows["token_ids"].dtype == np.int32 and windows["token_starts"].dtype == np.int64
    for row, example in enumerate(examples):
        context_ids = tokenizer.tokenize(example["context"]).numpy()
        question_ids = tokenizer.tokenize(example["question"]).numpy()[:5]
        ours = np.flatnonzero(windows["example_index"] == row)
        assert np.all(np.diff(ours) == 1)
        expected_windows = 1 + max(0, -(-(len(context_ids) - 12) // 5))
        assert len(ours) == expected_windows
        for k, w in enumerate(ours):
            indices = windows["token_indices"][w]
            expected = np.arange(5 * k, min(5 * k + 12, len(context_ids)))
            np.testing.assert_array_equal(indices[indices >= 0], expected)
            q = len(question_ids)
            packed = [
                tokenizer.cls_id,
                *question_ids,
                tokenizer.sep_id,
                *context_ids[expected],
                tokenizer.sep_id,
            ]
            np.testing.assert_array_equal(windows["token_ids"][w, : len(packed)], packed)
            assert windows["padding_mask"][w].sum() == len(packed)
            np.testing.assert_array_equal(
                windows["segment_ids"][w, : len(packed)],
                [0] * (q + 2) + [1] * (len(packed) - q - 2),
            )
            assert np.all(indices[: q + 2] == -1) and np.all(indices[len(packed) - 1 :] == -1)
        assert windows["token_indices"][ours[-1]].max() == len(context_ids) - 1


def test_token_offsets_map_back_to_the_context_bytes(tokenizer):
    examples = [
        {"question": "what?", "context": c}
        for c in ["Kimene GOSEGUN vule. Pove gosegun mileko?", EXAMPLES[7]["context"]]
    ]
    windows = windows_of(tokenizer, examples)
    vocabulary = tokenizer.get_vocabulary()
    checked = 0
    for w, row in enumerate(windows["example_index"]):
        context = examples[row]["context"].encode()
        for position in np.flatnonzero(windows["token_starts"][w] >= 0):
            start, end = windows["token_starts"][w, position], windows["token_ends"][w, position]
            piece = vocabulary[windows["token_ids"][w, position]].removeprefix("##")
            assert context[start:end].decode().lower() == piece
            checked += 1
    assert checked > 20


def test_answer_positions_inside_one_window_and_across_a_boundary(tokenizer):
    context = " ".join(EXAMPLES[0]["context"].split()[:4] * 8)  # Over 30 tokens.
    _, token_starts, token_ends = tokenizer.tokenize_with_offsets(context)
    token_starts, token_ends = token_starts.numpy(), token_ends.numpy()
    assert len(token_starts) >= 30
    # Windows hold tokens 0-11, 5-16, 10-21, ... Answer 0 is tokens 6-7 (in
    # windows 0 and 1); answer 1 is tokens 10-13, across the end of window 0.
    golds = [(6, 7), (10, 13)]
    windows = qa_windows(tokenizer, ["what?"] * 2, [context] * 2, **SETTINGS)
    starts, ends = answer_token_positions(
        windows, [token_starts[s] for s, _ in golds], [token_ends[e] for _, e in golds]
    )
    starts, ends = starts.numpy(), ends.numpy()
    index = windows["example_index"].numpy()
    indices = windows["token_indices"].numpy()
    holds = []
    for w, row in enumerate(index):
        gold = golds[row]
        holds.append((int(row), bool(np.isin(gold, indices[w]).all())))
        if holds[-1][1]:
            assert (indices[w, starts[w]], indices[w, ends[w]]) == gold
        else:
            assert starts[w] == ends[w] == 0
    assert [h for r, h in holds if r == 0][:3] == [True, True, False]
    assert [h for r, h in holds if r == 1][:4] == [False, True, True, False]
    # The first window of example 1 holds the answer's start but not its end.
    assert 10 in indices[np.flatnonzero(index == 1)[0]]


def test_best_answers_returns_the_peak_span_of_a_non_ascii_context(tokenizer):
    examples = [
        {
            "question": "quoi?",
            "context": CAFE,
            "answers": [{"text": "Crème brûlée", "answer_start": CAFE.index("Crème")}],
        }
    ]
    windows = windows_of(tokenizer, examples, sequence_length=64, max_query_tokens=8, doc_stride=16)
    byte_start, byte_end = char_to_byte_offsets(CAFE, CAFE.index("Crème"), "Crème brûlée")
    starts, ends = answer_token_positions(windows, [byte_start], [byte_end])
    out = best_answers(*oracle_logits(windows, starts, ends), windows, [CAFE], max_answer_tokens=30)
    assert out["answers"].numpy()[0].decode() == "Crème brûlée"
    assert out["byte_starts"].numpy()[0] == byte_start
    assert out["byte_ends"].numpy()[0] == byte_end
    assert 0.99 < out["scores"].numpy()[0] <= 1.0


def test_max_answer_tokens_bounds_the_span(tokenizer):
    context = "kimene gosegun vule pove mileko"
    windows = windows_of(
        tokenizer,
        [{"question": "what?", "context": context}],
        sequence_length=64,
        max_query_tokens=8,
        doc_stride=16,
    )
    assert len(windows["example_index"]) == 1
    context_positions = np.flatnonzero(windows["token_starts"][0] >= 0)
    start_logits = np.zeros(windows["token_ids"].shape, np.float32)
    start_logits[0, context_positions[0]] = 20.0
    # The end logits rise along the context: the best end is the last one allowed.
    end_logits = np.zeros(windows["token_ids"].shape, np.float32)
    end_logits[0, context_positions] = 0.1 * np.arange(len(context_positions))
    for limit in (1, 2, 3):
        out = best_answers(start_logits, end_logits, windows, [context], max_answer_tokens=limit)
        assert out["byte_starts"].numpy()[0] == 0
        last = context_positions[limit - 1]
        assert out["byte_ends"].numpy()[0] == windows["token_ends"][0, last]
        assert len(tokenizer.tokenize(out["answers"].numpy()[0]).numpy()) == limit
    wide = best_answers(start_logits, end_logits, windows, [context], max_answer_tokens=30)
    assert wide["answers"].numpy()[0].decode() == context


def test_empty_context_gets_an_empty_answer_and_score_zero(tokenizer):
    windows = qa_windows(tokenizer, ["what?", "what?"], ["", "pove mileko"], **SETTINGS)
    assert windows["example_index"].numpy().tolist() == [0, 1]
    assert np.all(windows["token_starts"].numpy()[0] == -1)
    logits = tf.zeros(tf.shape(windows["token_ids"]))
    out = best_answers(logits, logits, windows, ["", "pove mileko"], max_answer_tokens=5)
    assert out["answers"].numpy().tolist()[0] == b""
    assert out["scores"].numpy()[0] == 0.0 and out["scores"].numpy()[1] > 0.0
    assert out["answers"].numpy()[1] and out["answers"].numpy()[1] in b"pove mileko"
    starts, ends = answer_token_positions(windows, [0, 0], [0, 4])  # "", "pove"
    indices = windows["token_indices"].numpy()
    assert starts.numpy()[0] == ends.numpy()[0] == 0
    _, _, token_ends = tokenizer.tokenize_with_offsets("pove mileko")
    last = int(np.sum(token_ends.numpy() <= 4)) - 1
    assert indices[1, starts.numpy()[1]] == 0 and indices[1, ends.numpy()[1]] == last


def test_oracle_logits_give_exact_match_100(tokenizer):
    windows = qa_eval_windows(tokenizer, EXAMPLES, **SETTINGS)
    assert len(windows["example_index"]) > len(EXAMPLES)  # Several windows per context.
    starts, ends = answer_token_positions(windows, *byte_spans(EXAMPLES))
    assert np.all(starts.numpy() <= ends.numpy())
    out = best_answers(
        *oracle_logits(windows, starts, ends),
        windows,
        [e["context"] for e in EXAMPLES],
        max_answer_tokens=8,
    )
    predictions = [a.decode() for a in out["answers"].numpy()]
    assert predictions == [e["answers"][0]["text"] for e in EXAMPLES]
    assert qa_metrics(predictions, EXAMPLES) == {"exact_match": 100.0, "f1": 100.0}


def test_predict_answers_batches_windows_through_the_model(tokenizer):
    windows = qa_eval_windows(tokenizer, EXAMPLES, **SETTINGS)
    start_logits, end_logits = oracle_logits(
        windows, *answer_token_positions(windows, *byte_spans(EXAMPLES))
    )
    seen = []

    def model(features, training=False):  # Replays the oracle, batch by batch.
        first = sum(seen)
        seen.append(len(features["token_ids"]))
        np.testing.assert_array_equal(
            features["token_ids"], windows["token_ids"][first : first + seen[-1]]
        )
        return {
            "start_logits": start_logits[first : first + seen[-1]],
            "end_logits": end_logits[first : first + seen[-1]],
        }

    predictions = predict_answers(
        model, tokenizer, EXAMPLES, max_answer_tokens=8, batch_size=16, **SETTINGS
    )
    assert max(seen) == 16 and sum(seen) == len(windows["example_index"])
    assert qa_metrics(predictions, EXAMPLES)["exact_match"] == 100.0


def test_qa_dataset_labels_windows_for_fit(tokenizer):
    dataset = qa_dataset(tokenizer, EXAMPLES, batch_size=8, **SETTINGS)
    features, labels = next(iter(dataset))
    assert sorted(features) == ["padding_mask", "segment_ids", "token_ids"]
    assert sorted(labels) == ["end_logits", "start_logits"]
    assert features["token_ids"].shape == (8, 20) and labels["start_logits"].dtype == tf.int32
    windows = qa_eval_windows(tokenizer, EXAMPLES, **SETTINGS)
    starts = np.concatenate([l["start_logits"].numpy() for _, l in dataset])
    expected, _ = answer_token_positions(windows, *byte_spans(EXAMPLES))
    np.testing.assert_array_equal(starts, expected.numpy())
    shuffled = qa_dataset(
        tokenizer, EXAMPLES, batch_size=8, shuffle=True, seed=3, repeat=True, **SETTINGS
    )
    batches = [b[0]["token_ids"].shape[0] for b in shuffled.take(len(starts) // 8 + 2)]
    assert set(batches) == {8}
    first = [
        next(iter(qa_dataset(tokenizer, EXAMPLES, batch_size=8, shuffle=True, seed=3, **SETTINGS)))[
            0
        ]["token_ids"].numpy()
        for _ in range(2)
    ]
    np.testing.assert_array_equal(*first)
    assert not np.array_equal(first[0], features["token_ids"].numpy())


def test_windows_and_answers_run_in_an_exported_tf_function(tokenizer):
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)] * 2)
    def answer(questions, contexts):
        windows = qa_windows(tokenizer, questions, contexts, **SETTINGS)
        # A stand-in model: bet on the context's first token as start and end.
        logits = 5.0 * tf.cast(tf.equal(windows["token_indices"], 0), tf.float32)
        out = best_answers(logits, logits, windows, contexts, max_answer_tokens=4)
        return {"answers": out["answers"], "scores": out["scores"]}

    contexts = [CAFE, "", EXAMPLES[0]["context"]]
    out = answer(tf.constant(["quoi?", "what?", "what?"]), tf.constant(contexts))
    _, _, token_ends = tokenizer.tokenize_with_offsets(contexts)
    first_tokens = [
        c.encode()[: e[0]] if len(e) else b"" for c, e in zip(contexts, token_ends.to_list())
    ]
    assert out["answers"].numpy().tolist() == first_tokens
    assert first_tokens[0].decode().startswith("C") and first_tokens[1] == b""
    assert out["scores"].numpy()[1] == 0.0 and out["scores"].numpy()[0] > 0.0
    one = answer(tf.constant(["what?"]), tf.constant([CAFE[3:]]))["answers"].numpy()
    assert one[0].decode().startswith("é")


def test_char_to_byte_offsets_and_bad_settings(tokenizer):
    assert char_to_byte_offsets(CAFE, CAFE.index("thé"), "thé") == (
        CAFE.encode().index("thé".encode()),
        len(CAFE.encode()) - 1,
    )
    with pytest.raises(ValueError, match="not in the context at answer_start=2"):
        char_to_byte_offsets(CAFE, 2, "lait")
    with pytest.raises(ValueError, match="doc_stride: expected 1 <= doc_stride <= 12"):
        qa_windows(tokenizer, ["a"], ["b"], sequence_length=20, max_query_tokens=5, doc_stride=13)
    with pytest.raises(ValueError, match="one prediction per example"):
        qa_metrics(["a"], EXAMPLES[:2])
