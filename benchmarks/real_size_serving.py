"""Real-size serving on CPU (issue 23): GPT-2 small (124M) decoding against the
machine's memory bandwidth, Hugging Face `transformers` and KerasHub.

    TF_CPP_MIN_LOG_LEVEL=3 .venv/bin/python benchmarks/real_size_serving.py \
        [--rounds 5] [--work /tmp/realsize] [--results benchmarks/results] [--quick]

One run, side by side (contenders alternate in every round, so the machine's
other load hits them alike):

- the limit: streaming-read bandwidth (`memory_bandwidth.py`) and the bytes a
  decoding step reads (every weight, the tied head included, and the cached keys
  and values at the request's mean length); each contender's ms per step is also
  given as a multiple of `bytes_per_step / bandwidth`;
- one random GPT-2-small-shaped checkpoint (vocab 50,257, 12 layers, 12 heads,
  width 768, context 1024) written by `transformers` (`save_pretrained`; the final
  layer norm scaled by `HEAD_SCALE` so that greedy argmaxes are clear, not float
  near-ties) with a byte-level BPE of exactly 50,257 tokens made offline
  (`gpt2_small_checkpoint.py`): `kzoo import` makes it a run, `kzoo quantize --mode
  int8` a second run, `kzoo export` (no XLA, TF Serving's default) and `--xla`
  export both; every contender reads these same weights:
    * the four SavedModels' `generate` signature, loaded with `tf.saved_model.load`
      (string prompts in, greedy, exactly 128 new tokens);
    * `transformers`' `GPT2LMHeadModel.generate` (float32, PyTorch on 2 threads,
      KV cache, `min_new_tokens` = `max_new_tokens`), in a worker process of the
      reference environment (`transformers_worker.py`), ids in and out;
    * KerasHub's `GPT2CausalLM` (`from_preset` of the same directory; XLA greedy
      `generate`, `stop_token_ids=None`);
    * kzoo's `GPTCausalLM.generate()` in Python (ids in), `jit_compile=False`,
      and its default where it has a `jit_compile` argument.
  Prompts are 31 BPE tokens after the start token (32 in all), batch 1 and 8.
  At batch 1 the SavedModels and `transformers` also answer a 104-token request
  in every round: kzoo decodes in a buffer of 256 positions for both (32 + 104
  and 32 + 128 round up to 256), so `(T(128) - T(104)) / 24` is a decoding step
  alone, without tokenization and prefill ("decoding alone").
  The greedy ids of every float32 contender must be identical (the SavedModels'
  through their `generate_ids` signature); int8 ids are compared, not asserted.
- a `tf.profiler` trace of the no-XLA SavedModel at batch 1: TensorFlow ops by
  self time (`tf_op_profile.py`).

BERT-base and T5-small (the issue's third part) are not measured here yet.

Prints one JSON object on stdout and a markdown table on stderr (both also into
`--results`). Run directories and exports stay under `--work` and are reused by
the next run (delete it to rebuild). `--quick`: a 2-layer, width-64 model.
"""

import argparse
import inspect
import json
import os
import platform
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import numpy as np  # noqa: E402
from gpt2_small_checkpoint import HEAD_SCALE, prepare_gpt  # noqa: E402
from json_worker import JsonWorker  # noqa: E402
from memory_bandwidth import kv_cache_bytes, limit_ms, measure_bandwidth, weight_bytes_per_step  # noqa: E402
from saved_model_ab import greedy_request  # noqa: E402
from tf_op_profile import profile_top_ops  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))  # kzoo, when run from elsewhere.
REFERENCE_PYTHON = "/work/refenv/bin/python"
GPT2_SMALL = dict(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12)
QUICK = dict(vocab_size=512, n_positions=256, n_embd=64, n_layer=2, n_head=2)
PROMPT, NEW = 32, 128  # Tokens of each prompt (start token included), new tokens.
BATCHES = (1, 8)
WORDS = "the of and to in is was for on that with as by at from his her it an are".split()


# --- The contenders ------------------------------------------------------------------


