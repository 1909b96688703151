"""The layout of a run directory, and atomic writes into it.

    RUN/config.yaml        the resolved recipe (every default filled in)
    RUN/tokenizer.model    the trained vocabulary
    RUN/model.keras        the trained model (tokenizer inside)
    RUN/checkpoints/       weights at the end of each epoch
    RUN/tensorboard/       train/, validation/ and samples/ event files
    RUN/summary.json       what the run did: steps, time, final losses
"""

import json
import os
import tempfile

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
