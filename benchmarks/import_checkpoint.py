"""Import time and peak memory of `kzoo import` for a GPT-2-small-shaped checkpoint.

    python benchmarks/import_checkpoint.py [--dtype float32|float16] [--work DIR]

Writes a random 124M-parameter GPT-2 checkpoint (`config.json`,
`model.safetensors`, laid out as `transformers` saves `GPT2LMHeadModel`; NumPy
only) with a small byte-level BPE tokenizer (the 50,257 embedding rows are then a
padded vocabulary), and runs `kzoo import` on it in a fresh process, as a user
does. Reports the command's wall time, the child's peak RSS, the same for a
process that only starts kzoo (imports TensorFlow, Keras, builds nothing), and
the checkpoint's size. Peak RSS counts the checkpoint's memory-mapped pages
(safetensors maps the file; those pages are the page cache's, shared and dropped
under pressure); `model_copies_owned` is the growth of the process's anonymous
memory over the import, in float32 model sizes: the copies kzoo itself holds.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

STARTUP = "import keras, tensorflow, kzoo.training.checkpoint_import, kzoo.models"


def _child(argv):
    """Runs `argv` in a fresh process; returns (seconds, peak RSS in MiB)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak <= before:
        raise RuntimeError("the child's peak RSS is hidden by an earlier, larger child")
    return seconds, peak / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dtype", default="float32", choices=("float32", "float16"))
    parser.add_argument("--work", help="a scratch directory (default: a temporary one)")
    args = parser.parse_args()

    from kzoo.testing.hf_fixtures import write_random_gpt2_checkpoint
    from kzoo.testing.hf_tokenizers import write_gpt2_tokenizer

    work = args.work or tempfile.mkdtemp(prefix="kzoo-import-")
    source = os.path.join(work, "gpt2-small")
    if not os.path.isdir(source):  # Kept between runs of the same --work.
        write_random_gpt2_checkpoint(source, dtype=args.dtype)
        write_gpt2_tokenizer(source)
    run_dir = os.path.join(work, "run")
    if os.path.exists(run_dir):
        raise SystemExit(f"{run_dir}: remove it first (the import writes a new run)")
    weights = os.path.getsize(os.path.join(source, "model.safetensors"))

    # The start-up alone first: RUSAGE_CHILDREN keeps the largest child's peak.
    startup_s, startup_mib = _child([sys.executable, "-c", STARTUP])
    kzoo = [sys.executable, "-m", "kzoo.cli", "import", source, "--run-dir", run_dir]
    seconds, peak_mib = _child(kzoo)
    with open(os.path.join(run_dir, "summary.json"), encoding="utf-8") as f:
        summary = json.load(f)
    float32_mib = summary["parameters"] * 4 / 2**20
    result = {
        "dtype": args.dtype,
        "parameters": summary["parameters"],
        "checkpoint_mib": round(weights / 2**20, 1),
        "import_seconds": round(seconds, 1),
        "import_seconds_in_kzoo": summary["seconds"],
        "peak_rss_mib": round(peak_mib),
        "startup_rss_mib": round(startup_mib),
        "startup_seconds": round(startup_s, 1),
        "peak_over_startup_in_model_sizes": round((peak_mib - startup_mib) / float32_mib, 2),
    }
    anonymous = summary.get("anonymous_rss_mib")
    if anonymous:  # The import's own memory: the model, without mapped file pages.
        owned = anonymous["after"] - anonymous["before"]
        result["anonymous_rss_mib"] = anonymous
        result["file_rss_mib"] = summary["file_rss_mib"]
        result["model_copies_owned"] = round(owned / float32_mib, 2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
