"""`train.precision` and `train.jit_compile` for every family and task.

Each family/task builds its tiny model with its own `Task.build_model` (as the
trainer does, with a stub tokenizer), compiles it with the task's `compile_args`
and takes one step on an in-memory batch. The precision steps run eagerly: a
compiled step costs 3-20 s of tracing per model on 2 cores, and dtype mismatches
fail eagerly alike. An XLA step of the cheapest model to compile (the LSTM LM;
`KZOO_TEST_XLA_ALL=1` runs every family: 3 minutes) and one end-to-end
`train` run at mixed_float16 (the trainer's AdamW, the loss scale in the
checkpoint) cover the compiled paths.
"""

import os

import keras
import numpy as np
import pytest

from kzoo.testing import ROOT, TINY_OVERRIDES, assert_all_close, to_numpy

VOCAB, LENGTH, BATCH = 40, 8, 4
MIXED = ("mixed_bfloat16", "mixed_float16")

_BERT = {
    "num_layers": 1,
    "num_heads": 2,
    "hidden_dim": 8,
    "intermediate_dim": 16,
    "max_sequence_length": 16,
}
_ENCODER_DECODER = {"num_layers": 1, "num_heads": 2, "hidden_dim": 16, "intermediate_dim": 32}
_LENGTHS = {"max_source_length": LENGTH, "max_target_length": LENGTH}
# The raw recipe of each family/task: only the keys that make it tiny.
RECIPES = {
    "gpt": {"model": {"family": "gpt", "num_layers": 1, "hidden_dim": 16, "intermediate_dim": 32}},
    "lstm": {"model": {"family": "lstm", "embedding_dim": 8, "hidden_dim": 16}},
    **{
        f"bert_{task}": {
            "model": {"family": "bert", "task": task, **_BERT},
            "tokenizer": {"kind": "wordpiece"},
            "data": {
                "builtin_train_examples": 8,
                "builtin_validation_examples": 8,
                "max_query_tokens": 2,
                "doc_stride": 2,
            },
        }
        for task in ("pretrain", "classify", "tag", "qa")
    },
    "seq2seq": {"model": {"family": "seq2seq", **_ENCODER_DECODER}, "data": _LENGTHS},
    "seq2seq_lstm": {
        "model": {
            "family": "seq2seq",
            "architecture": "lstm",
            "embedding_dim": 8,
            "num_layers": 1,
            "hidden_dim": 16,
        },
        "data": _LENGTHS,
    },
    **{
        f"t5_{task}": {
            "model": {"family": "t5", "task": task, **_ENCODER_DECODER},
            "data": _LENGTHS,
        }
        for task in ("pretrain", "finetune")
    },
}
FAMILIES = tuple(RECIPES)


@keras.saving.register_keras_serializable(package="kzoo_tests")
class StubTokenizer(keras.layers.Layer):
    """What the task models read from a tokenizer when they are built."""

    vocabulary_size, bos_id, eos_id = VOCAB, 1, 2

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.built = True  # no state


def task_and_model(family, precision):
    """The family's `Task` (validated tiny recipe) and the model it builds."""
    from kzoo.training.recipe import validate
    from kzoo.training.tasks.registry import task_for

    recipe = RECIPES[family]
    task = task_for(
        validate(
            {
                **recipe,
                "train": {"precision": precision, "warmup_steps": 0},
                "data": {**recipe.get("data", {}), "sequence_length": LENGTH},
            }
        )
    )
    if family in ("bert_classify", "bert_tag"):
        task.resolve_data()  # the labels come from the (built-in) training examples
    dtype = None if precision == "float32" else precision
    return task, task.build_model(StubTokenizer(), dtype=dtype)


