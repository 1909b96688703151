"""train.strategy model_parallel: kernels split over a 2 x 4 JAX mesh, same run.

The sharding rules are checked in process against a tiny GPT's variables; the
runs are one JAX subprocess with 8 forced CPU devices (the device count must be
set before JAX starts): `kzoo train` of the tiny recipe under `model_parallel`
(data 2 x model 4), then under `default` on one device, then two set-ups that
must be refused.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from kzoo.testing import ROOT, TINY_OVERRIDES, assert_same_weights, load_tiny_recipe
from kzoo.training import distribute, sharding_rules
from kzoo.training.config import ConfigError
from kzoo.training.run_directory import RunDirectory

# One worker runs the module, so its fixture (one subprocess) runs once.
pytestmark = pytest.mark.xdist_group("model_parallel")

DATA, MODEL = 2, 4
# Four heads: one per device of the model axis. No dropout (the devices would
# draw other masks than one device), per-epoch monitors off (seconds a run);
# steps_per_epoch 1: the history holds every step's loss.
OVERRIDES = TINY_OVERRIDES + [
    "model.num_heads=4",
    "train.steps=3",
    "train.steps_per_epoch=1",
    "train.validation_steps=1",
    "train.jit_compile=true",
    "train.sample_prompts=[]",
    "monitor.graph=false",
    "monitor.projector=false",
    "monitor.attention_maps=false",
    "monitor.histograms=false",
]
MODEL_PARALLEL = ["train.strategy=model_parallel", f"train.model_axis_size={MODEL}"]

# The tiny GPT's variables split over the model axis, and how.
GPT_SPLITS = {
    "token_embedding/embeddings": (None, "model"),
    **{
        f"transformer_layer_0/self_attention/{name}/kernel": (None, "model")
        for name in ("query", "key", "value")
    },
    **{
        f"transformer_layer_0/self_attention/{name}/bias": ("model",)
        for name in ("query", "key", "value")
    },
    "transformer_layer_0/self_attention/output/kernel": ("model", None),
    "transformer_layer_0/feedforward/intermediate_dense/kernel": (None, "model"),
    "transformer_layer_0/feedforward/intermediate_dense/bias": ("model",),
    "transformer_layer_0/feedforward/output_dense/kernel": ("model", None),
}

# The tiny Llama's (untied output projection, Qwen2's query/key/value biases).
LLAMA_SPLITS = {
    **{k: v for k, v in GPT_SPLITS.items() if "dense/bias" not in k},  # no feed-forward biases
    "token_embedding/reverse_embeddings": ("model", None),
    "transformer_layer_0/feedforward/gate_dense/kernel": (None, "model"),
}

# --- Rules and refusals (in process) ---------------------------------------------


def _splits(family, backbone):
    rules = sharding_rules.rules_for(family)
    splits = {
        v.path: sharding_rules.axes_for(rules, v.path)
        for v in backbone.variables
        if sharding_rules.axes_for(rules, v.path) is not None
    }
    for variable in backbone.variables:  # One axis per dimension.
        assert len(splits.get(variable.path, variable.shape)) == len(variable.shape)
    return splits


def test_the_rules_split_the_attention_and_feedforward_kernels_and_nothing_else():
    from kzoo.models import GPTBackbone, LlamaBackbone

    gpt = GPTBackbone(
        vocabulary_size=32, num_layers=1, num_heads=4, hidden_dim=16, intermediate_dim=32
    )
    assert _splits("gpt", gpt) == GPT_SPLITS
    llama = LlamaBackbone(
        vocabulary_size=32,
        num_layers=1,
        num_heads=4,
        num_key_value_heads=2,
        hidden_dim=16,
        intermediate_dim=24,
        tie_embedding_weights=False,
        attention_bias=True,
    )
    assert _splits("llama", llama) == LLAMA_SPLITS


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["train.strategy=model_parallel"],
            "train.strategy: 'model_parallel' is for the JAX backend",
        ),
        (
            ["train.model_axis_size=2"],
            "train.model_axis_size: 2 is only read by train.strategy model_parallel "
            "(the strategy is 'default')",
        ),
    ],
)
def test_placement_for_refuses_what_cannot_split(monkeypatch, overrides, message):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ConfigError) as error:
        distribute.placement_for(load_tiny_recipe(*overrides))
    assert str(error.value).startswith(message)


def test_a_family_without_rules_and_a_mesh_that_does_not_fit_are_clear_errors():
    with pytest.raises(ConfigError, match="no sharding rules for model.family 'bert'"):
        sharding_rules.rules_for("bert")
    assert sharding_rules.mesh_shape(8, MODEL) == (DATA, MODEL)
    with pytest.raises(ConfigError, match=r"^train.model_axis_size: 3 does not divide the 8"):
        sharding_rules.mesh_shape(8, 3)
    with pytest.raises(ConfigError, match=r"dimension 1 \(20\) does not split over the 8"):
        sharding_rules.check_divisible("k", (16, 20), (None, "model"), {"model": 8})


# --- Runs on 8 JAX CPU devices (one subprocess) ----------------------------------

# Before model.keras is written, prints how every model and optimizer variable
# is split over the devices, then puts the last checkpoint back into the
# sharded variables (as a resume does) and prints where they are then.
SCRIPT = """
import json, sys
import numpy as np
from kzoo import cli
from kzoo.training import checkpoints
from kzoo.training.run_directory import RunDirectory

