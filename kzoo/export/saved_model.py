"""`kzoo export RUN_DIR`: a trained run becomes a TF Serving model version.

    OUT/models.config                  every model under OUT (see serving_files)
    OUT/NAME/VERSION/saved_model.pb    signatures: generate (= serving_default),
    OUT/NAME/VERSION/variables/        score, generate_ids (see signatures)
    OUT/NAME/VERSION/assets.extra/     warmup requests, REST examples, expected
                                       outputs, kzoo_export.json

for a causal LM; BERT and seq2seq/T5 runs have their own signatures
(`bert_signatures`, `seq2seq_signatures`). What every signature does with unusual
input (invalid UTF-8, empty batches, out-of-range or NaN options) is `input_policy`.

The version is written into a hidden temporary directory next to it
(`OUT/NAME/.tmp-VERSION-*`, which TF Serving ignores: not a number) and renamed
into place only when complete, so a crash never leaves a partial version for TF
Serving to load. An existing version is replaced only with `overwrite=True`.
"""

import dataclasses
import datetime
import os
import shutil
import tempfile

import keras
import tensorflow as tf

from kzoo.export import bert_export, layout, seq2seq_export, serving_files
from kzoo.export.archive import signature_names, write_saved_model
from kzoo.export.causal_lm_signatures import INPUT_SPECS, OUTPUT_DTYPES, GenerationLimits
from kzoo.export.input_policy import declared_shape
from kzoo.export.keras_reference import SCORE_TOLERANCE, document_ids, reference_outputs
from kzoo.export.names import validate_model_name, validate_version
from kzoo.export.serving_requests import sample_prompts, sample_requests
from kzoo.training import run_files
from kzoo.training.config import validate_section
from kzoo.training.recipe import EXPORT_SCHEMA
from kzoo.version import __version__

SAMPLE_NEW_TOKENS = 8


