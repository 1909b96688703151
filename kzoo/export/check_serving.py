"""`kzoo check-serving saved_models/NAME/VERSION [--json]`: will TF Serving serve it?

The checks that matter run in a separate process (`serving_probe.py`, started as a
script) that has TensorFlow and the TF Text kernels but cannot import Keras or kzoo,
like the model server: it loads the version with TF Serving's TF1 session loader
and with `tf.saved_model.load`, checks that every op is registered, replays the
warmup requests and compares the answers to the sample requests with the Keras
model's (`assets.extra/expected_outputs.json`, written at export time; with
`python -m kzoo.export.check_serving DIR --against-run` they are recomputed from
the run's `model.keras`). This process checks the files. Exit code 0 only if every
check passes.

Running an export by hand with `saved_model_cli`: the CLI loads the graph with the
TF1 loader, so TF Text's ops (`SentencepieceOp`, `SentencepieceTokenizeOp`,
`SentencepieceDetokenizeOp`) must be registered first, which the plain
`saved_model_cli` script does not do ("Op type not registered 'SentencepieceOp'").
Import `tensorflow_text` and call the CLI's `main`:

    python -c "import sys, tensorflow_text; from tensorflow.python.tools import \\
    saved_model_cli; sys.argv[0] = 'saved_model_cli'; saved_model_cli.main()" \\
      run --dir saved_models/NAME/1 --tag_set serve --signature_def generate \\
      --input_exprs 'prompts=["ta"];max_new_tokens=[16];temperature=[0.0];top_k=[0];top_p=[1.0];seed=[0]'

(`saved_model_cli show --dir saved_models/NAME/1 --all` needs no TF Text.)

Serving it (`models.config` lists every model under `saved_models/`):

    docker run --rm -p 8501:8501 -v "$PWD/saved_models:/models" tensorflow/serving \\
      --model_config_file=/models/models.config
    curl -s localhost:8501/v1/models/NAME:predict \\
      -d @saved_models/NAME/1/assets.extra/example_requests/generate.json

Exports made with `--xla` also need `--xla_cpu_compilation_enabled=true` (TF
Serving disables XLA by default; the default export needs no XLA: the decoding
loops write their buffers with `kzoo.layers.write_at`). The model server links TF Text's kernels
(`@org_tensorflow_text//tensorflow_text:ops_lib`, SentencePiece included, in
tensorflow/serving's model_servers/BUILD); that the stock image serves these
exports was not verified here (no Docker).

Example:
>>> check_serving("/nonexistent")["checks"]["files"]["ok"]
False
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile

from kzoo.export import layout

PROBE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "serving_probe.py")
REQUIRED_FILES = (
    "saved_model.pb",
    "variables/variables.index",
    f"{layout.ASSETS_EXTRA}/{layout.WARMUP_FILE}",
    f"{layout.ASSETS_EXTRA}/{layout.EXPECTED_FILE}",
    f"{layout.ASSETS_EXTRA}/{layout.EXPORT_INFO_FILE}",
    f"{layout.ASSETS_EXTRA}/{layout.EXAMPLES_DIR}/serving_default.json",
)


def check_serving(version_dir, against_run=False, timeout=600):
    """Checks an exported version the way TF Serving would load and run it.

    Args:
        version_dir: `saved_models/NAME/VERSION`.
        against_run: Recompute the Keras outputs from the run's `model.keras`
            (its path is in `assets.extra/kzoo_export.json`) instead of using
            the ones stored at export time.
        timeout: Seconds the probe process may take.

    Returns:
        `{"ok": bool, "version_dir": str, "checks": {name: {"ok", "detail"}}}`.
    """
    checks = {"files": _check_files(version_dir)}
    if not os.path.isfile(os.path.join(version_dir, "saved_model.pb")):
        return _result(version_dir, checks)
    with tempfile.TemporaryDirectory(prefix="kzoo-check-serving-") as work:
        expected = os.path.join(version_dir, layout.ASSETS_EXTRA, layout.EXPECTED_FILE)
        if against_run:
            try:
                expected = _recompute_expected(version_dir, work)
                checks["keras_run"] = {"ok": True, "detail": "recomputed from the run"}
            except Exception as error:
                checks["keras_run"] = {"ok": False, "detail": f"{type(error).__name__}: {error}"}
                return _result(version_dir, checks)
        checks.update(_run_probe(version_dir, expected, work, timeout))
    return _result(version_dir, checks)


def _result(version_dir, checks):
    return {
        "ok": all(c["ok"] for c in checks.values()),
        "version_dir": version_dir,
        "checks": checks,
    }


def _check_files(version_dir):
    missing = [f for f in REQUIRED_FILES if not os.path.isfile(os.path.join(version_dir, f))]
    if missing:
        return {"ok": False, "detail": f"missing in {version_dir}: {', '.join(missing)}"}
    return {"ok": True, "detail": "SavedModel, variables and assets.extra present"}


def _run_probe(version_dir, expected, work, timeout):
    output = os.path.join(work, "probe.json")
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    command = [
        sys.executable,
        PROBE,
        os.path.abspath(version_dir),
        "--expected",
        os.path.abspath(expected),
        "--output",
        output,
    ]
    try:
        process = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"probe": {"ok": False, "detail": f"no answer within {timeout} s"}}
    if not os.path.isfile(output):
        tail = (process.stderr or process.stdout).strip()[-1500:]
        return {"probe": {"ok": False, "detail": f"probe exited with {process.returncode}: {tail}"}}
    with open(output, encoding="utf-8") as f:
        return json.load(f)["checks"]


def _recompute_expected(version_dir, work):
    """`expected_outputs.json` recomputed from the run's `model.keras` (the run
    directory and export settings recorded in `kzoo_export.json`), any family."""
    from kzoo import staged_files
    from kzoo.export.saved_model import expected_outputs, export_settings
    from kzoo.export.signatures import signatures_class
    from kzoo.training.run_directory import RunDirectory

    extra = os.path.join(version_dir, layout.ASSETS_EXTRA)
    with open(os.path.join(extra, layout.EXPORT_INFO_FILE), encoding="utf-8") as f:
        info = json.load(f)
    with open(os.path.join(extra, layout.EXPECTED_FILE), encoding="utf-8") as f:
        stored = json.load(f)
    run = RunDirectory(info["run_dir"])
    model = run.load_model()
    signatures = signatures_class(model, where=info["run_dir"]).from_model(
        model, export_settings(info.get("config") or {}), run=run
    )
    path = os.path.join(work, layout.EXPECTED_FILE)
    return staged_files.write_json_atomic(
        path, {**stored, **expected_outputs(signatures, stored["requests"])}
    )


def format_summary(result):
    """The human-readable report: one line per check."""
    lines = [f"check-serving {result['version_dir']}: {'OK' if result['ok'] else 'FAILED'}"]
    for name, check in result["checks"].items():
        lines.append(f"  {'ok  ' if check['ok'] else 'FAIL'}  {name:<12} {check['detail']}")
    return "\n".join(lines)


def main(argv=None):
    """`python -m kzoo.export.check_serving VERSION_DIR [--json] [--against-run]`."""
    parser = argparse.ArgumentParser(
        prog="python -m kzoo.export.check_serving", description=__doc__.splitlines()[0]
    )
    parser.add_argument("version_dir", help="saved_models/NAME/VERSION")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--against-run",
        action="store_true",
        help="recompute the Keras outputs from the run's model.keras",
    )
    parser.add_argument("--timeout", type=int, default=600, help="probe timeout (s)")
    args = parser.parse_args(argv)
    result = check_serving(args.version_dir, against_run=args.against_run, timeout=args.timeout)
    print(json.dumps(result, sort_keys=True) if args.json else format_summary(result))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
