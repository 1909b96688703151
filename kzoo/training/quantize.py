"""`kzoo quantize`: a run's model quantized with Keras into a new run directory.

Keras quantizes each `Dense` and `Embedding` (`keras.Model.quantize`): `int8`
keeps one int8 kernel and a float scale per output channel (and quantizes a Dense
layer's inputs per token on the fly); `int4` packs two 4-bit weights in a byte.
kzoo quantizes the backbone (a task's small heads stay float) and saves the
per-layer policies in the backbone's config (`kzoo.models.FunctionalModel`), so the
new run's `model.keras` reloads quantized. `evaluate`, `generate`, `export`,
`check-serving` and `train.init_from` (QLoRA with `train.lora`) take the new run.

With calibration text (`--calibration FILES`), a decoder-only model (GPT, llama)
is quantized with Keras' GPTQ instead: block by block, each projection's weights
are rounded so as to minimise the error of its outputs on the calibration
tokens (Frantar et al., 2022), 4 or 8 bits per weight, a scale and zero point per
group of `GPTQ_GROUP_SIZE` inputs. Rounding to nearest (no calibration) needs no
data and also quantizes the embeddings; GPTQ quantizes the blocks' projections.
"""

import os
import time
import warnings

from kzoo import staged_files
from kzoo.training.run_directory import RunDirectory

MODES = ("int8", "int4")
GPTQ_GROUP_SIZE = 128  # Inputs per scale; a narrower layer has one group per row.
CALIBRATION_SAMPLES = 128  # Windows of the calibration tokens GPTQ sees.


def _check_mode(mode):
    if mode not in MODES:
        raise ValueError(f"--mode: must be one of {', '.join(MODES)}, got {mode!r}")


def quantize_model(model, mode, calibration=None):
    """Quantizes `model`'s backbone (the model itself if it has none) in place.

    Args:
        model: A task model (or a backbone).
        mode: `"int8"` or `"int4"`.
        calibration: None (round to nearest), or `(tokenizer, token_ids,
            sequence_length)` for GPTQ: the model's tokenizer, a 1-D array of
            calibration tokens and the window length.
    """
    _check_mode(mode)
    target = getattr(model, "backbone", model)
    with warnings.catch_warnings():
        # Norms, dropout and positions have nothing to quantize.
        warnings.filterwarnings("ignore", message=".*does not have a `quantize` method")
        # GPTQ's mode reaches the embeddings too, which only round to nearest.
        warnings.filterwarnings("ignore", message="Invalid quantization mode")
        if calibration is None:
            target.quantize(mode)
        else:
            target.quantize("gptq", config=_gptq_config(target, mode, *calibration))
    return model


def _gptq_config(backbone, mode, tokenizer, token_ids, sequence_length):
    import keras

    if backbone.get_quantization_layer_structure("gptq") is None:
        raise ValueError(
            f"--calibration: GPTQ calibrates decoder-only models (gpt, llama) block by "
            f"block; a {type(backbone).__name__} is quantized without it (drop --calibration)"
        )
    if len(token_ids) < sequence_length:
        raise ValueError(
            f"--calibration: the files hold {len(token_ids)} tokens, fewer than one "
            f"window of {sequence_length}; give more text"
        )
    width = backbone.hidden_dim
    return keras.quantizers.GPTQConfig(
        dataset=[token_ids],
        tokenizer=tokenizer,  # Unused: the dataset is token ids already.
        weight_bits=int(mode[3:]),
        num_samples=min(CALIBRATION_SAMPLES, len(token_ids) // sequence_length),
        sequence_length=sequence_length,
        group_size=GPTQ_GROUP_SIZE if width >= GPTQ_GROUP_SIZE else -1,
    )


def calibration_tokens(run, patterns):
    """The run's tokenizer applied to the text files `patterns` (paths or globs):
    one 1-D int32 array, files in order."""
    import numpy as np

    from kzoo.data.text_files import resolve_text_files

    tokenizer = run.tokenizer()
    ids = []
    for path in resolve_text_files(patterns, "--calibration"):
        with open(path, encoding="utf-8-sig") as f:
            ids.append(np.asarray(tokenizer.tokenize(f.read()), "int32").reshape(-1))
    return np.concatenate(ids)


def quantize_run(run_dir, new_run_dir, mode, calibration=None):
    """Writes `new_run_dir`: the run `run_dir` with its model quantized to `mode`.

    The new directory appears all at once with the run's config, tokenizer, the
    quantized `model.keras` and a `summary.json` (`quantized_from`, `mode`,
    `method` (`round_to_nearest` or `gptq`), `model_bytes` before and after,
    `seconds`).

    Args:
        run_dir: A run holding a model.
        new_run_dir: The new run directory.
        mode: `"int8"` or `"int4"`.
        calibration: Text files (paths or globs) for GPTQ, or None.

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
    model = run.load_model()
    tokens = None
    if calibration:
        length = run.config()["data"].get("sequence_length") or model.backbone.max_sequence_length
        tokens = (run.tokenizer(), calibration_tokens(run, calibration), length)
    model = quantize_model(model, mode, tokens)
    summary = {
        "quantized_from": os.path.abspath(run_dir),
        "mode": mode,
        "method": "gptq" if calibration else "round_to_nearest",
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
