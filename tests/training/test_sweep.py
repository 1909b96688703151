"""`kzoo sweep`: trial run directories, the hparams summaries TensorBoard reads,
re-runs that skip or resume trials, and errors in the grid."""

import contextlib
import glob
import io
import json
import os
import re
import shutil
import signal
import urllib.request

import numpy as np
import pytest
import tensorflow as tf
from tensorboard.plugins.hparams import plugin_data_pb2

from kzoo import cli
from kzoo.testing import ROOT, TINY_OVERRIDES, assert_same_weights, interrupt_at
from kzoo.training.run_directory import RunDirectory
from kzoo.training.sweep import runner as kzoo_sweep

RECIPE = os.path.join(ROOT, "recipes", "gpt_tiny.yaml")
# One worker builds the module's sweep fixture (xdist would build it on both).
pytestmark = pytest.mark.xdist_group("sweep")

# Two steps (one epoch) per trial, no text samples, no monitoring beyond scalars.
SWEEP_OVERRIDES = [o for o in TINY_OVERRIDES if not o.startswith("train.steps")] + [
    "train.steps=2",
    "train.sample_prompts=[]",
    "monitor.graph=false",
    "monitor.projector=false",
    "monitor.attention_maps=false",
    "monitor.histograms=false",
]
GRID = "train.learning_rate=0.01,0.003"
TRIALS = {"learning_rate=0.01": 0.01, "learning_rate=0.003": 0.003}
# Trial name suffixes of colliding names (sha1 of the values as typed): pinned, so a
# re-run in another process finds the same directories.
HASHES = ["8794f271", "59e354cd", "fa5141ba", "863eebfa"]


def sweep_args(out_dir, grid=(GRID,), overrides=SWEEP_OVERRIDES):
    args = ["sweep", RECIPE, "--out", str(out_dir)]
    for text in grid:
        args += ["--grid", text]
    for text in overrides:
        args += ["--set", text]
    return args


def _read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def run_cli(args):
    """`(exit status, stdout, stderr)` of `kzoo ARGS` run in this process."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = cli.main(args)
    return status, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A finished 2-trial sweep: `(sweep directory, kzoo sweep's stdout)`."""
    out_dir = str(tmp_path_factory.mktemp("sweep") / "gpt_tiny-sweep")
    status, stdout, stderr = run_cli(sweep_args(out_dir))
    assert status == 0, stderr
    return out_dir, stdout


