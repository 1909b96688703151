import math

import keras
import numpy as np
import pytest

from kzoo.models import (
    BertBackbone,
    BertClassifier,
    BertPretrainer,
    BertQuestionAnswerer,
    BertTokenClassifier,
)
from kzoo.models.bert.bert_question_answerer import PADDING_LOGIT
from kzoo.testing import assert_all_close, run_model_test, to_numpy
from kzoo.testing.tiny_models import TINY_TRANSFORMER

VOCAB, LENGTH, HIDDEN = 30, 8, 8
CONFIG = dict(
    TINY_TRANSFORMER,
    vocabulary_size=VOCAB,
    hidden_dim=HIDDEN,
    intermediate_dim=16,
    max_sequence_length=16,
    dropout=0.0,
)
CLASSES = ["negative", "neutral", "positive"]
TAGS = ["O", "B-X", "I-X"]
RNG = np.random.default_rng(0)
INPUTS = {
    "token_ids": RNG.integers(2, VOCAB - 1, (2, LENGTH)).astype("int32"),
    "segment_ids": np.array([[0] * 4 + [1] * 4, [0] * 3 + [1] * 3 + [0, 0]], "int32"),
    "padding_mask": np.array([[1] * LENGTH, [1] * 6 + [0, 0]], "int32"),
}
# run_model_test also runs every input cut to its first 3 columns; the first 3
# positions of each row stay inside that shorter sequence.
MASK_POSITIONS = np.array([[0, 1, 2, 5], [1, 2, 0, 4]], "int32")
PRETRAIN_INPUTS = {**INPUTS, "mask_positions": MASK_POSITIONS}

BUILDERS = {
    "pretrainer": lambda backbone, **kw: BertPretrainer(backbone, **kw),
    "classifier": lambda backbone, **kw: BertClassifier(backbone, CLASSES, **kw),
    "token_classifier": lambda backbone, **kw: BertTokenClassifier(backbone, TAGS, **kw),
    "question_answerer": lambda backbone, **kw: BertQuestionAnswerer(backbone, **kw),
}
EXPECTED_SHAPES = {
    "pretrainer": {"mlm": (2, 4, VOCAB), "nsp": (2, 2)},
    "classifier": (2, len(CLASSES)),
    "token_classifier": (2, LENGTH, len(TAGS)),
    "question_answerer": {"end_logits": (2, LENGTH), "start_logits": (2, LENGTH)},
}


def inputs_for(kind):
    return PRETRAIN_INPUTS if kind == "pretrainer" else INPUTS


def build(kind, dtype=None, **kwargs):
    return BUILDERS[kind](BertBackbone(**CONFIG, dtype=dtype), **kwargs)


@keras.saving.register_keras_serializable(package="kzoo_tests")
class WordTokenizer(keras.layers.Layer):
    """The smallest tokenizer a task model accepts: a layer with tokenize/detokenize."""

    def __init__(self, vocabulary, **kwargs):
        super().__init__(**kwargs)
        self.vocabulary = list(vocabulary)

    def tokenize(self, texts):
        return [[self.vocabulary.index(word) for word in text.split()] for text in texts]

    def detokenize(self, ids):
        return [" ".join(self.vocabulary[i] for i in row) for row in ids]

    def get_config(self):
        return {**super().get_config(), "vocabulary": self.vocabulary}


@pytest.mark.parametrize("kind", list(BUILDERS))
def test_task_contract_and_float32_logits(kind):
    model, outputs = run_model_test(
        lambda dtype=None: build(kind, dtype), inputs_for(kind), EXPECTED_SHAPES[kind]
    )
    mixed_outputs = build(kind, "mixed_bfloat16")(inputs_for(kind))
    for tensor in keras.tree.flatten(outputs) + keras.tree.flatten(mixed_outputs):
        assert keras.backend.standardize_dtype(tensor.dtype) == "float32"


