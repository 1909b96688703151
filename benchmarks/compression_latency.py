"""Serving latency of one family's compressed variants, side by side (run by
`compression_table.py` in a subprocess of its own).

    TF_CPP_MIN_LOG_LEVEL=3 .venv/bin/python benchmarks/compression_latency.py SPEC.json OUT.json

`SPEC.json`: `{"family": "gpt" | "bert" | "t5", "variants": {name: {"saved_model":
DIR or null, "litert": DIR or null}}, "batches": [1, 8], "rounds": R, "calls": C,
"new_tokens": N}`. Every SavedModel is loaded with `tf.saved_model.load` (the
exports are `kzoo export`'s default, no XLA: what TF Serving runs with its default
flags) and its main signature called with raw strings: a causal LM's `generate`
(greedy, `new_tokens` new tokens), BERT's `classify`, T5's `generate` (greedy,
at most `new_tokens`). LiteRT exports run in `ai_edge_litert`'s interpreter through
`kzoo.export.litert_driver` (BERT: `classify` on the whole batch; a causal LM:
`LiteRTGenerator.generate_ids`, one sequence at a time, so its batch 8 is 8
sequences one after the other). After two warm-up calls each, the variants take
turns: every round times `calls` requests of every variant at every batch, so
the machine's other load falls on all of them alike. `OUT.json` gets p50/p99 in
ms per variant, runtime and batch, and the tokens each variant generated (a
model that stops early at its end token does less work).
"""

import json
import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

import numpy as np  # noqa: E402
from generation import percentile_ms, timed  # noqa: E402

# Fixed inputs: the same for every variant of a family.
GPT_PROMPTS = [
    "ROMEO:\n",
    "JULIET:\nO ",
    "First Citizen:\nWe ",
    "KING RICHARD III:\n",
    "MENENIUS:\nWhy, ",
    "LADY ANNE:\n",
    "DUKE OF YORK:\nThe ",
    "GLOUCESTER:\nNow ",
]
T5_SOURCES = [
    "translate English to Toy: the big dog sees a cat .",
    "translate English to Toy: a small cat helps the friends often .",
    "pluralize: the cow eats the grass .",
    "subject: the friend sees a big dog .",
    "translate English to Toy: the cow helps the friends often .",
    "pluralize: a dog sees the cat .",
    "subject: the small cats help a friend .",
    "translate English to Toy: a friend sees the big cow .",
]


def bert_texts():
    from kzoo.data.builtin_tasks import classification_examples

    return [e["text"] for e in classification_examples(8, seed=7)]


def saved_model_request(family, batch, new_tokens, texts):
    import tensorflow as tf

    if family == "gpt":
        return "generate", {
            "prompts": tf.constant(GPT_PROMPTS[:batch]),
            "max_new_tokens": tf.constant([new_tokens], tf.int32),
            "temperature": tf.constant([0.0]),
            "top_k": tf.constant([0]),
            "top_p": tf.constant([1.0]),
            "seed": tf.constant([0]),
        }
    if family == "bert":
        return "classify", {"texts": tf.constant(texts[:batch])}
    return "generate", {
        "sources": tf.constant(T5_SOURCES[:batch]),
        "strategy": tf.constant(["greedy"]),
        "max_new_tokens": tf.constant([new_tokens], tf.int32),
        "temperature": tf.constant([0.0]),
        "top_k": tf.constant([0]),
        "top_p": tf.constant([1.0]),
        "seed": tf.constant([0]),
        "length_penalty": tf.constant([0.0]),
    }


def generated_tokens(family, outputs):
    """Tokens each row generated (None for a classifier)."""
    if family == "gpt":
        return np.asarray(outputs["token_count"]).tolist()
    if family == "t5":
        return np.asarray(outputs["num_tokens"]).tolist()
    return None


def saved_model_runner(family, path, new_tokens, texts):
    """`(loaded model, batch -> request function)` of a SavedModel."""
    import tensorflow as tf
    import tensorflow_text  # noqa: F401  (registers the tokenizer ops the graph holds)

    loaded = tf.saved_model.load(path)

    def request_for(batch):
        name, request = saved_model_request(family, batch, new_tokens, texts)
        signature = loaded.signatures[name]
        return lambda: signature(**request)

    return loaded, request_for


def litert_runner(family, path, new_tokens, texts):
    """`(interpreter, batch -> request function)` of a LiteRT export."""
    from kzoo.export.litert_driver import LiteRTGenerator, LiteRTModel

    if family == "bert":
        model = LiteRTModel(path, num_threads=2)
        return model, lambda batch: lambda: model.run("classify", texts=texts[:batch])
    generator = LiteRTGenerator(path, num_threads=2)

    def request_for(batch):
        prompts = [
            list(generator.manifest["prompt_prefix_ids"]) + list(generator.tokenizer.tokenize(p))
            for p in GPT_PROMPTS[:batch]
        ]
        return lambda: {
            "token_count": [len(generator.generate_ids(p, new_tokens)) for p in prompts]
        }

    return generator, request_for


def measure(spec):
    family, batches = spec["family"], spec["batches"]
    new_tokens = spec.get("new_tokens", 32)
    texts = bert_texts() if family == "bert" else None
    contenders, keep, errors = {}, [], {}
    for variant, paths in spec["variants"].items():
        for runtime, runner in (("saved_model", saved_model_runner), ("litert", litert_runner)):
            path = paths.get(runtime)
            if not path:
                continue
            try:
                holder, request_for = runner(family, path, new_tokens, texts)
            except Exception as error:  # Reported in the table, not hidden.
                errors[f"{variant}/{runtime}"] = f"{type(error).__name__}: {error}"
                continue
            keep.append(holder)
            for batch in batches:
                try:
                    fn = request_for(batch)
                    outputs = [timed(fn)[1] for _ in range(2)]  # Warm-up.
                except Exception as error:
                    errors[f"{variant}/{runtime}/{batch}"] = f"{type(error).__name__}: {error}"
                    continue
                contenders[(variant, runtime, batch)] = (fn, generated_tokens(family, outputs[-1]))
    times = {key: [] for key in contenders}
    for _ in range(spec["rounds"]):
        for key, (fn, _) in contenders.items():
            times[key] += [timed(fn)[0] for _ in range(spec["calls"])]
    results = {}
    for (variant, runtime, batch), seconds in times.items():
        tokens = contenders[(variant, runtime, batch)][1]
        results.setdefault(variant, {}).setdefault(runtime, {})[str(batch)] = {
            "p50_ms": percentile_ms(seconds, 50),
            "p99_ms": percentile_ms(seconds, 99),
            "requests": len(seconds),
            "generated_tokens": tokens,
        }
    return {"family": family, "results": results, "errors": errors}


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    with open(argv[0], encoding="utf-8") as f:
        spec = json.load(f)
    result = measure(spec)
    with open(argv[1], "w", encoding="utf-8") as f:
        json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