def make_prompts(tokenizer, batch, seed):
    """`batch` texts of exactly PROMPT - 1 tokens each, and their ids with the
    start (end-of-document) token first, as kzoo's string prompts get it."""
    rng = np.random.default_rng(seed)
    end = tokenizer.token_to_id("<|endoftext|>")
    texts, ids = [], []
    while len(texts) < batch:
        words = " ".join(rng.choice(WORDS, 4 * PROMPT))
        tokens = tokenizer.encode(words).ids[: PROMPT - 1]
        text = tokenizer.decode(tokens)
        if tokenizer.encode(text).ids == tokens:  # A cut that re-tokenizes the same.
            texts.append(text)
            ids.append([end] + tokens)
    return texts, np.array(ids, "int32")


def saved_model_ids(served, ids, new):
    """The new ids of the `generate_ids` signature (the loop `generate` runs)."""
    import tensorflow as tf

    out = served.signatures["generate_ids"](
        token_ids=tf.constant(ids),
        prompt_lengths=tf.constant([ids.shape[1]] * len(ids)),
        max_new_tokens=tf.constant([new]),
        temperature=tf.constant([0.0]),
        top_k=tf.constant([0]),
        top_p=tf.constant([1.0]),
        seed=tf.constant([0]),
    )
    return out["token_ids"].numpy()[:, ids.shape[1] : ids.shape[1] + new]


def contenders_for(batch, served, hub, lm, worker, tokenizer, new, short=None):
    """`{name: (run, ids)}`: `run()` times one request and returns seconds; `ids()`
    gives its greedy new ids `(batch, new)`. With `short`, the SavedModels and
    `transformers` also get `NAME@short`: the same request for `short` new tokens
    in the same buffer (no `ids`), whose difference is decoding alone."""
    texts, ids = make_prompts(tokenizer, batch, seed=batch)
    contenders = {}
    for name, model in served.items():

        def run(model=model, length=new):
            request = greedy_request(texts, length)
            start = time.perf_counter()
            model.signatures["generate"](**request)["token_count"].numpy()
            return time.perf_counter() - start

        contenders[f"savedmodel_{name}"] = (run, lambda m=model: saved_model_ids(m, ids, new))
        if short:
            contenders[f"savedmodel_{name}@{short}"] = (lambda f=run: f(length=short), None)

    def hf_run(length=new):
        return worker.call("generate", ids=ids.tolist(), new=length)["seconds"]

    def hf_ids():
        return np.array(worker.call("generate", ids=ids.tolist(), new=new)["ids"])

    contenders["transformers"] = (hf_run, hf_ids)
    if short:
        contenders[f"transformers@{short}"] = (lambda: hf_run(short), None)
    buffer = np.zeros((batch, PROMPT + new), "int32")
    buffer[:, :PROMPT] = ids
    hub_inputs = {"token_ids": buffer, "padding_mask": buffer > 0}
    hub_inputs["padding_mask"][:, 0] = True  # The start token may be id 0 in --quick.

    def hub_ids():
        return np.asarray(hub.generate(hub_inputs, stop_token_ids=None)["token_ids"])[:, PROMPT:]

    contenders["keras_hub_xla"] = (lambda: timed(hub_ids), hub_ids)
    settings = {"generate_no_xla": {"jit_compile": False}}
    if "jit_compile" in inspect.signature(lm.generate).parameters:
        settings["generate_default"] = {}
    for name, options in settings.items():

        def lm_ids(options=options):
            rows = lm.generate(ids.tolist(), max_new_tokens=new, **options)
            end = lm.end_token_id  # generate() drops it: put it back where it ended.
            return np.array([row + [end] * (new - len(row)) for row in rows])

        contenders[name] = (lambda f=lm_ids: timed(f), lm_ids)
    return contenders


def timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def first_difference(a, b):
    """(row, position) of the first differing id, or None."""
    where = np.argwhere(a != b)
    return None if len(where) == 0 else [int(v) for v in where[0]]


# --- Measurement ---------------------------------------------------------------------


