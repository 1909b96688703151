"""LoRA fine-tuning (`train.lora`): only the adapters train, a saved model holds the
merged weights, the adapters travel alone, and a LoRA run resumes step-exactly."""

import json
import os

import keras
import numpy as np
import pytest

from kzoo.testing.tiers import full_only
from kzoo.testing.tiny_recipes import QUIET_OVERRIDES, load_tiny_recipe
from kzoo.testing.tiny_runs import build_run
from kzoo.training import lora
from kzoo.training.config import ConfigError
from kzoo.training.run_directory import RunDirectory

SETTINGS = {"rank": 2, "alpha": 4.0, "targets": ["query", "value"]}
INPUTS = {
    "token_ids": np.array([[1, 5, 3, 4, 2]], "int32"),
    "padding_mask": np.ones((1, 5), "int32"),
}


@pytest.fixture(scope="module")
def base_run(tmp_path_factory):
    return build_run(str(tmp_path_factory.mktemp("lora") / "base"), "gpt")


def _randomize_adapters(layers, seed=0):
    rng = np.random.default_rng(seed)
    for _, dense in layers:
        for factor in (dense.lora_kernel_a, dense.lora_kernel_b):
            factor.assign(rng.normal(size=factor.shape).astype("float32"))


def test_only_the_adapters_train_and_the_model_starts_as_the_base(base_run):
    model = RunDirectory(base_run).load_model()
    before = np.asarray(model(INPUTS))
    layers = lora.enable_lora(model, SETTINGS)
    assert [path for path, _ in layers] == [
        "transformer_layer_0/self_attention/query",
        "transformer_layer_0/self_attention/value",
    ]
    trainable = sorted(w.path for w in model.trainable_weights)
    assert trainable == sorted(
        f"{path}/lora_kernel_{factor}" for path, _ in layers for factor in "ab"
    )
    total, count = lora.parameter_counts(model)
    # A is (16, 2) and B (2, 16) for each of the two projections.
    assert (
        count == 2 * (16 * 2 + 2 * 16)
        and total == count + RunDirectory(base_run).load_model().count_params()
    )
    np.testing.assert_allclose(np.asarray(model(INPUTS)), before, atol=1e-6)  # B starts at 0


def test_a_saved_lora_model_holds_the_merged_weights(base_run, tmp_path):
    model = RunDirectory(base_run).load_model()
    layers = lora.enable_lora(model, SETTINGS)
    _randomize_adapters(layers)
    expected = np.asarray(model(INPUTS))
    dense = layers[0][1]
    merged = dense._kernel.numpy() + 2.0 * dense.lora_kernel_a.numpy() @ dense.lora_kernel_b.numpy()
    model.save(tmp_path / "merged.keras")
    plain = keras.saving.load_model(tmp_path / "merged.keras")
    assert not any("lora" in w.path for w in plain.weights)
    query = plain.backbone.get_layer("transformer_layer_0").self_attention.query_dense
    np.testing.assert_allclose(query.kernel.numpy(), merged, atol=1e-6)
    np.testing.assert_allclose(np.asarray(plain(INPUTS)), expected, atol=1e-5)


def test_adapters_alone_reproduce_the_model_and_mismatches_are_named(base_run, tmp_path):
    model = RunDirectory(base_run).load_model()
    _randomize_adapters(lora.enable_lora(model, SETTINGS))
    path = lora.save_adapters(model, tmp_path / "adapters", SETTINGS, base=base_run)
    config = json.loads((tmp_path / "adapters" / lora.CONFIG_FILE).read_text())
    assert config["base_run"] == base_run and config["rank"] == 2 and len(config["layers"]) == 2
    fresh = RunDirectory(base_run).load_model()
    lora.enable_lora(fresh, SETTINGS)
    lora.load_adapters(fresh, path, SETTINGS)
    np.testing.assert_array_equal(np.asarray(fresh(INPUTS)), np.asarray(model(INPUTS)))

    other = RunDirectory(base_run).load_model()
    lora.enable_lora(other, {**SETTINGS, "rank": 4})
    with pytest.raises(lora.LoraError, match=r"adapter_config.json: rank 2, but train.lora.rank"):
        lora.load_adapters(other, path, {**SETTINGS, "rank": 4})
    with pytest.raises(lora.LoraError, match=r"targets \['query', 'value'\], but"):
        lora.load_adapters(other, path, {**SETTINGS, "targets": ["query"]})
    with pytest.raises(FileNotFoundError, match="no LoRA adapters"):
        lora.load_adapters(other, tmp_path, SETTINGS)


