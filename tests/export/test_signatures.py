"""The export interface: one `ServingSignatures` per family, picked by a registry,
and one writer for the SavedModel and assets.extra of every family."""

import importlib
import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from kzoo import models
from kzoo.export import export_run, layout, saved_model
from kzoo.export.check_serving import _recompute_expected
from kzoo.export.serving_files import read_warmup_requests
from kzoo.export.signatures import SIGNATURES, ServingSignatures, signatures_class
from kzoo.testing.tiny_runs import build_bert_run


@pytest.mark.parametrize("class_name", sorted(SIGNATURES))
def test_every_registered_model_class_has_signatures(class_name):
    assert hasattr(models, class_name), f"{class_name} is not a kzoo model"
    module, name = SIGNATURES[class_name].split(":")
    assert issubclass(getattr(importlib.import_module(module), name), ServingSignatures)


def test_signatures_are_picked_by_model_class_and_its_bases():
    from kzoo.export.bert_signatures import BertSignatures
    from kzoo.export.causal_lm_signatures import CausalLMSignatures
    from kzoo.export.seq2seq_signatures import Seq2SeqSignatures

    class MyClassifier(models.BertClassifier):
        pass

    def instance(cls):  # The registry reads the class only.
        return cls.__new__(cls)

    assert signatures_class(instance(models.GPTCausalLM)) is CausalLMSignatures
    assert signatures_class(instance(models.LSTMLanguageModel)) is CausalLMSignatures
    assert signatures_class(instance(models.Seq2SeqLM)) is Seq2SeqSignatures
    assert signatures_class(instance(models.BertQuestionAnswerer)) is BertSignatures
    assert signatures_class(instance(MyClassifier)) is BertSignatures


def test_a_model_no_family_exports_is_a_clear_error():
    with pytest.raises(ValueError, match=r"^runs/x: holds a Sequential; kzoo export supports Bert"):
        signatures_class(keras.Sequential([keras.layers.Dense(1)]), where="runs/x")


class ScaleSignatures(ServingSignatures):
    """A family of one Dense layer: `scale` (features in, scores out) and nothing
    else, to show what the writer needs from a family."""

    def __init__(self, model):
        self.model = model

    @classmethod
    def from_model(cls, model, export_settings, xla=False, run=None):
        return cls(model)

    def input_specs(self):
        return {"scale": {"features": tf.TensorSpec([None, 3], tf.float32, name="features")}}

    def scale(self, features):
        return {"scores": self.model(features)}

    def trackables(self):
        return [self.model]

    def sample_requests(self):
        features = [[1.0, 2.0, 3.0], [0.0, -1.0, 0.5]]
        return [
            {"signature_name": "scale", "inputs": {"features": features}},
            {"signature_name": "serving_default", "inputs": {"features": features[:1]}},
        ]

    def export_info(self):
        return {"limits": {"features": 3}}


def test_one_writer_exports_any_family(tmp_path):
    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input([3]), keras.layers.Dense(2)])
    signatures = ScaleSignatures.from_model(model, {})
    path = str(tmp_path / "1")
    saved_model.write_saved_model(path, signatures)
    saved_model.write_assets_extra(path, signatures, "scaler", {"model_name": "scaler"})

    served = tf.saved_model.load(path)
    assert set(served.signatures) == {"scale", "serving_default"}
    extra = os.path.join(path, layout.ASSETS_EXTRA)
    warmup = read_warmup_requests(os.path.join(extra, layout.WARMUP_FILE))
    assert [log.predict_log.request.model_spec.signature_name for log in warmup] == [
        "scale",
        "serving_default",
    ]
    assert {log.predict_log.request.model_spec.name for log in warmup} == {"scaler"}
    with open(os.path.join(extra, layout.EXAMPLES_DIR, "scale.json")) as f:
        assert json.load(f)["instances"][1] == {"features": [0.0, -1.0, 0.5]}
    with open(os.path.join(extra, layout.EXPECTED_FILE)) as f:
        expected = json.load(f)
    assert expected["float_tolerance"] == {"rtol": 1e-4, "atol": 1e-5}
    for request in expected["requests"]:
        features = np.array(request["inputs"]["features"], "float32")
        got = served.signatures[request["signature_name"]](features=features)["scores"]
        np.testing.assert_allclose(got, request["expected"]["scores"], rtol=1e-5)
        np.testing.assert_allclose(got, model(features), rtol=1e-5)
    with open(os.path.join(extra, layout.EXPORT_INFO_FILE)) as f:
        info = json.load(f)
    assert info["model_name"] == "scaler" and info["limits"] == {"features": 3}
    assert info["signatures"]["serving_default"] == {
        "inputs": {"features": {"dtype": "float32", "shape": [None, 3]}}
    }


@pytest.mark.slow
def test_check_serving_recomputes_a_bert_export_from_its_run(tmp_path):
    run_dir = build_bert_run(str(tmp_path / "run"), "tag")
    version_dir = export_run(run_dir, out_dir=str(tmp_path / "saved"))
    with open(_recompute_expected(version_dir, str(tmp_path))) as f:
        recomputed = json.load(f)
    with open(os.path.join(version_dir, layout.ASSETS_EXTRA, layout.EXPECTED_FILE)) as f:
        stored = json.load(f)
    assert [r["inputs"] for r in recomputed["requests"]] == [
        r["inputs"] for r in stored["requests"]
    ]
    for got, want in zip(recomputed["requests"], stored["requests"]):
        for key, value in want["expected"].items():
            if np.asarray(value).dtype.kind == "f":  # Computed anew: equal to rounding.
                np.testing.assert_allclose(got["expected"][key], value, **stored["float_tolerance"])
            else:
                assert got["expected"][key] == value


def test_quantized_models_are_compared_within_their_rounding():
    # One ulp between the served graph and the Keras reference can move an int8
    # layer's input by one step (a quantized T5's score differed by 5e-4
    # relative): check-serving compares a quantized model's floats within 1%.
    from kzoo.export.signatures import FLOAT_TOLERANCE, QUANTIZED_TOLERANCE, float_tolerance
    from kzoo.testing.tiny_models import TINY_TRANSFORMER

    backbone = models.GPTBackbone(vocabulary_size=32, max_sequence_length=16, **TINY_TRANSFORMER)
    model = models.GPTCausalLM(backbone, end_token_id=1)
    assert float_tolerance(model) == FLOAT_TOLERANCE
    model.quantize("int8")
    assert float_tolerance(model) == QUANTIZED_TOLERANCE
    assert QUANTIZED_TOLERANCE["rtol"] <= 1e-2
