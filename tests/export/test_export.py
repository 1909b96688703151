"""kzoo.export: a GPT run exported for TF Serving answers like the Keras model.

The Keras answers decode without XLA (`jit_compile=False`), as the export does
(that XLA gives the same tokens is tests/models/test_generate_xla.py's subject).
"""

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from kzoo.export import export_run, load_for_export
from kzoo.export import saved_model as saved_model_module
from kzoo.export.serving_files import read_warmup_requests, update_models_config
from kzoo.testing.serving_fuzz import call, strings

# One worker builds the exports once: session fixtures, tests kept together.
pytestmark = pytest.mark.xdist_group("gpt_export")

SIGNATURES = {"serving_default", "generate", "score", "generate_ids"}
# The last prompt keeps its last 32 - 12 = 20 tokens, here as in GPTCausalLM.generate.
PROMPTS = ["", "ta", "molan teriv, ki sato. " * 3]
NEW_TOKENS = 12
GREEDY = {"temperature": [0.0], "top_k": [0], "top_p": [1.0], "seed": [0]}


@pytest.fixture(scope="session")
def exported(make_run, tmp_path_factory):
    run_dir = make_run("gpt")
    out_dir = str(tmp_path_factory.mktemp("saved_models"))
    return run_dir, out_dir, export_run(run_dir, out_dir=out_dir)


@pytest.fixture(scope="session")
def keras_model(exported):
    return load_for_export(exported[0])


@pytest.fixture(scope="session")
def served(exported):
    return tf.saved_model.load(exported[2])


# --- Files ------------------------------------------------------------------------


def test_version_directory_is_complete_and_alone(exported):
    _, out_dir, path = exported
    assert path == os.path.join(out_dir, "tiny_gpt", "1")
    for name in [
        "saved_model.pb",
        "variables/variables.index",
        "assets.extra/tf_serving_warmup_requests",
        "assets.extra/expected_outputs.json",
        "assets.extra/kzoo_export.json",
    ]:
        assert os.path.isfile(os.path.join(path, name)), name
    # No temporary directory is left next to the version.
    assert os.listdir(os.path.join(out_dir, "tiny_gpt")) == ["1"]
    assert os.stat(path).st_mode & 0o777 == 0o755


def test_existing_version_is_not_overwritten(exported):
    run_dir, out_dir, path = exported
    before = os.path.getmtime(os.path.join(path, "saved_model.pb"))
    with pytest.raises(FileExistsError, match=f"{path} already exists"):
        export_run(run_dir, out_dir=out_dir)
    assert os.path.getmtime(os.path.join(path, "saved_model.pb")) == before


@pytest.mark.parametrize("name", ["../evil", "a/b", ".", "..", "", "sp ace"])
def test_bad_names_are_rejected(exported, name):
    with pytest.raises(ValueError, match=f"--name: {name!r} is not a valid model name"):
        export_run(exported[0], out_dir=exported[1], name=name)


@pytest.mark.parametrize("version", [0, -1, True, "2", 1.0])
def test_bad_versions_are_rejected(exported, version):
    with pytest.raises(ValueError, match=f"--version: expected a positive int, got {version!r}"):
        export_run(exported[0], out_dir=exported[1], version=version)


def _write_half_then_fail(path, *args, **kwargs):
    with open(os.path.join(path, "saved_model.pb"), "wb") as f:
        f.write(b"partial")
    raise RuntimeError("disk full")


def test_a_failed_export_leaves_no_version_and_no_temporary(exported, monkeypatch, tmp_path):
    monkeypatch.setattr(saved_model_module, "write_saved_model", _write_half_then_fail)
    with pytest.raises(RuntimeError, match="disk full"):
        export_run(exported[0], out_dir=str(tmp_path), version=3)
    assert os.listdir(tmp_path / "tiny_gpt") == []


def _write_one_file(path, *args, **kwargs):
    with open(os.path.join(path, "saved_model.pb"), "wb") as f:
        f.write(b"new")


