"""The hparams plugin's records of a sweep: the experiment config in the sweep
directory and one session summary per trial (see `kzoo.training.sweep.runner`)."""

import functools
import glob
import os

import tensorflow as tf
from tensorboard.plugins.hparams import api as hp

from kzoo.training.run_directory import RunDirectory

# Epoch logs that are settings, not results: left out of the hparams metrics.
NOT_METRICS = ("learning_rate",)


def write_session_summary(sweep, trial):
    """Writes the trial's hparams into `RUN/tensorboard` (once)."""
    board = RunDirectory(trial.run_dir).tensorboard_dir()
    if glob.glob(os.path.join(board, "events.out.tfevents.*")):
        return
    hparams = _hparams(sweep.grid)
    values = {hparams[g.key]: _hparam_values(g)[i] for g, i in zip(sweep.grid, trial.choice)}
    _write_summary(board, functools.partial(hp.hparams, values, trial_id=trial.name))


def write_experiment_config(sweep, history):
    """Writes the hparams config into the sweep directory (once): the grid keys
    and, as metrics, the epoch logs in `history` (a run summary's, `{name: [values]}`)."""
    if glob.glob(os.path.join(sweep.out_dir, "events.out.tfevents.*")):
        return
    names = [name for name, values in history.items() if values and name not in NOT_METRICS]
    if not names:  # No epoch ended (a time budget): wait for a trial that has some.
        return
    headline = [name for name in ("val_loss", "loss") if name in names]
    ordered = headline + sorted(
        set(names) - set(headline), key=lambda name: (not name.startswith("val_"), name)
    )
    metrics = []
    for name in ordered:
        group = "validation" if name.startswith("val_") else "train"
        metric = name.removeprefix("val_")
        metrics.append(
            hp.Metric(
                f"epoch_{metric}",
                group=group,
                display_name=f"{group} {metric}",
                description=f"{group} {metric} at the end of training",
            )
        )
    _write_summary(
        sweep.out_dir,
        functools.partial(
            hp.hparams_config, hparams=list(_hparams(sweep.grid).values()), metrics=metrics
        ),
    )


def _hparams(grid):
    """`{key: hp.HParam}` with a Discrete domain of each grid key's values."""
    return {g.key: hp.HParam(g.key, hp.Discrete(_hparam_values(g))) for g in grid}


def _hparam_values(grid_key):
    """The grid key's values as the hparams plugin takes them: numbers, booleans
    or strings of one type (other values, or mixed types: the values as typed)."""
    values = grid_key.values
    if all(isinstance(v, bool) for v in values) or all(isinstance(v, str) for v in values):
        return list(values)
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return (
            [float(v) for v in values]
            if any(isinstance(v, float) for v in values)
            else list(values)
        )
    return list(grid_key.texts)


def _write_summary(directory, write):
    writer = tf.summary.create_file_writer(directory)
    with writer.as_default():
        write()
    writer.close()
