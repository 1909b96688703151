"""Training step time: kzoo against KerasHub, side by side in one process.

    TF_CPP_MIN_LOG_LEVEL=3 .venv/bin/python benchmarks/train_step.py \
        [--models gpt] [--rounds 6] [--steps 20] [--no-xla]

Each model pair gets the same shapes, batch, optimizer (AdamW) and loss, and is
timed with `train_on_batch` on the same random batch, in alternating rounds (so
that load on a shared machine hits both alike). Prints one JSON object: the median
step time of each implementation and the ratio kzoo / reference (< 1: kzoo is
faster).

Configurations (issue 8): gpt = nanoGPT's CPU config (vocab 65, 4 layers, 4 heads,
width 128, MLP 512, context 64, batch 12).
"""

import argparse
import json
import os
import statistics
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402

GPT = dict(vocabulary_size=65, num_layers=4, num_heads=4, hidden_dim=128,
           intermediate_dim=512, max_sequence_length=64, batch_size=12)


def gpt_pair():
    """(kzoo model, KerasHub model, inputs, labels) at the GPT configuration."""
    import keras_hub

    from kzoo.models import GPTBackbone, GPTCausalLM

    shape = {k: v for k, v in GPT.items() if k != "batch_size"}
    keras.utils.set_random_seed(0)
    ours = GPTCausalLM(GPTBackbone(**shape, dropout=0.0), end_token_id=0)
    theirs = keras_hub.models.GPT2CausalLM(
        keras_hub.models.GPT2Backbone(**shape, dropout=0.0), preprocessor=None)
    rng = np.random.default_rng(0)
    tokens = rng.integers(0, GPT["vocabulary_size"],
                          (GPT["batch_size"], GPT["max_sequence_length"] + 1))
    inputs = {"token_ids": tokens[:, :-1].astype("int32"),
              "padding_mask": np.ones_like(tokens[:, :-1], dtype="bool")}
    return ours, theirs, inputs, tokens[:, 1:].astype("int32")


PAIRS = {"gpt": gpt_pair}


def compile_for_timing(model, jit_compile):
    keras.Model.compile(
        model,
        optimizer=keras.optimizers.AdamW(1e-3, weight_decay=0.1, clipnorm=1.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit_compile,
    )


def time_steps(model, inputs, labels, steps):
    """Seconds of each of `steps` training steps."""
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        logs = model.train_on_batch(inputs, labels, return_dict=True)
        float(logs["loss"])  # Wait for the step.
        times.append(time.perf_counter() - start)
    return times


def compare(name, rounds, steps, jit_compile):
    ours, theirs, inputs, labels = PAIRS[name]()
    models = {"kzoo": ours, "keras_hub": theirs}
    for model in models.values():
        compile_for_timing(model, jit_compile)
        time_steps(model, inputs, labels, 3)  # Trace, compile, warm up.
    times = {key: [] for key in models}
    for _ in range(rounds):
        for key, model in models.items():
            times[key] += time_steps(model, inputs, labels, steps)
    medians = {key: statistics.median(values) * 1000 for key, values in times.items()}
    return {
        "model": name,
        "jit_compile": jit_compile,
        "parameters": {key: model.count_params() for key, model in models.items()},
        "median_step_ms": {key: round(value, 2) for key, value in medians.items()},
        "ratio_kzoo_to_keras_hub": round(medians["kzoo"] / medians["keras_hub"], 3),
        "steps_timed": rounds * steps,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(PAIRS), choices=list(PAIRS))
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--no-xla", action="store_true")
    args = parser.parse_args()
    results = [compare(name, args.rounds, args.steps, not args.no_xla)
               for name in args.models]
    print(json.dumps({"backend": keras.backend.backend(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