def time_batch(contenders, rounds, new, limits, end):
    """Checks the ids and warms up (traces, compiles), then times `rounds`
    alternating rounds."""
    ids = {name: get_ids() for name, (_, get_ids) in contenders.items() if get_ids}
    checks = {}
    for name, got in ids.items():
        ends_early = bool((got[:, :-1] == end).any())  # Fewer than `new` tokens.
        if name.startswith("savedmodel_int8"):
            same = float((got == ids["savedmodel_float32"]).mean())
            checks[name] = {"ids_equal_float32_fraction": round(same, 4), "ends_early": ends_early}
            continue
        if ends_early:
            raise RuntimeError(f"{name}: the end token {end} comes before {new} new tokens")
        checks[name] = {"first_difference": first_difference(ids["savedmodel_float32"], got)}
    for name, (run, _) in contenders.items():
        if name.startswith("savedmodel") or "@" in name:
            run()  # `generate`'s own warm-up (the ids came from `generate_ids`).
    seconds = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, (run, _) in contenders.items():
            seconds[name].append(run())
    rows = {}
    for name, values in seconds.items():
        if "@" in name:
            continue
        p50 = float(np.percentile(values, 50))
        ms_step = p50 / new * 1000
        limit = limits["int8" if "int8" in name else "float32"]
        rows[name] = {
            "p50_ms": round(p50 * 1000, 1),
            "p99_ms": round(float(np.percentile(values, 99)) * 1000, 1),
            "ms_per_step": round(ms_step, 2),
            "limit_ms_per_step": round(limit, 2),
            "times_limit": round(ms_step / limit, 2),
            **checks[name],
            "seconds": [round(v, 3) for v in values],
        }
    for name, values in seconds.items():
        if "@" in name:  # Decoding alone: (T(new) - T(short)) / (new - short), p50s.
            base, short = name.split("@")
            row, short = rows[base], int(short)
            step = (row["p50_ms"] - float(np.percentile(values, 50)) * 1000) / (new - short)
            row[f"p50_ms_{short}_new"] = round(float(np.percentile(values, 50)) * 1000, 1)
            row["decode_ms_per_step"] = round(step, 2)
            row["decode_times_limit"] = round(step / row["limit_ms_per_step"], 2)
    xla = rows["savedmodel_float32_xla"]["p50_ms"]
    for row in rows.values():
        row["vs_xla_export"] = round(row["p50_ms"] / xla, 2)
    return rows


def bytes_per_step(variables, shape, batch, new):
    """Weights (at their stored dtype) and cached keys and values at the request's
    mean length, per decoding step of `batch` rows."""
    mean_positions = PROMPT + (new - 1) / 2
    kv = kv_cache_bytes(shape["n_layer"], shape["n_embd"], mean_positions, batch)
    return {"weights": weight_bytes_per_step(variables), "kv_cache": int(kv)}


# --- Command line ----------------------------------------------------------------------


def machine():
    with open("/proc/cpuinfo", encoding="utf-8") as f:
        model = next((line.split(":", 1)[1].strip() for line in f if "model name" in line), "?")
    return {"cpu": model, "nproc": os.cpu_count(), "python": platform.python_version()}


