"""Training at GPT-2-small size on CPU: kzoo against KerasHub and nanoGPT (issue 23).

    TF_CPP_MIN_LOG_LEVEL=3 .venv/bin/python benchmarks/real_size_training.py \\
        [--references keras_hub nanogpt kzoo_no_xla] [--dropout 0.1] [--rounds 3] \\
        [--steps 2] [--batch-size 4] [--sequence-length 256] \\
        [--torch-python /work/refenv/bin/python] [--tiny]

GPT-2 small's shape (vocabulary 50,257, 12 layers, 12 heads, width 768, MLP 3,072,
1,024 positions: 124M parameters) trained on one fixed batch of `--batch-size` x
`--sequence-length` tokens. As in `train_step.py` (whose `gpt_pair`, compile and
timing helpers this reuses): the kzoo `GPTCausalLM` is converted from KerasHub's
`GPT2CausalLM` and their outputs are checked equal; both train with AdamW
(clipnorm 1) under XLA, by `train_on_batch`; `kzoo_no_xla` is a second kzoo
model compiled without XLA. nanoGPT (`nanogpt_reference.py`) runs in a subprocess
of `--torch-python` (PyTorch is not a kzoo dependency) on 2 threads, on the same
batch and the same weights: the kzoo model's Hugging Face GPT-2 tensors
(`hf_tensors_from`) loaded as nanoGPT's `from_pretrained` does, with GPT-2's tanh
GELU; its loss on the batch before training is checked against kzoo's. The
contenders alternate round by round, so that load on a shared machine hits them
alike; `--steps` steps each per round, after 2 warm-up steps (trace, compile).

In the same run, the machine's float32 matrix-product rate: two 2048 x 2048
matrices multiplied by TensorFlow (eager `tf.linalg.matmul`), NumPy and PyTorch (2
threads), best of 5 each, 2 n^3 FLOP per product; the best of the three is the
"peak". Each contender's achieved FLOP/s is the model's FLOPs per step over its
median step time, with nanoGPT's `estimate_mfu` formula (PaLM's): 6 N + 12 L d T
FLOPs per token, N the parameters less the position embeddings, L layers, d the
width, T the sequence length. `--tiny` runs a toy shape (a smoke test).

Prints one JSON object: medians, tokens/s, fractions of the peak and the ratios
kzoo / reference of the step times (< 1: kzoo is faster).
"""

import json
import os
import statistics
import sys
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from json_worker import JsonWorker  # noqa: E402
from timing_flags import timing_parser  # noqa: E402
from train_step import check_same_outputs, compile_for_timing, gpt_pair, time_steps  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
GPT2_SMALL = dict(
    vocabulary_size=50257,
    num_layers=12,
    num_heads=12,
    hidden_dim=768,
    intermediate_dim=3072,
    max_sequence_length=1024,
)
TINY = dict(
    vocabulary_size=512,
    num_layers=2,
    num_heads=2,
    hidden_dim=64,
    intermediate_dim=256,
    max_sequence_length=64,
)
# What kzoo (XLA) is timed against; kzoo_no_xla: kzoo compiled without XLA.
REFERENCES = ("keras_hub", "nanogpt", "kzoo_no_xla")
MATMUL_SIZE, MATMUL_REPEATS, WARMUP_STEPS = 2048, 5, 2


def _best_seconds(run, repeats):
    run()
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def matmul_flops(nanogpt=None):
    """FLOP/s of a float32 `MATMUL_SIZE`-square product in TF, NumPy and PyTorch."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((MATMUL_SIZE,) * 2, dtype=np.float32) for _ in range(2))
    tf_a, tf_b = tf.constant(a), tf.constant(b)
    seconds = {
        "tensorflow": _best_seconds(lambda: tf.linalg.matmul(tf_a, tf_b).numpy(), MATMUL_REPEATS),
        "numpy": _best_seconds(lambda: a @ b, MATMUL_REPEATS),
    }
    if nanogpt:
        request = dict(op="matmul", size=MATMUL_SIZE, repeats=MATMUL_REPEATS)
        seconds["torch"] = nanogpt.call(**request)["best_seconds"]
    return {key: 2 * MATMUL_SIZE**3 / value for key, value in seconds.items()}


def machine(torch):
    """The CPU and every library's thread settings."""
    import tensorflow as tf

    with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
        names = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
    blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
    return {
        "nproc": os.cpu_count(),
        "cpu_model": names[0] if names else "unknown",
        "tensorflow": tf.__version__,
        "tensorflow_intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "tensorflow_inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "tensorflow_threads_note": "0 = TensorFlow's default, one thread per core",
        "numpy_blas": f"{blas['name']} {blas.get('version', '')}".strip(),
        "thread_environment": {
            name: os.environ.get(name)
            for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
        },
        "torch": torch,
    }


def model_flops_per_step(config, parameters, batch_size, length):
    """nanoGPT's `estimate_mfu` count (PaLM, appendix B) for one training step."""
    non_embedding = parameters - config["max_sequence_length"] * config["hidden_dim"]
    per_token = 6 * non_embedding + 12 * config["num_layers"] * config["hidden_dim"] * length
    return per_token * batch_size * length


def _loss_on(model, inputs, labels):
    logits = model(inputs, training=False)
    losses = keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
    return float(keras.ops.mean(losses))


