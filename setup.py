"""kzoo: a Keras 3 / TensorFlow model zoo for Transformer language models."""

import pathlib
import re

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).parent
VERSION = re.search(r'__version__ = "([^"]+)"', (HERE / "kzoo" / "version.py").read_text()).group(1)

# One tested set: TF, TF Text and TensorBoard move in lock step (2.21); Keras and
# KerasHub are pinned to the minor versions the suite runs against.
INSTALL_REQUIRES = [
    "tensorflow>=2.21,<2.22",
    "tensorflow-text>=2.21,<2.22",
    "tensorboard>=2.21,<2.22",
    # The Profile tab (`monitor.profile_steps`); tested with protobuf 7 beside TF 2.21.
    "tensorboard-plugin-profile>=2.24,<2.25",
    "tensorflow-serving-api>=2.21,<2.22",
    "keras>=3.15,<3.16",
    "keras-hub>=0.32,<0.33",
    "tokenizers>=0.20,<1",
    "sentencepiece>=0.2,<0.3",
    # Hugging Face checkpoints (`kzoo import`, `export --format huggingface`).
    "safetensors>=0.4,<1",
    # `export --format litert`: the LiteRT interpreter checks each .tflite, and the
    # causal LM driver (`kzoo.export.litert_driver`) runs it.
    "ai-edge-litert>=2.3,<2.4",
    "sacrebleu>=2.4,<3",
    "rouge-score>=0.1.2,<0.2",
    "numpy>=1.26",
    "pyyaml>=6",
]

EXTRAS_REQUIRE = {
    # pytest 9 stores node ids where pytest-xdist 3.8 cannot add its group suffix, so
    # `--dist loadgroup` silently splits xdist_group tests (and their session
    # fixtures) across workers; pytest 8 keeps each group on one worker.
    "test": ["pytest>=8,<9", "pytest-xdist>=3", "hypothesis>=6", "ruff>=0.17,<0.18"],
    # CPU build of JAX: the backend-agnostic layers and models are tested on it.
    "jax": ["jax[cpu]>=0.6"],
}

setup(
    name="kzoo",
    version=VERSION,
    description="Keras 3 / TensorFlow model zoo for Transformer language models",
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["kzoo", "kzoo.*"]),
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    entry_points={"console_scripts": ["kzoo=kzoo.cli:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
)
