"""The layout of a run directory, and atomic writes into it.

    RUN/config.yaml        the resolved recipe (every default filled in); its paths
                           absolute, or relative to RUN for files inside it
    RUN/.lock              held while a `kzoo train` writes RUN (`run_lock`)
    RUN/tokenizer.model    the trained vocabulary
    RUN/model.keras        the trained model (tokenizer inside)
    RUN/checkpoints/       weights at the end of each epoch
    RUN/tensorboard/       train/, validation/ and samples/ event files
    RUN/summary.json       what the run did: steps, time, final losses

`write_config` and `read_config` are the only writer and reader of `config.yaml`.
"""

import glob
import json
import os
import tempfile

import keras

from kzoo.training.config import read_yaml, write_yaml_atomic
from kzoo.training.recipe import map_paths

CONFIG = "config.yaml"
MODEL = "model.keras"
SUMMARY = "summary.json"
CHECKPOINTS = "checkpoints"
TENSORBOARD = "tensorboard"


def atomic_path(path):
    """A temporary sibling of `path` with the same extension (Keras checks it)."""
    directory, name = os.path.split(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    suffix = "".join(name.partition(".")[1:])
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp-", suffix=suffix)
    os.close(fd)
    os.unlink(tmp)
    return tmp


def save_atomically(save_fn, path):
    """Calls `save_fn(tmp_path)` then renames onto `path`; no partial file remains."""
    tmp = atomic_path(path)
    try:
        save_fn(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_json(data, path, sort_keys=True):
    """Writes `data` as indented JSON, atomically (`sort_keys=False` keeps the
    dicts' order)."""

    def dump(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=sort_keys)
            f.write("\n")

    save_atomically(dump, path)


def read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def write_config(config, run_dir):
    """Writes `config` as `run_dir/config.yaml`, atomically. Its paths are stored
    absolute, except those inside `run_dir`, stored relative to it: the run works
    from any working directory, and moves with data kept inside it."""
    run = os.path.abspath(run_dir)

    def stored(path):
        path = os.path.abspath(os.path.expanduser(path))
        return os.path.relpath(path, run) if os.path.commonpath([run, path]) == run else path

    write_yaml_atomic(map_paths(config, stored), os.path.join(run_dir, CONFIG))


def read_config(run_dir):
    """The (unvalidated) config of `run_dir/config.yaml`, its relative paths resolved
    against `run_dir` (a relative path that matches nothing there but matches from
    the working directory is taken from there: runs written before kzoo stored
    paths absolute).

    Raises:
        ConfigError: No such file, or not a YAML mapping of recipe sections.
    """

    def resolve(path):
        path = os.path.expanduser(path)
        if os.path.isabs(path):
            return os.path.normpath(path)
        inside = os.path.abspath(os.path.join(run_dir, path))
        if glob.glob(inside) or not glob.glob(path):
            return inside
        # Runs written before paths were stored absolute kept them as typed,
        # relative to the working directory that started the run.
        return os.path.abspath(path)

    return map_paths(read_yaml(os.path.join(run_dir, CONFIG)), resolve)


def load_run_model(run_dir):
    """Loads `RUN/model.keras` with `safe_mode` (no code is deserialized)."""
    import kzoo.models  # noqa: F401  (registers the model classes)
    import kzoo.tokenizers  # noqa: F401  (registers the tokenizer layer)

    path = os.path.join(run_dir, MODEL)
    if not os.path.isfile(path):
        raise FileNotFoundError(_no_model_message(run_dir))
    return keras.saving.load_model(path, safe_mode=True, compile=False)


def _no_model_message(run_dir):
    """Why `run_dir` has no `model.keras`, and what to do: an unfinished run
    (interrupted at its latest checkpoint) is resumed, anything else trained."""
    from kzoo.training import checkpoints

    if not os.path.isfile(os.path.join(run_dir, CONFIG)):
        return (
            f"{run_dir}: no trained model ({MODEL}); train one with "
            "`kzoo train RECIPE --run-dir DIR`"
        )
    last = checkpoints.latest(os.path.join(run_dir, CHECKPOINTS))
    if last is None:
        where = "before its first checkpoint"
    else:
        state = checkpoints.read_state(last)
        total = state.get("total_steps")
        where = f"at step {state['step']}" + (f" of {total}" if total else "")
    return (
        f"{run_dir}: training was interrupted {where} (no {MODEL} "
        f"yet); finish it with `kzoo train --resume {run_dir}`"
    )
