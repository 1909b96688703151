"""`kzoo export RUN --format litert`: a run as a LiteRT (TFLite) model for devices.

The family's endpoints (`litert_bert`: classify / tag / embed with the WordPiece
tokenizer inside; `litert_causal_lm`: prefill / decode steps with an explicit KV
cache) are saved as a SavedModel in a temporary directory
(`keras.export.ExportArchive`, as `kzoo export` does) and converted with
`tf.lite.TFLiteConverter.from_saved_model`, every endpoint a signature of one
`model.tflite`; BERT's tokenizer ops are TF Text custom ops. The written model is
loaded with the LiteRT interpreter (`ai-edge-litert`) before anything is kept, so
an op the interpreter cannot resolve fails the export, not the device.

Quantization: a `kzoo quantize --mode int8` run is exported as dynamic-range int8
(its int8 weights dequantized, `litert_dequantize`, and quantized again by the
converter to the same int8 values); `quantize="dynamic_int8"` does the same to a
float run. A mixed-precision run is exported in float32 (its variables are). The
directory (`litert_layout`) is written all at once.
"""

import datetime
import importlib
import os
import tempfile

import keras
import numpy as np
import tensorflow as tf

from kzoo import staged_files
from kzoo.export import litert_layout
from kzoo.export.litert_dequantize import float_copy, quantization_of
from kzoo.export.saved_model import export_settings
from kzoo.training.run_directory import RunDirectory
from kzoo.version import __version__

# Model class name -> "module:class" of its LiteRT endpoints.
FAMILIES = {
    "GPTCausalLM": "kzoo.export.litert_causal_lm:CausalLMLiteRT",
    "LlamaCausalLM": "kzoo.export.litert_causal_lm:CausalLMLiteRT",
    "BertClassifier": "kzoo.export.litert_bert:BertLiteRT",
    "BertTokenClassifier": "kzoo.export.litert_bert:BertLiteRT",
    "BertPretrainer": "kzoo.export.litert_bert:BertLiteRT",
}
QUANTIZE_MODES = ("dynamic_int8",)


def litert_family(model, where="the model"):
    """The class that builds `model`'s LiteRT endpoints (`FAMILIES`).

    Raises:
        ValueError: No LiteRT export for this model; the message lists those
            there are.

    Example:
    >>> litert_family(object(), where="runs/t5")
    Traceback (most recent call last):
    ...
    ValueError: runs/t5: holds a object; kzoo export --format litert supports ...
    """
    name = type(model).__name__
    if name not in FAMILIES:
        raise ValueError(
            f"{where}: holds a {name}; kzoo export --format litert supports "
            f"{', '.join(sorted(FAMILIES))} (GPT and Llama causal LMs; BERT classifiers, "
            "taggers and pretrained encoders); export it as a SavedModel "
            "(--format savedmodel) instead"
        )
    module, cls = FAMILIES[name].split(":")
    return getattr(importlib.import_module(module), cls)


def export_litert(run_dir, out_dir, overwrite=False, quantize=None):
    """Writes the run `run_dir` as a LiteRT model directory `out_dir`.

    Args:
        run_dir: A finished (or imported, or `kzoo quantize`d) run directory.
        out_dir: The directory to write (`litert_layout`); it must not exist or
            be empty, unless `overwrite`.
        overwrite: Replace an existing `out_dir`.
        quantize: None, or `"dynamic_int8"`: the converter's dynamic-range int8
            (weights int8 per channel, activations float). A `kzoo quantize
            --mode int8` run is exported so whatever this says.

    Returns:
        `out_dir`.

    Raises:
        ValueError: A model with no LiteRT form (the message names those
            there are), a run quantized otherwise than int8 (int4, GPTQ), or an
            unknown `quantize`.
        FileExistsError: `out_dir` exists, is not empty and `overwrite` is False.
        RuntimeError: The converted model does not run in the LiteRT
            interpreter (an op without a kernel).
    """
    if quantize is not None and quantize not in QUANTIZE_MODES:
        raise ValueError(f"--quantize: expected one of {QUANTIZE_MODES}, got {quantize!r}")
    if not overwrite and os.path.isdir(out_dir) and os.listdir(out_dir):
        # Before the conversion's minutes (atomic_directory checks again at the end).
        raise FileExistsError(
            f"{out_dir}: already exists and is not empty; give a new --out or pass --overwrite"
        )
    run = RunDirectory(run_dir)
    model = run.load_model()
    family = litert_family(model, where=run_dir)
    source_quantization = quantization_of(model)
    compute_dtype = getattr(model, "backbone", model).compute_dtype
    if source_quantization is not None or compute_dtype != "float32":
        # int8 weights dequantized (int4, GPTQ refused), mixed precision in float32.
        model = float_copy(model)
    settings = export_settings(run.config() if run.has_config() else {})
    return write_litert(
        family.from_model(model, run, settings),
        out_dir,
        quantization="dynamic_int8" if source_quantization or quantize else None,
        info={
            "run_dir": os.path.abspath(run_dir),
            "model_class": type(model).__name__,
            "quantized_run": source_quantization,
        },
        overwrite=overwrite,
    )


