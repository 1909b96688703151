"""`kzoo sweep`: a grid of runs, compared in TensorBoard's HPARAMS dashboard.

Every combination of the grid values is trained, one after the other, into its own
run directory (`kzoo.training.trainer.train`):

    DIR/sweep.json                    recipe, overrides, grid; per trial its hparams,
                                      final metrics, run directory and status
    DIR/events.*                      the hparams config: a Discrete HParam per grid
                                      key, and the metrics
    DIR/<trial>/                      a run directory (`kzoo.training.run_directory`)
    DIR/<trial>/tensorboard/events.*  the trial's hparams (a session summary)

The hparams plugin takes each run holding a session summary as a session, and reads
its metric `(group, tag)` as the last value of the scalar `tag` in the run
`<session run>/<group>`. With the session summary in `<trial>/tensorboard`, the
metric `("validation", "epoch_loss")` is the trial's final validation loss (in
`<trial>/tensorboard/validation`), so `kzoo tensorboard DIR` shows every trial in
one HPARAMS table.

Everything is validated before anything is written: the grid, each combination's
config (the recipe validator) and data files. Re-running the same sweep skips the
finished trials and resumes an unfinished one (the trainer resumes a run directory
step-exactly); another recipe or grid into the same directory is refused.
"""

import dataclasses
import itertools
import json
import os

import keras

from kzoo import staged_files
from kzoo.training import trainer
from kzoo.training.config import ConfigError, blame
from kzoo.training.recipe import read_recipe, recipe_name, validate, with_overrides
from kzoo.training.run_directory import RunDirectory
from kzoo.training.sweep.grid import parse_grid, trial_names
from kzoo.training.sweep.hparams import write_experiment_config, write_session_summary
from kzoo.training.tasks.registry import task_for

SWEEP_FILE = "sweep.json"


@dataclasses.dataclass(frozen=True)
class Trial:
    """One combination of grid values (`choice[i]` indexes `grid[i].values`)."""

    name: str
    choice: tuple
    config: dict
    run_dir: str


@dataclasses.dataclass(frozen=True)
class Sweep:
    """A validated sweep (`plan_sweep`), ready to run (`run_sweep`)."""

    recipe: str
    out_dir: str
    grid: list
    overrides: list
    base: dict  # The recipe with the --set overrides, before validation.
    trials: list

    def hparams(self, trial):
        """`{key: parsed value}` of a trial."""
        return {g.key: g.values[i] for g, i in zip(self.grid, trial.choice)}


def plan_sweep(recipe, grid_texts, overrides=(), out_dir=None):
    """Validates a sweep and returns it as a `Sweep`; nothing is written.

    Raises:
        ConfigError: a bad grid, or a combination the recipe validator refuses.
        FileNotFoundError: a combination's data files are missing.
        FileExistsError: `out_dir` holds a run or a different sweep.
    """
    overrides = list(overrides)
    grid = parse_grid(grid_texts, overrides)
    out_dir = out_dir or os.path.join("runs", f"{recipe_name(recipe)}-sweep")
    base = with_overrides(read_recipe(recipe), overrides)
    trials = []
    choices = itertools.product(*(range(len(g.values)) for g in grid))
    for name, choice in zip(trial_names(grid), choices):
        grid_overrides = [f"{g.key}={g.texts[i]}" for g, i in zip(grid, choice)]
        try:
            config = validate(with_overrides(base, grid_overrides), name=recipe_name(recipe))
        except ConfigError as error:
            raise blame(error, overrides, f"{recipe} with {' '.join(grid_overrides)}") from None
        trials.append(Trial(name, choice, config, os.path.join(out_dir, name)))
    _check_data(trials)
    base = json.loads(json.dumps(base, default=str))  # As sweep.json holds it.
    sweep = Sweep(recipe, out_dir, grid, overrides, base, trials)
    _check_same_sweep(sweep)
    return sweep


def run_sweep(sweep, verbose="auto"):
    """Trains the unfinished trials one after the other; returns `{trial name:
    summary}` (each run's `summary.json`).

    Raises:
        TrainingInterrupted: SIGTERM or SIGINT arrived; the trial was checkpointed
            and re-running the sweep resumes it.
    """
    summaries = {}
    write_sweep_file(sweep)
    try:
        for index, trial in enumerate(sweep.trials, 1):
            progress = f"[{index}/{len(sweep.trials)}] {trial.name}"
            write_session_summary(sweep, trial)
            run = RunDirectory(trial.run_dir)
            if run.is_finished():
                print(f"{progress}: finished, skipped", flush=True)
                summary = run.summary()
            else:
                resuming = run.has_config()
                print(
                    f"{progress}: {'resuming' if resuming else 'training'} in {trial.run_dir}",
                    flush=True,
                )
                # A trial starts from the state a fresh `kzoo train` process has.
                keras.backend.clear_session()
                summary = trainer.train(trial.config, trial.run_dir, verbose=verbose)
            summaries[trial.name] = summary
            write_experiment_config(sweep, summary["history"])
    finally:
        write_sweep_file(sweep)
    return summaries


