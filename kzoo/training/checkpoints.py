"""Step checkpoints of a run: everything needed to continue training exactly.

    RUN/checkpoints/step-00000120/
        variables.npz   model variables (weights and dropout seed states) and
                        optimizer variables (moments, iteration count, loss scale)
        state.json      step, epoch, the input position, the epoch logs so far

A checkpoint is written into a temporary directory, flushed to disk and renamed
into place, so a crash (even SIGKILL) during a write leaves the previous
checkpoint untouched; the two newest are kept. `latest(directory)` ignores
unfinished writes.

The input position is the number of batches trained: every kzoo pipeline is a
deterministic function of its seed, so a resumed run rebuilds it and skips that
many batches (`dataset.skip`) — nothing replayed, nothing skipped. Unlike a
serialized `tf.data` iterator, this does not depend on prefetch buffers and keeps
shuffle buffers out of the checkpoint; skipping re-reads the input but trains on
none of it.

Arrays are stored with `numpy.savez` and read with `allow_pickle=False`: no code
is ever deserialized.
"""

import json
import os
import re
import shutil

import keras
import numpy as np

from kzoo import staged_files

STATE = "state.json"
VARIABLES = "variables.npz"
KEEP = 2
_NAME = re.compile(r"step-(\d{8})")
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that does not fit the run; the message names the file."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (a full disk, ...); the message says which,
    the last complete checkpoint, and how to resume from it."""


def checkpoint_name(step):
    return f"step-{step:08d}"


def list_checkpoints(directory):
    """`[(step, path)]` of the complete checkpoints in `directory`, oldest first.

    Example:
    >>> import tempfile
    >>> model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    >>> model.compile(optimizer="adamw", loss="mse")
    >>> directory = tempfile.mkdtemp()
    >>> for step in (10, 20, 30):
    ...     _ = write(directory, model, {"step": step})
    >>> [(step, os.path.basename(path)) for step, path in list_checkpoints(directory)]
    [(20, 'step-00000020'), (30, 'step-00000030')]
    >>> restore(latest(directory), model)["step"]
    30
    """
    if not os.path.isdir(directory):
        return []
    found = []
    for name in os.listdir(directory):
        match = _NAME.fullmatch(name)
        path = os.path.join(directory, name)
        if match and os.path.isfile(os.path.join(path, STATE)):
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest(directory):
    """The path of the newest complete checkpoint in `directory`, or None."""
    found = list_checkpoints(directory)
    return found[-1][1] if found else None


def _variables(model, extra=None):
    """Model and optimizer variables by key, and `extra` (`{name: Variable}`, state
    kept beside the model such as pruning masks) as `extra/NAME`; builds an unbuilt
    optimizer (Keras builds it lazily at the first step), so a checkpoint always
    holds its state."""
    optimizer = model.optimizer
    if optimizer is not None and not optimizer.built:
        optimizer.build(model.trainable_variables)
    variables = {f"model/{i}": v for i, v in enumerate(model.variables)}
    if optimizer is not None:
        variables.update({f"optimizer/{i}": v for i, v in enumerate(optimizer.variables)})
    variables.update({f"extra/{name}": v for name, v in (extra or {}).items()})
    return variables


def write(directory, model, state, keep=KEEP, extra=None):
    """Writes a checkpoint of `model` (and its optimizer) at `state["step"]`.

    Args:
        directory: `RUN/checkpoints`.
        model: A compiled model whose optimizer is built.
        state: JSON-serializable dict; must hold `"step"`.
        keep: How many checkpoints to keep (the newest).
        extra: `{name: Variable}` saved too (e.g. `kzoo.training.pruning` masks).

    Returns:
        The checkpoint's path.

    Raises:
        CheckpointWriteError: An OSError while writing (a full disk); the
            previous checkpoints are intact and the message names the last one.
    """
    try:
        return _write(directory, model, state, keep, extra)
    except OSError as error:
        raise _write_error(directory, state["step"], error) from error


def _write_error(directory, step, error):
    found = list_checkpoints(directory)
    last = (
        f"the last complete checkpoint is step {found[-1][0]} ({found[-1][1]})"
        if found
        else "no complete checkpoint yet"
    )
    # `directory` is `RUN/checkpoints`.
    run_dir = os.path.dirname(os.path.normpath(directory))
    reason = error.strerror or str(error)
    return CheckpointWriteError(
        f"{os.path.join(directory, checkpoint_name(step))}: could not write the "
        f"checkpoint of step {step} ({reason}); {last}. Free space (or fix the "
        f"cause), then resume with: kzoo train --resume {run_dir}"
    )


def _write(directory, model, state, keep, extra):
    final = os.path.join(directory, checkpoint_name(state["step"]))

    def fill(tmp):
        variables = _variables(model, extra)
        arrays = {key: keras.ops.convert_to_numpy(v) for key, v in variables.items()}
        paths = {key: v.path for key, v in variables.items()}
        with open(os.path.join(tmp, VARIABLES), "wb") as f:
            np.savez(f, **arrays)
            _sync(f)
        full_state = dict(state, format=FORMAT_VERSION, variable_paths=paths)
        with open(os.path.join(tmp, STATE), "w", encoding="utf-8") as f:
            json.dump(full_state, f, indent=1, sort_keys=True)
            _sync(f)

    # `replace`: re-written at the same step (e.g. after a signal).
    staged_files.atomic_directory(final, fill, replace=True)
    for _, old in list_checkpoints(directory)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def read_state(path):
    with open(os.path.join(path, STATE), encoding="utf-8") as f:
        return json.load(f)


def restore(path, model, extra=None):
    """Loads a checkpoint into `model`, its optimizer and `extra` (as `write`
    took it); returns its state.

    The optimizer is built first (Keras builds it lazily at the first step).

    Raises:
        CheckpointError: The checkpoint was written by a different model (variable
            count or shape differ); the message names the first mismatch.
    """
    state = read_state(path)
    variables = _variables(model, extra)
    file = os.path.join(path, VARIABLES)
    with np.load(file, allow_pickle=False) as arrays:
        stored = set(arrays.files)
        if stored != set(variables):
            raise CheckpointError(
                f"{file}: holds {len(stored)} variables, the model has "
                f"{len(variables)}; the checkpoint belongs to a different model"
            )
        for key, variable in variables.items():
            value = arrays[key]
            # Shapes, not paths: Keras numbers auto-named layers per process.
            if tuple(value.shape) != tuple(variable.shape):
                raise CheckpointError(
                    f"{file}: {key} ({state['variable_paths'][key]}) has shape "
                    f"{tuple(value.shape)}, the model's {variable.path} has "
                    f"{tuple(variable.shape)}"
                )
            variable.assign(value)
    return state


def remove_unfinished(directory):
    """Deletes temporary directories left by writes that never finished."""
    if os.path.isdir(directory):
        for name in os.listdir(directory):
            if name.startswith((".tmp-", ".old-")):
                shutil.rmtree(os.path.join(directory, name), ignore_errors=True)


def _sync(file):
    file.flush()
    os.fsync(file.fileno())
