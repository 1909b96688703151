"""`kzoo generate` on every family's run directory and export: causal LMs print the
prompt and its continuation, encoder-decoders (seq2seq, T5) only their output; the
default `--max-new-tokens` fits the model; BERT runs and exports name the command
that serves them."""

import json
import os
import shutil

import pytest
import tensorflow as tf

from kzoo import cli
from kzoo.export import layout
from kzoo.testing.tiers import full_only
from kzoo.testing.tiny_runs import SEQ2SEQ_EXPORT, build_bert_run, build_seq2seq_run
from kzoo.training.run_directory import RunDirectory

PROMPTS = ["the dog", "a red apple"]
# The default: 64 new tokens, or fewer where the model holds fewer (GPT: a context
# of 32; seq2seq/T5: 64 target positions, one for the start token).
DEFAULT_NEW_TOKENS = {"gpt": 31, "lstm": 64, "seq2seq": 63, "t5": 63}
CAUSAL = ("gpt", "lstm")


def generate(capsys, *argv):
    status = cli.main(["generate", *argv])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return status, captured.out, captured.err


def usage_error(capsys, *argv):
    """The stderr of a `kzoo generate ARGV` that must exit 2 printing nothing else."""
    status, out, err = generate(capsys, *argv)
    assert (status, out) == (2, "")
    return err


def expected_lines(family, prompts, outputs):
    if family in CAUSAL:  # The continuation follows its prompt.
        return "".join(f"{prompt}{output}\n" for prompt, output in zip(prompts, outputs))
    return "".join(f"{output}\n" for output in outputs)


@pytest.fixture(scope="module")
def runs(make_run, tmp_path_factory):
    """Run directories of every generating family, built on first use."""
    cache = {}

    def get(family):
        if family not in cache:
            if family in CAUSAL:
                cache[family] = make_run(family)
            else:
                cache[family] = build_seq2seq_run(tmp_path_factory.mktemp(f"{family}_run"), family)
        return cache[family]

    return get


@pytest.mark.parametrize("family", ["gpt", "seq2seq", "t5"])
def test_generate_from_a_run_prints_what_the_family_gives(family, runs, capsys):
    run_dir = runs(family)
    status, out, _ = generate(capsys, run_dir, "--prompt", PROMPTS[0], "--prompt", PROMPTS[1])
    assert status == 0
    model = RunDirectory(run_dir).load_model()
    outputs = model.generate(PROMPTS, max_new_tokens=DEFAULT_NEW_TOKENS[family])
    assert out == expected_lines(family, PROMPTS, outputs)


@pytest.mark.xdist_group("lstm_export")
def test_generate_from_an_lstm_run_prints_what_its_export_gives(runs, tiny_export, capsys):
    """The LSTM has no string `generate()`; its run generates as its export does (the
    tiny export is of the same untrained run)."""
    status, out, _ = generate(capsys, runs("lstm"), "--prompt", PROMPTS[0], "--prompt", PROMPTS[1])
    assert status == 0
    export = tiny_export("lstm")
    assert out == expected_lines(
        "lstm", PROMPTS, _greedy(export, PROMPTS, DEFAULT_NEW_TOKENS["lstm"])
    )


def _greedy(export, prompts, max_new_tokens):
    """The export's generation signature, called as a TF Serving client calls it."""
    settings = {
        "max_new_tokens": tf.constant([max_new_tokens]),
        "temperature": tf.constant([0.0]),
        "top_k": tf.constant([0]),
        "top_p": tf.constant([1.0]),
        "seed": tf.constant([0]),
    }
    texts = tf.constant(prompts)
    if export.family in CAUSAL:
        outputs = export.signatures["generate"](prompts=texts, **settings)["generated"]
    else:
        name = "translate" if export.family == "seq2seq" else "generate"
        outputs = export.signatures[name](
            sources=texts,
            strategy=tf.constant(["greedy"]),
            length_penalty=tf.constant([0.0]),
            **settings,
        )["targets"]
    return [text.decode("utf-8", errors="replace") for text in outputs.numpy()]


