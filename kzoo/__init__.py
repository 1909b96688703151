"""kzoo: a Keras 3 / TensorFlow model zoo for Transformer language models.

`kzoo.layers` and `kzoo.models` are backend-agnostic; TensorFlow-only code (data
pipelines, tokenizers, training, export) lives in its own subpackages and is
imported only when used.
"""

from kzoo import layers, models
from kzoo.version import __version__

__all__ = ["__version__", "layers", "models"]
