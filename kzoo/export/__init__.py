"""Export a trained run for TF Serving, and check the export the way TF Serving loads it.

`export_run(run_dir)` writes `saved_models/NAME/VERSION/` (a SavedModel with the
model family's signatures, e.g. `generate`, `score` and `generate_ids` for a
causal LM, warmup requests and REST examples) and updates
`saved_models/models.config`; every family implements one interface,
`kzoo.export.signatures.ServingSignatures`, found by `signatures_class(model)`;
`kzoo.export.check_serving.check_serving(version_dir)` loads it in a separate
process without Keras and compares it with the Keras model.

Attributes are imported on first use, so `import kzoo.export` (and
`kzoo.export.check_serving`, which starts TensorFlow only in its probe process)
cost nothing.
"""

import importlib

_EXPORTS = {
    "export_run": "kzoo.export.saved_model",
    "load_for_export": "kzoo.export.saved_model",
    "ServingSignatures": "kzoo.export.signatures",
    "signatures_class": "kzoo.export.signatures",
    "generate_from_saved_model": "kzoo.export.serving_generate",
    "validate_model_name": "kzoo.export.names",
    "validate_version": "kzoo.export.names",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'kzoo.export' has no attribute {name!r}")
