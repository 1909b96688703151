"""The `monitor` section without a training run: every family's attention maps and
projector on tiny models, the gradient norm, histograms, profiling and failures.

What a real run writes (read back from its event files and through a TensorBoard
server) is checked on the shared `tiny_run` in test_trainer.py.
"""

import glob
import io
import os
import types

import keras
import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from kzoo import models
from kzoo.testing import tensorboard_events
from kzoo.training.callbacks import (
    GenerationMetrics,
    GradientNorm,
    ProgressBar,
    TensorBoard,
    TextSamples,
    histogram_value,
)
from kzoo.training.config import ConfigError
from kzoo.training.monitoring import monitors
from kzoo.training.monitoring.attention_maps import GAP, MAX_CELL, AttentionMaps
from kzoo.training.monitoring.embedding_projector import (
    TENSOR_NAME,
    EmbeddingProjector,
    metadata_label,
    token_embedding,
)
from kzoo.training.monitoring.graph_summary import GraphSummary
from kzoo.training.optimizer import AdamWWithGradientNorm, global_norm, recorded_gradient_norm
from kzoo.training.recipe import validate

VOCAB, HEADS = 24, 2
SMALL = dict(num_layers=1, num_heads=HEADS, hidden_dim=8, intermediate_dim=16)
RNG = np.random.default_rng(0)


def _sequence(prefix, length, real):
    """Token ids and a right-padded mask: `real` of `length` positions are tokens."""
    mask = np.array([[1] * real + [0] * (length - real), [1] * length], "int32")
    return {
        f"{prefix}token_ids": RNG.integers(3, VOCAB, (2, length)).astype("int32") * mask,
        f"{prefix}padding_mask": mask,
    }


def _decoder_only():
    return _sequence("", 9, 6), {"transformer_layer_0/self_attention": (6, 6, True)}


def _bert():
    features = _sequence("", 9, 7)
    features["segment_ids"] = np.zeros((2, 9), "int32")
    features["mask_positions"] = np.array([[8, 2], [1, 3]], "int32")  # not an input
    return features, {"transformer_layer_0/self_attention": (7, 7, False)}


def _encoder_decoder(prefix):
    features = {**_sequence("encoder_", 8, 5), **_sequence("decoder_", 6, 4)}
    return features, {
        f"{prefix}encoder_layer_0/self_attention": (5, 5, False),
        f"{prefix}decoder_layer_0/self_attention": (4, 4, True),
        f"{prefix}decoder_layer_0/cross_attention": (4, 5, False),
    }


def _bert_backbone():
    return models.BertBackbone(VOCAB, **SMALL, max_sequence_length=16)


# family: (model builder, (features, {attention layer: (queries, keys, causal)}))
FAMILIES = {
    "gpt": (
        lambda: models.GPTCausalLM(models.GPTBackbone(VOCAB, **SMALL, max_sequence_length=16)),
        _decoder_only,
    ),
    "lstm": (
        lambda: models.LSTMLanguageModel(VOCAB, embedding_dim=8, hidden_dim=8),
        lambda: (_sequence("", 9, 6), {}),
    ),
    "bert_pretrain": (lambda: models.BertPretrainer(_bert_backbone()), _bert),
    "bert_classify": (lambda: models.BertClassifier(_bert_backbone(), ["a", "b"]), _bert),
    "bert_tag": (lambda: models.BertTokenClassifier(_bert_backbone(), ["O", "B-X"]), _bert),
    "bert_qa": (lambda: models.BertQuestionAnswerer(_bert_backbone()), _bert),
    "seq2seq": (
        lambda: models.Seq2SeqLM(
            models.Seq2SeqBackbone(VOCAB, **SMALL), start_token_id=1, end_token_id=2
        ),
        lambda: _encoder_decoder(""),
    ),
    "lstm_seq2seq": (
        lambda: models.Seq2SeqLM(
            models.LSTMSeq2SeqBackbone(VOCAB, embedding_dim=8, hidden_dim=8),
            start_token_id=1,
            end_token_id=2,
        ),
        lambda: (_encoder_decoder("")[0], {}),
    ),
    "t5": (
        lambda: models.Seq2SeqLM(
            models.T5Backbone(VOCAB, **SMALL), start_token_id=1, end_token_id=2
        ),
        lambda: _encoder_decoder("transformer_"),
    ),
}
VOCABULARY = ["<pad>", "\n", "a\tb"] + [f"t{i}" for i in range(3, VOCAB)]


