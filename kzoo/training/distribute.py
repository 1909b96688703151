"""How `kzoo train` spreads training over devices and hosts (`train.strategy`).

| strategy       | backend    | replicas                                              |
|----------------|------------|-------------------------------------------------------|
| `default`      | any        | one device                                            |
| `mirrored`     | TensorFlow | every local GPU (or the logical CPUs you configured)  |
| `multi_worker` | TensorFlow | every task of `TF_CONFIG`'s cluster, and their GPUs   |
| `tpu`          | TensorFlow | the cores of the TPU named by `train.tpu`             |
| `data_parallel`| JAX        | every device JAX sees                                 |
| `model_parallel`| JAX       | the `data` axis of a `data x model` mesh of them      |

`auto` picks `multi_worker` when `TF_CONFIG` names a cluster of more than one
task, `mirrored` on several GPUs, `data_parallel` when JAX sees several devices,
else `default`; never `model_parallel`, which splits the attention and
feed-forward kernels over the mesh's `model` axis (`train.model_axis_size`
devices; `kzoo.training.sharding_rules`) and each batch over its `data` axis.

Every replica runs the same model on its share of each batch and the gradients
are averaged, so `data.batch_size` is the global batch: each of N replicas trains
on `batch_size / N` examples of every step, and a run matches a one-device run
of the same recipe (up to float rounding). Each worker reads the whole input
pipeline and keeps its part of every batch (`tf.data` auto-shard policy DATA):
the packed, shuffled streams of kzoo have no files to split between workers.

Only the chief (`Placement.is_chief`: task `chief`, or worker 0) writes the run
directory; the other workers run the same steps, collectives included, and write
into a temporary directory that is deleted at the end (`worker_directory`).
"""

import contextlib
import dataclasses
import json
import os
import shutil
import tempfile
import warnings

import keras

from kzoo.training import sharding_rules
from kzoo.training.config import ConfigError
from kzoo.training.jax_placements import DataParallelPlacement, ModelParallelPlacement
from kzoo.training.placement import Placement

CLUSTER_JOBS = ("chief", "worker")


@dataclasses.dataclass(frozen=True)
class ClusterTask:
    """This process's task in a `TF_CONFIG` cluster.

    Attributes:
        cluster: `{job: [host:port, ...]}` (jobs `chief` and `worker`).
        task_type: `"chief"` or `"worker"`.
        task_index: Index in its job.
    """

    cluster: dict
    task_type: str
    task_index: int

    @property
    def num_tasks(self):
        return sum(len(addresses) for addresses in self.cluster.values())


def read_tf_config(environ=None):
    """The `ClusterTask` of the `TF_CONFIG` environment variable, or None if unset.

    `TF_CONFIG` is the JSON that Kubernetes operators (Kubeflow's TFJob) and
    Vertex AI set on every task of a training cluster.

    Raises:
        ConfigError: `TF_CONFIG` is not such a JSON object; the message says why.

    Example:
    >>> spec = {"cluster": {"worker": ["host0:2222", "host1:2222"]},
    ...         "task": {"type": "worker", "index": 1}}
    >>> task = read_tf_config({"TF_CONFIG": json.dumps(spec)})
    >>> task.num_tasks, task.task_type, task.task_index
    (2, 'worker', 1)
    >>> read_tf_config({}) is None
    True
    >>> read_tf_config({"TF_CONFIG": "[1, 2]"})
    Traceback (most recent call last):
    ...
    kzoo.training.config.ConfigError: TF_CONFIG: expected a JSON object, got '[1, 2]'
    """
    raw = (os.environ if environ is None else environ).get("TF_CONFIG", "").strip()
    if not raw:
        return None
    try:
        spec = json.loads(raw)
    except ValueError as error:
        raise ConfigError(f"TF_CONFIG: not valid JSON ({error}): {raw[:200]!r}") from None
    if not isinstance(spec, dict):
        raise ConfigError(f"TF_CONFIG: expected a JSON object, got {raw[:200]!r}")
    cluster, task = spec.get("cluster"), spec.get("task")
    if (
        not isinstance(cluster, dict)
        or not cluster
        or not set(cluster) <= set(CLUSTER_JOBS)
        or not all(
            isinstance(hosts, list)
            and hosts
            and all(isinstance(h, str) and ":" in h for h in hosts)
            for hosts in cluster.values()
        )
    ):
        raise ConfigError(
            'TF_CONFIG: "cluster" must map "chief" and/or "worker" to lists of '
            f"host:port addresses, got {cluster!r}"
        )
    if (
        not isinstance(task, dict)
        or task.get("type") not in cluster
        or not isinstance(task.get("index"), int)
        or not 0 <= task["index"] < len(cluster[task["type"]])
    ):
        raise ConfigError(
            'TF_CONFIG: "task" must be {"type": T, "index": I} naming a task of the '
            f"cluster (jobs {sorted(cluster)}), got {task!r}"
        )
    return ClusterTask(cluster, task["type"], task["index"])