save_model = RunDirectory.save_model

def shards(variable):
    return {
        "path": variable.path,
        "shape": list(variable.shape),
        "devices": len(variable.value.sharding.device_set),
        "shard_shapes": sorted({tuple(s.data.shape) for s in variable.value.addressable_shards}),
    }

def recording_save_model(self, model):
    print("SHARDS", json.dumps([shards(v) for v in model.variables]), flush=True)
    print("OPTIMIZER", json.dumps([shards(v) for v in model.optimizer.variables]), flush=True)
    before = [np.asarray(v.value) for v in model.variables]
    checkpoints.restore(checkpoints.latest(self.checkpoints_dir), model)
    same = all(np.array_equal(a, np.asarray(v.value)) for a, v in zip(before, model.variables))
    print("RESTORED", json.dumps({"same": same, "shards": [shards(v) for v in model.variables]}), flush=True)
    return save_model(self, model)

def run(name, extra):
    sets = [a for o in overrides + extra for a in ("--set", o)]
    status = cli.main(["train", "recipes/gpt_tiny.yaml", "--run-dir", f"{out}/{name}", *sets])
    print("STATUS", name, status, flush=True)

out, overrides, model_parallel = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
RunDirectory.save_model = recording_save_model
run("model_parallel", model_parallel)
RunDirectory.save_model = save_model
run("one_device", ["train.strategy=default"])
run("uneven_batch", model_parallel + ["data.batch_size=7"])

# A kernel that does not split over the model axis, built under the placement.
from kzoo.models.gpt import GPTBackbone
from kzoo.testing import load_tiny_recipe
from kzoo.training import distribute
from kzoo.training.config import ConfigError

placement = distribute.placement_for(load_tiny_recipe(*overrides, *model_parallel))
try:
    with placement.scope():
        GPTBackbone(vocabulary_size=32, num_layers=1, num_heads=4, hidden_dim=16, intermediate_dim=30)
    print("UNEVEN", json.dumps(None), flush=True)
except ConfigError as error:
    print("UNEVEN", json.dumps(str(error)), flush=True)

# Llama (untied, Qwen2's biases, 2 key/value heads): 3 steps of fit, from the
# same weights, on one device and under the placement.
import keras
from kzoo.models.llama import LlamaBackbone, LlamaCausalLM
from kzoo.training import jax_placements, sharding_rules

def llama():
    backbone = LlamaBackbone(
        vocabulary_size=32, num_layers=1, num_heads=4, num_key_value_heads=2, hidden_dim=16,
        intermediate_dim=24, max_sequence_length=8, tie_embedding_weights=False,
        attention_bias=True,
    )
    return LlamaCausalLM(backbone, end_token_id=1)