# T5's export has the seq2seq signatures under T5's names (`generate`, not
# `translate`): CI calls them through the [seq2seq] case, and a T5 export passes
# check-serving in test_checkpoint_import.py. Only this case finds the `generate`
# endpoint that takes `sources` (ENDPOINTS in kzoo/export/serving_generate.py).
_T5_IN_FULL = full_only(
    "test_generate_from_an_export_calls_its_generation_signature[seq2seq] (the same "
    "Seq2SeqSignatures) and tests/training/test_checkpoint_import.py::"
    "test_imported_checkpoint_fine_tunes_exports_and_serves[t5] (a T5 export's check-serving)"
)


@pytest.mark.parametrize(
    "family",
    [
        pytest.param(
            family,
            marks=[
                pytest.mark.xdist_group(f"{family}_export"),
                *([_T5_IN_FULL] if family == "t5" else []),
            ],
        )
        for family in ("gpt", "lstm", "seq2seq", "t5")
    ],
)
def test_generate_from_an_export_calls_its_generation_signature(family, tiny_export, capsys):
    export = tiny_export(family)
    status, out, _ = generate(
        capsys, export.path, "--prompt", PROMPTS[0], "--prompt", PROMPTS[1], "--max-new-tokens", "5"
    )
    assert status == 0
    assert out == expected_lines(family, PROMPTS, _greedy(export, PROMPTS, 5))


@pytest.mark.xdist_group("seq2seq_export")
def test_an_exports_cap_is_the_default_and_the_limit(tiny_export, tmp_path, capsys):
    export = tiny_export("seq2seq")
    # As `kzoo export` records it (the tiny export skips assets.extra).
    copy = str(tmp_path / "1")
    shutil.copytree(export.path, copy)
    os.makedirs(os.path.join(copy, layout.ASSETS_EXTRA))
    with open(os.path.join(copy, layout.ASSETS_EXTRA, layout.EXPORT_INFO_FILE), "w") as f:
        json.dump({"limits": {**SEQ2SEQ_EXPORT, "num_beams": 4}}, f)
    cap = SEQ2SEQ_EXPORT["max_new_tokens"]
    status, out, _ = generate(capsys, copy, "--prompt", PROMPTS[0])
    assert status == 0 and out == expected_lines(
        "seq2seq", PROMPTS[:1], _greedy(export, PROMPTS[:1], cap)
    )
    # Rejected as a run directory rejects it, not clipped silently.
    for value, message in (
        (cap + 1, f"must be in [1, {cap}] (the export's cap, export.max_new_tokens), got 11"),
        (0, "must be >= 1, got 0"),
    ):
        err = usage_error(capsys, copy, "--prompt", "a", "--max-new-tokens", str(value))
        assert err == f"kzoo generate: error: --max-new-tokens: {message}\n"
    err = usage_error(capsys, copy, "--prompt", "a", "--strategy", "beam", "--num-beams", "3")
    assert "the export searches with 4 beams (export.num_beams" in err


def test_a_run_directory_rejects_max_new_tokens_beyond_the_model(runs, capsys):
    err = usage_error(capsys, runs("seq2seq"), "--prompt", "a", "--max-new-tokens", "64")
    assert err == (
        "kzoo generate: error: --max-new-tokens: must be in [1, 63] (the "
        "model's max_sequence_length is 64), got 64\n"
    )


def test_a_bert_run_names_the_command_that_serves_it(tmp_path, capsys):
    run_dir = build_bert_run(str(tmp_path), "classify")
    err = usage_error(capsys, run_dir, "--prompt", "a")
    assert err == (
        f"kzoo generate: error: {run_dir}: holds a BertClassifier, which "
        "does not generate text; kzoo evaluate scores it, and kzoo export "
        "makes a SavedModel whose 'classify' signature TF Serving serves\n"
    )


@pytest.mark.xdist_group("bert_export")
def test_a_bert_export_names_its_signatures(tiny_export, capsys):
    path = tiny_export("bert").path
    err = usage_error(capsys, path, "--prompt", "a")
    assert err == (
        f"kzoo generate: error: {path}: its signatures (answer, classify, "
        "embed, fill_mask, tag) do not generate text (kzoo generate calls "
        "generate or translate); query it with TF Serving "
        '("signature_name": "answer") or saved_model_cli run '
        "--signature_def answer\n"
    )
