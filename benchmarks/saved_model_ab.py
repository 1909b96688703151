"""Side-by-side latency of causal-LM SavedModels (what one change to the export buys).

    TF_CPP_MIN_LOG_LEVEL=3 .venv/bin/python benchmarks/saved_model_ab.py \
        before=saved_models/gpt/1 after=saved_models/gpt/3 [--batches 1 8] \
        [--new 128 --short 104] [--rounds 5] [--results benchmarks/results/ab.json]

Each export's `generate` signature (TF Serving's default, as
`tf.saved_model.load` runs it) gets the same greedy requests, alternating in
every round so that the machine's other load hits them alike. Prompts are
`--prompt-words` words of plain text. The generated texts must be identical
across the exports (the script fails otherwise). Per export and batch: p50/p99
of `--new`-token requests, ms per new token, and "decoding alone",
`(T(new) - T(short)) / (new - short)` from the same rounds (with the default
`--short`, both requests decode in the same power-of-two buffer, so the
difference excludes tokenization and the prefill), and each p50 as a ratio to
the first export's.

Prints one JSON object (also written to `--results`).
"""

import argparse
import json
import sys
import time

import numpy as np

WORDS = "the of and to in is was for on that with as by at from his her it an are".split()


def greedy_request(prompts, new):
    """The inputs of a causal-LM export's `generate` signature: greedy, `new` tokens."""
    import tensorflow as tf

    return {
        "prompts": tf.constant(prompts),
        "max_new_tokens": tf.constant([new], tf.int32),
        "temperature": tf.constant([0.0]),
        "top_k": tf.constant([0]),
        "top_p": tf.constant([1.0]),
        "seed": tf.constant([0]),
    }


def requests(batch, words, new, seed):
    rng = np.random.default_rng(seed)
    return greedy_request([" ".join(rng.choice(WORDS, words)) for _ in range(batch)], new)


def time_batch(served, batch, args):
    import tensorflow as tf

    long, short = (
        requests(batch, args.prompt_words, n, seed=batch) for n in (args.new, args.short)
    )
    texts = {}
    for name, model in served.items():  # Warm up (traces), and the texts to compare.
        texts[name] = model.signatures["generate"](**long)["generated"].numpy().tolist()
        model.signatures["generate"](**short)
    first = next(iter(texts))
    for name, generated in texts.items():
        if generated != texts[first]:
            raise SystemExit(f"batch {batch}: {name} generates other text than {first}")
    seconds = {(name, kind): [] for name in served for kind in ("long", "short")}
    for _ in range(args.rounds):
        for name, model in served.items():
            for kind, request in (("long", long), ("short", short)):
                start = time.perf_counter()
                tf.nest.map_structure(lambda t: t.numpy(), model.signatures["generate"](**request))
                seconds[(name, kind)].append(time.perf_counter() - start)
    rows = {}
    for name in served:
        long_s, short_s = seconds[(name, "long")], seconds[(name, "short")]
        p50, p50_short = np.percentile(long_s, 50), np.percentile(short_s, 50)
        rows[name] = {
            "p50_ms": round(p50 * 1000, 1),
            "p99_ms": round(float(np.percentile(long_s, 99)) * 1000, 1),
            "ms_per_new_token": round(p50 * 1000 / args.new, 2),
            "decode_ms_per_step": round((p50 - p50_short) * 1000 / (args.new - args.short), 2),
            "seconds": [round(v, 3) for v in long_s],
        }
    base = rows[first]
    for row in rows.values():
        row["p50_vs_first"] = round(row["p50_ms"] / base["p50_ms"], 3)
        row["decode_vs_first"] = round(row["decode_ms_per_step"] / base["decode_ms_per_step"], 3)
    return rows


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("exports", nargs="+", help="NAME=VERSION_DIR, the baseline first")
    parser.add_argument("--batches", type=int, nargs="+", default=[1])
    parser.add_argument("--new", type=int, default=128)
    parser.add_argument("--short", type=int, default=104)
    parser.add_argument("--prompt-words", type=int, default=24)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--results")
    args = parser.parse_args()
    import tensorflow as tf
    import tensorflow_text  # noqa: F401 (the tokenizers' ops, as TF Serving links them)

    served = {}
    for entry in args.exports:
        name, _, path = entry.partition("=")
        served[name] = tf.saved_model.load(path)
    out = {"command": " ".join(sys.argv), "exports": args.exports, "results": {}}
    for batch in args.batches:
        out["results"][batch] = time_batch(served, batch, args)
        print(json.dumps({batch: out["results"][batch]}), file=sys.stderr, flush=True)
    text = json.dumps(out, indent=2)
    print(text)
    if args.results:
        with open(args.results, "w", encoding="utf-8") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
