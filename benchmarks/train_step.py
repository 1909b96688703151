"""Training step time: kzoo against KerasHub (and nanoGPT), side by side in one process.

    TF_CPP_MIN_LOG_LEVEL=3 .venv/bin/python benchmarks/train_step.py \
        [--models gpt bert t5] [--rounds 6] [--steps 20] [--no-xla] [--nanogpt] \
        [--dropout 0.1]

Each kzoo model is converted from the KerasHub one (`kzoo.convert.from_keras_hub`),
so both start from the same weights; the script checks that their outputs agree
before timing. Both get the same batch, optimizer (AdamW, clipnorm 1) and loss,
and are timed with `train_on_batch` in alternating rounds (so that load on a
shared machine hits both alike). `--nanogpt` adds nanoGPT's PyTorch training
step for the GPT configuration (`benchmarks/nanogpt_reference.py`; needs
`pip install torch`). Prints one JSON object: the median step time of each
implementation and the ratios kzoo / reference (< 1: kzoo is faster).
`--dropout` sets every model's dropout rate (default 0; 0.1 is KerasHub's
default for all three backbones and the usual pretraining setting): kzoo draws
its masks with `kzoo.layers.Dropout`'s integer hash, KerasHub with
`keras.random.dropout`, nanoGPT with PyTorch's.

Configurations (issue 8): gpt = nanoGPT's CPU config (vocab 65, 4 layers, 4 heads,
width 128, MLP 512, context 64, batch 12); bert = the same sizes at vocab 512,
sequence 128, batch 16, MLM on 20 positions + NSP; t5 = T5 v1.1 (gated GELU,
untied head) at the same sizes, vocab 512, encoder 128 / decoder 32 tokens,
batch 16.
"""

import json
import os
import statistics
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from timing_flags import timing_parser  # noqa: E402

SIZES = dict(num_layers=4, num_heads=4, hidden_dim=128, intermediate_dim=512)
GPT = dict(vocabulary_size=65, **SIZES, max_sequence_length=64, batch_size=12)
BERT = dict(vocabulary_size=512, **SIZES, sequence_length=128, batch_size=16, mask_positions=20)
T5 = dict(vocabulary_size=512, **SIZES, encoder_length=128, decoder_length=32, batch_size=16)
RNG = np.random.default_rng(0)


def _loss():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def gpt_pair(dropout=0.0, config=GPT, sequence_length=None):
    """`(kzoo model, KerasHub model, inputs, labels, losses)` at `config` (the GPT
    config of the issue by default), on `sequence_length` tokens (default: the
    context)."""
    import keras_hub

    from kzoo.convert import from_keras_hub
    from kzoo.models import GPTCausalLM

    shape = {k: v for k, v in config.items() if k != "batch_size"}
    keras.utils.set_random_seed(0)
    hub_backbone = keras_hub.models.GPT2Backbone(**shape, dropout=dropout)
    theirs = keras_hub.models.GPT2CausalLM(hub_backbone, preprocessor=None)
    ours = GPTCausalLM(from_keras_hub(hub_backbone), end_token_id=0)
    length = sequence_length or config["max_sequence_length"]
    tokens = RNG.integers(0, config["vocabulary_size"], (config["batch_size"], length + 1))
    inputs = {
        "token_ids": tokens[:, :-1].astype("int32"),
        "padding_mask": np.ones_like(tokens[:, :-1], dtype="bool"),
    }
    return ours, theirs, inputs, tokens[:, 1:].astype("int32"), _loss()