def markdown(out):
    lines = [
        f"bandwidth limit {out['bandwidth']['limit_gb_per_s']} GB/s; "
        f"bytes per step: {json.dumps(out['gpt']['bytes_per_step'])}",
        "",
        "| batch | contender | p50 / p99 ms | ms/step | limit ms/step | x limit "
        "| decoding alone ms/step (x limit) | x XLA export | ids |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for batch, rows in out["gpt"]["results"].items():
        for name, row in rows.items():
            ids = row.get("first_difference", "-")
            if "ids_equal_float32_fraction" in row:
                ids = f"{row['ids_equal_float32_fraction']:.0%} = float32"
            elif ids is None:
                ids = "identical"
            decode = ""
            if "decode_ms_per_step" in row:
                decode = f"{row['decode_ms_per_step']} ({row['decode_times_limit']})"
            lines.append(
                f"| {batch} | {name} | {row['p50_ms']} / {row['p99_ms']} | {row['ms_per_step']} "
                f"| {row['limit_ms_per_step']} | {row['times_limit']} | {decode} "
                f"| {row['vs_xla_export']} | {ids} |"
            )
    profile = out["gpt"].get("profile")
    if profile:
        lines += [
            "",
            f"profile of the no-XLA SavedModel, batch 1: {profile['wall_ms_per_call_profiled']} "
            f"ms per request under the profiler; ops {profile['ops_self_ms_per_call']} ms "
            f"({profile['op_events_per_call']} op events), executor "
            f"{profile['executor_self_ms_per_call']} ms",
            "",
            "| op or executor event | self ms per request | events per request |",
            "|---|---|---|",
        ]
        for event in profile["top_ops"] + profile["top_executor_events"][:4]:
            lines.append(
                f"| {event['name']} | {event['self_ms_per_call']} | {event['events_per_call']} |"
            )
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5, help="timed requests per contender")
    parser.add_argument("--work", default="/tmp/realsize")
    parser.add_argument("--results", help="a directory for real_size_serving.json and .md")
    parser.add_argument("--quick", action="store_true", help="a 2-layer, width-64 model")
    parser.add_argument("--batches", type=int, nargs="+", default=list(BATCHES))
    parser.add_argument("--no-profile", action="store_true")
    parser.add_argument(
        "--prepare-only", action="store_true", help="build the runs and exports, time nothing"
    )
    args = parser.parse_args()
    # `short`: fewer new tokens in the same power-of-two buffer (32 + 104 -> 256).
    shape, new, short_new = (QUICK, 16, 12) if args.quick else (GPT2_SMALL, NEW, 104)
    work = os.path.join(args.work, "quick" if args.quick else "gpt2_small")
    os.makedirs(work, exist_ok=True)

    out = {"command": " ".join(sys.argv), "machine": machine(), "quick": args.quick}
    worker = JsonWorker(REFERENCE_PYTHON, os.path.join(HERE, "transformers_worker.py"))
    try:
        paths, commands = prepare_gpt(work, shape, worker, new)
        if args.prepare_only:
            print(json.dumps({"paths": paths, "commands": commands}, indent=2))
            return
        gib, passes = (0.25, 3) if args.quick else (1.5, 7)
        out["bandwidth"] = measure_bandwidth(gib, passes)
        gb_per_s = out["bandwidth"]["limit_gb_per_s"]
        import keras
        import keras_hub
        import tensorflow as tf
        from tokenizers import Tokenizer

        from kzoo.training.run_directory import RunDirectory

        tokenizer = Tokenizer.from_file(os.path.join(paths["hf"], "tokenizer.json"))
        served = {key: tf.saved_model.load(path) for key, path in paths["exports"].items()}
        lm = RunDirectory(paths["run"]).load_model()
        int8_variables = RunDirectory(paths["run_int8"]).load_model().variables
        hub = keras_hub.models.GPT2CausalLM(
            keras_hub.models.GPT2Backbone.from_preset(paths["hf"]), preprocessor=None
        )
        hub.compile(sampler="greedy")
        worker.call("load", directory=paths["hf"])
        gpt = {
            "shape": shape,
            "head_scale": HEAD_SCALE,
            "prompt_tokens": PROMPT,
            "new_tokens": new,
            "parameters": int(lm.count_params()),
            "build_commands": commands,
            "keras": keras.__version__,
            "bytes_per_step": {},
            "results": {},
        }
        out["gpt"] = gpt
        for batch in args.batches:
            per_step = {
                "float32": bytes_per_step(lm.variables, shape, batch, new),
                "int8": bytes_per_step(int8_variables, shape, batch, new),
            }
            gpt["bytes_per_step"][f"batch_{batch}"] = per_step
            limits = {k: limit_ms(sum(v.values()), gb_per_s) for k, v in per_step.items()}
            short = short_new if batch == 1 else None
            contenders = contenders_for(batch, served, hub, lm, worker, tokenizer, new, short)
            rows = time_batch(contenders, args.rounds, new, limits, lm.end_token_id)
            for name, row in rows.items():
                if not name.startswith("savedmodel_int8"):
                    assert row["first_difference"] is None, f"{name}: greedy ids differ: {row}"
            gpt["results"][f"batch_{batch}"] = rows
            save(out, args)  # A batch at a time: a run stopped later keeps it.
        if not args.no_profile:
            texts, _ = make_prompts(tokenizer, 1, seed=1)
            gpt["profile"] = profile_top_ops(
                served["float32"], greedy_request(texts, new), os.path.join(work, "profile")
            )
        save(out, args)
    finally:
        worker.close()
    print(json.dumps(out, indent=2))
    print(markdown(out), file=sys.stderr)


def save(out, args):
    """Writes what `out` holds so far into `--results` (and says so on stderr)."""
    print(f"{time.strftime('%H:%M:%S')}: {list(out['gpt']['results'])} done", file=sys.stderr)
    if args.results:
        name = "real_size_serving_quick" if args.quick else "real_size_serving"
        with open(os.path.join(args.results, name + ".json"), "w", encoding="utf-8") as f:
            json.dump(out, f, indent=2)
        with open(os.path.join(args.results, name + ".md"), "w", encoding="utf-8") as f:
            f.write(markdown(out) + "\n")


if __name__ == "__main__":
    main()
