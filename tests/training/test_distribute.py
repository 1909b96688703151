"""train.strategy: tf.distribute and JAX DataParallel runs match one-device runs.

The distributed runs are subprocesses (logical devices, TF_CONFIG and forced JAX
devices must be set before TensorFlow or JAX start), all started together by one
module fixture: on 2 cores their start-up dominates.
"""

import glob
import json
import os
import signal
import socket
import subprocess
import sys
import time
import types

import pytest

from kzoo.testing import ROOT, TINY_OVERRIDES, assert_same_weights
from kzoo.training import distribute, keras_multi_worker_fix
from kzoo.training.config import ConfigError
from kzoo.training.run_directory import RunDirectory

pytestmark = pytest.mark.xdist_group("distribute")

# Two epochs (validation, epoch-end checkpoints), no dropout (replicas would draw
# their own masks), the per-epoch monitors off (not what is tested; seconds a run). One step moves the weights by ~1e-3 (learning rate 3e-3); the
# distributed runs agree with one device to ~1e-7, so the checks use 1e-6.
OVERRIDES = TINY_OVERRIDES + [
    "train.steps=4",
    "train.steps_per_epoch=2",
    "train.sample_prompts=[]",
    "train.validation_steps=1",
    "monitor.graph=false",
    "monitor.projector=false",
    "monitor.attention_maps=false",
    "monitor.histograms=false",
]
GLOBAL_BATCH = 8  # TINY_OVERRIDES' data.batch_size
FIXED_UPSTREAM = (
    "keras#20585 fixed upstream: remove kzoo/training/keras_multi_worker_fix.py "
    "and its call in kzoo/training/distribute.py"
)

# --- Strategy choice and errors (in process) -------------------------------------


def _recipe(*overrides):
    from kzoo.training.recipe import load_recipe

    return load_recipe(
        os.path.join(ROOT, "recipes", "gpt_tiny.yaml"), TINY_OVERRIDES + list(overrides)
    )


def _cluster(workers):
    return distribute.ClusterTask(
        {"worker": [f"host{i}:2222" for i in range(workers)]}, "worker", 0
    )


@pytest.mark.parametrize(
    "backend, cluster, devices, expected",
    [
        ("tensorflow", None, 1, "default"),
        ("tensorflow", None, 4, "mirrored"),
        ("tensorflow", _cluster(2), 0, "multi_worker"),
        ("tensorflow", _cluster(2), 8, "multi_worker"),
        ("tensorflow", _cluster(1), 2, "mirrored"),  # A cluster of one task is one host.
        ("jax", None, 1, "default"),
        ("jax", None, 2, "data_parallel"),
    ],
)
def test_auto_picks_the_strategy_from_the_cluster_and_the_devices(
    backend, cluster, devices, expected
):
    assert distribute.choose_strategy("auto", backend, cluster, devices) == expected


@pytest.mark.parametrize(
    "requested, backend, message",
    [
        ("data_parallel", "tensorflow", "'data_parallel' is for the JAX backend"),
        (
            "mirrored",
            "jax",
            "'mirrored' is a tf.distribute strategy and needs KERAS_BACKEND=tensorflow",
        ),
        ("multi_worker", "jax", "'multi_worker' is a tf.distribute strategy"),
        ("tpu", "jax", "'tpu' is a tf.distribute strategy"),
        ("multi_worker", "tensorflow", "'multi_worker' needs the TF_CONFIG environment variable"),
    ],
)
def test_a_strategy_that_does_not_fit_is_a_clear_error(requested, backend, message):
    with pytest.raises(ConfigError, match="^train.strategy: ") as error:
        distribute.choose_strategy(requested, backend, None, 1)
    assert message in str(error.value)


