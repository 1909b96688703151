"""Training throughput and MFU on a GPU: kzoo against KerasHub, side by side, on JAX.

    KERAS_BACKEND=jax python benchmarks/gpu_mfu.py \
        [--models gpt bert t5] [--rounds 5] [--steps 10] [--peak-tflops 989] [--tiny] \
        [--profile DIR] [--dropout 0.1]

Needs only JAX, Keras and KerasHub (no TensorFlow): it imports `kzoo.models`
submodules (`keras.ops` only) from the repository root and feeds NumPy batches.

Each pair gets the same configuration with random weights, `mixed_bfloat16`,
AdamW, sparse cross-entropy on float logits, `jit_compile=True` and no dropout
(`--dropout 0.1`: KerasHub's default rate, for both),
and is timed with `train_on_batch` on one random batch in alternating rounds after
a warm-up. Prints one JSON object: per model, the compile time (the first
`train_on_batch`: trace, XLA compile and one step), the median step time,
tokens/s, MFU and the step-time ratio kzoo / KerasHub (< 1: kzoo is faster).

MFU = tokens/s * FLOPs per token / peak. FLOPs per token (forward and backward):
- gpt, bert: `6 N + 12 L T d` (nanoGPT's `estimate_mfu`): N all trainable
  parameters (tied embedding included: it is the output projection of every
  token), L layers, T sequence length, d width.
- t5: per example `6 (N_enc S + (N_dec + N_emb) T) + 12 L d (S^2 + T^2 + S T)`,
  divided by the `S + T` tokens of the example: encoder blocks see the S source
  tokens, decoder blocks and the tied output projection the T target tokens;
  attention is encoder self (S x S), decoder self (T x T) and cross (T x S).
The peak is taken from the device name (H100 SXM / H200: 989 TFLOP/s dense bf16,
H100 PCIe: 756, A100: 312) unless `--peak-tflops` is given; 989 otherwise.

Configurations (issue 8): gpt = GPT-2 small (vocab 50257, 12 layers, 12 heads,
width 768, MLP 3072, context 1024, batch 16); bert = BERT-base masked LM with the
head on every position (vocab 30522, seq 512, batch 32); t5 = T5-small v1.0
(vocab 32128, relu, tied head, source 512, target 128, batch 32). `--tiny`
shrinks all three for a CPU smoke test (its MFU means nothing).

`--profile DIR` also writes a JAX profiler trace of 3 steps of each model after the
timing (`DIR/<model>_<kzoo|keras_hub>/`, readable with TensorBoard's Profile tab or
xprof), so that one call on a lent GPU answers where a slow step spends its time
(issue 8 asks why KerasHub's T5 is under 1% MFU on an H100).
"""

import gc
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ["KERAS_BACKEND"] = "jax"
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import jax  # noqa: E402
import keras  # noqa: E402
import keras_hub  # noqa: E402
import numpy as np  # noqa: E402
from timing_flags import timing_parser  # noqa: E402

# Submodules, not `kzoo.models`, so that nothing beyond keras.ops is imported.
from kzoo.models.bert.bert_backbone import BertBackbone  # noqa: E402
from kzoo.models.bert.bert_masked_lm_head import BertMaskedLMHead  # noqa: E402
from kzoo.models.gpt.gpt_backbone import GPTBackbone  # noqa: E402
from kzoo.models.gpt.gpt_causal_lm import GPTCausalLM  # noqa: E402
from kzoo.models.seq2seq.seq2seq_lm import Seq2SeqLM  # noqa: E402
from kzoo.models.t5.t5_backbone import T5Backbone  # noqa: E402


def _config(vocabulary_size, num_layers, num_heads, hidden_dim, batch_size, **lengths):
    """A benchmarked model's sizes (feed-forward width 4 * hidden_dim) and batch."""
    return dict(
        vocabulary_size=vocabulary_size,
        num_layers=num_layers,
        num_heads=num_heads,
        hidden_dim=hidden_dim,
        intermediate_dim=4 * hidden_dim,
        **lengths,
        batch_size=batch_size,
    )


CONFIGS = {
    "gpt": _config(50257, 12, 12, 768, batch_size=16, max_sequence_length=1024),
    "bert": _config(30522, 12, 12, 768, batch_size=32, max_sequence_length=512),
    "t5": _config(32128, 6, 8, 512, batch_size=32, source_length=512, target_length=128),
}
TINY_CONFIGS = {
    "gpt": _config(512, 2, 2, 64, batch_size=4, max_sequence_length=64),
    "bert": _config(512, 2, 2, 64, batch_size=4, max_sequence_length=64),
    "t5": _config(512, 2, 2, 64, batch_size=4, source_length=64, target_length=16),
}
# Dense bf16 TFLOP/s by device name, most specific first.
PEAK_TFLOPS = (("H200", 989.0), ("H100 PCIe", 756.0), ("H100", 989.0), ("A100", 312.0))
DEFAULT_PEAK_TFLOPS = 989.0


