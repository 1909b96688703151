"""kzoo: a Keras 3 / TensorFlow model zoo for Transformer language models.

`kzoo.layers` and `kzoo.models` are backend-agnostic; TensorFlow-only code (data
pipelines, tokenizers, training, export) lives in its own subpackages. Subpackages
are imported on first use, so `kzoo --version` does not start TensorFlow.
"""

import importlib

from kzoo.version import __version__

_SUBPACKAGES = ("layers", "models", "data", "tokenizers", "training", "export", "convert")

__all__ = ["__version__", *_SUBPACKAGES]


def __getattr__(name):
    if name in _SUBPACKAGES:
        return importlib.import_module(f"kzoo.{name}")
    raise AttributeError(f"module 'kzoo' has no attribute {name!r}")
