"""An export takes its text settings from the model's preprocessor (saved in
`model.keras`), never from the run's `config.yaml` `data` section."""

import json
import os

import numpy as np
import pytest
import yaml

from kzoo.export import export_run, layout
from kzoo.testing import tiny_runs
from kzoo.training.run_directory import RunDirectory


@pytest.mark.slow
def test_a_bert_export_follows_the_preprocessor_not_the_edited_recipe(tmp_path):
    # A pair classifier whose preprocessor packs 32 tokens; its recipe then claims
    # single texts of 8 tokens.
    run_dir = tiny_runs.build_bert_run(str(tmp_path / "run"), "classify")
    path = os.path.join(run_dir, "config.yaml")
    with open(path, encoding="utf-8") as f:
        config = yaml.safe_load(f)
    config["data"].update(builtin_task="acceptability", sequence_length=8)
    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(config, f)

    version_dir = export_run(run_dir, out_dir=str(tmp_path / "saved_models"), version=1)
    extra = os.path.join(version_dir, layout.ASSETS_EXTRA)
    with open(os.path.join(extra, layout.EXPORT_INFO_FILE), encoding="utf-8") as f:
        info = json.load(f)
    assert sorted(info["signatures"]["classify"]["inputs"]) == ["text_pairs", "texts"]

    with open(os.path.join(extra, layout.EXPECTED_FILE), encoding="utf-8") as f:
        requests = json.load(f)["requests"]
    request = next(r for r in requests if r["signature_name"] == "classify")
    model = RunDirectory(run_dir).load_model()
    assert model.preprocessor.sequence_length == tiny_runs.BERT_DATA["sequence_length"]
    inputs = request["inputs"]
    logits = model(model.preprocessor(inputs["texts"], inputs["text_pairs"]))
    probabilities = np.asarray(logits, "float64")
    probabilities = np.exp(probabilities - probabilities.max(-1, keepdims=True))
    probabilities /= probabilities.sum(-1, keepdims=True)
    np.testing.assert_allclose(request["expected"]["probabilities"], probabilities, atol=1e-5)