def batch(family, seed=0):
    """`(x, y, sample_weight)`: one batch as the family's pipeline gives it."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(3, VOCAB, (BATCH, LENGTH + 1)).astype("int32")
    padding = np.ones((BATCH, LENGTH), "int32")
    padding[-1, 5:] = 0
    if family in ("gpt", "lstm"):
        return {"token_ids": ids[:, :-1], "padding_mask": np.ones_like(padding)}, ids[:, 1:], None
    if family.startswith("bert"):
        x = {
            "token_ids": ids[:, :-1],
            "padding_mask": padding,
            "segment_ids": np.repeat([[0] * 4 + [1] * 4], BATCH, axis=0).astype("int32"),
        }
        if family == "bert_pretrain":
            x["mask_positions"] = np.tile(np.array([[1, 2, 4]], "int32"), (BATCH, 1))
            y = {"mlm": ids[:, :3], "nsp": ids[:, 0] % 2}
            return (
                x,
                y,
                {"mlm": np.ones((BATCH, 3), "float32"), "nsp": np.ones((BATCH,), "float32")},
            )
        if family == "bert_classify":
            return x, ids[:, 0] % 2, None
        if family == "bert_tag":
            return x, ids[:, :-1] % 3, padding.astype("float32")
        return x, {"start_logits": ids[:, 0] % 5, "end_logits": ids[:, 1] % 5}, None
    x = {
        "encoder_token_ids": ids[:, :-1],
        "encoder_padding_mask": padding,
        "decoder_token_ids": ids[:, 1:],
        "decoder_padding_mask": padding,
    }
    return x, ids[:, :-1], padding.astype("float32")


def compile_for_one_step(model, task, **kwargs):
    """The task's loss and metrics, as the trainer compiles them. Plain SGD (no
    warmup) keeps an eager step cheap; Keras wraps it in a `LossScaleOptimizer`
    under mixed_float16 as it wraps the trainer's AdamW (the end-to-end run)."""
    model.compile(optimizer=keras.optimizers.SGD(0.1), **task.compile_args(), **kwargs)


def backbone_of(model):
    return getattr(model, "backbone", model)  # the LSTM LM is its own backbone


def compute_dtypes(model):
    """The compute dtypes of the model's layers that hold weights."""
    return {
        layer.compute_dtype
        for layer in model._flatten_layers()
        if layer.weights and not isinstance(layer, StubTokenizer)
    }


def take_one_step(model, family):
    """One training step on the family's batch; returns its logs. Checks that the
    step updated the weights (a float16 step is skipped when it overflows)."""
    x, y, sample_weight = batch(family)
    before = to_numpy(model.trainable_weights)
    logs = model.train_on_batch(x, y, sample_weight=sample_weight, return_dict=True)
    assert np.isfinite(list(logs.values())).all(), logs
    after = to_numpy(model.trainable_weights)
    assert any(not np.array_equal(a, b) for a, b in zip(after, before))
    return logs


@pytest.mark.filterwarnings("ignore:Gradients do not exist:UserWarning")
@pytest.mark.parametrize("precision", MIXED)
@pytest.mark.parametrize("family", FAMILIES)
def test_one_step_at_mixed_precision(family, precision):
    task, model = task_and_model(family, precision)
    compile_for_one_step(model, task, run_eagerly=True)
    assert model.dtype_policy.name == backbone_of(model).dtype_policy.name == precision
    assert compute_dtypes(model) == {precision.removeprefix("mixed_")}
    # The heads hand float32 logits to the loss (Keras' losses compute in float32).
    assert {keras.backend.standardize_dtype(t.dtype) for t in model.outputs} == {"float32"}
    # Keras wraps the optimizer when the model's own policy is mixed_float16.
    scaled = isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert scaled == (precision == "mixed_float16")
    take_one_step(model, family)
    assert {w.dtype for w in model.weights} == {"float32"}
    if scaled:  # not halved: the gradients were finite at the initial scale
        assert float(to_numpy(model.optimizer.dynamic_scale)) == 2.0**15


# One model per kind of head: the LSTM LM is its own backbone, BERT's masked-LM head
# computes in float32 (autocast off), T5 adds RMSNorm and relative position bias.
# GPT's is checked by the end-to-end run below.
@pytest.mark.parametrize("family", ["lstm", "bert_pretrain", "t5_finetune"])
def test_mixed_float16_model_reloads_with_its_policy(family, tmp_path):
    _, model = task_and_model(family, "mixed_float16")
    x, _, _ = batch(family)
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras", safe_mode=True)
    assert loaded.dtype_policy.name == backbone_of(loaded).dtype_policy.name == ("mixed_float16")
    assert compute_dtypes(loaded) == {"float16"}
    assert_all_close(loaded(x), model(x), atol=0, rtol=0)


