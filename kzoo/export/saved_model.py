"""`kzoo export RUN_DIR`: a trained run becomes a TF Serving model version.

    OUT/models.config                  every model under OUT (see serving_files)
    OUT/NAME/VERSION/saved_model.pb    the model family's endpoints (causal LM:
    OUT/NAME/VERSION/variables/        generate = serving_default, score,
                                       generate_ids; see *_signatures)
    OUT/NAME/VERSION/assets.extra/     warmup requests, REST examples, expected
                                       outputs, kzoo_export.json (see layout)

Every family is written by the same code: `signatures.signatures_class(model)`
picks the family's `ServingSignatures`, which gives the endpoints, the sample
requests and their Keras answers; `write_saved_model` and `write_assets_extra`
write them. What every endpoint does with unusual input (invalid UTF-8, empty
batches, out-of-range or NaN options) is `input_policy`.

The version is written into a hidden temporary directory next to it
(`OUT/NAME/.tmp-VERSION-*`, which TF Serving ignores: not a number) and renamed
into place only when complete (`staged_files.atomic_directory`), so a crash never leaves a partial version for TF
Serving to load. An existing version is replaced only with `overwrite=True`.
"""

import datetime
import os

import keras
import tensorflow as tf

from kzoo import staged_files
from kzoo.export import layout, serving_files
from kzoo.export.names import validate_model_name, validate_version
from kzoo.export.signatures import kernels_by_rows, signatures_class
from kzoo.training.config import validate_section
from kzoo.training.recipe import EXPORT_SCHEMA
from kzoo.training.run_directory import RunDirectory
from kzoo.version import __version__


def export_run(run_dir, out_dir="saved_models", name=None, version=None, xla=None, overwrite=False):
    """Exports `run_dir/model.keras` to `out_dir/NAME/VERSION` for TF Serving.

    Args:
        run_dir: A training run (`config.yaml`, `model.keras`, its tokenizer).
        out_dir: The TF Serving base directory; `models.config` is updated there.
        name: Model name; defaults to the run's `export.name` (else the run
            directory's name).
        version: Positive int; defaults to the run's `export.version`.
        xla: Compile decoding and scoring with XLA; defaults to `export.xla`.
        overwrite: Replace an existing `NAME/VERSION`.

    Returns:
        The path of the version directory.

    Raises:
        ValueError: A bad name or version (the message names the value), or a
            model no family exports.
        FileExistsError: The version exists and `overwrite` is False.
        FileNotFoundError: `run_dir/model.keras` is missing.

    Example:
    >>> export_run("/nonexistent", name="../evil")
    Traceback (most recent call last):
    ...
    ValueError: --name: '../evil' is not a valid model name; ...
    """
    run = RunDirectory(run_dir)
    config = run.config() if run.has_config() else {}
    settings = export_settings(config)
    if name is None:
        name = validate_model_name(settings["name"] or os.path.basename(os.path.abspath(run_dir)))
    else:
        validate_model_name(name, key="--name")
    if version is None:
        version = validate_version(settings["version"])
    else:
        validate_version(version, key="--version")
    xla = settings["xla"] if xla is None else bool(xla)
    model_dir = os.path.join(out_dir, name)
    final = os.path.join(model_dir, str(version))
    _check_free(final, overwrite)

    model = run.load_model()
    family = signatures_class(model, where=run_dir)
    # Without XLA, decoding streams each kernel once per token: by rows is faster
    # (BENCHMARKS.md, "The no-XLA export"). XLA is faster with Keras' layout.
    by_rows = kernels_by_rows(model) if family.decodes_tokens and not xla else 0
    signatures = family.from_model(model, settings, xla=xla, run=run)
    info = {
        "model_name": name,
        "version": version,
        "run_dir": os.path.abspath(run_dir),
        "model_class": type(model).__name__,
        "xla": xla,
        "kernels_by_rows": by_rows,
        "config": config,
    }

    def fill(tmp):
        write_saved_model(tmp, signatures)
        write_assets_extra(tmp, signatures, name, info)

    # 0755/0644: the server, often another user in a container, must read it.
    staged_files.atomic_directory(final, fill, replace=overwrite, mode=0o755)
    serving_files.update_models_config(out_dir)
    return final


def export_settings(config):
    """The validated `export` section of a run's `config` (defaults filled in)."""
    return validate_section("export", config.get("export"), EXPORT_SCHEMA)


def load_for_export(run_dir):
    """`(model, tokenizer)` of a run (`RunDirectory.load_model`, `.tokenizer`),
    the model checked to be one that `export_run` exports (`signatures_class`):
    what an export's answers are compared with."""
    run = RunDirectory(run_dir)
    model = run.load_model()
    signatures_class(model, where=run_dir)
    return model, run.tokenizer(model)


def write_saved_model(path, signatures):
    """Writes the SavedModel of `signatures` (a `ServingSignatures`) to `path`.

    A `keras.export.ExportArchive` (not a hand-made `tf.Module` holding the Keras
    model) saves exactly the variables and resources the endpoints use, so the
    SavedModel loads both with `tf.saved_model.load` and with the TF1 session
    loader that TF Serving uses. The tokenizer is tracked explicitly (its
    resources are not variables, and an LSTM does not own its tokenizer). The
    first endpoint is saved as `serving_default` too.
    """
    archive = keras.export.ExportArchive()
    for trackable in signatures.trackables():
        archive.track(trackable)
    for name, specs in signatures.input_specs().items():
        archive.add_endpoint(name, getattr(signatures, name), list(specs.values()))
    archive.write_out(path, verbose=False)


def write_assets_extra(directory, signatures, model_name, info):
    """Writes `directory/assets.extra/`: the warmup requests, one REST example per
    endpoint, the Keras model's answers to the sample requests and
    `kzoo_export.json` (`info` with the family's `export_info`, the endpoints'
    specs and the library versions added).

    Args:
        directory: The version directory.
        signatures: Its `ServingSignatures`.
        model_name: The model name the warmup requests address.
        info: What was exported, from where, how (`export_run` writes the run
            directory, model class, XLA flag and config).
    """
    extra = os.path.join(directory, layout.ASSETS_EXTRA)
    requests = signatures.sample_requests()
    dtypes = {
        name: {key: spec.dtype for key, spec in specs.items()}
        for name, specs in signatures.all_input_specs().items()
    }
    serving_files.write_warmup_requests(
        os.path.join(extra, layout.WARMUP_FILE), model_name, requests, dtypes
    )
    serving_files.write_example_requests(os.path.join(extra, layout.EXAMPLES_DIR), requests)
    staged_files.write_json_atomic(
        os.path.join(extra, layout.EXPECTED_FILE), expected_outputs(signatures, requests)
    )
    staged_files.write_json_atomic(
        os.path.join(extra, layout.EXPORT_INFO_FILE),
        {
            **info,
            **signatures.export_info(),
            "signatures": signatures.signature_specs(),
            "versions": {
                "kzoo": __version__,
                "tensorflow": tf.__version__,
                "keras": keras.__version__,
            },
            "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        },
    )


def expected_outputs(signatures, requests):
    """The content of `expected_outputs.json`: each request with the Keras
    model's answer (`expected`), and the family's tolerances."""
    return {
        **signatures.expected_fields(),
        "requests": [dict(r, expected=signatures.reference_outputs(r)) for r in requests],
    }


def _check_free(final, overwrite):
    if os.path.exists(final) and not overwrite:
        raise FileExistsError(
            f"{final} already exists; export a new version (--version) or pass "
            "overwrite=True (--overwrite)"
        )
