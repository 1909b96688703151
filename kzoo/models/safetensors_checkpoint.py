"""Hugging Face checkpoint directories: reading tensors one at a time, and writing them.

A checkpoint directory holds `config.json` and either `model.safetensors` or the
shards listed by `model.safetensors.index.json`. `SafetensorsCheckpoint` reads one
tensor at a time (memory-mapped by `safetensors`), so a loader that assigns each
tensor into its Keras variable and drops it never holds a second copy of the
model; it checks every shape and keeps track of the tensors nobody asked for.
`write_safetensors` writes such a directory back, atomically.
"""

import json
import os

import ml_dtypes
import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from kzoo.staged_files import atomic_directory, write_json_atomic

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"

# Dtypes NumPy cannot hold, read from the raw bytes: (storage dtype, view dtype).
_RAW_DTYPES = {"BF16": (np.uint16, ml_dtypes.bfloat16)}


class SafetensorsCheckpoint:
    """A Hugging Face checkpoint directory, read one tensor at a time.

    Args:
        directory: Holds `config.json` and `model.safetensors` or
            `model.safetensors.index.json` with its shards.

    Raises:
        ValueError: A file is missing (a missing shard names the index and the
            shard), or `config.json` is not a JSON object.

    Example:
    >>> import tempfile
    >>> import numpy as np
    >>> directory = tempfile.mkdtemp()
    >>> _ = write_safetensors(
    ...     [("wte.weight", np.ones((4, 2), "float32"))], directory, {"model_type": "toy"})
    >>> with SafetensorsCheckpoint(directory) as checkpoint:
    ...     checkpoint.config["model_type"], checkpoint.get("wte.weight", (4, 2)).sum()
    ('toy', np.float32(8.0))
    """

    def __init__(self, directory):
        self.directory = str(directory)
        config_path = os.path.join(self.directory, CONFIG_FILE)
        if not os.path.isfile(config_path):
            raise ValueError(f"{self.directory}: no {CONFIG_FILE}; not a Hugging Face checkpoint")
        with open(config_path, encoding="utf-8") as f:
            self.config = json.load(f)
        if not isinstance(self.config, dict):
            raise ValueError(f"{config_path}: expected a JSON object")
        self._files = self._tensor_files()
        self._handles = {}
        self._read = set()

    def _tensor_files(self):
        """`{tensor name: file path}` from the index or the single file."""
        index_path = os.path.join(self.directory, INDEX_FILE)
        single_path = os.path.join(self.directory, WEIGHTS_FILE)
        if os.path.isfile(index_path):
            with open(index_path, encoding="utf-8") as f:
                weight_map = json.load(f).get("weight_map")
            if not isinstance(weight_map, dict):
                raise ValueError(f"{index_path}: no 'weight_map' object")
            for shard in sorted(set(weight_map.values())):
                if not os.path.isfile(os.path.join(self.directory, shard)):
                    raise ValueError(f"{index_path}: shard {shard!r} is missing")
            return {name: os.path.join(self.directory, shard) for name, shard in weight_map.items()}
        if os.path.isfile(single_path):
            with safe_open(single_path, framework="np") as f:
                return dict.fromkeys(f.keys(), single_path)
        raise ValueError(f"{self.directory}: neither {WEIGHTS_FILE} nor {INDEX_FILE} found")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        """Drops the open (memory-mapped) files."""
        self._handles.clear()

    @property
    def names(self):
        """The sorted tensor names."""
        return sorted(self._files)

    def __contains__(self, name):
        return name in self._files

    def file(self, name):
        """The path of the file holding tensor `name`."""
        return self._files[name]

    def _handle(self, path):
        if path not in self._handles:
            self._handles[path] = safe_open(path, framework="np")
        return self._handles[path]

    def _require(self, name):
        if name not in self._files:
            raise ValueError(f"{self.directory}: no tensor {name!r} in the checkpoint")

    def shape(self, name):
        """The shape of tensor `name`, read from the header (no data is read)."""
        self._require(name)
        return tuple(self._handle(self._files[name]).get_slice(name).get_shape())

    def get(self, name, expected_shape=None, dtype="float32"):
        """Tensor `name` as a NumPy array of `dtype` (float16 and bfloat16 convert).

        Raises:
            ValueError: The tensor is missing, or its shape is not `expected_shape`
                (the message names the tensor, both shapes and the file).
        """
        self._require(name)
        path = self._files[name]
        found = self.shape(name)
        if expected_shape is not None and found != tuple(expected_shape):
            raise ValueError(
                f"{path}: tensor {name!r} has shape {found}; the model expects "
                f"{tuple(expected_shape)}"
            )
        self._read.add(name)
        storage = self._handle(path).get_slice(name).get_dtype()
        if storage in _RAW_DTYPES:
            return self._raw(path, name, *_RAW_DTYPES[storage]).astype(dtype)
        return np.asarray(self._handle(path).get_tensor(name)).astype(dtype, copy=False)

    def _raw(self, path, name, storage_dtype, view_dtype):
        """A tensor NumPy has no dtype for, read from its bytes in the file."""
        with open(path, "rb") as f:
            header_size = int(np.frombuffer(f.read(8), "<u8")[0])
            entry = json.loads(f.read(header_size))[name]
            begin, end = entry["data_offsets"]
            f.seek(8 + header_size + begin)
            data = np.frombuffer(f.read(end - begin), storage_dtype)
        return data.view(view_dtype).reshape(entry["shape"])

    def mark_used(self, *names):
        """Counts `names` as used without reading them (tied duplicates, buffers)."""
        self._read.update(name for name in names if name in self._files)

    def unused(self):
        """The sorted names of the tensors not read (nor marked used)."""
        return sorted(set(self._files) - self._read)


def write_safetensors(tensors, directory, config, replace=False):
    """Writes a Hugging Face checkpoint directory: `config.json` and `model.safetensors`.

    The directory appears all at once (`kzoo.staged_files.atomic_directory`).

    Args:
        tensors: Iterable of `(name, array)`; arrays are written as they are
            (contiguous copies where needed).
        directory: The directory to write; it may exist if empty, or with `replace`.
        config: The `config.json` dict.
        replace: Replace an existing directory.

    Returns:
        `directory`.

    Example:
    >>> import tempfile
    >>> import numpy as np
    >>> path = write_safetensors([("b", np.zeros(3, "float32"))],
    ...                          os.path.join(tempfile.mkdtemp(), "ckpt"), {"model_type": "toy"})
    >>> sorted(os.listdir(path))
    ['config.json', 'model.safetensors']
    """
    tensors = {name: np.ascontiguousarray(array) for name, array in tensors}

    def fill(tmp):
        write_json_atomic(os.path.join(tmp, CONFIG_FILE), config)
        # "pt": the format `transformers` requires in the metadata to load a file.
        save_file(tensors, os.path.join(tmp, WEIGHTS_FILE), metadata={"format": "pt"})

    return atomic_directory(str(directory), fill, replace=replace)
