"""Tiny training runs for the export tests: random weights, a char tokenizer.

Building the run directly (no training) takes a second; the export only needs
`config.yaml`, `tokenizer.model` and `model.keras` in the run layout.
"""

import os
import subprocess
import sys

import keras
import pytest

from kzoo.data.builtin_corpus import default_corpus
from kzoo.tokenizers import load_tokenizer, train_sentencepiece
from kzoo.training import families, run_files
from kzoo.training.config import write_yaml_atomic
from kzoo.training.recipe import validate

MODELS = {
    "gpt": {"family": "gpt", "num_layers": 1, "num_heads": 2, "hidden_dim": 16,
            "intermediate_dim": 32, "max_sequence_length": 32},
    "lstm": {"family": "lstm", "embedding_dim": 8, "hidden_dim": 16},
}
# The GPT's buffer is exactly its context: 20 prompt + 12 new tokens = 32.
EXPORTS = {"gpt": {"max_new_tokens": 12, "max_prompt_tokens": 20},
           "lstm": {"max_new_tokens": 64}}
SAMPLE_PROMPTS = ["", "ta"]


def build_run(run_dir, family):
    """Writes a run directory holding an untrained `family` model."""
    # Seed before the tokenizer exists: reseeding TensorFlow invalidates the
    # SentencePiece resources of tokenizers created earlier in the process.
    keras.utils.set_random_seed(0)
    config = validate(
        {
            "model": MODELS[family],
            "tokenizer": {"kind": "char"},
            "data": {"sequence_length": 16},
            "train": {"sample_prompts": SAMPLE_PROMPTS, "sample_max_new_tokens": 8},
            "export": {"name": f"tiny_{family}", **EXPORTS[family]},
        },
        name=f"tiny_{family}",
    )
    write_yaml_atomic(config, os.path.join(run_dir, run_files.CONFIG))
    train_sentencepiece(texts=default_corpus().documents(50, seed=0), model_type="char",
                        output_dir=run_dir)
    model = families.build_model(config["model"], load_tokenizer(run_dir))
    run_files.save_atomically(model.save, os.path.join(run_dir, run_files.MODEL))
    return str(run_dir)


@pytest.fixture(scope="session")
def make_run(tmp_path_factory):
    return lambda family: build_run(tmp_path_factory.mktemp(f"{family}_run"), family)


@pytest.fixture(scope="session")
def kzoo_cli():
    """Runs `python -m kzoo.cli ARGS`; returns the CompletedProcess."""

    def run(*args):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        return subprocess.run([sys.executable, "-m", "kzoo.cli", *args],
                              capture_output=True, text=True, env=env)

    return run
