import glob
import json
import math
import os
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest
import tensorflow as tf

from kzoo import staged_files
from kzoo.testing import free_port, listening_addresses
from kzoo.training.run_directory import RunDirectory


def read_scalars(event_dir):
    """{tag: [(step, value), ...]} from the event files in `event_dir`."""
    scalars = {}
    for path in sorted(glob.glob(os.path.join(event_dir, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name in ("scalars", ""):
                    number = (
                        tf.make_ndarray(value.tensor)
                        if value.HasField("tensor")
                        else value.simple_value
                    )
                    scalars.setdefault(value.tag, []).append((event.step, float(number)))
    return scalars


def test_run_directory_layout(tiny_run):
    run_dir, config, summary = tiny_run
    for name in (RunDirectory.CONFIG, RunDirectory.MODEL, RunDirectory.SUMMARY, "tokenizer.model"):
        assert os.path.isfile(os.path.join(run_dir, name)), name
    # Step checkpoints (every 500 steps, each epoch end): the two newest are kept.
    assert sorted(os.listdir(os.path.join(run_dir, RunDirectory.CHECKPOINTS))) == [
        "step-00000003",
        "step-00000006",
    ]
    assert not glob.glob(os.path.join(run_dir, "**", ".tmp-*"), recursive=True)
    assert summary["steps"] == summary["planned_steps"] == 6
    assert not summary["stopped_by_time_budget"]
    assert len(summary["history"]["loss"]) == 2  # 6 steps in 3-step epochs
    assert not os.path.exists(os.path.join(run_dir, ".lock"))  # Released.


def test_run_files_get_the_modes_the_umask_gives(tiny_run):
    """Those staged in a temporary file or directory too (`tempfile` makes them
    0600/0700 whatever the umask)."""
    run_dir, _, _ = tiny_run
    mask = staged_files.umask()
    modes = {}
    for directory, _, files in os.walk(run_dir):
        modes[directory] = 0o777 & ~mask
        modes.update((os.path.join(directory, name), 0o666 & ~mask) for name in files)
    assert {path: oct(stat.S_IMODE(os.stat(path).st_mode)) for path in modes} == {
        path: oct(mode) for path, mode in modes.items()
    }


def test_tensorboard_has_losses_perplexity_learning_rate_and_throughput(tiny_run):
    run_dir, _, summary = tiny_run
    board = os.path.join(run_dir, RunDirectory.TENSORBOARD)
    train = read_scalars(os.path.join(board, "train"))
    validation = read_scalars(os.path.join(board, "validation"))
    for tag in ("epoch_loss", "epoch_perplexity", "epoch_learning_rate", "epoch_tokens_per_second"):
        assert [step for step, _ in train[tag]] == [0, 1], tag
    assert "batch_loss" in train  # step-level curve every train.log_every steps
    losses = [v for _, v in train["epoch_loss"]]
    np.testing.assert_allclose(losses, summary["history"]["loss"], rtol=1e-5)
    np.testing.assert_allclose([v for _, v in train["epoch_perplexity"]], np.exp(losses), rtol=1e-4)
    assert [v for _, v in validation["epoch_loss"]] == pytest.approx(summary["history"]["val_loss"])
    assert all(v > 0 for _, v in train["epoch_tokens_per_second"])


def test_tensorboard_has_text_samples(tiny_run):
    run_dir, _, _ = tiny_run
    samples = os.path.join(run_dir, RunDirectory.TENSORBOARD, "samples")
    texts = []
    for path in glob.glob(os.path.join(samples, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "text":
                    texts.append((event.step, tf.make_ndarray(value.tensor).item().decode()))
    assert [step for step, _ in texts] == [1, 2]
    assert texts[0][1].startswith("| prompt | sample |")


def read_events(event_dir):
    """`[(event, value)]` of every summary value (and `(event, None)` for a graph)."""
    found = []
    for path in sorted(glob.glob(os.path.join(event_dir, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            found += [(event, value) for value in event.summary.value]
            if event.graph_def:
                found.append((event, None))
    return found


def final_variables(run_dir):
    """`{variable path: array}` of the model in the run's last checkpoint."""
    last = sorted(glob.glob(os.path.join(run_dir, RunDirectory.CHECKPOINTS, "step-*")))[-1]
    with open(os.path.join(last, "state.json")) as f:
        paths = json.load(f)["variable_paths"]
    with np.load(os.path.join(last, "variables.npz")) as arrays:
        return {paths[key]: arrays[key] for key in arrays.files if key.startswith("model/")}


def test_tensorboard_has_the_op_graph_histograms_and_gradient_norms(tiny_run):
    run_dir, config, _ = tiny_run
    events = read_events(os.path.join(run_dir, RunDirectory.TENSORBOARD, "train"))
    (graph_event,) = [event for event, value in events if value is None]
    graph = tf.compat.v1.GraphDef.FromString(graph_event.graph_def)
    attention_ops = {
        node.op
        for node in graph.node
        if "/transformer_layer_0" in node.name and "/self_attention" in node.name
    }
    assert {"MatMul", "BatchMatMulV2", "Softmax"} <= attention_ops  # Q/K/V, Q.K^T, softmax
    inputs = {
        node.name: [d.size for d in node.attr["shape"].shape.dim]
        for node in graph.node
        if node.op == "Placeholder" and "/" not in node.name
    }
    data = config["data"]
    assert inputs == {
        "token_ids": [data["batch_size"], data["sequence_length"]],
        "padding_mask": [data["batch_size"], data["sequence_length"]],
    }

    histograms = {}
    for event, value in events:
        if value is not None and value.metadata.plugin_data.plugin_name == "histograms":
            histograms.setdefault(value.tag, []).append(event.step)
            assert tf.make_ndarray(value.tensor)[:, 2].sum() > 0
    weights = {path for path in final_variables(run_dir) if "seed_generator" not in path}
    assert histograms == {f"{path}/histogram": [0, 1] for path in weights}

    scalars = read_scalars(os.path.join(run_dir, RunDirectory.TENSORBOARD, "train"))
    norms = scalars["batch_gradient_norm"]
    assert [step for step, _ in norms] == [step for step, _ in scalars["batch_loss"]]
    assert [step for step, _ in norms] == [2, 4, 6]  # every train.log_every steps
    assert all(0 < norm < math.inf for _, norm in norms)


def test_tensorboard_has_attention_heatmaps_of_a_fixed_probe(tiny_run):
    from kzoo.training.monitoring.attention_maps import GAP, MAX_CELL

    run_dir, config, _ = tiny_run
    events = read_events(os.path.join(run_dir, RunDirectory.TENSORBOARD, "attention"))
    images = [
        (event.step, tf.image.decode_png(tf.make_ndarray(value.tensor)[2]).numpy())
        for event, value in events
        if value.metadata.plugin_data.plugin_name == "images"
        and value.tag == "transformer_layer_0/self_attention"
    ]
    (probe,) = [
        tf.make_ndarray(value.tensor).item().decode() for _, value in events if value.tag == "probe"
    ]
    length, heads = config["data"]["sequence_length"], config["model"]["num_heads"]
    assert probe.startswith(f"**token_ids** ({length} tokens): ")
    assert [step for step, _ in images] == [0, 1]
    for _, image in images:
        cell = MAX_CELL
        assert image.shape == (length * cell, heads * length * cell + (heads - 1) * GAP, 3)
        for head in range(heads):
            left = head * (length * cell + GAP)
            block = image[:, left : left + length * cell]
            assert block[0, 0].tolist() == [255, 255, 255]  # the first token sees itself
            above = np.triu(np.ones((length, length), bool), 1).repeat(cell, 0).repeat(cell, 1)
            assert not block[above].any()  # causal: nothing above the diagonal


def test_projector_files_hold_the_final_token_embedding(tiny_run):
    from google.protobuf import text_format
    from tensorboard.plugins.projector import ProjectorConfig

    from kzoo.tokenizers import load_tokenizer
    from kzoo.training.monitoring.embedding_projector import TENSOR_NAME, metadata_label

    run_dir, _, _ = tiny_run
    projector = os.path.join(run_dir, RunDirectory.TENSORBOARD, "projector")
    config = text_format.Parse(
        open(os.path.join(projector, "projector_config.pbtxt")).read(), ProjectorConfig()
    )
    assert [(e.tensor_name, e.metadata_path) for e in config.embeddings] == [
        (TENSOR_NAME, "metadata.tsv")
    ]
    stored = tf.train.load_checkpoint(projector).get_tensor(TENSOR_NAME)
    np.testing.assert_array_equal(stored, final_variables(run_dir)["token_embedding/embeddings"])
    vocabulary = load_tokenizer(run_dir).get_vocabulary()
    with open(os.path.join(projector, "metadata.tsv"), encoding="utf-8") as f:
        rows = f.read().split("\n")
    assert rows.pop() == "" and len(rows) == len(vocabulary) == stored.shape[0]
    assert rows == [metadata_label(token) for token in vocabulary]


def _get_json(url, timeout):
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                return json.loads(response.read())
        except (OSError, ValueError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def _non_loopback_address():
    """This machine's address on its default route, or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("10.255.255.255", 1))  # no packet is sent
            address = s.getsockname()[0]
        except OSError:
            return None
    return None if address.startswith("127.") else address


@pytest.mark.slow
def test_kzoo_tensorboard_serves_the_scalars_on_loopback_only(tiny_run):
    run_dir, _, summary = tiny_run
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "kzoo.cli", "tensorboard", run_dir, "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(60):
            tags = _get_json(f"{base}/data/plugin/scalars/tags", timeout=60)
            if "epoch_perplexity" in tags.get("train", {}):
                break
            time.sleep(1)
        assert {"epoch_loss", "epoch_learning_rate", "epoch_tokens_per_second"} <= set(
            tags["train"]
        )
        points = _get_json(
            f"{base}/data/plugin/scalars/scalars?run=train&tag=epoch_loss", timeout=30
        )
        assert [p[1] for p in points] == [0, 1]
        np.testing.assert_allclose([p[2] for p in points], summary["history"]["loss"], rtol=1e-5)
        _check_monitoring_dashboards(base, run_dir)
        # Bound to loopback only (checked on any machine), hence not reachable
        # from the network (checked where the machine has another address).
        assert listening_addresses(port) == {"127.0.0.1"}
        address = _non_loopback_address()
        if address is not None:
            with pytest.raises(OSError):
                socket.create_connection((address, port), timeout=5).close()
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def _get_bytes(url):
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read()


def _check_monitoring_dashboards(base, run_dir):
    """The Projector, Graphs and Images dashboards' data, as the browser gets it."""
    from urllib.parse import quote

    from kzoo.training.monitoring.embedding_projector import TENSOR_NAME

    assert _get_json(f"{base}/data/plugin/projector/runs", timeout=30) == ["projector"]
    info = _get_json(f"{base}/data/plugin/projector/info?run=projector", timeout=30)
    embedding = final_variables(run_dir)["token_embedding/embeddings"]
    assert info["embeddings"] == [
        {
            "tensorName": TENSOR_NAME,
            "metadataPath": "metadata.tsv",
            "tensorShape": list(embedding.shape),
        }
    ]
    query = f"run=projector&name={quote(TENSOR_NAME)}"
    tensor = np.frombuffer(
        _get_bytes(f"{base}/data/plugin/projector/tensor?{query}"), "float32"
    ).reshape(embedding.shape)
    np.testing.assert_array_equal(tensor, embedding)
    metadata = _get_bytes(f"{base}/data/plugin/projector/metadata?{query}").decode()
    assert metadata.count("\n") == embedding.shape[0]
    assert _get_json(f"{base}/data/plugin/graphs/info", timeout=30)["train"]["run_graph"]
    graph = _get_bytes(f"{base}/data/plugin/graphs/graph?run=train").decode()
    assert 'op: "Softmax"' in graph and "self_attention" in graph
    images = _get_json(f"{base}/data/plugin/images/tags", timeout=30)
    assert images["attention"]["transformer_layer_0/self_attention"]["samples"] == 1


def test_time_budget_stops_cleanly_and_saves(tmp_path, tiny_overrides):
    from kzoo.training.recipe import load_recipe
    from kzoo.training.trainer import train

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    config = load_recipe(
        os.path.join(root, "recipes", "gpt_tiny.yaml"),
        tiny_overrides
        + ["train.steps=1000", "train.max_minutes=0.0001", "train.sample_prompts=[]"],
    )
    summary = train(config, str(tmp_path / "run"), verbose=0)
    assert summary["stopped_by_time_budget"]
    assert 1 <= summary["steps"] < 1000
    assert os.path.isfile(tmp_path / "run" / RunDirectory.MODEL)


def test_learning_rate_schedule_warms_up_then_decays():
    from kzoo.training.optimizer import learning_rate_schedule

    config = {
        "learning_rate": 1e-3,
        "warmup_steps": 10,
        "decay": "cosine",
        "min_learning_rate": 1e-4,
    }
    schedule = learning_rate_schedule(config, total_steps=110)
    rates = [float(schedule(step)) for step in (0, 5, 10, 60, 110)]
    assert rates[0] == 0.0 and rates[1] == pytest.approx(5e-4)
    assert rates[2] == pytest.approx(1e-3)
    assert rates[3] == pytest.approx(1e-4 + 0.5 * (1e-3 - 1e-4), rel=1e-4)
    assert rates[4] == pytest.approx(1e-4, rel=1e-4)
    constant = learning_rate_schedule({**config, "decay": "constant"}, total_steps=110)
    assert float(constant(100)) == pytest.approx(1e-3)
    assert math.isfinite(float(constant(10_000)))


@pytest.mark.slow
def test_mixed_precision_and_xla_train(tmp_path, tiny_overrides):
    from kzoo.training.recipe import load_recipe
    from kzoo.training.trainer import train

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    config = load_recipe(
        os.path.join(root, "recipes", "gpt_tiny.yaml"),
        tiny_overrides
        + [
            "train.precision=mixed_bfloat16",
            "train.jit_compile=true",
            "train.steps=3",
            "train.sample_prompts=[]",
        ],
    )
    summary = train(config, str(tmp_path / "run"), verbose=0)
    assert summary["steps"] == 3
    assert all(math.isfinite(v) for v in summary["history"]["loss"])
    from kzoo.training.run_directory import RunDirectory

    model = RunDirectory(tmp_path / "run").load_model()
    assert model.backbone.dtype_policy.name == "mixed_bfloat16"
    assert all(w.dtype == "float32" for w in model.weights)