def bert_pair(dropout=0.0):
    """BERT MLM + NSP: kzoo `BertPretrainer` vs KerasHub `BertBackbone` with its
    `MaskedLMHead` on the masked positions and a dense NSP head on the pooled output."""
    import keras_hub

    from kzoo.convert import from_keras_hub
    from kzoo.models import BertPretrainer

    keras.utils.set_random_seed(0)
    length, batch = BERT["sequence_length"], BERT["batch_size"]
    hub_backbone = keras_hub.models.BertBackbone(
        **{k: BERT[k] for k in ("vocabulary_size", *SIZES)},
        max_sequence_length=length,
        dropout=dropout,
    )
    inputs = {
        "token_ids": keras.Input((None,), dtype="int32", name="token_ids"),
        "segment_ids": keras.Input((None,), dtype="int32", name="segment_ids"),
        "padding_mask": keras.Input((None,), dtype="int32", name="padding_mask"),
        "mask_positions": keras.Input((None,), dtype="int32", name="mask_positions"),
    }
    features = hub_backbone({k: v for k, v in inputs.items() if k != "mask_positions"})
    # KerasHub's BERT uses tanh GELU; so does the converted kzoo backbone.
    mlm_head = keras_hub.layers.MaskedLMHead(
        token_embedding=hub_backbone.token_embedding,
        name="mlm",
        layer_norm_epsilon=1e-12,
        intermediate_activation=lambda x: keras.activations.gelu(x, approximate=True),
    )
    nsp_head = keras.layers.Dense(2, name="nsp")
    theirs = keras.Model(
        inputs,
        {
            "mlm": mlm_head(features["sequence_output"], mask_positions=inputs["mask_positions"]),
            "nsp": nsp_head(features["pooled_output"]),
        },
    )
    ours = BertPretrainer(from_keras_hub(hub_backbone))
    # Same head weights (kernel, bias, layer norm, output bias; NSP kernel, bias).
    mlm_head.set_weights(ours.mlm_head.get_weights())
    nsp_head.set_weights(ours.nsp_head.get_weights())
    positions = np.sort(
        np.stack([RNG.choice(length, BERT["mask_positions"], replace=False) for _ in range(batch)]),
        axis=1,
    )
    data = {
        "token_ids": RNG.integers(0, BERT["vocabulary_size"], (batch, length)).astype("int32"),
        "segment_ids": (np.arange(length) >= length // 2).astype("int32")[None].repeat(batch, 0),
        "padding_mask": np.ones((batch, length), "int32"),
        "mask_positions": positions.astype("int32"),
    }
    labels = {
        "mlm": RNG.integers(0, BERT["vocabulary_size"], positions.shape).astype("int32"),
        "nsp": RNG.integers(0, 2, (batch,)).astype("int32"),
    }
    return ours, theirs, data, labels, {"mlm": _loss(), "nsp": _loss()}


def t5_pair(dropout=0.0):
    """T5 v1.1: kzoo `Seq2SeqLM` on a `T5Backbone` vs KerasHub's `T5Seq2SeqLM`."""
    import keras_hub

    from kzoo.convert import from_keras_hub
    from kzoo.models import Seq2SeqLM

    keras.utils.set_random_seed(0)
    hub_backbone = keras_hub.models.T5Backbone(
        **{k: T5[k] for k in ("vocabulary_size", *SIZES)},
        dropout=dropout,
        activation="gelu",
        use_gated_activation=True,
        tie_embedding_weights=False,
    )
    theirs = keras_hub.models.T5Seq2SeqLM(hub_backbone, preprocessor=None)
    ours = Seq2SeqLM(from_keras_hub(hub_backbone), start_token_id=0, end_token_id=1)
    batch, source, target = T5["batch_size"], T5["encoder_length"], T5["decoder_length"]
    tokens = RNG.integers(2, T5["vocabulary_size"], (batch, source + target + 1))
    data = {
        "encoder_token_ids": tokens[:, :source].astype("int32"),
        "encoder_padding_mask": np.ones((batch, source), "bool"),
        "decoder_token_ids": tokens[:, source:-1].astype("int32"),
        "decoder_padding_mask": np.ones((batch, target), "bool"),
    }
    return ours, theirs, data, tokens[:, source + 1 :].astype("int32"), _loss()


PAIRS = {"gpt": gpt_pair, "bert": bert_pair, "t5": t5_pair}


def check_same_outputs(ours, theirs, inputs):
    """Raises unless both models give the same outputs on `inputs` (same weights)."""
    flat = [
        [keras.ops.convert_to_numpy(x) for x in keras.tree.flatten(model(inputs))]
        for model in (ours, theirs)
    ]
    difference = max(float(np.max(np.abs(mine - reference))) for mine, reference in zip(*flat))
    if difference > 1e-4:
        raise AssertionError(f"kzoo and KerasHub outputs differ by {difference}")
    return difference


def compile_for_timing(model, loss, jit_compile):
    keras.Model.compile(
        model,
        optimizer=keras.optimizers.AdamW(1e-3, weight_decay=0.1, clipnorm=1.0),
        loss=loss,
        jit_compile=jit_compile,
    )


def time_steps(step, steps):
    """Seconds of each of `steps` calls of `step` (which waits for its result)."""
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return times


def compare(name, rounds, steps, jit_compile, nanogpt=False, dropout=0.0):
    ours, theirs, inputs, labels, loss = PAIRS[name](dropout)
    max_difference = check_same_outputs(ours, theirs, inputs)
    steppers = {}
    for key, model in (("kzoo", ours), ("keras_hub", theirs)):
        compile_for_timing(model, loss, jit_compile)
        steppers[key] = (
            lambda m: lambda: float(m.train_on_batch(inputs, labels, return_dict=True)["loss"])
        )(model)
    parameters = {"kzoo": ours.count_params(), "keras_hub": theirs.count_params()}
    if nanogpt and name == "gpt":
        from nanogpt_reference import make_trainer

        steppers["nanogpt"], parameters["nanogpt"] = make_trainer(
            GPT, inputs["token_ids"], labels, dropout=dropout
        )
    for step in steppers.values():
        for _ in range(3):  # Trace, compile, warm up.
            step()
    times = {key: [] for key in steppers}
    for _ in range(rounds):
        for key, step in steppers.items():
            times[key] += time_steps(step, steps)
    medians = {key: statistics.median(values) * 1000 for key, values in times.items()}
    result = {
        "model": name,
        "jit_compile": jit_compile,
        "dropout": dropout,
        "first_output_max_abs_difference": max_difference,
        "parameters": parameters,
        "median_step_ms": {key: round(value, 2) for key, value in medians.items()},
        "steps_timed": rounds * steps,
    }
    for reference in medians:
        if reference != "kzoo":
            result[f"ratio_kzoo_to_{reference}"] = round(medians["kzoo"] / medians[reference], 3)
    return result


def main():
    parser = timing_parser(__doc__, "--models", PAIRS, rounds=6, steps=20, dropout_of="every model")
    parser.add_argument("--no-xla", action="store_true")
    parser.add_argument(
        "--nanogpt",
        action="store_true",
        help="also time nanoGPT's PyTorch step (gpt only; needs torch)",
    )
    args = parser.parse_args()
    results = [
        compare(name, args.rounds, args.steps, not args.no_xla, args.nanogpt, args.dropout)
        for name in args.models
    ]
    print(json.dumps({"backend": keras.backend.backend(), "results": results}, indent=2))


if __name__ == "__main__":
    main()
