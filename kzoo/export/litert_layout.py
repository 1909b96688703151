"""The layout of a LiteRT (TFLite) export, as `kzoo export --format litert` writes it.

    DIR/model.tflite        every signature of the model in one flatbuffer
    DIR/litert.json         what they are: the run, the model class, the
                            quantization, each signature's inputs and outputs
                            (dtype, shape; -1 a dynamic axis) and the family's
                            settings (labels; end token and cache shape)
    DIR/tokenizer/          causal LMs: the run's tokenizer files, for the driver
                            (BERT's WordPiece tokenizer is inside model.tflite)

Kept free of TensorFlow imports: `kzoo.export.litert_driver` reads it on a
machine with only `ai-edge-litert`, NumPy and `sentencepiece`.
"""

import json
import os

MODEL_FILE = "model.tflite"
MANIFEST_FILE = "litert.json"
TOKENIZER_DIR = "tokenizer"
FORMAT = "kzoo-litert"
FORMAT_VERSION = 1


def read_manifest(directory):
    """The `litert.json` of the LiteRT export `directory`, as a dict.

    Raises:
        FileNotFoundError: `directory` holds no `litert.json` (the message says
            how to make one).
        ValueError: It is not a kzoo LiteRT manifest of a known version.

    Example:
    >>> read_manifest("/nonexistent")
    Traceback (most recent call last):
    ...
    FileNotFoundError: /nonexistent: not a LiteRT export (no litert.json); ...
    """
    path = os.path.join(directory, MANIFEST_FILE)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{directory}: not a LiteRT export (no {MANIFEST_FILE}); make one with "
            "kzoo export RUN --format litert --out DIR"
        )
    with open(path, encoding="utf-8") as f:
        manifest = json.load(f)
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise ValueError(
            f"{path}: expected format {FORMAT!r} version {FORMAT_VERSION}, got "
            f"{manifest.get('format')!r} version {manifest.get('format_version')!r}"
        )
    return manifest
