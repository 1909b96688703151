"""Loads an exported version the way TF Serving does and runs it, without Keras.

Run as a script by `kzoo check-serving` (never imported by it):

    python kzoo/export/serving_probe.py VERSION_DIR --expected FILE --output FILE

TF Serving is a C++ binary: it has TensorFlow and the TF Text kernels linked in,
and no Python. This process comes as close as Python can. Before TensorFlow is
imported, `keras`, `tf_keras`, `keras_hub`, `kzoo` and the `tensorflow_text` Python
package are made unimportable (`import tensorflow` would otherwise pull Keras in);
TF Text's ops are registered by loading its kernel libraries
(`tensorflow_text/python/ops/_*.so`) with `tf.load_op_library`, as the model server
links them. It imports nothing from kzoo, only the standard library, TensorFlow
and the TF Serving protos (`tensorflow_serving.apis`, for the warmup file).

TF Serving also disables XLA compilation unless started with
`--xla_cpu_compilation_enabled=true`; ops that only run through XLA
(`XlaDynamicUpdateSlice`, ...) then fail with "XLA compilation disabled". The probe
does the same (`tensorflow::DisableXlaCompilation()`, through ctypes) unless the
export was made with `xla=True`, which needs that flag anyway.

Checks, each `{"ok": bool, "detail": str}` in the JSON report:
    modules        no blocked Python module was imported
    xla            XLA compilation is disabled as in TF Serving (or the export
                   needs --xla_cpu_compilation_enabled=true)
    ops            every op of the graph and its function library is registered
                   by TensorFlow plus the TF Text kernels (and which ones need TF Text)
    signatures     the expected signatures exist; outputs (and inputs of known rank)
                   are batch-first, outputs string/int32/float32 (what TF Serving's
                   REST API encodes); inputs of any rank are checked in the graph
    tf1_session    `tf.compat.v1.saved_model.loader.load` in a Session (TF Serving's
                   loader) runs every sample request from the SignatureDef tensor names
    warmup         every PredictionLog of assets.extra/tf_serving_warmup_requests
                   runs in that session
    tf2_load       `tf.saved_model.load` runs every sample request
    keras_match    both loaders answer what the Keras model answered: the same
                   generated text and tokens, scores within the stored tolerance
"""

import argparse
import importlib.util
import json
import os
import sys

BLOCKED_MODULES = ("keras", "tf_keras", "keras_hub", "kzoo", "tensorflow_text")
DEFAULT_SIGNATURES = ("serving_default", "generate", "score", "generate_ids")


def block_python_modules():
    """Makes the blocked modules unimportable; returns TF Text's kernel libraries."""
    spec = importlib.util.find_spec("tensorflow_text")
    libraries = []
    if spec is not None and spec.submodule_search_locations:
        ops_dir = os.path.join(list(spec.submodule_search_locations)[0], "python", "ops")
        libraries = sorted(
            os.path.join(ops_dir, name)
            for name in os.listdir(ops_dir)
            if name.startswith("_") and name.endswith(".so")
        )
    for name in BLOCKED_MODULES:
        if name not in sys.modules:
            sys.modules[name] = None  # `import name` now raises ImportError.
    return libraries


def disable_xla_compilation(tf):
    """Makes XLA compilation fail, as TF Serving does by default; True if done."""
    import ctypes

    directory = os.path.dirname(tf.__file__)
    for name in ("libtensorflow_cc.so.2", "libtensorflow_framework.so.2"):
        path = os.path.join(directory, name)
        if not os.path.exists(path):
            continue
        try:
            ctypes.CDLL(path)._ZN10tensorflow21DisableXlaCompilationEv()
            return True
        except (AttributeError, OSError):
            continue
    return False