def trial_status(trial):
    """`finished` (summary.json), `unfinished` (config.yaml) or `pending`."""
    run = RunDirectory(trial.run_dir)
    if run.is_finished():
        return "finished"
    if run.has_config():
        return "unfinished"
    return "pending"


def final_metrics(trial):
    """`{epoch log name: last value}` of a finished trial, else `{}`."""
    run = RunDirectory(trial.run_dir)
    if not run.is_finished():
        return {}
    history = run.summary()["history"]
    return {name: values[-1] for name, values in history.items() if values}


def write_sweep_file(sweep):
    """Writes `DIR/sweep.json` from the trials' run directories as they are now."""
    trials = {
        trial.name: {
            "hparams": sweep.hparams(trial),
            "run_dir": trial.run_dir,
            "status": trial_status(trial),
            "metrics": final_metrics(trial),
        }
        for trial in sweep.trials
    }
    record = {
        "recipe": sweep.recipe,
        "overrides": sweep.overrides,
        "grid": {g.key: list(g.texts) for g in sweep.grid},
        "base": sweep.base,
        "trials": trials,
    }
    os.makedirs(sweep.out_dir, exist_ok=True)

    # In sweep order: the grid's key order names the trials.
    staged_files.write_json_atomic(os.path.join(sweep.out_dir, SWEEP_FILE), record, sort_keys=False)


def format_table(sweep):
    """The trials and their final loss and validation metrics, as a text table."""
    metrics = {trial.name: final_metrics(trial) for trial in sweep.trials}
    names = set().union(*metrics.values())
    columns = [name for name in ("loss", "val_loss") if name in names]
    columns += sorted(name for name in names if name.startswith("val_") and name not in columns)
    rows = [["trial", "status", *columns]]
    for trial in sweep.trials:
        values = metrics[trial.name]
        rows.append(
            [
                trial.name,
                trial_status(trial),
                *(f"{values[c]:.4g}" if c in values else "-" for c in columns),
            ]
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows
    ]
    best_by = next((c for c in ("val_loss", "loss") if c in columns), None)
    if best_by:
        best = min(
            (t for t in sweep.trials if best_by in metrics[t.name]),
            key=lambda t: metrics[t.name][best_by],
        )
        lines.append(f"Lowest {best_by}: {best.name}")
    return "\n".join(lines)


def _check_data(trials):
    """Resolves each distinct data setting as the trainer will (a missing file
    stops the sweep before anything is written)."""
    seen = set()
    for trial in trials:
        config = trial.config
        key = json.dumps(
            [config["model"], config["data"], config["train"]["init_from"]],
            sort_keys=True,
            default=str,
        )
        if key not in seen:
            seen.add(key)
            task_for(config).resolve_data()


def _check_same_sweep(sweep):
    """Refuses a sweep directory that holds a run or a sweep of another recipe,
    other overrides or another grid (their trials would be mixed up)."""
    if RunDirectory(sweep.out_dir).has_config():
        raise FileExistsError(f"{sweep.out_dir}: holds a run, not a sweep; choose another --out")
    path = os.path.join(sweep.out_dir, SWEEP_FILE)
    if not os.path.exists(path):
        return
    try:
        with open(path, encoding="utf-8") as f:
            previous = json.load(f)
        previous_grid, previous_base = previous["grid"], previous["base"]
    except (ValueError, KeyError, TypeError):
        raise FileExistsError(f"{path}: not a kzoo sweep file; choose another --out") from None
    grid = {g.key: list(g.texts) for g in sweep.grid}
    if list(previous_grid.items()) != list(grid.items()):
        given = " ".join(f"--grid {k}={','.join(v)}" for k, v in previous_grid.items())
        raise FileExistsError(
            f"{path}: holds a sweep of another grid ({given}); re-run "
            "it with that grid or choose another --out"
        )
    for section in sorted(set(previous_base) | set(sweep.base)):
        old, new = previous_base.get(section) or {}, sweep.base.get(section) or {}
        for key in sorted(set(old) | set(new)):
            name = f"{section}.{key}"
            if old.get(key) != new.get(key) and name not in trainer.RESUME_MAY_CHANGE:
                raise FileExistsError(
                    f"{path}: holds a sweep with {name}={old.get(key)!r}, not "
                    f"{new.get(key)!r}; re-run it with the same recipe and --set, or "
                    "choose another --out"
                )