def test_overwrite_replaces_the_version_readable_by_all(exported, monkeypatch, tmp_path):
    monkeypatch.setattr(saved_model_module, "write_saved_model", _write_one_file)
    monkeypatch.setattr(saved_model_module, "write_assets_extra", lambda *args: None)
    final = tmp_path / "tiny_gpt" / "1"
    final.mkdir(parents=True)
    (final / "old").write_text("old")
    with pytest.raises(FileExistsError, match="already exists"):
        export_run(exported[0], out_dir=str(tmp_path))
    assert os.listdir(final) == ["old"]
    old_mask = os.umask(0o077)  # Private temporary files must not stay private.
    try:
        export_run(exported[0], out_dir=str(tmp_path), overwrite=True)
    finally:
        os.umask(old_mask)
    assert os.listdir(final) == ["saved_model.pb"]
    assert os.listdir(tmp_path / "tiny_gpt") == ["1"]
    assert os.stat(final).st_mode & 0o777 == 0o755
    assert os.stat(final / "saved_model.pb").st_mode & 0o777 == 0o644


def test_models_config_lists_the_model_and_keeps_other_entries(exported, tmp_path):
    config = model_server_config_pb2.ModelServerConfig()
    text_format.Parse(open(os.path.join(exported[1], "models.config")).read(), config)
    entries = [(c.name, c.base_path, c.model_platform) for c in config.model_config_list.config]
    assert entries == [("tiny_gpt", "/models/tiny_gpt", "tensorflow")]

    out = tmp_path / "out"
    shutil.copytree(os.path.join(exported[1], "tiny_gpt"), out / "tiny_gpt")
    (out / "empty_model").mkdir()  # No version: not listed.
    custom = (
        'model_config_list { config { name: "other" base_path: "/data/other" '
        'model_platform: "tensorflow" model_version_policy { all {} } } }'
    )
    (out / "models.config").write_text(custom)
    update_models_config(str(out))
    text_format.Parse(
        (out / "models.config").read_text(), config := model_server_config_pb2.ModelServerConfig()
    )
    names = [c.name for c in config.model_config_list.config]
    assert names == ["other", "tiny_gpt"]
    assert config.model_config_list.config[0].model_version_policy.HasField("all")


def test_warmup_file_holds_a_request_per_signature(exported):
    logs = read_warmup_requests(
        os.path.join(exported[2], "assets.extra", "tf_serving_warmup_requests")
    )
    requests = [log.predict_log.request for log in logs]
    assert {r.model_spec.signature_name for r in requests} == SIGNATURES
    assert {r.model_spec.name for r in requests} == {"tiny_gpt"}
    generate = next(r for r in requests if r.model_spec.signature_name == "generate")
    assert tf.make_ndarray(generate.inputs["prompts"]).tolist() == [b"", b"ta"]


def test_example_requests_are_rest_bodies(exported):
    directory = os.path.join(exported[2], "assets.extra", "example_requests")
    assert sorted(os.listdir(directory)) == sorted(f"{s}.json" for s in SIGNATURES)
    body = json.load(open(os.path.join(directory, "generate.json")))
    assert body["signature_name"] == "generate"
    assert body["instances"][1] == {
        "prompts": "ta",
        "max_new_tokens": 8,
        "temperature": 0.0,
        "top_k": 0,
        "top_p": 1.0,
        "seed": 0,
    }


# --- Signatures ----------------------------------------------------------------------


def test_signature_specs(served):
    expected = {
        "generate": (
            {
                "prompts": tf.string,
                "max_new_tokens": tf.int32,
                "temperature": tf.float32,
                "top_k": tf.int32,
                "top_p": tf.float32,
                "seed": tf.int32,
            },
            {"generated": tf.string, "token_count": tf.int32},
        ),
        "score": ({"texts": tf.string}, {"log_likelihood": tf.float32, "num_tokens": tf.int32}),
        "generate_ids": (
            {
                "token_ids": tf.int32,
                "prompt_lengths": tf.int32,
                "max_new_tokens": tf.int32,
                "temperature": tf.float32,
                "top_k": tf.int32,
                "top_p": tf.float32,
                "seed": tf.int32,
            },
            {"token_ids": tf.int32, "generated_mask": tf.int32},
        ),
    }
    expected["serving_default"] = expected["generate"]
    assert set(served.signatures) == SIGNATURES
    for name, (inputs, outputs) in expected.items():
        fn = served.signatures[name]
        specs = fn.structured_input_signature[1]
        assert {k: s.dtype for k, s in specs.items()} == inputs
        assert all(s.shape[0] is None for s in specs.values())
        assert {k: s.dtype for k, s in fn.structured_outputs.items()} == outputs