def contenders(args, config, work):
    """`(runners, parameters, checks, nanogpt process)`: `runners[key](n)` runs
    `n` training steps of `key` and returns their seconds."""
    from kzoo.convert import from_keras_hub
    from kzoo.models import GPTCausalLM
    from kzoo.models.gpt.hf_checkpoint import hf_tensors_from

    ours, theirs, inputs, labels, loss = gpt_pair(
        args.dropout, dict(config, batch_size=args.batch_size), args.sequence_length
    )
    checks = {"first_output_max_abs_difference": check_same_outputs(ours, theirs, inputs)}
    models = {"kzoo": (ours, True)}
    if "keras_hub" in args.references:
        models["keras_hub"] = (theirs, True)
    if "kzoo_no_xla" in args.references:  # Before any step changes the KerasHub weights.
        models["kzoo_no_xla"] = (
            GPTCausalLM(from_keras_hub(theirs.backbone), end_token_id=0),
            False,
        )

    runners, parameters = {}, {}
    for key, (model, jit_compile) in models.items():
        compile_for_timing(model, loss, jit_compile)
        step = (lambda m: lambda: m.train_on_batch(inputs, labels, return_dict=True)["loss"])(model)
        runners[key] = (lambda s: lambda n: time_steps(lambda: float(s()), n))(step)
        parameters[key] = model.count_params()
    if "nanogpt" not in args.references:
        return runners, parameters, checks, None
    weights, batch = os.path.join(work, "weights.npz"), os.path.join(work, "batch.npz")
    np.savez(weights, **dict(hf_tensors_from(ours)))
    np.savez(batch, tokens=inputs["token_ids"], labels=labels)
    kzoo_loss = _loss_on(ours, inputs, labels)
    nanogpt = JsonWorker(args.torch_python, os.path.join(HERE, "nanogpt_reference.py"))
    setup = nanogpt.call(
        op="setup",
        config={**config, "batch_size": args.batch_size},
        weights=weights,
        batch=batch,
        dropout=args.dropout,
        gelu="tanh",
        threads=args.torch_threads,
    )
    os.remove(weights)
    runners["nanogpt"] = lambda n: nanogpt.call(op="steps", n=n)["seconds"]
    parameters["nanogpt"] = setup["parameters"]
    checks["initial_loss"] = {"kzoo": kzoo_loss, "nanogpt": setup["initial_loss"]}
    if abs(kzoo_loss - setup["initial_loss"]) > 1e-3 * max(1.0, abs(kzoo_loss)):
        nanogpt.close()
        raise AssertionError(f"kzoo and nanoGPT losses differ: {checks['initial_loss']}")
    checks["torch"] = {"version": setup["torch"], "threads": setup["threads"]}
    return runners, parameters, checks, nanogpt


def measure(args):
    config = TINY if args.tiny else GPT2_SMALL
    with tempfile.TemporaryDirectory(prefix="kzoo-real-size-") as work:
        runners, parameters, checks, nanogpt = contenders(args, config, work)
    try:
        warmup = {key: [round(s, 2) for s in run(WARMUP_STEPS)] for key, run in runners.items()}
        print(f"warm-up seconds: {warmup}", file=sys.stderr, flush=True)
        peaks = matmul_flops(nanogpt)
        print(f"matmul FLOP/s: {peaks}", file=sys.stderr, flush=True)
        times = {key: [] for key in runners}
        for round_ in range(args.rounds):
            for key, run in runners.items():
                times[key] += run(args.steps)
            # Progress on stderr: a run stopped part-way still leaves its rounds.
            print(f"after round {round_ + 1}: {times}", file=sys.stderr, flush=True)
    finally:
        if nanogpt:
            nanogpt.close()
    tokens = args.batch_size * args.sequence_length
    flops = model_flops_per_step(config, parameters["kzoo"], args.batch_size, args.sequence_length)
    peak = max(peaks.values())
    medians = {key: statistics.median(values) for key, values in times.items()}
    result = {
        "config": config,
        "batch_size": args.batch_size,
        "sequence_length": args.sequence_length,
        "tokens_per_step": tokens,
        "dropout": args.dropout,
        "machine": machine(checks.pop("torch", None)),
        **checks,
        "parameters": parameters,
        "model_flops_per_step": flops,
        "flops_formula": "6 (N - positions x width) + 12 layers x width x sequence, per token",
        "matmul_gflops": {key: round(value / 1e9, 1) for key, value in peaks.items()},
        "matmul_size": MATMUL_SIZE,
        "warmup_step_seconds": warmup,
        "step_seconds": {key: [round(s, 3) for s in values] for key, values in times.items()},
        "median_step_seconds": {key: round(value, 3) for key, value in medians.items()},
        "tokens_per_second": {key: round(tokens / value, 1) for key, value in medians.items()},
        "achieved_gflops": {key: round(flops / value / 1e9, 1) for key, value in medians.items()},
        "fraction_of_matmul_peak": {
            key: round(flops / value / peak, 3) for key, value in medians.items()
        },
        "steps_timed": args.rounds * args.steps,
    }
    for reference in medians:
        if reference != "kzoo":
            result[f"ratio_kzoo_to_{reference}"] = round(medians["kzoo"] / medians[reference], 3)
    return result


def main():
    parser = timing_parser(
        __doc__, "--references", REFERENCES, rounds=3, steps=2, dropout_of="every model"
    )
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--sequence-length", type=int, default=256)
    parser.add_argument("--torch-python", default="/work/refenv/bin/python")
    parser.add_argument("--torch-threads", type=int, default=2)
    parser.add_argument("--tiny", action="store_true", help="a toy shape: a smoke test")
    args = parser.parse_args()
    print(json.dumps({"backend": keras.backend.backend(), **measure(args)}, indent=2))


if __name__ == "__main__":
    main()