def export_run(run_dir, out_dir="saved_models", name=None, version=None, xla=None, overwrite=False):
    """Exports `run_dir/model.keras` to `out_dir/NAME/VERSION` for TF Serving.

    Args:
        run_dir: A training run (`config.yaml`, `model.keras`, `tokenizer.model`).
        out_dir: The TF Serving base directory; `models.config` is updated there.
        name: Model name; defaults to the run's `export.name` (else the run
            directory's name).
        version: Positive int; defaults to the run's `export.version`.
        xla: Compile decoding and scoring with XLA; defaults to `export.xla`.
        overwrite: Replace an existing `NAME/VERSION`.

    Returns:
        The path of the version directory.

    Raises:
        ValueError: A bad name or version (the message names the value).
        FileExistsError: The version exists and `overwrite` is False.
        FileNotFoundError: `run_dir/model.keras` is missing.

    Example:
    >>> export_run("/nonexistent", name="../evil")
    Traceback (most recent call last):
    ...
    ValueError: --name: '../evil' is not a valid model name; ...
    """
    config = _read_config(run_dir)
    settings = validate_section("export", config.get("export"), EXPORT_SCHEMA)
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

    model, tokenizer = load_run_model(run_dir)
    os.makedirs(model_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(dir=model_dir, prefix=f".tmp-{version}-")
    try:
        if bert_export.is_bert_model(model):
            signatures = bert_export.bert_signatures(model, tokenizer, config, xla=xla)
            bert_export.write_bert_saved_model(tmp, signatures)
            bert_export.write_bert_assets(tmp, signatures, name)
            _write_export_info(
                tmp,
                run_dir,
                config,
                name,
                version,
                xla,
                model,
                bert_export.signature_specs(signatures),
            )
        elif seq2seq_export.is_seq2seq_model(model):
            signatures = seq2seq_export.seq2seq_signatures(
                model, tokenizer, config, settings, xla=xla
            )
            seq2seq_export.write_seq2seq_saved_model(tmp, signatures)
            seq2seq_export.write_seq2seq_assets(tmp, signatures, name)
            _write_export_info(
                tmp,
                run_dir,
                config,
                name,
                version,
                xla,
                model,
                seq2seq_export.signature_specs(signatures),
                limits=dataclasses.asdict(signatures.limits),
            )
        else:
            limits = GenerationLimits.for_model(
                model, settings["max_new_tokens"], settings["max_prompt_tokens"]
            )
            write_saved_model(tmp, model, tokenizer, limits, xla=xla)
            _write_assets_extra(tmp, run_dir, config, name, version, xla, model, tokenizer, limits)
        _make_readable(tmp)
        _move_into_place(tmp, final, overwrite)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    serving_files.update_models_config(out_dir)
    return final


def load_run_model(run_dir):
    """Loads a run's model (safe mode) and its tokenizer, for export."""
    from kzoo.tokenizers import load_tokenizer
    from kzoo.training.run_files import load_run_model as load_model

    model = load_model(run_dir)
    if bert_export.is_bert_model(model):
        return model, getattr(model, "tokenizer", None) or load_tokenizer(run_dir)
    if not (hasattr(model, "generate_ids") and getattr(model, "end_token_id", None) is not None):
        raise ValueError(
            f"{run_dir}: holds a {type(model).__name__}; kzoo export supports causal "
            "LMs with generate_ids and end_token_id (GPTCausalLM, LSTMLanguageModel), "
            "Seq2SeqLM and BERT task models"
        )
    tokenizer = getattr(model, "tokenizer", None) or load_tokenizer(run_dir)
    return model, tokenizer


def signature_specs():
    """Input names, dtypes and shapes (None: any rank, checked in the graph) and
    output dtypes of every signature."""
    specs = {}
    for name in signature_names():
        source = "generate" if name == "serving_default" else name
        specs[name] = {
            "inputs": {
                key: {"dtype": spec.dtype.name, "shape": declared_shape(spec)}
                for key, spec in INPUT_SPECS[source].items()
            },
            "outputs": OUTPUT_DTYPES[source],
        }
    return specs


def _read_config(run_dir):
    if not os.path.isfile(os.path.join(run_dir, run_files.CONFIG)):
        return {}
    return run_files.read_config(run_dir)


def _check_free(final, overwrite):
    if os.path.exists(final) and not overwrite:
        raise FileExistsError(
            f"{final} already exists; export a new version (--version) or pass "
            "overwrite=True (--overwrite)"
        )


def _write_assets_extra(directory, run_dir, config, name, version, xla, model, tokenizer, limits):
    extra = os.path.join(directory, layout.ASSETS_EXTRA)
    end_id = int(model.end_token_id)
    prompts = sample_prompts(config.get("train", {}).get("sample_prompts", []))
    requests = sample_requests(
        prompts,
        document_ids(tokenizer, end_id, prompts),
        min(SAMPLE_NEW_TOKENS, limits.max_new_tokens),
    )
    serving_files.write_warmup_requests(os.path.join(extra, layout.WARMUP_FILE), name, requests)
    serving_files.write_example_requests(os.path.join(extra, layout.EXAMPLES_DIR), requests)
    expected = [dict(r, expected=reference_outputs(model, tokenizer, limits, r)) for r in requests]
    run_files.write_json(
        {"end_token_id": end_id, "score_tolerance": SCORE_TOLERANCE, "requests": expected},
        os.path.join(extra, layout.EXPECTED_FILE),
    )
    _write_export_info(
        directory,
        run_dir,
        config,
        name,
        version,
        xla,
        model,
        signature_specs(),
        end_token_id=end_id,
        limits=dataclasses.asdict(limits),
    )


def _write_export_info(
    directory, run_dir, config, name, version, xla, model, signatures, **extra_fields
):
    """`assets.extra/kzoo_export.json`: what was exported, from where, how."""
    run_files.write_json(
        {
            "model_name": name,
            "version": version,
            "run_dir": os.path.abspath(run_dir),
            "model_class": type(model).__name__,
            **extra_fields,
            "xla": xla,
            "signatures": signatures,
            "config": config,
            "versions": {
                "kzoo": __version__,
                "tensorflow": tf.__version__,
                "keras": keras.__version__,
            },
            "exported_at": datetime.datetime.now(datetime.timezone.utc).isoformat(),
        },
        os.path.join(directory, layout.ASSETS_EXTRA, layout.EXPORT_INFO_FILE),
    )


def _make_readable(directory):
    """Temporary files and directories are private (0600/0700); the server,
    often another user in a container, must read the version: 0644/0755."""
    os.chmod(directory, 0o755)
    for root, dirs, files in os.walk(directory):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o755)
        for f in files:
            os.chmod(os.path.join(root, f), 0o644)


def _move_into_place(tmp, final, overwrite):
    """Renames the finished `tmp` to `final`; an old `final` goes only if allowed."""
    _check_free(final, overwrite)
    if not os.path.exists(final):
        os.rename(tmp, final)
        return
    trash = tempfile.mkdtemp(dir=os.path.dirname(final), prefix=".old-")
    os.rename(final, os.path.join(trash, "version"))
    try:
        os.rename(tmp, final)
    except OSError:
        os.rename(os.path.join(trash, "version"), final)
        raise
    finally:
        shutil.rmtree(trash, ignore_errors=True)
