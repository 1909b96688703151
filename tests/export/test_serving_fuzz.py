"""Hostile requests to the exported signatures: a documented answer or InvalidArgument.

Hypothesis draws requests (any text and bytes, 0 to 3 rows, inputs of rank 0 to
2, options inside and outside their ranges) for the loaded SavedModels of tiny
untrained exports; each call must answer with one finite, well-typed row per input
row, or raise an InvalidArgumentError naming an input the policy
(kzoo/export/input_policy.py) rejects, and nothing else, within `DEADLINE_MS`
(after a warm-up call, so loading and the first run's graph optimization do not
count); a call still running after `HANG_SECONDS` ends the process with every
thread's traceback. The policy is then pinned case by case, and concurrent calls
are checked against sequential ones.

Every signature of every family is fuzzed, a few cases each: the GPT and LSTM
(the causal LM signatures), seq2seq, T5, and BERT (classify on text pairs, tag,
answer, fill_mask and embed share one SavedModel). The exports (`tiny_export`,
conftest.py) skip assets.extra. benchmarks/fuzz_serving.py runs the same cases by
the thousand. Each family's tests run together: building an export reseeds
TensorFlow, which clears the kernels of exports loaded before.
"""

import concurrent.futures
import contextlib
import faulthandler

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kzoo.testing.serving_fuzz import (
    call,
    call_signature,
    draw_request,
    fuzz_once,
    strings,
    valid_request,
)

LONG = "molan teriv, ki sato. " * 20  # longer than any tiny model's limit
GREEDY = {"max_new_tokens": [4], "temperature": [0.0], "top_k": [0], "top_p": [1.0], "seed": [0]}
SEQ2SEQ_GREEDY = {**GREEDY, "strategy": ["greedy"], "length_penalty": [0.0]}


# A tiny model answers in milliseconds to a few hundred (beam search); a case
# slower than this is a regression, one past HANG_SECONDS a hang.
DEADLINE_MS = 5000
HANG_SECONDS = 120