def test_a_task_head_outside_the_backbone_stays_trainable(tmp_path):
    from kzoo.testing.tiny_runs import build_bert_run

    model = RunDirectory(build_bert_run(str(tmp_path / "bert"), "classify")).load_model()
    lora.enable_lora(model, {**SETTINGS, "targets": ["query", "ffn_output"]})
    trainable = {w.path.split("/")[0] for w in model.trainable_weights}
    assert "logits" in trainable
    assert all(
        "lora_kernel" in w.path for w in model.trainable_weights if not w.path.startswith("logits")
    )


def test_a_model_without_attention_is_refused(tmp_path):
    model = RunDirectory(build_run(str(tmp_path / "lstm"), "lstm")).load_model()
    with pytest.raises(lora.LoraError, match="no query/value projections to adapt"):
        lora.enable_lora(model, SETTINGS)


def test_recipe_settings_and_their_errors(tmp_path):
    config = load_tiny_recipe("train.init_from=base", "train.lora.rank=4")
    assert dict(config["train"]["lora"]) == {
        "rank": 4,
        "alpha": None,
        "targets": ["query", "value"],
    }
    with pytest.raises(
        ConfigError, match="train.lora=.*LoRA adapts a pretrained model; set train.init_from"
    ):
        load_tiny_recipe("train.lora={rank: 4}")
    with pytest.raises(
        ConfigError, match=r"train.lora.targets=\[q\]': unknown target 'q'; valid: query, key"
    ):
        load_tiny_recipe("train.init_from=base", "train.lora.targets=[q]")
    with pytest.raises(ConfigError, match="train.lora.rank=0': must be > 0"):
        load_tiny_recipe("train.init_from=base", "train.lora.rank=0")
    with pytest.raises(ConfigError, match="train.adapters_from=adapters': set train.lora too"):
        load_tiny_recipe("train.init_from=base", "train.adapters_from=adapters")


def _lora_recipe(base_run, *overrides):
    """gpt_tiny fine-tuned from `base_run` with rank-2 adapters, monitors off (the
    subject here is LoRA, not monitoring)."""
    return load_tiny_recipe(
        f"train.init_from={base_run}",
        "train.lora={rank: 2, alpha: 4.0}",
        "train.learning_rate=0.01",
        *overrides,
        *QUIET_OVERRIDES,
    )


@pytest.mark.slow
def test_a_lora_run_resumes_keeps_the_base_and_its_exported_adapters_apply_to_the_base(
    base_run, tmp_path, monkeypatch
):
    """The workflow: fine-tune with LoRA (interrupted and resumed step-exactly),
    export the adapters alone and start a new run on the base from them."""
    import signal

    from kzoo import cli
    from kzoo.testing.resume_checks import assert_interrupted_run_resumes_to
    from kzoo.training.trainer import train

    config = _lora_recipe(base_run, "train.checkpoint_every=2")
    reference = str(tmp_path / "reference")
    summary = train(config, reference)
    assert summary["trainable_parameters"] == 2 * (16 * 2 + 2 * 16)
    assert summary["parameters"] > 10 * summary["trainable_parameters"]
    assert_interrupted_run_resumes_to(
        reference,
        str(tmp_path / "resumed"),
        lambda run: train(config, run),
        monkeypatch,
        {3: signal.SIGTERM},
    )
    # The base stayed the base: only the adapted projections changed.
    base, tuned = RunDirectory(base_run).load_model(), RunDirectory(reference).load_model()
    changed = [
        a.path
        for a, b in zip(base.weights, tuned.weights)
        if not np.array_equal(a.numpy(), b.numpy())
    ]
    assert sorted(changed) == [
        "transformer_layer_0/self_attention/query/kernel",
        "transformer_layer_0/self_attention/value/kernel",
    ]

    adapters = str(tmp_path / "adapters")
    assert cli.main(["export", reference, "--lora-only", "--out", adapters]) == 0
    applied = _lora_recipe(
        base_run,
        f"train.adapters_from={adapters}",
        "train.steps=1",
        "train.steps_per_epoch=1",
        "train.warmup_steps=0",
        "train.learning_rate=1e-12",
        "train.decay=constant",
    )
    train(applied, str(tmp_path / "applied"))
    again = RunDirectory(str(tmp_path / "applied")).load_model()
    np.testing.assert_allclose(np.asarray(again(INPUTS)), np.asarray(tuned(INPUTS)), atol=1e-5)