@pytest.mark.parametrize("kind", list(BUILDERS))
def test_tokenizer_and_labels_are_saved_with_the_model(kind, tmp_path):
    tokenizer = WordTokenizer(["[PAD]", "[CLS]", "hello", "world"])
    model = build(kind, tokenizer=tokenizer)
    model.save(tmp_path / "task.keras")
    loaded = keras.saving.load_model(tmp_path / "task.keras", safe_mode=True)
    assert isinstance(loaded.tokenizer, WordTokenizer)
    assert loaded.tokenizer.tokenize(["hello world"]) == [[2, 3]]
    assert loaded.tokenizer.detokenize([[1, 2]]) == ["[CLS] hello"]
    assert getattr(loaded, "labels", None) == getattr(model, "labels", None)
    assert_all_close(loaded(inputs_for(kind)), model(inputs_for(kind)))
    assert build(kind).tokenizer is None


def _gelu(x):
    return 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))


def test_masked_lm_logits_use_the_tied_embedding_and_output_bias():
    pretrainer = build("pretrainer")
    backbone, head = pretrainer.backbone, pretrainer.mlm_head
    assert head.token_embedding is backbone.token_embedding
    assert not any(w.shape == (HIDDEN, VOCAB) for w in head.weights)  # no own decoder
    head.output_bias.assign(RNG.normal(size=(VOCAB,)).astype("float32"))

    sequence = to_numpy(backbone(INPUTS)["sequence_output"])
    gathered = np.take_along_axis(sequence, MASK_POSITIONS[..., None], axis=1)
    kernel, bias = (to_numpy(w) for w in head.dense.weights)
    x = _gelu(gathered @ kernel + bias)
    gamma, beta = (to_numpy(w) for w in head.layer_norm.weights)
    x = (x - x.mean(-1, keepdims=True)) / np.sqrt(x.var(-1, keepdims=True) + 1e-12)
    x = x * gamma + beta
    table = to_numpy(backbone.token_embedding.embeddings)
    expected = x @ table.T + to_numpy(head.output_bias)
    np.testing.assert_allclose(
        to_numpy(pretrainer(PRETRAIN_INPUTS)["mlm"]), expected, rtol=1e-4, atol=1e-5
    )


def test_next_sentence_logits_are_a_dense_layer_on_the_pooled_output():
    pretrainer = build("pretrainer")
    pooled = to_numpy(pretrainer.backbone(INPUTS)["pooled_output"])
    kernel, bias = (to_numpy(w) for w in pretrainer.nsp_head.weights)
    np.testing.assert_allclose(
        to_numpy(pretrainer(PRETRAIN_INPUTS)["nsp"]), pooled @ kernel + bias, rtol=1e-5, atol=1e-6
    )


def test_question_answerer_gives_padding_a_large_negative_logit():
    out = to_numpy(build("question_answerer")(INPUTS))
    for logits in out.values():
        np.testing.assert_array_equal(logits[1, 6:], PADDING_LOGIT)
        assert np.all(logits[INPUTS["padding_mask"] == 1] > -100)
        probs = np.exp(logits - logits.max(-1, keepdims=True))
        assert np.all(probs[1, 6:] == 0)


def test_task_models_share_the_pretrained_backbone_weights(tmp_path):
    pretrainer = build("pretrainer")
    classifier = BertClassifier(pretrainer.backbone, CLASSES)
    assert classifier.backbone is pretrainer.backbone
    backbone_ids = {id(v) for v in pretrainer.backbone.weights}
    assert backbone_ids <= {id(v) for v in classifier.weights}
    assert backbone_ids <= {id(v) for v in pretrainer.weights}

    pretrainer.backbone.save(tmp_path / "backbone.keras")
    loaded = keras.saving.load_model(tmp_path / "backbone.keras", safe_mode=True)
    tagger = BertTokenClassifier(loaded, TAGS)
    assert {id(v) for v in loaded.weights} <= {id(v) for v in tagger.weights}
    assert_all_close(tagger.backbone(INPUTS), pretrainer.backbone(INPUTS))


def _targets(kind, rng):
    return {
        "pretrainer": {"mlm": rng.integers(0, VOCAB, (4, 4)), "nsp": rng.integers(0, 2, (4,))},
        "classifier": rng.integers(0, len(CLASSES), (4,)),
        "token_classifier": rng.integers(0, len(TAGS), (4, LENGTH)),
        "question_answerer": {
            "start_logits": rng.integers(0, 6, (4,)),
            "end_logits": rng.integers(0, 6, (4,)),
        },
    }[kind]