def read_images(event_dir):
    """{tag: [decoded RGB image per step]} of the image summaries in `event_dir`."""
    images = {}
    for path in sorted(glob.glob(os.path.join(event_dir, "events.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.metadata.plugin_data.plugin_name == "images":
                    width, height, png = tf.make_ndarray(value.tensor)
                    image = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
                    assert image.shape[:2] == (int(height), int(width))
                    images.setdefault(value.tag, []).append(image)
    return images


def heatmap_shape(queries, keys):
    return queries * MAX_CELL, HEADS * keys * MAX_CELL + (HEADS - 1) * GAP, 3


@pytest.mark.parametrize("family", FAMILIES)
def test_attention_maps_and_projector_find_each_familys_layers(family, tmp_path):
    build, data = FAMILIES[family]
    model = build()
    features, expected = data()
    model_features = {name: features[name] for name in model.input}
    model(model_features)  # Built, as in training.
    dataset = tf.data.Dataset.from_tensors((features, np.zeros(2, "int32")))
    maps = AttentionMaps(str(tmp_path / "attention"), dataset, VOCABULARY)
    projector = EmbeddingProjector(str(tmp_path / "projector"), VOCABULARY)
    for callback in (maps, projector):
        callback.set_model(model)
        callback.on_train_begin()
        callback.on_epoch_end(0)
        callback.on_train_end()

    images = read_images(tmp_path / "attention")
    assert sorted(images) == sorted(expected)
    for name, (queries, keys, causal) in expected.items():
        (image,) = images[name]
        assert image.shape == heatmap_shape(queries, keys), name
        if causal:  # The first query sees only the first key: white, then black.
            assert image[0, 0].tolist() == [255, 255, 255]
            assert not image[:MAX_CELL, MAX_CELL : keys * MAX_CELL].any()

    embedding = getattr(model, "backbone", model).token_embedding
    assert token_embedding(model) is embedding
    stored = tf.train.load_checkpoint(str(tmp_path / "projector")).get_tensor(TENSOR_NAME)
    np.testing.assert_array_equal(stored, keras.ops.convert_to_numpy(embedding.embeddings))
    rows = (tmp_path / "projector" / "metadata.tsv").read_text("utf-8").split("\n")
    assert rows[:-1] == [metadata_label(token) for token in VOCABULARY] and rows[-1] == ""


def test_metadata_labels_are_one_visible_cell_each():
    tokens = ["▁the", "\n", "a\tb", "c\\n", "\r", " ", "", "<0x0A>", "x\x00y", "[CLS]"]
    labels = [metadata_label(token) for token in tokens]
    assert labels == [
        "▁the",
        "\\n",
        "a\\tb",
        "c\\\\n",
        "\\r",
        "' '",
        "''",
        "<0x0A>",
        "x\\x00y",
        "[CLS]",
    ]
    assert len(set(labels)) == len(labels)
    assert all(
        label.strip() and len(label.splitlines()) == 1 and "\t" not in label for label in labels
    )


def _tiny_model(dtype=None):
    inputs = keras.Input((4,), dtype="int32")
    hidden = keras.layers.Embedding(VOCAB, 6, dtype=dtype, name="token_embedding")(inputs)
    logits = keras.layers.Dense(3, dtype=dtype)(hidden)
    model = keras.Model(inputs, keras.layers.Activation("linear", dtype="float32")(logits))
    optimizer = AdamWWithGradientNorm(clipnorm=1e-3)
    if dtype == "mixed_float16":  # As Keras wraps it for a mixed_float16 model.
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    model.compile(
        optimizer=optimizer, loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    return model


@pytest.mark.parametrize("dtype", [None, "mixed_float16"])
def test_gradient_norm_is_the_unclipped_unscaled_global_norm(dtype):
    keras.utils.set_random_seed(0)
    model = _tiny_model(dtype=dtype)
    x = RNG.integers(0, VOCAB, (8, 4)).astype("int32")
    y = RNG.integers(0, 3, (8, 4)).astype("int32")
    with tf.GradientTape() as tape:
        loss = model.loss(y, model(x, training=True))
    reference = float(global_norm(tape.gradient(loss, model.trainable_variables)))
    model.train_on_batch(x, y)
    assert reference > 1e-3  # clipnorm=1e-3 clips it, after the norm is taken
    # Under the loss-scale wrapper: the inner optimizer's, of unscaled gradients.
    norm = recorded_gradient_norm(model.optimizer)
    np.testing.assert_allclose(float(norm), reference, rtol=1e-3 if dtype else 1e-6)
    if dtype:
        assert float(model.optimizer.scale_loss(1.0)) > 1000  # the loss was scaled


def test_gradient_norm_callback_logs_every_n_steps_from_the_optimizer_step():
    model = _tiny_model()
    x = RNG.integers(0, VOCAB, (8, 4)).astype("int32")
    model.train_on_batch(x, np.zeros((8, 4), "int32"))  # Step 1: a resumed run.
    callback = GradientNorm(every=2)
    callback.set_model(model)
    callback.on_train_begin()
    logged = []
    for step in (2, 3, 4):
        model.train_on_batch(x, np.zeros((8, 4), "int32"))
        logs = {"loss": 1.0}
        callback.on_train_batch_end(step - 2, logs)
        if "gradient_norm" in logs:
            logged.append((step, logs["gradient_norm"]))
    assert [step for step, _ in logged] == [2, 4]
    assert logged[-1][1] == pytest.approx(float(model.optimizer.gradient_norm))
    assert all(0 < norm < np.inf for _, norm in logged)


def test_histograms_match_tensorboards_and_tied_weights_are_written_once(tmp_path):
    data = RNG.normal(size=(50, 7)).astype("float32")
    from tensorboard.plugins.histogram.summary_v2 import histogram_pb

    expected = tf.make_ndarray(histogram_pb("w", data).value[0].tensor)
    actual = tf.make_ndarray(histogram_value("w", data).tensor)
    np.testing.assert_allclose(actual, expected, rtol=1e-12)
    np.testing.assert_array_equal(
        tf.make_ndarray(histogram_value("c", np.full(5, 2.0), buckets=3).tensor),
        [[2, 2, 0], [2, 2, 0], [2, 2, 5]],
    )

    model = FAMILIES["gpt"][0]()  # Tied: the embedding is in two of its layers.
    model(_decoder_only()[0])
    board = TensorBoard(str(tmp_path), histogram_freq=1)
    board.set_model(model)
    board._log_weights(epoch=3)
    tags = []
    for path in glob.glob(str(tmp_path / "train" / "events.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            tags += [(v.tag, event.step) for v in event.summary.value]
    assert sorted(tags) == sorted((f"{w.path}/histogram", 3) for w in model.weights)


def test_monitor_switches_choose_the_callbacks_and_tensorboard_options():
    raw = {"model": {"family": "gpt"}, "train": {"steps": 10}}
    config = validate(raw)
    assert config["monitor"] == {
        "graph": True,
        "projector": True,
        "attention_maps": True,
        "histograms": True,
        "gradient_norms": True,
        "profile_steps": None,
    }
    plan = types.SimpleNamespace(train=tf.data.Dataset.from_tensors(({}, 0)), validation=None)
    tokenizer = types.SimpleNamespace(get_vocabulary=lambda: VOCABULARY)
    chosen = monitors.callbacks(config, "RUN", None, plan, tokenizer)
    assert [type(c) for c in chosen] == [
        GraphSummary,
        GradientNorm,
        AttentionMaps,
        EmbeddingProjector,
    ]
    assert chosen[2].log_dir == os.path.join("RUN", "tensorboard", "attention")
    assert monitors.tensorboard_options(config) == {"histogram_freq": 1, "profile_batch": 0}
    off = validate(
        {
            **raw,
            "monitor": {
                "graph": False,
                "projector": False,
                "attention_maps": False,
                "histograms": False,
                "gradient_norms": False,
                "profile_steps": [2, 10],
            },
        }
    )
    assert monitors.callbacks(off, "RUN", None, plan, tokenizer) == []
    assert monitors.tensorboard_options(off) == {"histogram_freq": 0, "profile_batch": (2, 10)}


@pytest.mark.parametrize(
    "steps,train_steps,message",
    [
        ([3], 10, "must be [first, last] with 1 <= first <= last"),
        ([4, 2], 10, "must be [first, last] with 1 <= first <= last"),
        ([0, 2], 10, "must be [first, last]"),
        ([1, "2"], 10, "must be [first, last]"),
        ([True, 2], 10, "must be [first, last]"),
        ("2,3", 10, "expected list, got str"),
        ([5, 12], 10, "[5, 12] ends after train.steps 10; profile steps between 1 and 10"),
    ],
)
def test_profile_steps_are_validated(steps, train_steps, message):
    raw = {
        "model": {"family": "gpt"},
        "train": {"steps": train_steps},
        "monitor": {"profile_steps": steps},
    }
    with pytest.raises(ConfigError, match="monitor.profile_steps") as error:
        monitors.tensorboard_options(validate(raw))
    assert message in str(error.value)


def test_profile_steps_write_a_trace_of_those_steps(tmp_path):
    model = _tiny_model()
    x = RNG.integers(0, VOCAB, (6, 4)).astype("int32")
    board = TensorBoard(str(tmp_path), profile_batch=(2, 3))
    model.fit(x, np.zeros((6, 4), "int32"), batch_size=2, epochs=1, verbose=0, callbacks=[board])
    traces = glob.glob(str(tmp_path / "train" / "plugins" / "profile" / "*" / "*.xplane.pb"))
    assert len(traces) == 1 and os.path.getsize(traces[0]) > 0


def test_every_monitor_writes_on_through_a_second_fit(tmp_path):
    """A run resumed mid-epoch calls `fit` twice with the same callbacks (the rest
    of the epoch, then the next ones): what `on_train_end` closes at the end of the
    first must work again in the second. pytest.ini makes a monitor's warning an
    error."""
    model = FAMILIES["gpt"][0]()
    features, _ = _decoder_only()
    model(features)
    model.compile(optimizer=AdamWWithGradientNorm(1e-3), loss="mse")
    model.generate = lambda prompts, max_new_tokens, jit_compile: [p + "!" for p in prompts]
    board = str(tmp_path)
    samples = os.path.join(board, "samples")
    callbacks = [
        GraphSummary(os.path.join(board, "train")),
        GradientNorm(1),
        AttentionMaps(
            os.path.join(board, "attention"),
            tf.data.Dataset.from_tensors((features, 0)),
            VOCABULARY,
        ),
        EmbeddingProjector(os.path.join(board, "projector"), VOCABULARY),
        TextSamples(samples, ["zo"], max_new_tokens=4),
        GenerationMetrics(
            samples,
            [{"source": "a", "target": "b"}],
            decode=lambda model, sources: ["b"] * len(sources),
            score=lambda predictions, references: {"exact_match": 1.0},
        ),
        TensorBoard(board, histogram_freq=1),
    ]
    for epoch in (0, 1):  # One epoch per `fit`.
        fit = keras.callbacks.CallbackList(callbacks, model=model)
        fit.on_train_begin()
        fit.on_epoch_begin(epoch)
        fit.on_epoch_end(epoch, {"loss": 1.0})
        fit.on_train_end()
    steps = tensorboard_events(board)
    assert steps["samples", "samples"] == steps["samples", "translations"] == [1, 2]
    assert steps["attention", "transformer_layer_0/self_attention"] == [0, 1]
    assert steps["train", "epoch_loss"] == [0, 1]
    assert len(steps["train", "token_embedding/embeddings/histogram"]) == 2
    assert tf.train.latest_checkpoint(os.path.join(board, "projector")).endswith("-2")


def test_an_epoch_stopped_early_reports_the_steps_it_trained(capsys):
    class StopAfterOneStep(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            self.model.stop_training = True

    model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    data = tf.data.Dataset.from_tensors((np.ones((1, 2)), np.ones((1, 1)))).repeat()
    model.fit(
        data,
        steps_per_epoch=250,
        epochs=2,
        verbose=2,
        shuffle=False,
        callbacks=[StopAfterOneStep(), ProgressBar()],
    )
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "Epoch 1/2" and lines[1].startswith("  1/250 - ")
    assert not any("250/250" in line for line in lines)


def test_a_failing_monitor_warns_once_and_training_goes_on(tmp_path):
    model = FAMILIES["gpt"][0]()
    (tmp_path / "file").write_text("")
    broken = keras.callbacks.CallbackList(
        [
            # The probe's batches lack the padding mask; the directory is a file.
            AttentionMaps(
                str(tmp_path / "a"),
                tf.data.Dataset.from_tensors(({"token_ids": np.ones((1, 4), "int32")}, 0)),
            ),
            EmbeddingProjector(str(tmp_path / "file" / "projector"), VOCABULARY),
        ],
        model=model,
    )
    with pytest.warns(RuntimeWarning, match="training goes on without it") as caught:
        broken.on_train_begin()
        for epoch in range(3):
            broken.on_epoch_end(epoch, {"loss": 1.0})
        broken.on_train_end()
    messages = [str(w.message) for w in caught if w.category is RuntimeWarning]
    assert [message.split(" (")[0] for message in messages] == [
        "AttentionMaps could not take the attention probe",
        "EmbeddingProjector could not write the embedding projector",
    ]
    assert "(KeyError: 'padding_mask'); training goes on without it" in messages[0]
    assert "(NotADirectoryError: " in messages[1]
