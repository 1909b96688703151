"""A GPT-2-small-shaped checkpoint written by `transformers`, and the kzoo runs and
exports `real_size_serving.py` times (imported by it).

`prepare_gpt` writes, once per work directory: the checkpoint (random weights,
`transformers_worker.py`'s `write_gpt2`) with a byte-level BPE of the full
vocabulary beside it, `kzoo import` of it into a run, `kzoo quantize --mode int8`
of that run, and `kzoo export` of both runs without and with `--xla`. Every step
is the CLI a user runs, in a subprocess.
"""

import json
import os
import subprocess
import sys

import yaml

HEAD_SCALE = 8.0  # Multiplies the final layer norm: clear argmaxes on random weights.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def kzoo_cli(*args):
    command = [sys.executable, "-m", "kzoo.cli", *args]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, cwd=ROOT)


def write_full_vocabulary_bpe(directory, vocab_size):
    """A byte-level BPE of exactly `vocab_size` tokens (GPT-2's layout: 256 bytes,
    merges, `<|endoftext|>` last), so every row of the embedding is a token the
    signatures can detokenize. The merges are simply the first byte pairs.
    (`kzoo.testing.hf_tokenizers.write_gpt2_tokenizer` trains one instead, on
    too little text to reach 50,257 tokens.)"""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet(), key=ord)
    vocabulary = {symbol: i for i, symbol in enumerate(alphabet)}
    merges = []
    for first in alphabet:
        for second in alphabet:
            if len(vocabulary) < vocab_size - 1:
                vocabulary[first + second] = len(vocabulary)
                merges.append((first, second))
    tokenizer = Tokenizer(models.BPE(vocab=vocabulary, merges=merges))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    tokenizer.add_special_tokens(["<|endoftext|>"])
    tokenizer.model.save(directory)  # vocab.json (without the added token), merges.txt
    tokenizer.save(os.path.join(directory, "tokenizer.json"))
    files = {
        "vocab.json": tokenizer.get_vocab(),
        "tokenizer_config.json": {"tokenizer_class": "GPT2Tokenizer", "eos_token": "<|endoftext|>"},
    }
    for name, content in files.items():
        with open(os.path.join(directory, name), "w", encoding="utf-8") as f:
            json.dump(content, f)
    return tokenizer


def allow_new_tokens(run_dir, new, context):
    """The imported run exports at most 64 new tokens; let it export `new`."""
    path = os.path.join(run_dir, "config.yaml")
    with open(path, encoding="utf-8") as f:
        config = yaml.safe_load(f)
    config["export"].update(max_new_tokens=new, max_prompt_tokens=context - new)
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(config, f, sort_keys=False)


def prepare_gpt(work, shape, worker, new):
    """Writes (once) the checkpoint, the float32 and int8 runs and their four
    exports under `work`; returns their paths and the build commands."""
    hf_dir, run, run8 = (os.path.join(work, name) for name in ("gpt2_hf", "run", "run_int8"))
    exports = os.path.join(work, "saved_models")
    paths = {"hf": hf_dir, "run": run, "run_int8": run8, "exports": {}}
    commands = [
        f"transformers_worker.py write_gpt2 {hf_dir} (seed 0, ln_f x {HEAD_SCALE})",
        f"kzoo import {hf_dir} --run-dir {run}",
        f"kzoo quantize {run} --mode int8 --run-dir {run8}",
    ]
    if not os.path.isdir(run):
        worker.call("write_gpt2", directory=hf_dir, config=shape, seed=0, head_scale=HEAD_SCALE)
        write_full_vocabulary_bpe(hf_dir, shape["vocab_size"])
        kzoo_cli("import", hf_dir, "--run-dir", run)
        allow_new_tokens(run, new, shape["n_positions"])
    if not os.path.isdir(run8):
        kzoo_cli("quantize", run, "--mode", "int8", "--run-dir", run8)
    for name, source in (("float32", run), ("int8", run8)):
        for xla in (False, True):
            key = f"{name}_xla" if xla else name
            path = os.path.join(exports, f"gpt_{name}", "2" if xla else "1")
            args = [source, "--out", exports, "--name", f"gpt_{name}"]
            args += ["--version", "2", "--xla"] if xla else ["--version", "1"]
            commands.append("kzoo export " + " ".join(args))
            if not os.path.isdir(path):
                kzoo_cli("export", *args)
            paths["exports"][key] = path
    return paths, commands