def _batch_of_4(kind, pad_token=None):
    x = {key: np.concatenate([value, value]) for key, value in inputs_for(kind).items()}
    if pad_token is not None:
        x["token_ids"][x["padding_mask"] == 0] = pad_token
    return x


def _compile(model, y, **kwargs):
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(loss={k: loss for k in y} if isinstance(y, dict) else loss, **kwargs)


# Token-level heads leave the pooler out of the loss, and Keras warns about it.
@pytest.mark.filterwarnings("ignore:Gradients do not exist:UserWarning")
# On JAX the token-level heads fit (slow is skipped there); the classifier's fit
# takes 40 s to compile on JAX and runs on TensorFlow only.
@pytest.mark.parametrize(
    "kind",
    [pytest.param("classifier", marks=pytest.mark.slow), "token_classifier", "question_answerer"],
)
def test_fit_updates_the_model_but_not_padding_tokens(kind):
    # Eager: one step compiled would take 10-25 s here; the pretrainer test
    # below runs a compiled one.
    pad_token = VOCAB - 1  # INPUTS never uses it at a real position
    x, y = _batch_of_4(kind, pad_token), _targets(kind, np.random.default_rng(1))
    model = build(kind)
    _compile(model, y, optimizer=keras.optimizers.SGD(1.0), run_eagerly=True)
    # Tags at padded positions must not count: weight them with the padding mask.
    sample_weight = x["padding_mask"] if kind == "token_classifier" else None
    table = model.backbone.token_embedding.embeddings
    before = to_numpy(table).copy()
    history = model.fit(x, y, sample_weight=sample_weight, batch_size=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    after = to_numpy(table)
    np.testing.assert_array_equal(after[pad_token], before[pad_token])
    real_token = x["token_ids"][0, 0]
    assert not np.allclose(after[real_token], before[real_token])


@pytest.mark.slow  # TensorFlow only: loss weighting is backend-independent keras.ops.
def test_pretrainer_fit_weights_the_masked_lm_loss_per_position():
    pretrainer = build("pretrainer")
    x, y = _batch_of_4("pretrainer"), _targets("pretrainer", np.random.default_rng(2))
    _compile(pretrainer, y, optimizer="adam")
    # Keras 3 needs one sample_weight per output, in the outputs' structure.
    mlm_weights = np.array([[1, 1, 1, 0]] * 4, "float32")  # the last slot is padding
    sample_weight = {"mlm": mlm_weights, "nsp": np.ones((4,), "float32")}
    history = pretrainer.fit(x, y, sample_weight=sample_weight, batch_size=4, verbose=0)
    assert np.isfinite(history.history["mlm_loss"]).all()
    assert np.isfinite(history.history["nsp_loss"]).all()

    _compile(pretrainer, y, run_eagerly=True)
    other_targets = {"mlm": y["mlm"].copy(), "nsp": y["nsp"]}
    other_targets["mlm"][:, 3] = (other_targets["mlm"][:, 3] + 1) % VOCAB

    def mlm_loss(targets):
        metrics = pretrainer.evaluate(
            x, targets, sample_weight=sample_weight, verbose=0, return_dict=True
        )
        return metrics["mlm_loss"]

    assert mlm_loss(other_targets) == pytest.approx(mlm_loss(y))
    other_targets["mlm"][:, 0] = (other_targets["mlm"][:, 0] + 1) % VOCAB
    assert mlm_loss(other_targets) != pytest.approx(mlm_loss(y))


@pytest.mark.parametrize("task", [BertClassifier, BertTokenClassifier])
def test_labels_must_be_a_list_of_names(task):
    backbone = BertBackbone(**CONFIG)
    with pytest.raises(ValueError, match="labels must be a non-empty list"):
        task(backbone, 3)
    with pytest.raises(ValueError, match="labels must be a non-empty list"):
        task(backbone, [])