@pytest.mark.parametrize(
    "value, message",
    [
        ("{not json", "TF_CONFIG: not valid JSON"),
        ("[1, 2]", "TF_CONFIG: expected a JSON object"),
        ('{"task": {"type": "worker", "index": 0}}', 'TF_CONFIG: "cluster" must map'),
        (
            '{"cluster": {"ps": ["h:1"]}, "task": {"type": "ps", "index": 0}}',
            'TF_CONFIG: "cluster" must map',
        ),
        ('{"cluster": {"worker": ["h:1"]}}', 'TF_CONFIG: "task" must be'),
        (
            '{"cluster": {"worker": ["h:1"]}, "task": {"type": "worker", "index": 1}}',
            'TF_CONFIG: "task" must be',
        ),
    ],
)
def test_a_bad_tf_config_is_a_clear_error(value, message):
    with pytest.raises(ConfigError) as error:
        distribute.read_tf_config({"TF_CONFIG": value})
    assert str(error.value).startswith(message)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["train.strategy=tpu"], "train.strategy: 'tpu' found no TPU (train.tpu=''"),
        (["train.strategy=data_parallel"], "train.strategy: 'data_parallel' is for the JAX"),
        (
            ["train.strategy=multi_worker", "train.max_minutes=5"],
            "train.max_minutes: not supported with train.strategy multi_worker",
        ),
    ],
)
def test_placement_for_refuses_what_cannot_run(monkeypatch, overrides, message):
    for name in ("TPU_NAME", "KUBE_GOOGLE_CLOUD_TPU_ENDPOINTS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(
        "TF_CONFIG",
        json.dumps(  # Never contacted: refused first.
            {
                "cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]},
                "task": {"type": "worker", "index": 0},
            }
        ),
    )
    with pytest.raises(ConfigError) as error:
        distribute.placement_for(_recipe(*overrides))
    assert str(error.value).startswith(message)