@pytest.mark.slow
@full_only(
    "tests/training/test_quantize.py::test_a_gptq_calibrated_run_reloads_and_serves (a "
    "quantized export through check-serving) and test_a_saved_lora_model_holds_the_merged_"
    "weights (a LoRA run's model.keras is an ordinary model)"
)
def test_a_lora_run_quantizes_evaluates_exports_and_serves(base_run, tmp_path, capsys):
    """The merged run quantized (`kzoo quantize`), evaluated, exported and served:
    the merged model.keras is an ordinary one (test_a_saved_lora_model_holds_...),
    so this export is also what a float LoRA run's export is made of."""
    from kzoo import cli
    from kzoo.training.trainer import train

    run = str(tmp_path / "lora")
    train(_lora_recipe(base_run), run)
    quantized, out = str(tmp_path / "int8"), str(tmp_path / "saved_models")
    assert cli.main(["quantize", run, "--mode", "int8", "--run-dir", quantized]) == 0
    assert cli.main(["evaluate", quantized, "--json"]) == 0
    assert cli.main(["export", quantized, "--out", out, "--name", "lora", "--version", "1"]) == 0
    assert cli.main(["check-serving", os.path.join(out, "lora", "1")]) == 0
    assert "serving check passed" in capsys.readouterr().out


def test_lora_on_a_quantized_base_keeps_the_base_quantized(base_run, tmp_path):
    """QLoRA-style: the int8 kernels stay int8 and frozen; the float adapters train,
    and the saved model is int8 again (the adapters merged, then re-quantized)."""
    from kzoo.training.quantize import quantize_model

    model = quantize_model(RunDirectory(base_run).load_model(), "int8")
    layers = lora.enable_lora(model, SETTINGS)
    query = layers[0][1]
    kernel = query._kernel.numpy()
    assert query._kernel.dtype == "int8"
    assert all("lora_kernel" in w.path for w in model.trainable_weights)
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=keras.losses.MeanSquaredError())
    labels = np.zeros((1, 5, model.backbone.vocabulary_size), "float32")
    model.fit(INPUTS, labels, epochs=2, verbose=0)
    np.testing.assert_array_equal(query._kernel.numpy(), kernel)
    assert np.abs(query.lora_kernel_b.numpy()).max() > 0
    model.save(tmp_path / "qlora.keras")
    again = keras.saving.load_model(tmp_path / "qlora.keras", compile=False)
    reloaded = again.backbone.get_layer("transformer_layer_0").self_attention.query_dense
    assert reloaded.quantization_mode == "int8" and reloaded._kernel.dtype == "int8"
    expected = np.asarray(model(INPUTS))
    error = np.abs(np.asarray(again(INPUTS)) - expected).max() / np.abs(expected).max()
    assert error < 0.02


@pytest.mark.slow
def test_a_lora_run_on_a_quantized_run_keeps_it_quantized(base_run, tmp_path):
    """`train.init_from` a `kzoo quantize`d run with `train.lora` (QLoRA-style)."""
    from kzoo.training.quantize import quantize_run
    from kzoo.training.trainer import train

    quantize_run(base_run, str(tmp_path / "int8"), "int8")
    config = load_tiny_recipe(
        f"train.init_from={tmp_path / 'int8'}",
        "train.lora.rank=2",
        "train.learning_rate=0.01",
        *QUIET_OVERRIDES,
    )
    summary = train(config, str(tmp_path / "qlora"))
    assert summary["trainable_parameters"] == 2 * (16 * 2 + 2 * 16)
    tuned = RunDirectory(str(tmp_path / "qlora")).load_model()
    query = tuned.backbone.get_layer("transformer_layer_0").self_attention.query_dense
    assert query.quantization_mode == "int8" and query._kernel.dtype == "int8"
    base = RunDirectory(str(tmp_path / "int8")).load_model()
    assert not np.allclose(np.asarray(tuned(INPUTS)), np.asarray(base(INPUTS)), atol=1e-4)