@contextlib.contextmanager
def hang_watchdog(seconds=HANG_SECONDS):
    """Ends the process with every thread's traceback if the block runs longer than
    `seconds` (a hypothesis deadline only measures calls that return)."""
    faulthandler.dump_traceback_later(seconds, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


def export_fixture(family):
    """A fixture giving the tiny `family` export (the tests using it are marked
    to run on that export's worker)."""

    @pytest.fixture(name=family)
    def export(tiny_export):
        return tiny_export(family)

    return export


def fuzz_test(family, signatures, max_examples=6):
    """A hypothesis test of `signatures` of the `family` export, on its worker."""

    @pytest.mark.xdist_group(f"{family}_export")
    @pytest.mark.parametrize("signature", signatures)
    def test(tiny_export, signature):
        export = tiny_export(family)
        assert set(export.signatures) - {"serving_default"} == set(signatures)
        with hang_watchdog():  # loads the graph's kernels: not timed by the deadline
            call_signature(export, signature, valid_request(export, signature))

        @settings(
            max_examples=max_examples,
            deadline=DEADLINE_MS,
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        )
        @given(data=st.data())
        def case(data):
            inputs = draw_request(data.draw, export, signature)
            with hang_watchdog():
                fuzz_once(export, signature, inputs)

        case()

    test.__doc__ = f"A request to a {family} signature is answered or names a bad input, in time."
    return test


def assert_concurrent_calls_answer_like_sequential_ones(export, signature, requests):
    sequential = [call(export, signature, **r) for r in requests]
    assert len({repr({k: v.tolist() for k, v in o.items()}) for o in sequential}) > 1
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        for _ in range(2):
            outputs = list(pool.map(lambda r: call(export, signature, **r), requests))
            for got, expected in zip(outputs, sequential):
                for key in expected:
                    np.testing.assert_array_equal(got[key], expected[key])


# --- GPT: generate, score, generate_ids (the causal LM signatures) -------------------

on_gpt_worker = pytest.mark.xdist_group("gpt_export")
test_gpt_fuzz = fuzz_test("gpt", ["generate", "score", "generate_ids"])
# Llama (issue 21): the same signatures on grouped key/value heads.
test_llama_fuzz = fuzz_test("llama", ["generate", "score", "generate_ids"])
gpt = export_fixture("gpt")


@on_gpt_worker
def test_invalid_utf8_is_replaced_and_nul_is_a_character(gpt):
    out = call(gpt, "score", texts=[b"ta\xffmo", "ta\ufffdmo".encode(), b"t\x00a"])
    assert out["log_likelihood"][0] == out["log_likelihood"][1]
    assert out["num_tokens"].tolist() == [5, 5, 3]
    strings(call(gpt, "generate", prompts=[b"\xc3", b"\x00"], **GREEDY)["generated"])


@on_gpt_worker
def test_empty_and_whitespace_texts_are_ordinary_inputs(gpt):
    out = call(gpt, "score", texts=["", "  \t"])
    assert out["log_likelihood"][0] == 0.0 and out["num_tokens"].tolist() == [0, 3]
    out = call(gpt, "generate", prompts=["", "   "], **GREEDY)
    assert all(0 <= n <= 4 for n in out["token_count"])


@on_gpt_worker
def test_long_prompts_keep_their_last_tokens_and_texts_their_first(gpt):
    out = call(gpt, "generate", prompts=[LONG, "zz" + LONG], **GREEDY)
    assert out["generated"][0] == out["generated"][1]
    scored = call(gpt, "score", texts=[LONG, LONG + "zz"])
    assert scored["num_tokens"].tolist() == [31, 31]  # context 32, start token first
    assert scored["log_likelihood"][0] == scored["log_likelihood"][1]


@on_gpt_worker
@pytest.mark.parametrize(
    "signature, inputs",
    [
        ("generate", {"prompts": [], **GREEDY}),
        ("generate", {"prompts": [], **GREEDY, "max_new_tokens": []}),
        ("generate_ids", {"token_ids": np.zeros([0, 3], "int32"), "prompt_lengths": [], **GREEDY}),
        ("score", {"texts": []}),
    ],
)
def test_an_empty_batch_gives_empty_outputs(gpt, signature, inputs):
    out = call(gpt, signature, **inputs)
    assert all(value.shape[0] == 0 for value in out.values())


@on_gpt_worker
def test_max_new_tokens_is_clipped_into_one_to_the_cap(gpt):
    out = call(
        gpt,
        "generate_ids",
        token_ids=[[3, 9]] * 3,
        prompt_lengths=[2, 2, 2],
        **{**GREEDY, "max_new_tokens": [0, -7, 2**31 - 1]},
    )  # cap 12
    made = out["generated_mask"].sum(axis=1)
    assert made[0] == made[1] == 1 and 1 <= made[2] <= 12


@on_gpt_worker
def test_out_of_range_sampling_options_mean_greedy_or_no_filter(gpt):
    def generate(**options):
        request = {**GREEDY, "max_new_tokens": [8], **options}
        return call(gpt, "generate", prompts=["ta", "mo"], **request)["generated"].tolist()

    sample = {"temperature": [1.0], "seed": [5]}
    greedy = generate()
    assert generate(temperature=[-1.0], seed=[5]) == greedy  # temperature <= 0: greedy
    assert generate(top_p=[0.0], **sample) == greedy  # top_p <= 0: the best token
    unfiltered = generate(**sample)
    assert unfiltered != greedy
    assert generate(top_k=[-3], **sample) == unfiltered  # top_k <= 0: no filter
    assert generate(top_k=[gpt.vocabulary_size + 5], **sample) == unfiltered
    assert generate(top_p=[7.5], **sample) == unfiltered  # top_p >= 1: no filter


@on_gpt_worker
@pytest.mark.parametrize(
    "signature, inputs, message",
    [
        (
            "generate",
            {"prompts": ["ta"], **GREEDY, "temperature": [np.nan]},
            "temperature: must be a finite number",
        ),
        (
            "generate",
            {"prompts": ["ta"], **GREEDY, "top_p": [-np.inf]},
            "top_p: must be a finite number",
        ),
        (
            "generate",
            {"prompts": [], **GREEDY, "temperature": [np.inf]},
            "temperature: must be a finite number",
        ),  # checked whatever the batch
        (
            "generate",
            {"prompts": ["ta", "mo"], **GREEDY, "seed": [1, 2]},
            "seed: every prompt of a request must use the same value",
        ),
        (
            "generate",
            {"prompts": ["ta", "mo"], **GREEDY, "max_new_tokens": [1, 2, 3]},
            "max_new_tokens: expected 1 value or one per prompt",
        ),
        (
            "generate_ids",
            {"token_ids": [[3, 999]], "prompt_lengths": [2], **GREEDY},
            r"token_ids: every id must be in \[0, 27\)",
        ),
        (
            "generate_ids",
            {"token_ids": [[3, 9]] * 2, "prompt_lengths": [2], **GREEDY},
            "prompt_lengths: expected one per row of token_ids",
        ),
        (
            "generate_ids",
            {"token_ids": [[3, 9]], "prompt_lengths": [0], **GREEDY},
            r"prompt_lengths: each must be in \[1, width of token_ids\]",
        ),
        (
            "generate",
            {"prompts": [["ta"]], **GREEDY},
            r"prompts: expected a string or a vector of strings \(one per row\); got shape",
        ),
        (
            "generate",
            {"prompts": ["ta"], **GREEDY, "temperature": [[0.0]]},
            r"temperature: expected a scalar or a vector \(1 value or one per prompt\)",
        ),
        (
            "generate",
            {"prompts": ["ta"], **GREEDY, "max_new_tokens": [[4], [4]]},
            "max_new_tokens: expected a scalar or a vector",
        ),
        (
            "generate_ids",
            {"token_ids": [3, 9], "prompt_lengths": [2], **GREEDY},
            r"token_ids: expected a \[batch, length\] matrix of ids; got shape",
        ),
        (
            "generate_ids",
            {"token_ids": [[3, 9]], "prompt_lengths": [[2]], **GREEDY},
            r"prompt_lengths: expected a scalar or a vector \(one per row of token_ids\)",
        ),
        ("score", {"texts": [["ta", "mo"]]}, "texts: expected a string or a vector"),
    ],
)
def test_invalid_gpt_inputs_are_invalid_arguments_naming_them(gpt, signature, inputs, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        call(gpt, signature, **inputs)


@on_gpt_worker
@pytest.mark.parametrize(
    "options",
    [
        {"max_new_tokens": 6, "temperature": 0.9, "top_k": 5, "top_p": 0.8, "seed": 3},
        {"max_new_tokens": 6, "temperature": 0.0, "top_k": 0, "top_p": 1.0, "seed": 0},
    ],
)
def test_scalar_options_are_one_value_for_the_batch(gpt, options):
    vectors = call(gpt, "generate", prompts=["ta", "mo"], **{k: [v] for k, v in options.items()})
    scalars = call(gpt, "generate", prompts=["ta", "mo"], **options)
    assert scalars["generated"].tolist() == vectors["generated"].tolist()
    ids = call(gpt, "generate_ids", token_ids=[[3, 9]], prompt_lengths=2, **options)
    assert ids["token_ids"].shape[0] == 1


@on_gpt_worker
def test_a_scalar_prompt_or_text_is_a_batch_of_one(gpt):
    one = call(gpt, "generate", prompts="ta", **{k: v[0] for k, v in GREEDY.items()})
    batch = call(gpt, "generate", prompts=["ta"], **GREEDY)
    assert one["generated"].tolist() == batch["generated"].tolist()
    assert one["token_count"].shape == (1,)
    scored = call(gpt, "score", texts="ta mo")
    assert scored["log_likelihood"].shape == (1,)
    assert scored["log_likelihood"][0] == call(gpt, "score", texts=["ta mo"])["log_likelihood"][0]


@on_gpt_worker
def test_concurrent_sampling_answers_like_sequential_calls(gpt):
    requests = [
        {
            "prompts": ["ta", "molan"],
            **GREEDY,
            "max_new_tokens": [8],
            "temperature": [0.9],
            "top_k": [10],
            "top_p": [0.9],
            "seed": [seed],
        }
        for seed in range(8)
    ]
    assert_concurrent_calls_answer_like_sequential_ones(gpt, "generate", requests)


# --- Seq2seq: translate, score, translate_ids (T5's signatures too) -----------------

on_seq2seq_worker = pytest.mark.xdist_group("seq2seq_export")
test_seq2seq_fuzz = fuzz_test("seq2seq", ["translate", "score", "translate_ids"])
seq2seq = export_fixture("seq2seq")


@on_seq2seq_worker
def test_seq2seq_texts_empty_invalid_or_too_long(seq2seq):
    out = call(seq2seq, "score", sources=["", "a b", LONG], targets=["a b", "", LONG])
    assert out["num_tokens"].tolist() == [4, 1, 63]  # the end token; capacity 64 - 1
    sources = [b"a\xffb", "a\ufffdb".encode(), LONG, LONG + "zz", "", " "]
    greedy = call(seq2seq, "translate", sources=sources, **SEQ2SEQ_GREEDY)
    targets = greedy["targets"].tolist()
    assert targets[0] == targets[1] and targets[2] == targets[3]  # first 23 tokens
    empty = call(seq2seq, "translate", sources=[], **SEQ2SEQ_GREEDY)
    assert all(value.shape[0] == 0 for value in empty.values())


@on_seq2seq_worker
def test_seq2seq_decoding_options_out_of_range(seq2seq):
    sources = ["the dog", "a red apple"]
    greedy = call(
        seq2seq, "translate", sources=sources, **{**SEQ2SEQ_GREEDY, "max_new_tokens": [0, 10**6]}
    )  # cap 10
    assert greedy["target_ids"].shape == (2, 10) and greedy["num_tokens"][0] <= 1
    sampled = call(
        seq2seq,
        "translate",
        sources=sources,
        **{
            **SEQ2SEQ_GREEDY,
            "max_new_tokens": [0, 10**6],
            "strategy": ["sample"],
            "temperature": [-2.0],
            "seed": [3],
        },
    )
    assert sampled["targets"].tolist() == greedy["targets"].tolist()  # <= 0: greedy


@on_seq2seq_worker
@pytest.mark.parametrize(
    "signature, inputs, message",
    [
        (
            "translate",
            {"sources": ["a"], **SEQ2SEQ_GREEDY, "strategy": ["beam"], "length_penalty": [np.nan]},
            "length_penalty: must be a finite number",
        ),
        (
            "translate",
            {"sources": ["a"], **SEQ2SEQ_GREEDY, "strategy": ["nucleus"]},
            "strategy: expected one of greedy, sample, beam",
        ),
        (
            "translate_ids",
            {"source_ids": [[5, -1, 3]], **SEQ2SEQ_GREEDY},
            r"source_ids: every id must be in \[0, ",
        ),
        (
            "translate_ids",
            {"source_ids": np.zeros([1, 0], "int32"), **SEQ2SEQ_GREEDY},
            "source_ids: every row needs at least one non-zero id",
        ),
        ("score", {"sources": ["a", "b"], "targets": ["c"]}, "targets: expected one per source"),
        (
            "score",
            {"sources": ["a"], "targets": [["c"]]},
            r"targets: expected a scalar or a vector \(one per source\)",
        ),
        (
            "translate",
            {"sources": ["a"], **SEQ2SEQ_GREEDY, "strategy": [["greedy"]]},
            "strategy: expected a scalar or a vector",
        ),
        (
            "translate_ids",
            {"source_ids": 5, **SEQ2SEQ_GREEDY},
            r"source_ids: expected a \[batch, length\] matrix of ids",
        ),
    ],
)
def test_invalid_seq2seq_inputs_are_invalid_arguments_naming_them(
    seq2seq, signature, inputs, message
):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        call(seq2seq, signature, **inputs)


@on_seq2seq_worker
def test_seq2seq_scalar_sources_and_options(seq2seq):
    options = {
        "max_new_tokens": 6,
        "strategy": "beam",
        "temperature": 0.0,
        "top_k": 0,
        "top_p": 1.0,
        "seed": 0,
        "length_penalty": 0.6,
    }
    one = call(seq2seq, "translate", sources="the dog", **options)
    batch = call(seq2seq, "translate", sources=["the dog"], **{k: [v] for k, v in options.items()})
    assert one["targets"].tolist() == batch["targets"].tolist()
    assert one["target_ids"].shape[0] == 1
    scored = call(seq2seq, "score", sources="the dog", targets="a b")
    assert scored["num_tokens"].tolist() == [4]


@on_seq2seq_worker
def test_concurrent_translations_answer_like_sequential_calls(seq2seq):
    requests = [
        {
            "sources": ["the dog", "a red apple"],
            **SEQ2SEQ_GREEDY,
            "max_new_tokens": [6],
            "strategy": ["sample"],
            "temperature": [1.2],
            "seed": [seed],
        }
        for seed in range(8)
    ]
    assert_concurrent_calls_answer_like_sequential_ones(seq2seq, "translate", requests)


# --- LSTM and T5: the causal LM and seq2seq signatures on other backbones -------

test_lstm_fuzz = fuzz_test("lstm", ["generate", "score", "generate_ids"])
test_t5_fuzz = fuzz_test("t5", ["generate", "score", "generate_ids"])


# --- BERT: classify (texts, text_pairs), tag, answer, fill_mask, embed --------------

on_bert_worker = pytest.mark.xdist_group("bert_export")
test_bert_fuzz = fuzz_test("bert", ["classify", "tag", "answer", "fill_mask", "embed"])
bert = export_fixture("bert")


@on_bert_worker
def test_pairs_with_an_empty_side_and_long_texts_are_classified(bert):
    out = call(
        bert,
        "classify",
        texts=["", "some words", LONG, LONG + " more", b"\xff"],
        text_pairs=["some words", "", LONG, LONG + " more", "\x00"],
    )
    probabilities = out["probabilities"]
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, rtol=1e-6)
    # Both sides are cut round-robin to data.sequence_length: the tails do not count.
    np.testing.assert_allclose(probabilities[2], probabilities[3], rtol=1e-5)


@on_bert_worker
def test_answers_come_from_the_context_even_when_a_side_is_empty(bert):
    out = call(
        bert,
        "answer",
        questions=["", "who sees?", "who?", "x"],
        contexts=["the dog sees", "", LONG, b"a \xff b"],
    )
    assert strings(out["answer"])[1] == ""
    contexts = [b"the dog sees", b"", LONG.encode(), "a \ufffd b".encode()]
    for answer, context, start, end in zip(
        out["answer"], contexts, out["start_byte"], out["end_byte"]
    ):
        assert context[start:end] == answer
    empty = call(bert, "answer", questions=[], contexts=[])
    assert all(value.shape[0] == 0 for value in empty.values())


@on_bert_worker
@pytest.mark.parametrize(
    "signature, inputs, message",
    [
        (
            "classify",
            {"texts": ["a"], "text_pairs": ["b", "c"]},
            "text_pairs: expected one per text",
        ),
        (
            "answer",
            {"questions": ["a", "b"], "contexts": ["c"]},
            "contexts: expected one per question",
        ),
        (
            "answer",
            {"questions": ["a"], "contexts": [["c"]]},
            r"contexts: expected a scalar or a vector \(one per question\)",
        ),
        ("tag", {"texts": [["a b"]]}, "texts: expected a string or a vector"),
    ],
)
def test_pairs_of_different_lengths_are_invalid_arguments(bert, signature, inputs, message):
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        call(bert, signature, **inputs)


@on_bert_worker
@pytest.mark.parametrize(
    "signature, inputs",
    [
        ("classify", {"texts": "some words", "text_pairs": "more words"}),
        ("answer", {"questions": "who sees?", "contexts": "the dog sees"}),
        ("tag", {"texts": "The dog sees."}),
        ("fill_mask", {"texts": "the [MASK] sees"}),
        ("embed", {"texts": "the dog"}),
    ],
)
def test_a_scalar_text_is_a_batch_of_one(bert, signature, inputs):
    one = call(bert, signature, **inputs)
    batch = call(bert, signature, **{k: [v] for k, v in inputs.items()})
    for key in batch:
        assert one[key].shape == batch[key].shape and one[key].shape[0] == 1
        np.testing.assert_array_equal(one[key], batch[key])


@on_bert_worker
def test_concurrent_answers_equal_sequential_ones(bert):
    requests = [
        {"questions": ["who sees?"], "contexts": [f"the dog {i} sees " * (i + 1)]} for i in range(8)
    ]
    assert_concurrent_calls_answer_like_sequential_ones(bert, "answer", requests)
