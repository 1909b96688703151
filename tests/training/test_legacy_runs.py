"""Run directories written before preprocessors were saved with the model
(tests/fixtures/legacy_runs, see its README) still load and export, answering as
they did then (`export_expected.json`)."""

import json
import os
import shutil

import numpy as np
import pytest
import yaml

from kzoo.training.run_directory import RunDirectory

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "legacy_runs")
PREPROCESSORS = {
    "gpt": "CausalLMPreprocessor",
    "bert_classify": "BertClassifierPreprocessor",
    "t5": "Seq2SeqPreprocessor",
}


def _read_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def assert_same_answers(actual, expected, rtol=1e-4, atol=1e-4, where=""):
    """check-serving's comparison: strings and ints exactly, floats to a tolerance."""
    if isinstance(expected, dict):
        assert sorted(actual) == sorted(expected), where
        for key in expected:
            assert_same_answers(actual[key], expected[key], rtol, atol, f"{where}.{key}")
    elif isinstance(expected, list) and any(isinstance(v, float) for v in np.ravel(expected)):
        np.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol, err_msg=where)
    else:
        assert actual == expected, where


@pytest.fixture(params=sorted(PREPROCESSORS))
def legacy_run(request, tmp_path):
    """A copy of one fixture run (nothing may write into the fixtures)."""
    run_dir = tmp_path / request.param
    shutil.copytree(os.path.join(FIXTURES, request.param), run_dir)
    return request.param, str(run_dir)


def test_a_legacy_run_loads_with_the_preprocessor_of_its_recipe(legacy_run):
    name, run_dir = legacy_run
    config = yaml.safe_load(open(os.path.join(run_dir, "config.yaml"), encoding="utf-8"))
    model = RunDirectory(run_dir).load_model()
    preprocessor = model.preprocessor
    assert type(preprocessor).__name__ == PREPROCESSORS[name]
    assert model.tokenizer is preprocessor.tokenizer
    data = config["data"]
    if name == "t5":
        assert (preprocessor.max_source_length, preprocessor.max_target_length) == (
            data["max_source_length"],
            data["max_target_length"],
        )
    else:
        assert preprocessor.sequence_length == data["sequence_length"]
    if name == "bert_classify":
        assert preprocessor.pairs is False  # builtin_task: acceptability


@pytest.mark.slow
def test_a_legacy_run_exports_the_answers_it_gave_then(legacy_run, tmp_path):
    """BERT's run is exported whole; the others' `expected_outputs.json` is computed
    as `export_run` computes it, without writing the SavedModel (seconds less)."""
    from kzoo.export import export_run, layout
    from kzoo.export.saved_model import expected_outputs, export_settings
    from kzoo.export.signatures import signatures_class

    name, run_dir = legacy_run
    if name == "bert_classify":
        version_dir = export_run(run_dir, out_dir=str(tmp_path / "saved_models"), version=1)
        written = _read_json(os.path.join(version_dir, layout.ASSETS_EXTRA, layout.EXPECTED_FILE))
    else:
        run = RunDirectory(run_dir)
        model = run.load_model()
        settings = export_settings(run.config())
        signatures = signatures_class(model).from_model(model, settings, run=run)
        written = expected_outputs(signatures, signatures.sample_requests())
    expected = _read_json(os.path.join(run_dir, "export_expected.json"))
    assert len(written["requests"]) == len(expected["requests"])
    for got, want in zip(written["requests"], expected["requests"]):
        where = f"{name}:{want['signature_name']}"
        assert got["signature_name"] == want["signature_name"], where
        assert got["inputs"] == want["inputs"], where
        assert_same_answers(got["expected"], want["expected"], where=where)


def test_a_legacy_run_whose_recipe_makes_no_preprocessor_says_how_to_retrain(tmp_path):
    run_dir = tmp_path / "bert_classify"
    shutil.copytree(os.path.join(FIXTURES, "bert_classify"), run_dir)
    path = run_dir / "config.yaml"
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    config["data"]["sequence_length"] = "long"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    with pytest.raises(
        ValueError, match=r"written before preprocessors.*kzoo train .*config\.yaml"
    ):
        RunDirectory(str(run_dir)).load_model()