def write_litert(builder, out_dir, quantization=None, info=None, overwrite=False):
    """Converts `builder`'s endpoints and writes the LiteRT directory `out_dir`.

    Args:
        builder: A family's LiteRT endpoints (`litert_causal_lm.CausalLMLiteRT`,
            `litert_bert.BertLiteRT`): `trackables()`, `endpoints()`,
            `sample_inputs()`, `manifest()`, `write_assets(directory)` and
            `custom_ops`.
        out_dir: The directory to write (`litert_layout`).
        quantization: None or `"dynamic_int8"`.
        info: What `litert.json` says of the source (run directory, model class).
        overwrite: Replace an existing `out_dir`.

    Returns:
        `out_dir`.
    """
    flatbuffer = convert(builder, quantization)
    manifest = {
        "format": litert_layout.FORMAT,
        "format_version": litert_layout.FORMAT_VERSION,
        **(info or {}),
        "quantization": quantization,
        "custom_ops": builder.custom_ops,
        "signatures": checked_signatures(flatbuffer, builder),
        **builder.manifest(),
        "versions": {"kzoo": __version__, "tensorflow": tf.__version__, "keras": keras.__version__},
        "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
    }

    def fill(tmp):
        staged_files.write_bytes_atomic(os.path.join(tmp, litert_layout.MODEL_FILE), flatbuffer)
        tokenizer = builder.write_assets(tmp)
        if tokenizer is not None:
            manifest["tokenizer"] = tokenizer
        staged_files.write_json_atomic(os.path.join(tmp, litert_layout.MANIFEST_FILE), manifest)

    return staged_files.atomic_directory(os.fspath(out_dir), fill, replace=overwrite)


def convert(builder, quantization=None):
    """The TFLite flatbuffer (bytes) of `builder`'s endpoints, one signature each.

    The endpoints are written as a SavedModel first: converting concrete
    functions directly keeps the Keras weights as uninitialized resource
    variables (NaN outputs), and only a SavedModel converts several signatures
    at once.
    """
    endpoints = builder.endpoints()
    archive = keras.export.ExportArchive()
    for trackable in builder.trackables():
        archive.track(trackable)
    for name, (function, specs) in endpoints.items():
        archive.add_endpoint(name, function, [specs])
    with tempfile.TemporaryDirectory() as tmp:
        archive.write_out(tmp, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp, signature_keys=list(endpoints))
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        converter.allow_custom_ops = builder.custom_ops is not None
        if quantization == "dynamic_int8":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        return converter.convert()


def checked_signatures(flatbuffer, builder):
    """The `signature_specs` of `flatbuffer`, once each signature has run on
    `builder.sample_inputs()` in the LiteRT interpreter (an op without a kernel
    fails only when its signature is first prepared)."""
    from kzoo.export.litert_driver import load_interpreter

    interpreter = load_interpreter(model_content=flatbuffer, custom_ops=builder.custom_ops)
    specs = signature_specs(interpreter)  # Before running resizes the inputs.
    for name, inputs in builder.sample_inputs().items():
        try:
            interpreter.get_signature_runner(name)(**inputs)
        except (RuntimeError, ValueError) as error:
            raise RuntimeError(
                f"the converted signature {name!r} does not run in the LiteRT interpreter: {error}"
            ) from error
    return specs


def signature_specs(interpreter):
    """`{signature: {"inputs": {name: {"dtype", "shape"}}, "outputs": {...}}}` of
    a LiteRT interpreter; -1 marks a dynamic axis."""
    specs = {}
    for name in interpreter.get_signature_list():
        runner = interpreter.get_signature_runner(name)
        specs[name] = {
            "inputs": _details(runner.get_input_details()),
            "outputs": _details(runner.get_output_details()),
        }
    return specs


def _details(details):
    return {
        key: {
            "dtype": "string"
            if detail["dtype"] in (object, np.bytes_)
            else detail["dtype"].__name__,
            "shape": [int(size) for size in detail["shape_signature"]],
        }
        for key, detail in sorted(details.items())
    }