def graph_op_types(saved_model_pb):
    """Every op type in the first MetaGraph, its function library included."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    with open(saved_model_pb, "rb") as f:
        proto.ParseFromString(f.read())
    graph = proto.meta_graphs[0].graph_def
    ops = {node.op for node in graph.node}
    for function in graph.library.function:
        ops.update(node.op for node in function.node_def)
    return ops


def unregistered(ops):
    from tensorflow.python.framework import op_def_registry

    return sorted(op for op in ops if op_def_registry.get(op) is None)


def compare(signature_name, outputs, expected, end_id, tolerance):
    """Mismatches between a signature's outputs (NumPy) and the Keras answers.

    Example:
    >>> import numpy as np
    >>> outputs = {"log_likelihood": np.array([-2.00001]), "num_tokens": np.array([3])}
    >>> compare("score", outputs, {"log_likelihood": [-2.0], "num_tokens": [3]}, 3,
    ...         {"rtol": 1e-4})
    []
    >>> compare("score", outputs, {"log_likelihood": [-2.0], "num_tokens": [4]}, 3,
    ...         {"rtol": 1e-4})
    ['score.num_tokens: [3] != [4]']
    """
    import numpy as np

    problems = []
    for key in set(expected) - CAUSAL_LM_KEYS:  # other signatures: generic comparison
        problems += compare_values(
            f"{signature_name}.{key}", outputs[key], expected[key], tolerance
        )
    if "generated" in expected:
        got = [v.decode("utf-8", errors="replace") for v in outputs["generated"].tolist()]
        if got != expected["generated"]:
            problems.append(f"{signature_name}.generated: {got!r} != {expected['generated']!r}")
        if outputs["token_count"].tolist() != expected["token_count"]:
            problems.append(
                f"{signature_name}.token_count: "
                f"{outputs['token_count'].tolist()} != {expected['token_count']}"
            )
    if "continuations" in expected:
        got = [
            [int(t) for t, m in zip(row, mask) if m and t != end_id]
            for row, mask in zip(outputs["token_ids"], outputs["generated_mask"])
        ]
        if got != expected["continuations"]:
            problems.append(f"{signature_name}: generated ids {got} != {expected['continuations']}")
    if "log_likelihood" in expected:
        got = np.asarray(outputs["log_likelihood"], "float64")
        if not np.allclose(got, expected["log_likelihood"], **tolerance):
            problems.append(
                f"{signature_name}.log_likelihood: {got.tolist()} != "
                f"{expected['log_likelihood']} ({tolerance})"
            )
        if outputs["num_tokens"].tolist() != expected["num_tokens"]:
            problems.append(
                f"{signature_name}.num_tokens: "
                f"{outputs['num_tokens'].tolist()} != {expected['num_tokens']}"
            )
    return problems


CAUSAL_LM_KEYS = {"generated", "token_count", "continuations", "log_likelihood", "num_tokens"}


def compare_values(name, got, expected, tolerance):
    """Strings and integers must be equal, floats close (`tolerance`).

    Example:
    >>> import numpy as np
    >>> compare_values("classify.label", np.array([b"good"]), ["good"], {})
    []
    >>> print(compare_values("embed.embedding", np.array([[1.0]]), [[1.1]], {"rtol": 1e-4}))
    ["embed.embedding: [[1.0]] != [[1.1]] ({'rtol': 0.0001})"]
    """
    import numpy as np

    got = np.asarray(got)
    if got.dtype == object or got.dtype.kind == "S":
        values = (
            np.vectorize(lambda v: v.decode("utf-8", errors="replace"), otypes=[object])(
                got
            ).tolist()
            if got.size
            else got.tolist()
        )
        return [] if values == expected else [f"{name}: {values!r} != {expected!r}"]
    if got.dtype.kind == "f":
        ok = got.shape == np.shape(expected) and np.allclose(got, expected, **tolerance)
        return [] if ok else [f"{name}: {got.tolist()} != {expected} ({tolerance})"]
    return [] if got.tolist() == expected else [f"{name}: {got.tolist()} != {expected}"]


class Probe:
    """Runs the checks on one version directory; `report()` is the JSON result."""

    def __init__(self, version_dir, expected_path, libraries):
        self.version_dir = version_dir
        self.libraries = libraries
        with open(expected_path, encoding="utf-8") as f:
            self.expected = json.load(f)
        info_path = os.path.join(version_dir, "assets.extra", "kzoo_export.json")
        self.signature_names, self.uses_xla = DEFAULT_SIGNATURES, False
        if os.path.isfile(info_path):
            with open(info_path, encoding="utf-8") as f:
                info = json.load(f)
            self.signature_names = tuple(info["signatures"])
            self.uses_xla = bool(info.get("xla"))
        self.checks = {}
        self.mismatches = {}

    def run(self):
        import tensorflow as tf

        self.tf = tf
        if self.uses_xla:
            self.checks["xla"] = {
                "ok": True,
                "detail": "the export uses XLA (jit_compile): "
                "serve with --xla_cpu_compilation_enabled=true",
            }
        elif disable_xla_compilation(tf):
            self.checks["xla"] = {
                "ok": True,
                "detail": "XLA compilation disabled, as in "
                "TF Serving without --xla_cpu_compilation_enabled",
            }
        else:
            self.checks["xla"] = {
                "ok": True,
                "detail": "could not disable XLA compilation "
                "here: ops that need XLA are only listed under ops",
            }
        self._check("ops", self.check_ops)
        self._check("signatures", self.check_signatures)
        self._warmup = {"ok": False, "detail": "not replayed: the TF1 session failed"}
        self._check("tf1_session", self.check_tf1_session)
        self.checks["warmup"] = self._warmup
        self._check("tf2_load", self.check_tf2_load)
        problems = [p for loader in self.mismatches.values() for p in loader]
        ran = sorted(self.mismatches)
        self.checks["keras_match"] = {
            "ok": bool(ran) and not problems,
            "detail": "; ".join(problems[:6])
            if problems
            else (
                f"{len(self.expected['requests'])} requests match in {', '.join(ran)}"
                if ran
                else "no loader ran the requests"
            ),
        }
        leaked = sorted(
            m
            for m in sys.modules
            if m.split(".")[0] in BLOCKED_MODULES and sys.modules[m] is not None
        )
        self.checks["modules"] = {
            "ok": not leaked,
            "detail": f"imported: {leaked[:5]}"
            if leaked
            else (
                f"no {'/'.join(BLOCKED_MODULES)} Python module imported; TensorFlow "
                f"{tf.__version__} + {len(self.libraries)} TF Text kernel libraries"
            ),
        }
        return self

    def report(self):
        return {"ok": all(c["ok"] for c in self.checks.values()), "checks": self.checks}

    def _check(self, name, fn):
        try:
            self.checks[name] = fn()
        except Exception as error:  # A broken export fails its check, not the probe.
            self.checks[name] = {
                "ok": False,
                "detail": f"{type(error).__name__}: {str(error).strip()[:600]}",
            }

    def check_ops(self):
        try:
            ops = graph_op_types(os.path.join(self.version_dir, "saved_model.pb"))
            not_core = unregistered(ops)
        finally:  # The loaders below need the TF Text ops even if this check fails.
            for library in self.libraries:
                self.tf.load_op_library(library)
        missing = unregistered(ops)
        if missing:
            return {"ok": False, "detail": f"ops not registered by TensorFlow + TF Text: {missing}"}
        xla_only = sorted(op for op in ops if op.startswith("Xla"))
        return {
            "ok": True,
            "ops_from_tf_text": not_core,
            "ops_run_by_xla": xla_only,
            "detail": f"{len(ops)} op types registered; from TF Text: {not_core}"
            + (f"; run only by XLA: {xla_only}" if xla_only else ""),
        }

    def check_signatures(self):
        meta = self._meta_graph()
        tf = self.tf
        rest_dtypes = {d.as_datatype_enum for d in (tf.string, tf.int32, tf.float32)}
        problems = [
            f"missing signature {n!r}" for n in self.signature_names if n not in meta.signature_def
        ]
        for name, signature in meta.signature_def.items():
            if name.startswith("__"):
                continue
            for kind, tensors in (("input", signature.inputs), ("output", signature.outputs)):
                for key, info in tensors.items():
                    dims = info.tensor_shape.dim
                    if kind == "input" and info.tensor_shape.unknown_rank:
                        continue  # any rank: the graph checks it (a scalar is 1 value)
                    if info.tensor_shape.unknown_rank or not dims or dims[0].size != -1:
                        problems.append(f"{name} {kind} {key!r}: batch is not dim 0")
                    if kind == "output" and info.dtype not in rest_dtypes:
                        dtype = self.tf.dtypes.as_dtype(info.dtype).name
                        problems.append(
                            f"{name} output {key!r}: {dtype} is not one of string/int32/float32"
                        )
        return {
            "ok": not problems,
            "detail": "; ".join(problems) or f"{sorted(meta.signature_def)}",
        }

    def check_tf1_session(self):
        tf = self.tf
        with tf.compat.v1.Session(graph=tf.Graph()) as session:
            meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], self.version_dir)
            signatures = meta.signature_def
            run = lambda name, inputs: self._run_session(session, signatures[name], inputs)
            self.mismatches["tf1_session"] = self._replay_expected(run)
            self._warmup = self._replay_warmup(run, signatures)
        return {
            "ok": True,
            "detail": f"loaded with tag 'serve'; ran {len(self.expected['requests'])} requests",
        }

    def check_tf2_load(self):
        tf = self.tf
        loaded = tf.saved_model.load(self.version_dir)

        def run(name, inputs):
            fn = loaded.signatures[name]
            specs = fn.structured_input_signature[1]
            outputs = fn(**{k: tf.constant(v, specs[k].dtype) for k, v in inputs.items()})
            return {k: v.numpy() for k, v in outputs.items()}

        self.mismatches["tf2_load"] = self._replay_expected(run)
        return {"ok": True, "detail": f"ran {len(self.expected['requests'])} requests"}

    def _meta_graph(self):
        from tensorflow.core.protobuf import saved_model_pb2

        proto = saved_model_pb2.SavedModel()
        with open(os.path.join(self.version_dir, "saved_model.pb"), "rb") as f:
            proto.ParseFromString(f.read())
        return proto.meta_graphs[0]

    def _run_session(self, session, signature, inputs):
        feeds = {signature.inputs[k].name: v for k, v in inputs.items()}
        fetches = {k: info.name for k, info in signature.outputs.items()}
        return session.run(fetches, feeds)

    def _replay_expected(self, run):
        problems = []
        for request in self.expected["requests"]:
            name = request["signature_name"]
            outputs = run(name, request["inputs"])
            tolerance = (
                self.expected.get("score_tolerance")
                or self.expected.get("float_tolerance")
                or {"rtol": 1e-4}
            )
            problems += compare(
                name, outputs, request["expected"], self.expected.get("end_token_id"), tolerance
            )
        return problems

    def _replay_warmup(self, run, signatures):
        from tensorflow_serving.apis import prediction_log_pb2

        path = os.path.join(self.version_dir, "assets.extra", "tf_serving_warmup_requests")
        try:
            count, problems = 0, []
            for record in self.tf.compat.v1.io.tf_record_iterator(path):
                request = prediction_log_pb2.PredictionLog.FromString(record).predict_log.request
                name = request.model_spec.signature_name or "serving_default"
                if name not in signatures:
                    problems.append(f"unknown signature {name!r}")
                    continue
                inputs = {k: self.tf.make_ndarray(v) for k, v in request.inputs.items()}
                batch = len(next(iter(inputs.values())))
                outputs = run(name, inputs)
                problems += [
                    f"{name}.{k}: batch {len(v)} != {batch}"
                    for k, v in outputs.items()
                    if len(v) != batch
                ]
                count += 1
        except Exception as error:
            return {"ok": False, "detail": f"{type(error).__name__}: {str(error)[:600]}"}
        ok = count > 0 and not problems
        return {
            "ok": ok,
            "detail": "; ".join(problems)
            or (f"replayed {count} PredictionLogs" if count else "no warmup requests"),
        }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("version_dir")
    parser.add_argument("--expected", required=True, help="expected_outputs.json")
    parser.add_argument("--output", required=True, help="where to write the JSON report")
    args = parser.parse_args(argv)
    libraries = block_python_modules()
    report = Probe(args.version_dir, args.expected, libraries).run().report()
    with open(args.output, "w", encoding="utf-8") as f:
        json.dump(report, f, indent=2)
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    # This directory holds kzoo modules (names.py, ...) that must not shadow anything.
    sys.path.pop(0)
    sys.exit(main())