def choose_strategy(requested, backend, cluster_task, num_devices):
    """The strategy to use: `requested` (`train.strategy`) with `auto` resolved.

    Args:
        requested: `train.strategy`.
        backend: `keras.backend.backend()`.
        cluster_task: `read_tf_config()`.
        num_devices: GPUs TensorFlow sees, or devices JAX sees.

    Raises:
        ConfigError: The strategy does not suit the backend, or `multi_worker`
            has no `TF_CONFIG`.

    Example:
    >>> choose_strategy("auto", "tensorflow", None, num_devices=4)
    'mirrored'
    >>> choose_strategy("auto", "jax", None, num_devices=1)
    'default'
    """
    tensorflow_only = ("mirrored", "multi_worker", "tpu")
    if backend == "tensorflow" and requested in ("data_parallel", "model_parallel"):
        raise ConfigError(
            f"train.strategy: {requested!r} is for the JAX backend "
            "(KERAS_BACKEND=jax); on TensorFlow use 'mirrored' (one host) or "
            "'multi_worker' (a TF_CONFIG cluster)"
        )
    if backend != "tensorflow" and requested in tensorflow_only:
        raise ConfigError(
            f"train.strategy: {requested!r} is a tf.distribute strategy and needs "
            f"KERAS_BACKEND=tensorflow (the backend is {backend!r}); on JAX use "
            "'data_parallel' or 'auto'"
        )
    if requested == "multi_worker" and cluster_task is None:
        raise ConfigError(
            "train.strategy: 'multi_worker' needs the TF_CONFIG environment variable "
            '(e.g. {"cluster": {"worker": ["host0:2222", "host1:2222"]}, '
            '"task": {"type": "worker", "index": 0}}); it is not set'
        )
    if requested != "auto":
        return requested
    if backend == "tensorflow" and cluster_task is not None and cluster_task.num_tasks > 1:
        return "multi_worker"
    if num_devices > 1:
        return "mirrored" if backend == "tensorflow" else "data_parallel"
    return "default"


class StrategyPlacement(Placement):
    """A `tf.distribute.Strategy` (`mirrored`, `multi_worker` or `tpu`).

    Args:
        name: The `train.strategy` it implements.
        strategy: The strategy.

    Example:
    >>> import tensorflow as tf
    >>> placement = StrategyPlacement("mirrored", tf.distribute.MirroredStrategy(["/cpu:0"]))
    >>> placement.num_replicas, placement.is_chief
    (1, True)
    >>> dataset = placement.prepare(tf.data.Dataset.range(4))
    >>> dataset.options().experimental_distribute.auto_shard_policy.name
    'DATA'
    """

    def __init__(self, name, strategy):
        self.name = name
        self.strategy = strategy
        self.num_replicas = strategy.num_replicas_in_sync
        # True on the chief of a cluster, and on one host.
        self.is_chief = strategy.extended.should_checkpoint

    def scope(self):
        return self.strategy.scope()

    def prepare(self, dataset):
        if dataset is None:
            return None
        import tensorflow as tf

        options = tf.data.Options()
        options.experimental_distribute.auto_shard_policy = (
            tf.data.experimental.AutoShardPolicy.DATA
        )
        return dataset.with_options(options)

    def jit_compile(self, requested):
        # Keras 3 compiles `strategy.run` over all replicas as one XLA cluster:
        # on CPU replicas it fails ("Trying to access resource ... located in
        # device CPU:1 from device CPU:0"; multi-worker: "Collectives are not yet
        # implemented for CPU devices when compiling with XLA"), and Keras' own
        # jit_compile="auto" turns XLA off under tf.distribute.
        if requested and self.num_replicas > 1 and self.name != "tpu":
            warnings.warn(
                f"train.jit_compile: true is turned off under train.strategy "
                f"{self.name} ({self.num_replicas} replicas): Keras compiles all "
                "replicas' step as one XLA cluster, which fails on CPU and is "
                "disabled by Keras itself under tf.distribute",
                stacklevel=2,
            )
            return False
        return requested

    def agree(self, what, value):
        if self.name != "multi_worker":
            return
        import tensorflow as tf

        values = self.strategy.gather(tf.constant([value], tf.int64), axis=0).numpy()
        if len(set(values.tolist())) > 1:
            raise RuntimeError(
                f"train.strategy multi_worker: the workers disagree on {what} "
                f"({', '.join(f'task {i}: {v}' for i, v in enumerate(values))}); "
                "every worker must see the same data, recipe and, to resume, the "
                "chief's run directory (a shared filesystem)"
            )


