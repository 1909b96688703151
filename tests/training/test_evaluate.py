import json
import math
import subprocess

import numpy as np

from kzoo.data.causal_lm import causal_lm_dataset
from kzoo.training.corpus_source import resolve_corpus
from kzoo.training.evaluate import evaluate_run, load_run_model
from tests.conftest import kzoo_command


def manual_mean_nll(model, dataset):
    total, count = 0.0, 0
    for features, labels in dataset:
        logits = np.asarray(model(features), "float64")
        logits -= logits.max(-1, keepdims=True)
        log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        nll = -np.take_along_axis(log_probs, labels.numpy()[..., None], -1)
        total, count = total + nll.sum(), count + nll.size
    return total / count


def test_evaluate_equals_a_manual_nll_over_the_same_batches(tiny_run):
    run_dir, config, _ = tiny_run
    result = evaluate_run(run_dir)
    model = load_run_model(run_dir)
    source = resolve_corpus(config["data"]).validation
    dataset = causal_lm_dataset(
        model.tokenizer, config["data"]["sequence_length"], config["data"]["batch_size"],
        shuffle=False, **source,
    )
    assert math.isclose(result["loss"], manual_mean_nll(model, dataset), rel_tol=1e-5)
    assert math.isclose(result["perplexity"], math.exp(result["loss"]), rel_tol=1e-9)
    # Bits per word: bits per token scaled by tokens per chain symbol.
    corpus = resolve_corpus(config["data"]).builtin
    symbols = corpus.num_symbols(source["texts"])
    assert math.isclose(
        result["bits_per_word"], result["bits_per_token"] * result["tokens"] / symbols
    )
    assert result["entropy_rate_bits"] == corpus.entropy_rate("bits")


def test_cli_evaluate_json_and_generate(tiny_run):
    run_dir, _, _ = tiny_run
    out = subprocess.run(kzoo_command("evaluate", run_dir, "--json"),
                         capture_output=True, text=True, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"loss", "perplexity", "bits_per_word", "ratio_to_entropy_rate"} <= set(result)
    out = subprocess.run(
        kzoo_command("generate", run_dir, "--prompt", "zo", "--max-new-tokens", "5",
                     "--strategy", "sample", "--seed", "3"),
        capture_output=True, text=True, check=True,
    )
    assert out.stdout.startswith("zo")


def test_cli_errors_name_the_problem(tmp_path, tiny_run):
    run_dir, _, _ = tiny_run
    cases = [
        (["train", "recipes/gpt_tiny.yaml", "--set", "train.stepz=1"], "train.stepz: unknown key"),
        (["train", "recipes/gpt_tiny.yaml", "--run-dir", run_dir], "already holds a finished run"),
        (["train", "recipes/gpt_tiny.yaml", "--run-dir", str(tmp_path / "r"),
          "--set", f"data.train={tmp_path}/nothing/*.txt"], "data.train: no files match"),
        (["evaluate", str(tmp_path)], "not a kzoo run directory"),
    ]
    for args, message in cases:
        out = subprocess.run(kzoo_command(*args), capture_output=True, text=True)
        assert out.returncode == 2, (args, out.stderr[-500:])
        assert message in out.stderr, (message, out.stderr[-500:])


def test_a_failed_set_up_leaves_no_run_behind(tmp_path):
    run_dir = tmp_path / "run"
    args = ["train", "recipes/gpt_tiny.yaml", "--run-dir", str(run_dir),
            "--set", "tokenizer.vocab_size=100000",
            "--set", "data.builtin_train_documents=20"]
    out = subprocess.run(kzoo_command(*args), capture_output=True, text=True)
    assert out.returncode == 2
    assert "tokenizer.vocab_size: 100000 is more than this corpus supports" in out.stderr
    assert not run_dir.exists()
