"""`kzoo evaluate`: held-out loss, perplexity and (built-in corpus) bits per word."""

import math
import os

import keras
import yaml

from kzoo.data import text_files
from kzoo.data.causal_lm import causal_lm_dataset, count_tokens
from kzoo.training import run_files
from kzoo.training.corpus_source import resolve_corpus


def read_run_config(run_dir):
    path = os.path.join(run_dir, run_files.CONFIG)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{run_dir}: not a kzoo run directory (no {run_files.CONFIG})")
    with open(path, encoding="utf-8") as f:
        return yaml.safe_load(f)


def load_run_model(run_dir):
    """Loads `RUN/model.keras` with `safe_mode` (no code is deserialized)."""
    import kzoo.models  # noqa: F401  (registers the model classes)
    import kzoo.tokenizers  # noqa: F401  (registers the tokenizer layer)

    path = os.path.join(run_dir, run_files.MODEL)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{run_dir}: no trained model ({run_files.MODEL}); run `kzoo train`")
    return keras.saving.load_model(path, safe_mode=True, compile=False)


def evaluate_run(run_dir, data=None, batch_size=None):
    """Evaluates a run on `data` (paths/globs) or on its own validation text.

    Returns a dict: `loss` (nats per token), `perplexity`, `bits_per_token`,
    `tokens`; on the built-in corpus also `bits_per_word` (total bits over the
    held-out documents per chain symbol), the source's `entropy_rate_bits`, and
    `ratio_to_entropy_rate`.
    """
    config = read_run_config(run_dir)
    model = load_run_model(run_dir)
    tokenizer = model.tokenizer if getattr(model, "tokenizer", None) is not None else None
    if tokenizer is None:
        from kzoo.tokenizers import load_tokenizer

        tokenizer = load_tokenizer(run_dir)
    if data:
        source, corpus = {"files": text_files.resolve_text_files(data, "--data")}, None
    else:
        resolved = resolve_corpus(config["data"])
        source, corpus = resolved.validation, resolved.builtin
        if not source:
            raise ValueError(f"{run_dir}: the run has no validation text; pass --data")
    length = config["data"]["sequence_length"]
    batch_size = batch_size or config["data"]["batch_size"]
    tokens = count_tokens(tokenizer, **source)
    # Full batches only, read for an explicit number of steps from a repeated
    # dataset: see `kzoo.training.trainer.make_datasets` for the Keras issue.
    steps = (tokens - 1) // length // batch_size
    if steps < 1:
        raise ValueError(
            f"{data or 'validation text'}: {tokens} tokens make no full batch of "
            f"{batch_size} x {length}; give more text"
        )
    dataset = causal_lm_dataset(
        tokenizer, length, batch_size, shuffle=False, repeat=True, **source
    )
    model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    loss = float(model.evaluate(dataset, steps=steps, verbose=0, return_dict=True)["loss"])
    result = {
        "run_dir": os.path.abspath(run_dir),
        "loss": loss,
        "perplexity": math.exp(min(loss, 50.0)),
        "bits_per_token": loss / math.log(2),
        "tokens": int(tokens),
        "tokens_evaluated": int(steps * batch_size * length),
    }
    if corpus is not None:
        symbols = corpus.num_symbols(source["texts"])
        result["bits_per_word"] = result["bits_per_token"] * tokens / symbols
        result["entropy_rate_bits"] = corpus.entropy_rate("bits")
        result["ratio_to_entropy_rate"] = result["bits_per_word"] / result["entropy_rate_bits"]
    return result