def placement_for(config):
    """The `Placement` of a validated recipe.

    Call it before TensorFlow runs anything: `MultiWorkerMirroredStrategy` must
    configure the runtime first, and it waits for every worker of the cluster.

    Raises:
        ConfigError: The strategy does not suit the backend or this machine, or
            `data.batch_size` does not split evenly over the replicas.
    """
    backend = keras.backend.backend()
    requested = config["train"]["strategy"]
    cluster_task = None
    if backend == "tensorflow" and requested in ("auto", "multi_worker"):
        cluster_task = read_tf_config()
    if backend == "tensorflow":
        import tensorflow as tf

        num_devices = len(tf.config.list_physical_devices("GPU"))
    elif backend == "jax":
        import jax

        num_devices = jax.device_count()
    else:
        num_devices = 1
    name = choose_strategy(requested, backend, cluster_task, num_devices)
    if name == "multi_worker" and config["train"]["max_minutes"] is not None:
        # Each worker would stop at its own step and wait for the others forever.
        raise ConfigError(
            "train.max_minutes: not supported with train.strategy multi_worker (the "
            "workers' clocks would stop them at different steps); bound the run "
            "with train.steps or train.epochs"
        )
    model_axis_size = config["train"]["model_axis_size"]
    if model_axis_size is not None and name != "model_parallel":
        raise ConfigError(
            f"train.model_axis_size: {model_axis_size} is only read by train.strategy "
            f"model_parallel (the strategy is {name!r}); remove it or set "
            "train.strategy: model_parallel"
        )
    if name == "default":
        return Placement()
    if name == "data_parallel":
        placement = DataParallelPlacement(keras.distribution.list_devices())
    elif name == "model_parallel":
        placement = ModelParallelPlacement(
            keras.distribution.list_devices(),
            sharding_rules.mesh_shape(num_devices, model_axis_size),
            sharding_rules.rules_for(config["model"]["family"]),
        )
    else:
        from kzoo.training import keras_multi_worker_fix

        placement = StrategyPlacement(name, _make_strategy(name, config["train"]["tpu"]))
        keras_multi_worker_fix.apply()  # keras#20585 and kin: see the module.
    batch_size = config["data"]["batch_size"]
    if batch_size % placement.num_replicas:
        raise ConfigError(
            f"data.batch_size: {batch_size} (the global batch) does not split evenly "
            f"over the {placement.num_replicas} replicas of train.strategy {name}; "
            f"use a multiple of {placement.num_replicas}"
        )
    return placement


def _make_strategy(name, tpu):
    import tensorflow as tf

    if name == "mirrored":
        # MirroredStrategy() takes every GPU, or only CPU:0 without one.
        if tf.config.list_physical_devices("GPU"):
            return tf.distribute.MirroredStrategy()
        return tf.distribute.MirroredStrategy(
            [device.name for device in tf.config.list_logical_devices("CPU")]
        )
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    try:  # Resolves, connects to and initializes the TPU system.
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver.connect(tpu=tpu)
    except (ValueError, RuntimeError, ImportError, tf.errors.OpError) as error:
        raise ConfigError(
            f"train.strategy: 'tpu' found no TPU (train.tpu={tpu!r}: {error}); set "
            "train.tpu to the TPU's name or grpc:// address, or 'local' on a TPU VM"
        ) from None
    return tf.distribute.TPUStrategy(resolver)


@contextlib.contextmanager
def worker_directory(run_dir):
    """A temporary stand-in for `run_dir` on a worker that is not the chief.

    It starts with what resuming reads from `run_dir` (when this worker sees it:
    a shared filesystem): the top-level files but `model.keras`, and the newest
    checkpoint. It is deleted on exit.
    """
    from kzoo.training.run_directory import RunDirectory

    scratch = tempfile.mkdtemp(prefix="kzoo-worker-")
    try:
        RunDirectory(run_dir).copy_resume_files(scratch)
        yield scratch
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
