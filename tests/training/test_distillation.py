"""Distillation (`train.distill_from`): the soft loss against a reference, the loss
mixture, students of each kind of task, resume, TensorBoard and refusals."""

import os
import signal

import keras
import numpy as np
import pytest

from kzoo.testing import ROOT, tensorboard_tags
from kzoo.testing.resume_checks import assert_interrupted_run_resumes_to
from kzoo.testing.tiny_recipes import TINY_BERT_OVERRIDES, load_tiny_recipe
from kzoo.testing.tiny_runs import build_bert_run, build_run, build_seq2seq_run
from kzoo.training import distillation
from kzoo.training.config import ConfigError
from kzoo.training.recipe import load_recipe
from kzoo.training.run_directory import RunDirectory


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_soft_loss_is_the_tempered_kl_weighted_over_positions():
    rng = np.random.default_rng(0)
    teacher, student = rng.normal(size=(2, 3, 5, 7)).astype("float32")
    weight = np.array([[1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 1, 1]], "float32")
    p, q = _softmax(teacher / 3.0), _softmax(student / 3.0)
    kl = (p * (np.log(p) - np.log(q))).sum(-1) * 9.0
    expected = (kl * weight).sum() / weight.sum()
    got = distillation.soft_loss(teacher, student, 3.0, weight)
    np.testing.assert_allclose(float(got), expected, rtol=1e-5)
    np.testing.assert_allclose(
        float(distillation.soft_loss(teacher, student, 3.0)), kl.mean(), rtol=1e-5
    )


def _dense(seed):
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    return model


