"""Writes the SavedModel and assets.extra of a BERT run (see `bert_signatures`).

The sample requests (warmup, REST examples, the check-serving comparison) are
built from the run's own vocabulary, so they exist for any corpus. Their expected
outputs are the signature functions run eagerly on the Keras model:
`kzoo check-serving` then shows that the SavedModel, loaded without Keras or kzoo,
answers the same (strings and ids exactly, floats to 1e-4).
"""

import keras
import tensorflow as tf

from kzoo.export import layout, serving_files
from kzoo.export.bert_signatures import MASK_TOKEN, BertSignatures
from kzoo.export.input_policy import declared_shape
from kzoo.training import run_files

FLOAT_TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}


def is_bert_model(model):
    return type(getattr(model, "backbone", None)).__name__ == "BertBackbone"


def serves_pairs(config):
    """Whether a classifier was trained on text pairs."""
    data, model = config.get("data", {}), config.get("model", {})
    if model.get("task") != "classify":
        return False
    if data.get("train") == "builtin":
        return data.get("builtin_task") == "next_sentence"
    return data.get("text_pair_column") is not None


def bert_signatures(model, tokenizer, config, xla=False):
    return BertSignatures(
        model,
        tokenizer,
        config["data"],
        top_k=config.get("export", {}).get("top_k", 5),
        xla=xla,
        pairs=serves_pairs(config),
    )


def all_input_specs(signatures):
    """Input specs of every signature, `serving_default` (the first) included."""
    specs = signatures.input_specs()
    return {**specs, "serving_default": next(iter(specs.values()))}


def write_bert_saved_model(path, signatures):
    archive = keras.export.ExportArchive()
    archive.track(signatures.model)
    archive.track(signatures.tokenizer)
    for name, specs in signatures.input_specs().items():
        archive.add_endpoint(name, getattr(signatures, name), list(specs.values()))
    archive.write_out(path, verbose=False)


def sample_words(tokenizer, count=12):
    vocabulary = tokenizer.get_vocabulary()[5:]
    words = [t for t in vocabulary if t.isalpha() and len(t) > 2] or [
        t for t in vocabulary if t.isalpha()
    ]
    return [words[i % len(words)] for i in range(count)] if words else ["a"] * count


def sample_requests(signatures):
    """Two-row requests for each signature, from the vocabulary's words."""
    w = sample_words(signatures.tokenizer)
    text = " ".join(w[:4])
    inputs = {
        "fill_mask": {
            "texts": [f"{w[0]} {MASK_TOKEN} {w[1]} {w[2]}.", f"{MASK_TOKEN} {w[3]} {MASK_TOKEN}"]
        },
        "embed": {"texts": [text, ""]},
        "classify": {"texts": [text, " ".join(w[4:6])]},
        "tag": {"texts": [f"{w[0].capitalize()} {w[1]}, {w[2]} {w[3]}.", w[4]]},
        "answer": {
            "questions": [f"what does {w[0]} {w[1]}?", f"{w[2]}?"],
            "contexts": [
                f"{w[0]} {w[1]} {w[5]}. {w[3]} {w[4]} {w[6]}.",
                " ".join(w[(i * 7) % 12] for i in range(80)) + ".",
            ],
        },
    }
    if signatures.pairs:
        inputs["classify"]["text_pairs"] = [" ".join(w[6:9]), ""]
    specs = signatures.input_specs()
    requests = [{"signature_name": name, "inputs": inputs[name]} for name in specs]
    default = requests[0]
    return requests + [{"signature_name": "serving_default", "inputs": default["inputs"]}]


def reference_outputs(signatures, request):
    """The eager answer of the signature function (JSON-ready lists)."""
    name = request["signature_name"]
    if name == "serving_default":
        name = next(iter(signatures.input_specs()))
    specs = signatures.input_specs()[name]
    args = [tf.constant(request["inputs"][key], spec.dtype) for key, spec in specs.items()]
    outputs = getattr(signatures, name)(*args)
    return {key: _to_json(value) for key, value in outputs.items()}


def _to_json(tensor):
    array = tensor.numpy()
    if array.dtype == object:
        return _decode(array.tolist())
    return array.tolist()


def _decode(values):
    if isinstance(values, list):
        return [_decode(v) for v in values]
    return values.decode("utf-8", errors="replace")


def write_bert_assets(directory, signatures, name):
    """Warmup requests, REST examples and expected outputs of a BERT export."""
    extra = f"{directory}/{layout.ASSETS_EXTRA}"
    requests = sample_requests(signatures)
    dtypes = {
        sig: {k: s.dtype for k, s in specs.items()}
        for sig, specs in all_input_specs(signatures).items()
    }
    serving_files.write_warmup_requests(
        f"{extra}/{layout.WARMUP_FILE}", name, requests, dtypes=dtypes
    )
    serving_files.write_example_requests(f"{extra}/{layout.EXAMPLES_DIR}", requests)
    expected = [dict(r, expected=reference_outputs(signatures, r)) for r in requests]
    run_files.write_json(
        {"float_tolerance": FLOAT_TOLERANCE, "requests": expected},
        f"{extra}/{layout.EXPECTED_FILE}",
    )


def signature_specs(signatures):
    """Input names/dtypes/shapes of every signature (for kzoo_export.json; shape
    None: any rank, checked in the graph)."""
    return {
        name: {
            "inputs": {
                key: {"dtype": spec.dtype.name, "shape": declared_shape(spec)}
                for key, spec in specs.items()
            }
        }
        for name, specs in all_input_specs(signatures).items()
    }