@pytest.mark.parametrize("signature", ["generate", "serving_default"])
def test_greedy_generation_equals_keras_generate(served, keras_model, signature):
    model, _ = keras_model
    out = call(served, signature, prompts=PROMPTS, max_new_tokens=[NEW_TOKENS], **GREEDY)
    expected = model.generate(
        PROMPTS, strategy="greedy", max_new_tokens=NEW_TOKENS, jit_compile=False
    )
    assert strings(out["generated"]) == expected
    assert all(0 < n <= NEW_TOKENS for n in out["token_count"])


def test_sampled_generation_equals_keras_generate(served, keras_model):
    model, _ = keras_model
    settings = {"temperature": 0.9, "top_k": 10, "top_p": 0.9, "seed": 3}
    out = call(
        served,
        "generate",
        prompts=PROMPTS,
        max_new_tokens=[NEW_TOKENS],
        **{k: [v] for k, v in settings.items()},
    )
    expected = model.generate(
        PROMPTS, strategy="sample", max_new_tokens=NEW_TOKENS, **settings, jit_compile=False
    )
    assert strings(out["generated"]) == expected


def test_score_equals_keras_score(served, keras_model):
    model, tokenizer = keras_model
    texts = ["ta molan", "", "teriv, ki sato."]
    out = call(served, "score", texts=texts)
    rows = [[3] + ids for ids in tokenizer.tokenize(texts).to_list()]
    ids = np.zeros((3, max(map(len, rows))), "int32")
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
    expected = np.asarray(model.score(ids, (ids > 0).astype("int32")))
    np.testing.assert_allclose(out["log_likelihood"], expected, rtol=1e-4)
    assert out["num_tokens"].tolist() == [len(r) - 1 for r in rows]
    assert out["log_likelihood"][1] == 0.0


def test_generate_ids_equals_keras_generate(served, keras_model):
    model, _ = keras_model
    prompts = [[3, 18, 9], [3], [3, 9, 13, 14, 15]]
    token_ids = np.zeros((3, 5), "int32")
    for i, p in enumerate(prompts):
        token_ids[i, : len(p)] = p
    out = call(
        served,
        "generate_ids",
        token_ids=token_ids,
        prompt_lengths=[3, 1, 5],
        max_new_tokens=[6],
        **GREEDY,
    )
    got = [
        [int(t) for t, m in zip(row, mask) if m and t != model.end_token_id]
        for row, mask in zip(out["token_ids"], out["generated_mask"])
    ]
    assert got == model.generate(prompts, strategy="greedy", max_new_tokens=6, jit_compile=False)
    for i, p in enumerate(prompts):
        assert out["token_ids"][i, : len(p)].tolist() == p


def test_max_new_tokens_is_clipped_per_prompt(served):
    # The cap is export.max_new_tokens = 12.
    out = call(
        served,
        "generate_ids",
        token_ids=[[3, 9], [3, 9]],
        prompt_lengths=[2, 2],
        max_new_tokens=[0, 1000],
        **GREEDY,
    )
    generated = out["generated_mask"].sum(axis=1)
    assert generated[0] == 1 and generated[1] <= 12
    assert out["token_ids"].shape[1] <= 32


@pytest.mark.parametrize(
    "inputs, message",
    [
        ({"temperature": [0.0, 0.5]}, "temperature: every prompt of a request must use the same"),
        ({"max_new_tokens": [4, 4, 4]}, "max_new_tokens: expected 1 value or one per prompt"),
    ],
)
def test_inconsistent_inputs_are_invalid_arguments(served, inputs, message):
    request = {"prompts": ["ta", "mo"], "max_new_tokens": [4], **GREEDY, **inputs}
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        call(served, "generate", **request)