@pytest.mark.filterwarnings("ignore:Gradients do not exist:UserWarning")
@pytest.mark.parametrize("family", FAMILIES if os.environ.get("KZOO_TEST_XLA_ALL") else ["lstm"])
def test_one_xla_step_at_mixed_float16(family):
    # XLA on CPU compiles float16 (TF 2.21), the loss scale's conditional update
    # included.
    task, model = task_and_model(family, "mixed_float16")
    compile_for_one_step(model, task, jit_compile=True)
    take_one_step(model, family)
    assert float(to_numpy(model.optimizer.dynamic_scale)) == 2.0**15


def test_mixed_float16_run_checkpoints_and_restores_its_loss_scale(tmp_path):
    from kzoo.training import checkpoints
    from kzoo.training.optimizer import make_optimizer
    from kzoo.training.recipe import load_recipe
    from kzoo.training.run_directory import RunDirectory
    from kzoo.training.tasks.registry import task_for
    from kzoo.training.trainer import train

    recipe = os.path.join(ROOT, "recipes", "gpt_tiny.yaml")
    config = load_recipe(
        recipe,
        TINY_OVERRIDES
        + [
            "train.precision=mixed_float16",
            "train.steps=2",
            "train.steps_per_epoch=2",
            "train.validation_steps=1",
            "train.sample_prompts=[]",
            # Only the loss scale is under test: no TensorBoard extras.
            "monitor.graph=false",
            "monitor.projector=false",
            "monitor.attention_maps=false",
            "monitor.histograms=false",
        ],
    )
    run_dir = str(tmp_path / "run")
    summary = train(config, run_dir, verbose=0)
    assert summary["steps"] == 2 and np.isfinite(summary["history"]["loss"]).all()

    last = checkpoints.latest(os.path.join(run_dir, "checkpoints"))
    paths = checkpoints.read_state(last)["variable_paths"]
    [key] = [k for k, path in paths.items() if path == "loss_scale_optimizer/dynamic_scale"]
    with np.load(os.path.join(last, checkpoints.VARIABLES)) as arrays:
        stored = float(arrays[key])
    assert stored == 2.0**15  # two finite steps: neither halved nor grown

    model = RunDirectory(run_dir).load_model()
    assert model.dtype_policy.name == model.backbone.dtype_policy.name == "mixed_float16"
    model.compile(
        optimizer=make_optimizer(config["train"], total_steps=2), **task_for(config).compile_args()
    )
    optimizer = model.optimizer
    assert isinstance(optimizer, keras.optimizers.LossScaleOptimizer)
    optimizer.build(model.trainable_variables)
    optimizer.dynamic_scale.assign(1.0)
    checkpoints.restore(last, model)
    assert float(to_numpy(optimizer.dynamic_scale)) == stored
    assert int(to_numpy(optimizer.iterations)) == 2


@pytest.mark.parametrize(
    "platform,precision,refused",
    [
        ("cpu", "mixed_float16", True),
        ("cpu", "mixed_bfloat16", False),
        ("gpu", "mixed_float16", False),
    ],
)
def test_mixed_float16_is_refused_on_jax_on_cpu(monkeypatch, platform, precision, refused):
    # jax.jit(jax.nn.dot_product_attention) of float16 fails to compile on CPU
    # (JAX 0.10: "The precision 'F16_F16_F32' is not supported by dot_general on
    # CPU"), and every Transformer family calls it: refused before anything runs.
    import jax

    from kzoo.training.config import ConfigError
    from kzoo.training.recipe import validate

    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    monkeypatch.setattr(jax, "default_backend", lambda: platform)
    recipe = {"train": {"precision": precision}}
    if not refused:
        assert validate(recipe)["train"]["precision"] == precision
        return
    with pytest.raises(
        ConfigError,
        match=r"train\.precision: cannot train on the JAX "
        r"backend on CPU: .* use 'mixed_bfloat16' or 'float32', or "
        r"KERAS_BACKEND=tensorflow, got 'mixed_float16'",
    ):
        validate(recipe)