def _fit(model, alpha=None, teacher=None):
    if teacher is not None:
        distillation.attach(model, teacher, temperature=2.0, alpha=alpha)
    model.compile(
        optimizer=keras.optimizers.SGD(0.5),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    x = np.random.default_rng(1).normal(size=(16, 4)).astype("float32")
    y = np.arange(16) % 3
    history = model.fit(
        x, y, batch_size=8, epochs=2, verbose=0, shuffle=False, validation_data=(x, y)
    )
    return model, history.history


def test_alpha_one_trains_as_without_a_teacher_and_alpha_zero_follows_the_teacher():
    plain, _ = _fit(_dense(0))
    taught, logs = _fit(_dense(0), alpha=1.0, teacher=_dense(1))
    for a, b in zip(plain.get_weights(), taught.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)
    # Evaluation reports the task's loss alone, whatever alpha.
    np.testing.assert_allclose(logs["val_loss"], logs["val_task_loss"])
    teacher = _dense(1)
    student, logs = _fit(_dense(0), alpha=0.0, teacher=teacher)
    assert logs["distillation_loss"][-1] < logs["distillation_loss"][0]
    np.testing.assert_allclose(logs["loss"], logs["distillation_loss"], rtol=1e-6)
    x = np.eye(4, dtype="float32")
    before = np.abs(_dense(0)(x) - teacher(x)).mean()
    assert np.abs(student(x) - teacher(x)).mean() < before  # Moved towards the teacher.


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    return build_run(str(tmp_path_factory.mktemp("distill") / "teacher"), "gpt")


STUDENT = ("model.hidden_dim=8", "model.intermediate_dim=16", "train.checkpoint_every=2")


@pytest.mark.slow
def test_a_distilled_and_pruned_student_resumes_step_exactly(teacher, tmp_path, monkeypatch):
    """A GPT student half the teacher's width, distilled and pruned at once:
    interrupted mid-schedule it resumes to the uninterrupted run's weights (the
    masks come back from the checkpoint); it speaks the teacher's tokenizer; the
    soft loss, the task loss, the perplexity of the task loss and the sparsity
    reach TensorBoard; its kernels are half zeros."""
    from kzoo.training.trainer import train

    config = load_tiny_recipe(
        f"train.distill_from={teacher}",
        "train.distill={temperature: 2.0, alpha: 0.3}",
        "train.prune={target_sparsity: 0.5, frequency: 2}",
        *STUDENT,
    )
    reference = str(tmp_path / "reference")
    summary = train(config, reference, verbose=0)
    assert_interrupted_run_resumes_to(
        reference,
        str(tmp_path / "resumed"),
        lambda run: train(config, run, verbose=0),
        monkeypatch,
        {3: signal.SIGTERM},
    )
    run, taught = RunDirectory(reference), RunDirectory(teacher)
    assert run.tokenizer().get_vocabulary() == taught.tokenizer().get_vocabulary()
    assert run.config()["tokenizer"]["kind"] == "char"  # The teacher's, not the recipe's bpe.
    history = summary["history"]
    assert history["sparsity"][-1] == pytest.approx(0.5)
    np.testing.assert_allclose(history["val_perplexity"], np.exp(history["val_task_loss"]))
    np.testing.assert_allclose(
        history["loss"],
        [0.3 * t + 0.7 * s for t, s in zip(history["task_loss"], history["distillation_loss"])],
        rtol=1e-4,
    )
    tags = tensorboard_tags(reference)
    assert {"epoch_task_loss", "epoch_distillation_loss", "epoch_sparsity"} <= tags
    assert "pruning/sparsity/transformer_layer_0/self_attention/query/kernel" in tags
    model = run.load_model()
    kernels = [w for w in model.weights if w.path.endswith("kernel") and len(w.shape) > 1]
    assert len(kernels) == 6
    for kernel in kernels:
        assert (keras.ops.convert_to_numpy(kernel) == 0).mean() == pytest.approx(0.5, abs=0.01)
    assert model.backbone.hidden_dim == 8
    # An export holds the zeros (the SavedModel reads the same model.keras).
    from safetensors.numpy import load_file

    from kzoo import cli

    assert (
        cli.main(["export", reference, "--format", "huggingface", "--out", f"{tmp_path}/hf"]) == 0
    )
    exported = load_file(f"{tmp_path}/hf/model.safetensors")
    query = next(v for k, v in exported.items() if k.endswith("0.attn.c_attn.weight"))
    assert (query == 0).mean() == pytest.approx(0.5, abs=0.01)


@pytest.mark.slow
@pytest.mark.parametrize("family", ["bert", "seq2seq"])
def test_classifier_and_seq2seq_students_learn_from_their_teachers(family, tmp_path):
    """A BERT text-pair classifier and a seq2seq Transformer, each distilled from an
    untrained teacher of its task for two steps, write both losses."""
    from kzoo.training.trainer import train

    teachers = tmp_path / "teacher"
    if family == "bert":
        build_bert_run(str(teachers), "classify")
        recipe, overrides = (
            "bert_tiny_classify",
            [
                *TINY_BERT_OVERRIDES,
                "data.builtin_task=next_sentence",
                "data.builtin_train_examples=32",
                "data.builtin_validation_examples=8",
            ],
        )
    else:
        build_seq2seq_run(str(teachers), "seq2seq")
        recipe, overrides = (
            "seq2seq_tiny",
            [
                "model.num_layers=1",
                "model.num_heads=2",
                "model.intermediate_dim=32",
                "data.batch_size=8",
                "data.builtin_train_examples=32",
                "data.builtin_validation_examples=16",
                "data.eval_examples=4",
                "data.max_source_length=48",
                "data.max_target_length=48",
                "data.bucket_boundaries=null",
            ],
        )
    config = load_recipe(
        os.path.join(ROOT, "recipes", f"{recipe}.yaml"),
        [
            *overrides,
            "model.hidden_dim=8",
            f"train.distill_from={teachers}",
            "train.steps=2",
            "train.steps_per_epoch=2",
            "train.warmup_steps=1",
        ],
    )
    history = train(config, str(tmp_path / "student"), verbose=0)["history"]
    assert history["distillation_loss"][0] > 0 and history["val_task_loss"][0] > 0
    np.testing.assert_allclose(history["val_loss"], history["val_task_loss"])


def test_refusals_name_the_problem(teacher, tmp_path):
    from kzoo.training.trainer import train

    with pytest.raises(ConfigError, match="train.distill: set train.distill_from too"):
        load_tiny_recipe("train.distill.alpha=0.2")
    with pytest.raises(ValueError, match="holds no trained model"):
        train(load_tiny_recipe(f"train.distill_from={tmp_path}"), str(tmp_path / "a"))
    assert not os.path.exists(tmp_path / "a")  # A failed set-up leaves nothing.
    bert = tmp_path / "bert"
    build_bert_run(str(bert), "classify")
    with pytest.raises(ValueError, match="is a model.task 'classify' run; the student's .* None"):
        train(load_tiny_recipe(f"train.distill_from={bert}"), str(tmp_path / "b"))

    class OtherTokens:
        def get_vocabulary(self):
            return ["<pad>", "x"]

    config = load_tiny_recipe(f"train.distill_from={teacher}")
    with pytest.raises(ValueError, match="tokenizer differs from the student's"):
        distillation.load_teacher(config, RunDirectory(teacher), OtherTokens())
    with pytest.raises(ValueError, match=r"outputs \[\(3,\)\] logits, the student \[\(2,\)\]"):
        narrow = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
        distillation.check_outputs(narrow, _dense(0), "TEACHER")