# --- check-serving ---------------------------------------------------------------------


def test_check_serving_passes_and_recomputes_the_keras_outputs_from_the_run(exported):
    """The CLI's JSON report is test_check_serving_fails_on_outputs_...'s subject."""
    from kzoo.export.check_serving import check_serving

    report = check_serving(exported[2], against_run=True)
    assert report["ok"], report
    assert set(report["checks"]) == {
        "keras_run",
        "files",
        "xla",
        "ops",
        "signatures",
        "tf1_session",
        "warmup",
        "tf2_load",
        "keras_match",
        "modules",
    }
    assert report["checks"]["ops"]["ops_from_tf_text"] == [
        "SentencepieceDetokenizeOp",
        "SentencepieceOp",
        "SentencepieceTokenizeOp",
    ]
    # Ran with XLA compilation disabled, as TF Serving does by default.
    assert "XLA compilation disabled" in report["checks"]["xla"]["detail"]
    assert report["checks"]["ops"]["ops_run_by_xla"] == []


@pytest.mark.slow
def test_check_serving_fails_on_outputs_that_differ_from_keras(exported, kzoo_cli, tmp_path):
    copy = tmp_path / "1"
    shutil.copytree(exported[2], copy)
    expected_path = copy / "assets.extra" / "expected_outputs.json"
    expected = json.loads(expected_path.read_text())
    expected["requests"][0]["expected"]["generated"][1] += "!"
    expected_path.write_text(json.dumps(expected))
    result = kzoo_cli("check-serving", str(copy), "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert not report["ok"] and not report["checks"]["keras_match"]["ok"]
    assert "generate.generated" in report["checks"]["keras_match"]["detail"]
    assert report["checks"]["tf1_session"]["ok"]


def test_check_serving_fails_without_variables(exported, kzoo_cli, tmp_path):
    copy = tmp_path / "1"
    shutil.copytree(exported[2], copy)
    shutil.rmtree(copy / "variables")
    result = kzoo_cli("check-serving", str(copy), "--json")
    assert result.returncode == 1
    checks = json.loads(result.stdout)["checks"]
    assert not checks["files"]["ok"] and "variables/variables.index" in checks["files"]["detail"]
    assert not checks["tf1_session"]["ok"] and not checks["keras_match"]["ok"]


def test_limits_leave_room_for_one_prompt_token(keras_model):
    from kzoo.export.causal_lm_signatures import GenerationLimits

    limits = GenerationLimits.for_model(keras_model[0], max_new_tokens=64, max_prompt_tokens=128)
    assert limits == GenerationLimits(max_new_tokens=31, max_prompt_tokens=128, context=32)


def test_generate_from_saved_model_equals_keras_generate(exported, keras_model):
    from kzoo.export.serving_generate import generate_from_saved_model

    settings = {
        "strategy": "sample",
        "temperature": 0.9,
        "top_k": 10,
        "top_p": 0.9,
        "seed": 3,
        "max_new_tokens": NEW_TOKENS,
    }
    got = generate_from_saved_model(exported[2], PROMPTS, **settings)
    assert got == keras_model[0].generate(PROMPTS, **settings, jit_compile=False)


def test_a_malformed_models_config_is_named(tmp_path):
    (tmp_path / "models.config").write_text("model_config_list { config { nme: 1 } }")
    with pytest.raises(ValueError, match="models.config: not a TF Serving ModelServerConfig"):
        update_models_config(str(tmp_path))


@pytest.mark.slow
def test_xla_export_answers_like_keras(exported, keras_model, tmp_path):
    path = export_run(exported[0], out_dir=str(tmp_path), xla=True)
    info = json.load(open(os.path.join(path, "assets.extra", "kzoo_export.json")))
    assert info["xla"] is True
    served = tf.saved_model.load(path)
    out = call(served, "generate", prompts=PROMPTS, max_new_tokens=[NEW_TOKENS], **GREEDY)
    expected = keras_model[0].generate(PROMPTS, strategy="greedy", max_new_tokens=NEW_TOKENS)
    assert strings(out["generated"]) == expected