def plugin_summaries(event_dir, plugin_name):
    """`[(tag, plugin content, value)]` of the summaries of one plugin written
    directly in `event_dir` (its event files, not its subdirectories)."""
    found = []
    for path in sorted(glob.glob(os.path.join(event_dir, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == plugin_name:
                    found.append(
                        (
                            value.tag,
                            value.metadata.plugin_data.content,
                            tf.make_ndarray(value.tensor),
                        )
                    )
    return found


def last_scalar(event_dir, tag):
    values = [float(value) for t, _, value in plugin_summaries(event_dir, "scalars") if t == tag]
    return values[-1]


def test_each_combination_is_a_run_directory_recorded_in_sweep_json(swept):
    out_dir, stdout = swept
    record = _read_json(os.path.join(out_dir, "sweep.json"))
    assert record["grid"] == {"train.learning_rate": ["0.01", "0.003"]}
    assert list(record["trials"]) == list(TRIALS)
    for name, learning_rate in TRIALS.items():
        trial = record["trials"][name]
        run_dir = os.path.join(out_dir, name)
        assert trial["run_dir"] == run_dir
        assert trial["hparams"] == {"train.learning_rate": learning_rate}
        assert trial["status"] == "finished"
        with open(os.path.join(run_dir, RunDirectory.CONFIG), encoding="utf-8") as f:
            assert f"  learning_rate: {learning_rate}\n" in f.read()
        summary = RunDirectory(run_dir).summary()
        assert summary["steps"] == 2
        assert trial["metrics"] == {k: v[-1] for k, v in summary["history"].items()}
        # The table printed at the end: one row per trial with its final losses.
        row = next(line for line in stdout.splitlines() if line.startswith(name + " "))
        assert row.split()[1:4] == [
            "finished",
            f"{trial['metrics']['loss']:.4g}",
            f"{trial['metrics']['val_loss']:.4g}",
        ]
    best = min(record["trials"], key=lambda n: record["trials"][n]["metrics"]["val_loss"])
    assert f"Lowest val_loss: {best}\n" in stdout
    # The two learning rates trained different models.
    losses = [record["trials"][n]["metrics"]["val_loss"] for n in TRIALS]
    assert losses[0] != losses[1]


def test_hparams_config_and_sessions_read_back_and_link_to_the_scalars(swept):
    out_dir, _ = swept
    record = _read_json(os.path.join(out_dir, "sweep.json"))
    [(tag, content, _)] = plugin_summaries(out_dir, "hparams")
    assert tag == "_hparams_/experiment"
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content).experiment
    [hparam] = experiment.hparam_infos
    assert hparam.name == "train.learning_rate"
    assert sorted(v.number_value for v in hparam.domain_discrete.values) == [0.003, 0.01]
    metrics = [(m.name.group, m.name.tag) for m in experiment.metric_infos]
    assert metrics[:2] == [("validation", "epoch_loss"), ("train", "epoch_loss")]
    assert {("validation", "epoch_perplexity"), ("train", "epoch_accuracy")} <= set(metrics)
    assert ("train", "epoch_learning_rate") not in metrics
    for name, learning_rate in TRIALS.items():
        board = os.path.join(out_dir, name, RunDirectory.TENSORBOARD)
        [(tag, content, _)] = plugin_summaries(board, "hparams")
        assert tag == "_hparams_/session_start_info"
        session = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
        assert session.group_name == name
        assert session.hparams["train.learning_rate"].number_value == learning_rate
        # As the hparams plugin reads a metric (group, tag) of this session: the last
        # scalar `tag` of the run `<session run>/<group>`.
        for group, tag in metrics:
            key = ("val_" if group == "validation" else "") + tag.removeprefix("epoch_")
            np.testing.assert_allclose(
                last_scalar(os.path.join(board, group), tag),
                record["trials"][name]["metrics"][key],
                rtol=1e-6,
            )


def test_tensorboard_hparams_dashboard_lists_the_trials_with_their_metrics(swept):
    """Asks a TensorBoard serving the sweep directory (as `kzoo tensorboard DIR`
    does: the Python loader) over HTTP for the HPARAMS table's rows."""
    import threading

    from tensorboard import default, program

    out_dir, _ = swept
    record = _read_json(os.path.join(out_dir, "sweep.json"))
    board = program.TensorBoard(plugins=default.get_plugins())
    board.configure(
        logdir=out_dir,
        host="127.0.0.1",
        port=0,
        load_fast="false",
        reload_interval=0,
        reload_task="blocking",
    )  # Loaded, then served.
    server = board._make_server()  # `launch()` gives no way to stop it.
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        request = urllib.request.Request(
            server.get_url() + "data/plugin/hparams/session_groups",
            data=json.dumps(
                {
                    "startIndex": 0,
                    "sliceSize": 10,
                    "includeMetrics": True,
                    "allowedStatuses": ["STATUS_UNKNOWN"],
                }
            ).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            groups = json.loads(response.read())["sessionGroups"]
    finally:
        server.shutdown()
        server.server_close()
    assert sorted(g["name"] for g in groups) == sorted(TRIALS)
    for group in groups:
        trial = record["trials"][group["name"]]
        assert group["hparams"] == trial["hparams"]
        [session] = group["sessions"]
        assert session["name"] == f"{group['name']}/tensorboard"
        values = {(m["name"]["group"], m["name"]["tag"]): m["value"] for m in group["metricValues"]}
        assert len(values) == len(trial["metrics"]) - 1  # All but the learning rate.
        np.testing.assert_allclose(
            values[("validation", "epoch_loss")], trial["metrics"]["val_loss"], rtol=1e-6
        )
        np.testing.assert_allclose(
            values[("train", "epoch_perplexity")], trial["metrics"]["perplexity"], rtol=1e-6
        )


def test_rerun_skips_finished_trials_and_resumes_an_unfinished_one(swept, tmp_path, monkeypatch):
    out_dir = str(tmp_path / "sweep")
    shutil.copytree(swept[0], out_dir)
    finished, unfinished = (os.path.join(out_dir, name) for name in TRIALS)
    shutil.rmtree(unfinished)  # Trained again, and interrupted mid-epoch.
    untouched = {
        path: os.stat(path).st_mtime_ns
        for path in glob.glob(os.path.join(out_dir, "**"), recursive=True)
        if os.path.isfile(path) and not path.endswith("sweep.json")
    }
    interrupt_at(monkeypatch, {1: signal.SIGTERM})
    status, stdout, stderr = run_cli(sweep_args(out_dir))
    assert status == 128 + signal.SIGTERM, stderr
    assert "[2/2] learning_rate=0.003: training in" in stdout
    record = _read_json(os.path.join(out_dir, "sweep.json"))
    assert [t["status"] for t in record["trials"].values()] == ["finished", "unfinished"]

    status, stdout, stderr = run_cli(sweep_args(out_dir))
    assert status == 0, stderr
    assert "[1/2] learning_rate=0.01: finished, skipped" in stdout
    assert "[2/2] learning_rate=0.003: resuming in" in stdout
    summary = RunDirectory(unfinished).summary()
    assert summary["resumed_from_step"] == 1 and summary["steps"] == 2
    assert_same_weights(os.path.join(swept[0], "learning_rate=0.003"), unfinished)
    # Nothing of the finished trial, nor any hparams summary, was written again.
    assert {
        os.path.join(finished, RunDirectory.CONFIG),
        os.path.join(finished, RunDirectory.SUMMARY),
    } < set(untouched)
    for path, mtime in untouched.items():
        assert os.stat(path).st_mtime_ns == mtime, path
    record = _read_json(os.path.join(out_dir, "sweep.json"))
    assert [t["status"] for t in record["trials"].values()] == ["finished", "finished"]

    status, stdout, _ = run_cli(sweep_args(out_dir))
    assert status == 0 and stdout.count("finished, skipped") == 2


def test_an_interrupted_trial_is_reported_and_left_to_resume(tmp_path, monkeypatch):
    from kzoo.training.resume import TrainingInterrupted

    def interrupted_train(config, run_dir, verbose="auto"):
        os.makedirs(run_dir, exist_ok=True)
        open(os.path.join(run_dir, RunDirectory.CONFIG), "w").close()
        raise TrainingInterrupted(run_dir, 1, signal.SIGTERM)

    monkeypatch.setattr(kzoo_sweep.trainer, "train", interrupted_train)
    out_dir = tmp_path / "sweep"
    status, _, stderr = run_cli(sweep_args(out_dir))
    assert status == 128 + signal.SIGTERM
    assert re.search(
        r"SIGTERM received: \S+learning_rate=0.01 checkpointed at step 1\. "
        "Re-run the same kzoo sweep command to resume it",
        stderr,
    )
    record = _read_json(out_dir / "sweep.json")
    assert [t["status"] for t in record["trials"].values()] == ["unfinished", "pending"]


@pytest.mark.parametrize(
    "grid, overrides, message",
    [
        (
            ["train.learning_rate=0.01,-1.0"],
            [],
            "with train.learning_rate=-1.0: train.learning_rate: must be > 0, got -1.0",
        ),
        (["train.learning_rat=0.1,0.2"], [], "train.learning_rat: unknown key; valid keys: "),
        (["optimizer.lr=1,2"], [], "--grid 'optimizer.lr=1,2': unknown section 'optimizer'"),
        (["learning_rate=0.1"], [], "--grid 'learning_rate=0.1': key must be SECTION.KEY"),
        (["train.learning_rate"], [], "--grid 'train.learning_rate': expected KEY=V1,V2"),
        (["train.learning_rate="], [], "--grid 'train.learning_rate=': no values"),
        (["train.learning_rate=0.1,,0.2"], [], "value 2 is empty"),
        (["train.learning_rate=0.1,0.10"], [], "value '0.10' is given twice"),
        (["train.seed=1,2", "train.seed=3"], [], "train.seed is given by two --grid options"),
        (["train.steps=1,2"], None, "train.steps is also given with --set"),
        ([], [], "give at least one --grid KEY=V1,V2"),
        # A valid tokenizer kind, but not for this combination (a GPT).
        (
            ["tokenizer.kind=bpe,wordpiece"],
            [],
            "with tokenizer.kind=wordpiece: tokenizer.kind: 'wordpiece' does not suit "
            "model.family 'gpt'",
        ),
        (["data.train=builtin,no_such_dir/*.txt"], [], "no_such_dir/*.txt"),
    ],
)
def test_bad_grid_is_a_one_line_error_before_anything_is_written(
    tmp_path, capsys, grid, overrides, message
):
    out_dir = tmp_path / "sweep"
    overrides = SWEEP_OVERRIDES + (overrides or [])
    status = cli.main(sweep_args(out_dir, grid, overrides))
    stderr = capsys.readouterr().err
    assert status == 2
    assert stderr.startswith("kzoo sweep: error: ") and stderr.count("\n") == 1
    assert message in stderr
    assert not out_dir.exists()


def test_another_grid_or_recipe_into_a_sweep_directory_is_refused(swept, capsys):
    out_dir, _ = swept
    before = os.path.getmtime(os.path.join(out_dir, "sweep.json"))
    assert cli.main(sweep_args(out_dir, grid=["train.learning_rate=0.01,0.03"])) == 2
    assert (
        "holds a sweep of another grid (--grid train.learning_rate=0.01,0.003)"
        in capsys.readouterr().err
    )
    assert cli.main(sweep_args(out_dir, overrides=SWEEP_OVERRIDES + ["train.seed=1"])) == 2
    assert "holds a sweep with train.seed=None, not 1" in capsys.readouterr().err
    assert os.path.getmtime(os.path.join(out_dir, "sweep.json")) == before


def test_grid_values_parse_like_set_values():
    grid = kzoo_sweep.parse_grid(
        [
            "model.hidden_dim=16, 32",
            "train.sample_prompts=[a, b],[]",
            "data.train='x,y.txt',builtin",
            "train.jit_compile=true,false",
        ]
    )
    assert [g.values for g in grid] == [
        (16, 32),
        (["a", "b"], []),
        ("x,y.txt", "builtin"),
        (True, False),
    ]
    assert grid[1].texts == ("[a, b]", "[]")


def test_trial_names_are_readable_safe_and_unique():
    grid = kzoo_sweep.parse_grid(
        ["train.seed=0,1", "data.seed=0", "data.train='a/b c.txt','a/b_c.txt',A,a,b"]
    )
    names = kzoo_sweep.trial_names(grid)
    # Two keys end in `seed`: their full keys tell them apart.
    assert names[4] == "train.seed=0,data.seed=0,train=b"
    assert len({name.lower() for name in names}) == len(names) == 10
    assert all(re.fullmatch(r"[A-Za-z0-9._+=,-]+", name) for name in names)
    # Values that read alike get a hash of the values as typed (stable across runs).
    assert names[:4] == [
        "train.seed=0,data.seed=0,train=_a_b_c.txt_-" + HASHES[0],
        "train.seed=0,data.seed=0,train=_a_b_c.txt_-" + HASHES[1],
        "train.seed=0,data.seed=0,train=A-" + HASHES[2],
        "train.seed=0,data.seed=0,train=a-" + HASHES[3],
    ]
    [long] = kzoo_sweep.trial_names(kzoo_sweep.parse_grid(["data.train=" + "x" * 300]))
    assert len(long) == 120 and re.fullmatch(r"train=x+-[0-9a-f]{8}", long)


def test_hparams_domains_take_mixed_numbers_and_lists(tmp_path):
    overrides = [o for o in SWEEP_OVERRIDES if not o.startswith("train.sample_prompts")]
    grid = ["train.sample_prompts=[a],[b, c]", "train.learning_rate=0.01,1"]
    sweep = kzoo_sweep.plan_sweep(RECIPE, grid, overrides, out_dir=str(tmp_path / "sweep"))
    assert not os.path.exists(sweep.out_dir)  # Planning writes nothing.
    kzoo_sweep.write_experiment_config(sweep, {"loss": [2.0], "val_loss": [3.0]})
    kzoo_sweep.write_session_summary(sweep, sweep.trials[-1])
    [(_, content, _)] = plugin_summaries(sweep.out_dir, "hparams")
    experiment = plugin_data_pb2.HParamsPluginData.FromString(content).experiment
    domains = {
        h.name: [getattr(v, v.WhichOneof("kind")) for v in h.domain_discrete.values]
        for h in experiment.hparam_infos
    }
    assert domains == {
        "train.learning_rate": [0.01, 1.0],
        "train.sample_prompts": ["[a]", "[b, c]"],
    }
    board = os.path.join(sweep.trials[-1].run_dir, RunDirectory.TENSORBOARD)
    [(_, content, _)] = plugin_summaries(board, "hparams")
    session = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info
    assert session.hparams["train.learning_rate"].number_value == 1.0
    assert session.hparams["train.sample_prompts"].string_value == "[b, c]"
    # sweep.json keeps the grid's order (not sorted): the same sweep plans again.
    kzoo_sweep.write_sweep_file(sweep)
    again = kzoo_sweep.plan_sweep(RECIPE, grid, overrides, out_dir=sweep.out_dir)
    assert [t.name for t in again.trials][:2] == [
        "sample_prompts=_a_,learning_rate=0.01",
        "sample_prompts=_a_,learning_rate=1",
    ]