def train(model):
    model.compile(
        optimizer=keras.optimizers.AdamW(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=True,
    )
    return [float(model.train_on_batch(x, y)) for x, y in batches]

tokens = np.random.default_rng(0).integers(2, 32, size=(3, 8, 9)).astype("int32")
batches = [({"token_ids": t[:, :-1], "padding_mask": np.ones((8, 8), bool)}, t[:, 1:]) for t in tokens]
keras.utils.set_random_seed(0)
reference = llama()
initial = reference.get_weights()
one_device = train(reference)
placement = jax_placements.ModelParallelPlacement(
    keras.distribution.list_devices(), (2, 4), sharding_rules.rules_for("llama")
)
with placement.scope():
    model = llama()
    model.set_weights(initial)
    split = train(model)
print("LLAMA", json.dumps({
    "one_device": one_device,
    "split": split,
    "weights": [[a.tolist(), b.tolist()] for a, b in zip(reference.get_weights(), model.get_weights())],
    "shards": [shards(v) for v in model.variables],
}), flush=True)
"""


class Run:
    def __init__(self, out, log):
        self.out, self.log = out, log

    def lines(self, tag):
        return [
            line[len(tag) + 1 :] for line in self.log.splitlines() if line.startswith(tag + " ")
        ]

    def json(self, tag):
        (line,) = self.lines(tag)
        return json.loads(line)

    def status(self, name):
        return {n: int(s) for n, s in (line.split() for line in self.lines("STATUS"))}.get(name)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("model_parallel")
    env = dict(
        os.environ,
        KERAS_BACKEND="jax",
        JAX_PLATFORMS="cpu",
        TF_CPP_MIN_LOG_LEVEL="3",
        # XLA's cheapest compilation: most of the process's time.
        XLA_FLAGS=(
            f"--xla_force_host_platform_device_count={DATA * MODEL} "
            "--xla_backend_optimization_level=0 --xla_llvm_disable_expensive_passes=true"
        ),
        PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])),
    )
    process = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(out), json.dumps(OVERRIDES), json.dumps(MODEL_PARALLEL)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
    )
    assert process.returncode == 0, process.stdout[-6000:]
    return Run(out, process.stdout)


def _check_split(variables, splits):
    """Each variable in `splits` is 1/MODEL on each device, the rest whole."""
    assert variables
    for variable in variables:
        axes = splits.get(variable["path"])
        expected = [
            size // MODEL if axes and axes[dim] == "model" else size
            for dim, size in enumerate(variable["shape"])
        ]
        assert variable["devices"] == DATA * MODEL, variable
        assert variable["shard_shapes"] == [expected], variable


@pytest.mark.slow
def test_each_device_holds_a_quarter_of_every_split_kernel_and_its_optimizer_state(run):
    assert (run.status("model_parallel"), run.status("one_device")) == (0, 0)
    assert (
        "model_parallel: a 2 x 4 mesh (data x model): 11 of 20 variables (92% of the "
        "parameters) split over the model axis"
    ) in run.log
    model_variables = run.json("SHARDS")
    assert {v["path"] for v in model_variables} >= set(GPT_SPLITS)
    _check_split(model_variables, GPT_SPLITS)
    # AdamW's moments live beside their variables: adam_w.../<path with _>_momentum.
    slots = {
        f"{path.replace('/', '_')}_{moment}": axes
        for path, axes in GPT_SPLITS.items()
        for moment in ("momentum", "velocity")
    }
    moments = [v for v in run.json("OPTIMIZER") if v["path"].endswith(("momentum", "velocity"))]
    assert len(moments) == 2 * len(model_variables)
    _check_split(
        moments,
        {
            v["path"]: slots[v["path"].split("/", 1)[1]]
            for v in moments
            if v["path"].split("/", 1)[1] in slots
        },
    )
    assert sum(v["path"].split("/", 1)[1] in slots for v in moments) == 2 * len(GPT_SPLITS)


@pytest.mark.slow
def test_a_checkpoint_goes_back_into_the_split_variables(run):
    restored = run.json("RESTORED")
    assert restored["same"]
    assert restored["shards"] == run.json("SHARDS")


@pytest.mark.slow
def test_the_loss_curve_and_weights_match_one_device_of_the_same_global_batch(run):
    split = RunDirectory(run.out / "model_parallel").summary()
    one = RunDirectory(run.out / "one_device").summary()
    assert (split["strategy"], split["replicas"], split["steps"]) == ("model_parallel", DATA, 3)
    for key in ("loss", "val_loss"):
        assert len(split["history"][key]) == 3
        np.testing.assert_allclose(split["history"][key], one["history"][key], rtol=1e-5)
    # model.keras (written from the split variables) against one device's; one
    # step moves the weights by ~1e-3.
    assert_same_weights(run.out / "one_device", run.out / "model_parallel", atol=1e-6)


@pytest.mark.slow
def test_a_kernel_or_batch_that_does_not_split_is_refused(run):
    assert run.json("UNEVEN").startswith(
        "train.strategy model_parallel: transformer_layer_0/feedforward/intermediate_dense/"
        "kernel has shape (16, 30), whose dimension 1 (30) does not split over the 4 "
        "devices of the mesh's 'model' axis"
    )
    assert run.status("uneven_batch") == 2
    assert (
        "data.batch_size: 7 (the global batch) does not split evenly over the 2 replicas "
        "of train.strategy model_parallel"
    ) in run.log
    assert not (run.out / "uneven_batch").exists()


@pytest.mark.slow
def test_llama_splits_its_kernels_and_fits_as_on_one_device(run):
    llama = run.json("LLAMA")
    np.testing.assert_allclose(llama["split"], llama["one_device"], rtol=1e-5)
    for one_device, split in llama["weights"]:
        np.testing.assert_allclose(split, one_device, atol=1e-6, rtol=0)
    _check_split(llama["shards"], LLAMA_SPLITS)
    # Two key/value heads of 4 features: each device holds half a head.
    key = {v["path"]: v for v in llama["shards"]}["transformer_layer_0/self_attention/key/kernel"]
    assert key["shard_shapes"] == [[16, 2]]
