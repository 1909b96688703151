import json
import math
import os
import subprocess

import numpy as np

from kzoo.data.causal_lm import causal_lm_dataset
from kzoo.testing import ROOT, kzoo_command
from kzoo.training.evaluate import evaluate_run
from kzoo.training.run_directory import RunDirectory
from kzoo.training.tasks.text_sources import resolve_corpus


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
    model = RunDirectory(run_dir).load_model()
    source = resolve_corpus(config["data"]).validation
    dataset = causal_lm_dataset(
        model.tokenizer,
        config["data"]["sequence_length"],
        config["data"]["batch_size"],
        shuffle=False,
        **source,
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
    out = subprocess.run(
        kzoo_command("evaluate", run_dir, "--json"), capture_output=True, text=True, check=True
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert {"loss", "perplexity", "bits_per_word", "ratio_to_entropy_rate"} <= set(result)
    out = subprocess.run(
        kzoo_command(
            "generate",
            run_dir,
            "--prompt",
            "zo",
            "--max-new-tokens",
            "5",
            "--strategy",
            "sample",
            "--seed",
            "3",
        ),
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.startswith("zo")


def _cli(capsys, *args):
    """Runs the CLI in this process (no interpreter start-up): (status, stderr)."""
    from kzoo.cli import main

    status = main(list(args))
    return status, capsys.readouterr().err


def test_cli_errors_name_the_problem(tmp_path, tiny_run, capsys):
    run_dir, _, _ = tiny_run
    recipe = os.path.join(ROOT, "recipes", "gpt_tiny.yaml")
    cases = [
        (["train", recipe, "--set", "train.stepz=1"], "--set 'train.stepz=1': unknown key"),
        (["train", recipe, "--run-dir", run_dir], "already holds a finished run"),
        (
            [
                "train",
                recipe,
                "--run-dir",
                str(tmp_path / "r"),
                "--set",
                f"data.train={tmp_path}/nothing/*.txt",
            ],
            "data.train: no files match",
        ),
        (["train", "--resume", str(tmp_path)], "no run there (no config.yaml)"),
        (["train", recipe, "--resume", run_dir], "--resume RUN_DIR takes no CONFIG"),
        (["train"], "give a recipe (kzoo train CONFIG) or --resume RUN_DIR"),
        (["evaluate", str(tmp_path)], "not a kzoo run directory"),
    ]
    for args, message in cases:
        status, stderr = _cli(capsys, *args)
        assert status == 2, (args, stderr[-500:])
        assert message in stderr, (message, stderr[-500:])


def test_a_failed_set_up_leaves_no_run_behind(tmp_path, capsys):
    run_dir = tmp_path / "run"
    status, stderr = _cli(
        capsys,
        "train",
        os.path.join(ROOT, "recipes", "gpt_tiny.yaml"),
        "--run-dir",
        str(run_dir),
        "--set",
        "tokenizer.vocab_size=100000",
        "--set",
        "data.builtin_train_documents=20",
    )
    assert status == 2
    assert "tokenizer.vocab_size: 100000 is more than this corpus supports" in stderr
    assert not run_dir.exists()