def test_auto_on_a_machine_without_gpus_changes_nothing(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    placement = distribute.placement_for(_recipe())
    assert (placement.name, placement.num_replicas, placement.is_chief) == ("default", 1, True)
    assert placement.jit_compile(True) is True
    assert placement.prepare(None) is None


def _fake_strategy(values):
    """A strategy of two replicas on workers holding `values`; not the chief."""
    import tensorflow as tf

    return types.SimpleNamespace(
        num_replicas_in_sync=2,
        extended=types.SimpleNamespace(should_checkpoint=False),
        gather=lambda value, axis: tf.constant(values, tf.int64),
    )


def test_workers_that_disagree_stop_with_what_differs():
    placement = distribute.StrategyPlacement("multi_worker", _fake_strategy([4, 4]))
    assert not placement.is_chief
    placement.agree("the step to start from", 4)
    placement = distribute.StrategyPlacement("multi_worker", _fake_strategy([6, -1]))
    with pytest.raises(
        RuntimeError,
        match=r"disagree on the step to start from "
        r"\(task 0: 6, task 1: -1\)",
    ):
        placement.agree("the step to start from", 6)


def test_xla_is_turned_off_with_a_warning_under_several_replicas():
    placement = distribute.StrategyPlacement("mirrored", _fake_strategy([]))
    with pytest.warns(
        UserWarning,
        match="train.jit_compile: true is turned off under "
        r"train.strategy mirrored \(2 replicas\)",
    ):
        assert placement.jit_compile(True) is False
    assert placement.jit_compile(False) is False


def test_worker_directory_starts_with_what_a_resume_reads_and_is_removed(tmp_path):
    run_dir = tmp_path / "run"
    for step in (2, 4):
        (run_dir / "checkpoints" / f"step-{step:08d}").mkdir(parents=True)
        (run_dir / "checkpoints" / f"step-{step:08d}" / "state.json").write_text("{}")
    for name in ("config.yaml", "tokenizer.model", "model.keras"):
        (run_dir / name).write_text(name)
    (run_dir / "tensorboard").mkdir()
    with distribute.worker_directory(str(run_dir)) as scratch:
        copied = sorted(
            os.path.relpath(os.path.join(d, f), scratch)
            for d, _, files in os.walk(scratch)
            for f in files
        )
        assert copied == ["checkpoints/step-00000004/state.json", "config.yaml", "tokenizer.model"]
    assert not os.path.exists(scratch)
    with distribute.worker_directory(str(tmp_path / "absent")) as scratch:
        assert os.listdir(scratch) == []
    assert not os.path.exists(scratch)


# --- Distributed runs (subprocesses) ---------------------------------------------

# `kzoo train` of the tiny recipe into `run_dir`; returns the exit status.
TRAIN = """
import json, os, sys
from kzoo import cli

def run(run_dir, overrides):
    sets = [arg for override in overrides for arg in ("--set", override)]
    return cli.main(["train", "recipes/gpt_tiny.yaml", "--run-dir", run_dir, *sets])

def must(status):
    if status:
        sys.exit(status)

out, overrides = sys.argv[1], json.loads(sys.argv[2])
"""

# TensorFlow: prints the token ids of every replica's training batches after each
# run, a digest of the weights at each checkpoint, and how Keras' own `fit` fails.
RECORD_BATCHES = (
    TRAIN
    + """
import hashlib
import keras, numpy as np, tensorflow as tf
from keras.src.backend.tensorflow import trainer as tf_trainer
from kzoo.training import checkpoints, keras_multi_worker_fix

BATCHES = []
train_step, write = tf_trainer.TensorFlowTrainer.train_step, checkpoints.write

def record(token_ids):
    BATCHES.append(token_ids.tolist())
    return np.int32(0)

def recording_train_step(self, data):
    tf.numpy_function(record, [data[0]["token_ids"]], tf.int32, stateful=True)
    return train_step(self, data)

def digesting_write(directory, model, state, **kwargs):
    weights = b"".join(keras.ops.convert_to_numpy(w).tobytes() for w in model.weights)
    print("CHECKPOINT", state["step"], hashlib.sha256(weights).hexdigest(), flush=True)
    return write(directory, model, state, **kwargs)

tf_trainer.TensorFlowTrainer.train_step = recording_train_step
checkpoints.write = digesting_write

def recorded_run(run_dir, overrides):
    status = run(run_dir, overrides)
    print("BATCHES", json.dumps(BATCHES), flush=True)
    BATCHES.clear()
    return status

def report_unpatched_fit(strategy, features):
    error = keras_multi_worker_fix.unpatched_fit_error(strategy, features)
    print("UNPATCHED_FIT", json.dumps(error and error[:400]), flush=True)
"""
)

MULTI_WORKER = (
    RECORD_BATCHES
    + """
report_unpatched_fit(tf.distribute.MultiWorkerMirroredStrategy(), np.ones((4, 2), "float32"))
sys.exit(recorded_run(out, overrides))
"""
)

MIRRORED = (
    """
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
"""
    + RECORD_BATCHES
    + """
report_unpatched_fit(tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"]),
                     {"x": np.ones((4, 2), "float32"), "mask": np.ones((4, 2), bool)})
for name, extra in (("reference", []),
                    ("mirrored", ["train.strategy=mirrored", "train.jit_compile=true"]),
                    ("uneven", ["train.strategy=mirrored", "data.batch_size=7"])):
    print("STATUS", recorded_run(f"{out}/{name}", overrides + extra), flush=True)
"""
)

# JAX: prints how every input array is split over the devices, and how many
# devices hold each variable restored from a checkpoint. The data-parallel run is
# interrupted mid-epoch (SIGTERM after step 1) and resumed: the restored, sharded
# variables then train the remaining 3 steps.
DATA_PARALLEL = (
    TRAIN
    + """
import signal
from keras.src.backend import distribution_lib
from kzoo.training import checkpoints, resume

distribute_data_input, restore = distribution_lib.distribute_data_input, checkpoints.restore
SHARDS = []

def recording_distribute_data_input(batch, layout, batch_dim_name):
    array = distribute_data_input(batch, layout, batch_dim_name)
    SHARDS.append(sorted((s.device.id, s.data.shape[0]) for s in array.addressable_shards))
    return array

def recording_restore(path, model, **kwargs):
    state = restore(path, model, **kwargs)
    devices = sorted({len(v.value.sharding.device_set) for v in model.variables})
    print("RESTORED", json.dumps({"step": state["step"], "devices": devices}), flush=True)
    return state

batch_end = resume.StepCheckpoint.on_train_batch_end

def interrupt_after_step_1(self, batch, logs=None):
    if self.counter.taken == 1 and not os.path.exists(f"{parallel}/checkpoints"):
        os.kill(os.getpid(), signal.SIGTERM)
    return batch_end(self, batch, logs)

distribution_lib.distribute_data_input = recording_distribute_data_input
checkpoints.restore = recording_restore
resume.StepCheckpoint.on_train_batch_end = interrupt_after_step_1
parallel = f"{out}/data_parallel"
print("INTERRUPTED", run(parallel, overrides), flush=True)
must(cli.main(["train", "--resume", parallel]))
print("SHARDS", json.dumps(SHARDS), flush=True)
must(run(f"{out}/one_device", overrides + ["train.strategy=default"]))
"""
)


def _free_ports(count):
    sockets = [socket.create_server(("127.0.0.1", 0)) for _ in range(count)]
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


class Runs:
    """The module's subprocesses: `out` (where they trained), `logs`, `pids`,
    `statuses` (exit statuses), by name."""

    def __init__(self, out, processes):
        self.out = out
        self.pids = {name: process.pid for name, process in processes.items()}
        self.statuses, self.logs = {}, {}
        deadline = time.monotonic() + 600  # A worker whose peer died may wait forever.
        for name, process in processes.items():
            try:
                self.statuses[name] = process.wait(timeout=max(deadline - time.monotonic(), 1))
            except subprocess.TimeoutExpired:
                process.kill()
                self.statuses[name] = process.wait()
            self.logs[name] = (out / f"{name}.log").read_text()

    def lines(self, name, tag):
        """The values printed after `tag` by process `name`, in order."""
        return [
            line[len(tag) + 1 :]
            for line in self.logs[name].splitlines()
            if line.startswith(tag + " ")
        ]

    def check(self, *names):
        for name in names:
            assert self.statuses[name] == 0, self.logs[name][-6000:]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("distribute")
    (out / "worker1_tmp").mkdir()
    base = dict(
        os.environ,
        TF_CPP_MIN_LOG_LEVEL="3",
        PYTHONPATH=os.pathsep.join(filter(None, [ROOT, os.environ.get("PYTHONPATH")])),
    )
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]

    def worker(index, **env):
        tf_config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        return (
            MULTI_WORKER,
            out / "multi_worker",
            OVERRIDES,
            dict(base, TF_CONFIG=json.dumps(tf_config), **env),
        )

    # Two CPU devices; XLA's cheapest compilation (a third of the process's time).
    jax_env = dict(
        base,
        KERAS_BACKEND="jax",
        JAX_PLATFORMS="cpu",
        XLA_FLAGS=(
            "--xla_force_host_platform_device_count=2 --xla_backend_optimization_level=0 "
            "--xla_llvm_disable_expensive_passes=true"
        ),
    )
    commands = {
        "worker0": worker(0),
        "worker1": worker(1, TMPDIR=str(out / "worker1_tmp")),
        "mirrored": (MIRRORED, out, OVERRIDES, base),
        "jax": (DATA_PARALLEL, out, OVERRIDES + ["train.jit_compile=true"], jax_env),
    }
    processes = {}
    for name, (code, where, overrides, env) in commands.items():
        with open(out / f"{name}.log", "w") as log:
            processes[name] = subprocess.Popen(
                [sys.executable, "-c", code, str(where), json.dumps(overrides)],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
    return Runs(out, processes)


def _first_step_rows(batches, replicas):
    """The token-id rows of the first training step (one record per replica)."""
    return sorted(row for batch in batches[:replicas] for row in batch)


@pytest.mark.slow
def test_mirrored_on_two_cpus_splits_each_batch_and_matches_one_device(runs):
    runs.check("mirrored")
    assert runs.lines("mirrored", "STATUS")[:2] == ["0", "0"]
    reference, mirrored, _ = [json.loads(b) for b in runs.lines("mirrored", "BATCHES")]
    # Each replica trains on half of every global batch; together on all of it.
    assert [len(b) for b in reference[:1]] == [GLOBAL_BATCH]
    assert [len(b) for b in mirrored[:2]] == [GLOBAL_BATCH // 2] * 2
    assert _first_step_rows(mirrored, 2) == _first_step_rows(reference, 1)
    assert (
        "train.jit_compile: true is turned off under train.strategy mirrored "
        "(2 replicas)" in runs.logs["mirrored"]
    )
    summary = RunDirectory(runs.out / "mirrored").summary()
    assert (summary["strategy"], summary["replicas"]) == ("mirrored", 2)
    assert_same_weights(runs.out / "reference", runs.out / "mirrored", atol=1e-6)


@pytest.mark.slow
def test_a_global_batch_that_does_not_split_over_the_replicas_is_refused(runs):
    assert runs.lines("mirrored", "STATUS")[2] == "2"
    assert (
        "data.batch_size: 7 (the global batch) does not split evenly over the 2 "
        "replicas of train.strategy mirrored"
    ) in runs.logs["mirrored"]
    assert not (runs.out / "uneven").exists()


@pytest.mark.slow
def test_multi_worker_splits_each_batch_and_matches_one_process(runs):
    runs.check("worker0", "worker1")
    batches = [json.loads(runs.lines(w, "BATCHES")[0]) for w in ("worker0", "worker1")]
    reference = json.loads(runs.lines("mirrored", "BATCHES")[0])
    assert [len(b[0]) for b in batches] == [GLOBAL_BATCH // 2] * 2
    assert batches[0][0] != batches[1][0]
    assert sorted(batches[0][0] + batches[1][0]) == _first_step_rows(reference, 1)
    # Both workers end every epoch with bit-identical weights.
    assert runs.lines("worker0", "CHECKPOINT") == runs.lines("worker1", "CHECKPOINT")
    assert [c.split()[0] for c in runs.lines("worker0", "CHECKPOINT")] == ["2", "4"]
    summary = RunDirectory(runs.out / "multi_worker").summary()
    assert (summary["strategy"], summary["replicas"]) == ("multi_worker", 2)
    expected = RunDirectory(runs.out / "reference").summary()
    for key in ("loss", "val_loss"):
        assert summary["history"][key] == pytest.approx(expected["history"][key], rel=1e-5)
    assert_same_weights(runs.out / "reference", runs.out / "multi_worker", atol=1e-6)


@pytest.mark.slow
def test_only_the_chief_writes_the_run_directory(runs):
    runs.check("worker0", "worker1")
    run_dir = runs.out / "multi_worker"
    assert sorted(os.listdir(run_dir)) == sorted(
        [
            RunDirectory.CHECKPOINTS,
            RunDirectory.CONFIG,
            RunDirectory.MODEL,
            RunDirectory.SUMMARY,
            RunDirectory.TENSORBOARD,
            "tokenizer.model",
        ]
    )
    events = glob.glob(str(run_dir / RunDirectory.TENSORBOARD / "*" / "events.out.tfevents.*"))
    # events.out.tfevents.TIME.HOST.PID.N.v2
    assert events and {int(e.split(".")[-3]) for e in events} == {runs.pids["worker0"]}
    # Worker 1 wrote into a temporary directory, removed at the end.
    assert os.listdir(runs.out / "worker1_tmp") == []


@pytest.mark.slow
def test_keras_20585_still_needs_the_fix(runs):
    """Fails once Keras fits under these strategies unpatched: then remove the fix."""
    for name, strategy in (
        ("worker0", "multi_worker"),
        ("worker1", "multi_worker"),
        ("mirrored", "mirrored"),
    ):
        error = json.loads(runs.lines(name, "UNPATCHED_FIT")[0])
        assert error is not None, f"{FIXED_UPSTREAM} ({strategy} fits unpatched)"
        assert keras_multi_worker_fix.KNOWN_ERRORS[strategy] in error, (
            f"{strategy}: an unpatched fit fails differently now: {error}"
        )


@pytest.mark.slow
def test_data_parallel_on_two_jax_devices_shards_each_batch_and_matches_one_device(runs):
    runs.check("jax")
    shards = json.loads(runs.lines("jax", "SHARDS")[0])
    # token_ids, padding_mask and labels of every batch: half on each device.
    assert shards and all(s == [[0, GLOBAL_BATCH // 2], [1, GLOBAL_BATCH // 2]] for s in shards)
    summary = RunDirectory(runs.out / "data_parallel").summary()
    assert (summary["strategy"], summary["replicas"]) == ("data_parallel", 2)
    # Interrupted after step 1 (SIGTERM: exit status 143), resumed for steps 2-4.
    assert runs.lines("jax", "INTERRUPTED") == [str(128 + signal.SIGTERM)]
    assert (summary["resumed_from_step"], summary["steps"]) == (1, 4)
    # The numpy checkpoint went back into variables replicated on both devices, and
    # training on from them ends where the uninterrupted one-device run does.
    assert json.loads(runs.lines("jax", "RESTORED")[0]) == {"step": 1, "devices": [2]}
    assert_same_weights(runs.out / "one_device", runs.out / "data_parallel", atol=1e-6)