def _shape(config, *drop):
    return {k: v for k, v in config.items() if k not in ("batch_size", *drop)}


def _tokens(rng, config, length):
    """Random `(batch_size, length)` token ids of `config`'s vocabulary."""
    shape = (config["batch_size"], length)
    return rng.integers(0, config["vocabulary_size"], shape).astype("int32")


def _trainable_parameters(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def decoder_flops_per_token(model, config):
    """nanoGPT's `6 N + 12 L T d`: weight matmuls plus attention, forward and back."""
    attention = config["num_layers"] * config["max_sequence_length"] * config["hidden_dim"]
    return 6 * _trainable_parameters(model) + 12 * attention


def gpt_pair(config, dropout=0.0):
    """(kzoo model, KerasHub model, inputs, labels, FLOPs per token)."""
    shape = _shape(config)
    ours = GPTCausalLM(GPTBackbone(**shape, dropout=dropout), end_token_id=0)
    theirs = keras_hub.models.GPT2CausalLM(
        keras_hub.models.GPT2Backbone(**shape, dropout=dropout), preprocessor=None
    )
    tokens = _tokens(np.random.default_rng(0), config, config["max_sequence_length"] + 1)
    inputs = {"token_ids": tokens[:, :-1], "padding_mask": np.ones_like(tokens[:, :-1])}
    return ours, theirs, inputs, tokens[:, 1:], decoder_flops_per_token(theirs, config)


def bert_pair(config, dropout=0.0):
    """BERT masked LM with the head on every position (no masking: pure compute)."""
    shape = _shape(config)
    backbone = BertBackbone(**shape, dropout=dropout)
    mask_positions = keras.Input(shape=(None,), dtype="int32", name="mask_positions")
    head = BertMaskedLMHead(backbone.token_embedding, dtype=backbone.dtype_policy, name="mlm_head")
    logits = head(backbone(backbone.input)["sequence_output"], mask_positions)
    ours = keras.Model({**backbone.input, "mask_positions": mask_positions}, logits)
    theirs = keras_hub.models.BertMaskedLM(
        keras_hub.models.BertBackbone(**shape, dropout=dropout), preprocessor=None
    )
    length = config["max_sequence_length"]
    tokens = _tokens(np.random.default_rng(0), config, length)
    inputs = {
        "token_ids": tokens,
        "segment_ids": np.zeros_like(tokens),
        "padding_mask": np.ones_like(tokens),
        "mask_positions": np.broadcast_to(np.arange(length, dtype="int32"), tokens.shape),
    }
    return ours, theirs, inputs, tokens, decoder_flops_per_token(theirs, config)


def t5_flops_per_token(backbone, source_length, target_length):
    """Encoder blocks on the source, decoder blocks and tied head on the target."""

    def count(layers):
        return sum(layer.count_params() for layer in layers)

    s, t = source_length, target_length
    weights = 6 * (
        count(backbone.encoder_transformer_layers) * s
        + (count(backbone.decoder_transformer_layers) + backbone.token_embedding.count_params()) * t
    )
    width = backbone.num_heads * backbone.head_dim
    attention = 12 * backbone.num_layers * width * (s * s + t * t + s * t)
    return (weights + attention) / (s + t)


def t5_pair(config, dropout=0.0):
    """T5-small v1.0 (relu, tied head), teacher forcing."""
    shape = dict(
        _shape(config, "source_length", "target_length"),
        dropout=dropout,
        activation="relu",
        use_gated_activation=False,
        tie_embedding_weights=True,
    )
    backbone = T5Backbone(**shape)
    ours = Seq2SeqLM(backbone, start_token_id=0, end_token_id=1)
    theirs = keras_hub.models.T5Seq2SeqLM(keras_hub.models.T5Backbone(**shape), preprocessor=None)
    s, t = config["source_length"], config["target_length"]
    rng = np.random.default_rng(0)
    source = _tokens(rng, config, s)
    target = _tokens(rng, config, t + 1)
    inputs = {
        "encoder_token_ids": source,
        "encoder_padding_mask": np.ones_like(source),
        "decoder_token_ids": target[:, :-1],
        "decoder_padding_mask": np.ones_like(target[:, :-1]),
    }
    return ours, theirs, inputs, target[:, 1:], t5_flops_per_token(backbone, s, t)


PAIRS = {"gpt": gpt_pair, "bert": bert_pair, "t5": t5_pair}


def compile_for_timing(model):
    keras.Model.compile(
        model,
        optimizer=keras.optimizers.AdamW(1e-4, weight_decay=0.1, clipnorm=1.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=True,
    )


def time_steps(model, inputs, labels, steps):
    """Seconds of each of `steps` training steps."""
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        loss = float(model.train_on_batch(inputs, labels, return_dict=True)["loss"])
        times.append(time.perf_counter() - start)
        if not np.isfinite(loss):
            raise ValueError(f"{model.name}: the loss is {loss}")
    return times


def profile_steps(models, inputs, labels, name, profile_dir, steps=3):
    """A JAX profiler trace of `steps` training steps of each model."""
    for key, model in models.items():
        with jax.profiler.trace(os.path.join(profile_dir, f"{name}_{key}")):
            time_steps(model, inputs, labels, steps)


def compare(name, config, rounds, steps, peak_tflops, profile_dir=None, dropout=0.0):
    keras.backend.clear_session()
    gc.collect()
    keras.utils.set_random_seed(0)
    ours, theirs, inputs, labels, flops_per_token = PAIRS[name](config, dropout)
    models = {"kzoo": ours, "keras_hub": theirs}
    parameters = {key: _trainable_parameters(model) for key, model in models.items()}
    if parameters["kzoo"] != parameters["keras_hub"]:
        raise ValueError(f"{name}: the pair differs in size: {parameters}")
    compile_s = {}
    for key, model in models.items():
        compile_for_timing(model)
        compile_s[key] = round(time_steps(model, inputs, labels, 1)[0], 2)
        time_steps(model, inputs, labels, 3)  # Warm up.
    times = {key: [] for key in models}
    for r in range(rounds):
        for key in list(models)[:: 1 if r % 2 == 0 else -1]:
            times[key] += time_steps(models[key], inputs, labels, steps)
    if profile_dir:
        profile_steps(models, inputs, labels, name, profile_dir)
    # Source and target tokens for T5.
    tokens_per_step = sum(v.size for k, v in inputs.items() if k.endswith("token_ids"))
    seconds = {key: statistics.median(values) for key, values in times.items()}
    tokens_per_s = {key: tokens_per_step / value for key, value in seconds.items()}
    return {
        "model": name,
        "config": config,
        "dropout": dropout,
        "trainable_parameters": parameters["kzoo"],
        "tokens_per_step": tokens_per_step,
        "flops_per_token": round(flops_per_token),
        "compile_s": compile_s,
        "median_step_ms": {key: round(value * 1000, 2) for key, value in seconds.items()},
        "tokens_per_s": {key: round(value) for key, value in tokens_per_s.items()},
        "mfu": {
            key: float(f"{value * flops_per_token / (peak_tflops * 1e12):.3g}")
            for key, value in tokens_per_s.items()
        },
        "ratio_kzoo_to_keras_hub": round(seconds["kzoo"] / seconds["keras_hub"], 3),
        "steps_timed": rounds * steps,
    }


def detect_peak_tflops(device_kind):
    """Dense bf16 peak of a known device name, or None."""
    for name, tflops in PEAK_TFLOPS:
        if name.lower() in device_kind.lower():
            return tflops
    return None


def main():
    parser = timing_parser(__doc__, "--models", PAIRS, rounds=5, steps=10, dropout_of="both models")
    parser.add_argument(
        "--peak-tflops",
        type=float,
        default=None,
        help="dense bf16 peak; default: from the device name, else 989",
    )
    parser.add_argument("--tiny", action="store_true", help="tiny configs (CPU smoke test)")
    parser.add_argument(
        "--profile",
        metavar="DIR",
        default=None,
        help="also write a JAX profiler trace of 3 steps per model here",
    )
    args = parser.parse_args()

    device = jax.devices()[0]
    peak = args.peak_tflops or detect_peak_tflops(device.device_kind) or DEFAULT_PEAK_TFLOPS
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    configs = TINY_CONFIGS if args.tiny else CONFIGS
    results = [
        compare(name, configs[name], args.rounds, args.steps, peak, args.profile, args.dropout)
        for name in args.models
    ]
    print(
        json.dumps(
            {
                "backend": keras.backend.backend(),
                "device": f"{device.platform}: {device.device_kind}",
                "peak_tflops": peak,
                "dtype_policy": "mixed_bfloat16",
                "versions": {
                    "jax": jax.__version__,
                    "keras": keras.__version__,
                    "keras_hub": keras_hub.__version__,
                },
                "tiny": args.tiny,
                "tensorflow_imported": sys.modules.get("tensorflow") is not None,
                "results": results,
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
