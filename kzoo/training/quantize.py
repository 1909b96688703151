"""`kzoo quantize`: a run's model quantized with Keras into a new run directory.

Keras quantizes each `Dense` and `Embedding` (`keras.Model.quantize`): `int8`
keeps one int8 kernel and a float scale per output channel (and quantizes a Dense
layer's inputs per token on the fly); `int4` packs two 4-bit weights in a byte.
kzoo quantizes the backbone (a task's small heads stay float) and saves the
per-layer policies in the backbone's config (`kzoo.models.FunctionalModel`), so the
new run's `model.keras` reloads quantized. `evaluate`, `generate`, `export`,
`check-serving` and `train.init_from` (QLoRA with `train.lora`) take the new run.
"""

import os
import time
import warnings

from kzoo import staged_files
from kzoo.training.run_directory import RunDirectory

MODES = ("int8", "int4")


def _check_mode(mode):
    if mode not in MODES:
        raise ValueError(f"--mode: must be one of {', '.join(MODES)}, got {mode!r}")


def quantize_model(model, mode):
    """Quantizes `model`'s backbone (the model itself if it has none) in place."""
    _check_mode(mode)
    target = getattr(model, "backbone", model)
    with warnings.catch_warnings():
        # Norms, dropout and positions have nothing to quantize.
        warnings.filterwarnings("ignore", message=".*does not have a `quantize` method")
        target.quantize(mode)
    return model


def quantize_run(run_dir, new_run_dir, mode):
    """Writes `new_run_dir`: the run `run_dir` with its model quantized to `mode`.

    The new directory appears all at once with the run's config, tokenizer, the
    quantized `model.keras` and a `summary.json` (`quantized_from`, `mode`,
    `model_bytes` before and after, `seconds`).

    Raises:
        FileNotFoundError: `run_dir` has no trained model.
        FileExistsError: `new_run_dir` exists and is not empty.
        ValueError: An unknown mode.
    """
    _check_mode(mode)  # Before loading the model.
    if os.path.isdir(new_run_dir) and os.listdir(new_run_dir):
        raise FileExistsError(
            f"{new_run_dir}: already exists and is not empty; give a new --run-dir "
            "(quantizing never overwrites a run)"
        )
    run = RunDirectory(run_dir)
    start = time.perf_counter()
    model = quantize_model(run.load_model(), mode)
    summary = {
        "quantized_from": os.path.abspath(run_dir),
        "mode": mode,
        "parameters": int(model.count_params()),
        "model_bytes": {"before": os.path.getsize(run.model_path)},
    }

    def fill(tmp):
        new = RunDirectory(tmp)
        new.copy_tokenizer_from(run)
        new.write_config(run.config())
        new.save_model(model)
        summary["model_bytes"]["after"] = os.path.getsize(new.model_path)
        summary["seconds"] = round(time.perf_counter() - start, 2)
        new.write_summary(summary)

    staged_files.atomic_directory(new_run_dir, fill)
    return summary
