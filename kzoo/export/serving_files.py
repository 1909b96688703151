"""The files TF Serving reads besides the SavedModel, written atomically.

`models.config` names every model directory under `OUT` with `base_path:
"/models/NAME"`, the path when `OUT` is mounted at `/models` in the TF Serving
container. Entries already in the file are kept as they are (a hand-edited
version policy survives); models found on disk but missing are appended. The
layout of a version is described in `kzoo.export.layout`.
"""

import os

import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2
from tensorflow_serving.config import model_server_config_pb2

from kzoo import staged_files
from kzoo.export.layout import CONTAINER_MODELS_DIR, MODELS_CONFIG
from kzoo.export.names import validate_model_name


def predict_request(model_name, request, dtypes):
    """A `PredictRequest` for one sample request (tensors from `tf.make_tensor_proto`).

    Args:
        model_name: The served model's name.
        request: `{"signature_name", "inputs": {name: list}}`.
        dtypes: `{signature: {input: dtype}}` (`ServingSignatures.all_input_specs`).
    """
    name = request["signature_name"]
    proto = predict_pb2.PredictRequest(
        model_spec=model_pb2.ModelSpec(name=model_name, signature_name=name)
    )
    for key, values in request["inputs"].items():
        proto.inputs[key].CopyFrom(tf.make_tensor_proto(values, dtype=dtypes[name][key]))
    return proto


def write_warmup_requests(path, model_name, requests, dtypes):
    """Writes TF Serving's warmup file: one `PredictionLog` per request
    (`dtypes`: see `predict_request`)."""

    def write(tmp):
        with tf.io.TFRecordWriter(tmp) as writer:
            for request in requests:
                log = prediction_log_pb2.PredictionLog(
                    predict_log=prediction_log_pb2.PredictLog(
                        request=predict_request(model_name, request, dtypes)
                    )
                )
                writer.write(log.SerializeToString())

    staged_files.atomic_write(path, write)


def read_warmup_requests(path):
    """The `PredictionLog`s of a warmup file."""
    return [
        prediction_log_pb2.PredictionLog.FromString(record.numpy())
        for record in tf.data.TFRecordDataset(path)
    ]


def write_example_requests(directory, requests):
    """One REST body per signature (its first sample request), `SIG.json`."""
    os.makedirs(directory, exist_ok=True)
    written = {}
    for request in requests:
        name = request["signature_name"]
        if name not in written:
            written[name] = os.path.join(directory, f"{name}.json")
            staged_files.write_json_atomic(written[name], rest_body(request))
    return written


def rest_body(request):
    """A REST `:predict` body in the row ("instances") format.

    Example:
    >>> rest_body({"signature_name": "score", "inputs": {"texts": ["a", "b"]}})
    {'signature_name': 'score', 'instances': [{'texts': 'a'}, {'texts': 'b'}]}
    """
    inputs = request["inputs"]
    batch = len(next(iter(inputs.values())))
    return {
        "signature_name": request["signature_name"],
        "instances": [{key: values[row] for key, values in inputs.items()} for row in range(batch)],
    }


def update_models_config(out_dir):
    """Rewrites `out_dir/models.config` to list every model directory.

    A model directory is a valid model name holding at least one numeric
    version. Existing entries are kept unchanged, new ones appended.

    Returns:
        The path written.

    Example:
    >>> import tempfile
    >>> out_dir = tempfile.mkdtemp()
    >>> os.makedirs(os.path.join(out_dir, "gpt_tiny", "1"))
    >>> open(os.path.join(out_dir, "gpt_tiny", "1", "saved_model.pb"), "wb").close()
    >>> print(open(update_models_config(out_dir)).read().strip())
    model_config_list {
      config {
        name: "gpt_tiny"
        base_path: "/models/gpt_tiny"
        model_platform: "tensorflow"
      }
    }
    """
    path = os.path.join(out_dir, MODELS_CONFIG)
    config = model_server_config_pb2.ModelServerConfig()
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            try:
                text_format.Parse(f.read(), config)
            except text_format.ParseError as error:
                raise ValueError(
                    f"{path}: not a TF Serving ModelServerConfig text proto ({error}); "
                    "fix it or delete it to have it rewritten"
                ) from None
    listed = {entry.name for entry in config.model_config_list.config}
    for name in sorted(os.listdir(out_dir)):
        if name not in listed and _is_model_dir(os.path.join(out_dir, name), name):
            config.model_config_list.config.add(
                name=name, base_path=f"{CONTAINER_MODELS_DIR}/{name}", model_platform="tensorflow"
            )

    staged_files.write_text_atomic(path, text_format.MessageToString(config))
    os.chmod(path, 0o644)
    return path


def _is_model_dir(path, name):
    try:
        validate_model_name(name)
    except ValueError:
        return False
    return os.path.isdir(path) and any(
        entry.isdigit() and os.path.isfile(os.path.join(path, entry, "saved_model.pb"))
        for entry in os.listdir(path)
    )
