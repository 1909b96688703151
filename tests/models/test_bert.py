import numpy as np
import pytest

from kzoo.models import BertBackbone
from kzoo.testing import run_model_test, to_numpy
from kzoo.testing.tiny_models import TINY_TRANSFORMER

VOCAB, LENGTH, HIDDEN = 40, 8, TINY_TRANSFORMER["hidden_dim"]
CONFIG = dict(vocabulary_size=VOCAB, **TINY_TRANSFORMER, max_sequence_length=16, dropout=0.0)
RNG = np.random.default_rng(0)
INPUTS = {
    "token_ids": RNG.integers(2, VOCAB, (2, LENGTH)).astype("int32"),
    "segment_ids": np.array([[0] * 4 + [1] * 4, [0] * 3 + [1] * 3 + [0, 0]], "int32"),
    "padding_mask": np.array([[1] * LENGTH, [1] * 6 + [0, 0]], "int32"),
}


def test_backbone_contract():
    run_model_test(
        lambda dtype=None: BertBackbone(**CONFIG, dtype=dtype),
        INPUTS,
        {"pooled_output": (2, HIDDEN), "sequence_output": (2, LENGTH, HIDDEN)},
    )


def test_architecture_details():
    backbone = BertBackbone(**CONFIG)
    block = backbone.transformer_layers[0]
    assert not block.norm_first and block.activation == "gelu"  # post-norm, exact gelu
    assert block.norm_epsilon == 1e-12
    out = backbone(INPUTS)
    cls = to_numpy(out["sequence_output"])[:, 0]
    kernel, bias = (to_numpy(w) for w in backbone.pooled_dense.weights)
    np.testing.assert_allclose(
        to_numpy(out["pooled_output"]), np.tanh(cls @ kernel + bias), rtol=1e-5, atol=1e-6
    )


def test_padding_and_segments():
    backbone = BertBackbone(**CONFIG)
    base = to_numpy(backbone(INPUTS)["sequence_output"])
    padded = dict(INPUTS, token_ids=INPUTS["token_ids"].copy())
    padded["token_ids"][1, 6:] = 3
    np.testing.assert_allclose(
        to_numpy(backbone(padded)["sequence_output"])[1, :6], base[1, :6], atol=1e-5
    )
    flipped = dict(INPUTS, segment_ids=1 - INPUTS["segment_ids"])
    assert not np.allclose(to_numpy(backbone(flipped)["sequence_output"]), base)


def test_from_keras_hub_bert_gives_identical_outputs():
    keras_hub = pytest.importorskip("keras_hub")
    from kzoo.convert import from_keras_hub

    hub = keras_hub.models.BertBackbone(**CONFIG)
    ours = from_keras_hub(hub)
    assert isinstance(ours, BertBackbone)
    expected, actual = hub(INPUTS), ours(INPUTS)
    np.testing.assert_allclose(
        to_numpy(actual["pooled_output"]), to_numpy(expected["pooled_output"]), atol=1e-5
    )
    sequence, hub_sequence = (
        to_numpy(actual["sequence_output"]),
        to_numpy(expected["sequence_output"]),
    )
    np.testing.assert_allclose(sequence[0], hub_sequence[0], atol=1e-5)
    np.testing.assert_allclose(sequence[1, :6], hub_sequence[1, :6], atol=1e-5)


def test_pretraining_heads_on_a_converted_keras_hub_backbone_use_tanh_gelu(tmp_path):
    keras_hub = pytest.importorskip("keras_hub")
    import keras

    from kzoo.convert import from_keras_hub
    from kzoo.models import BertPretrainer

    hub = keras_hub.models.BertBackbone(**{**CONFIG, "num_layers": 1})
    pretrainer = BertPretrainer(from_keras_hub(hub))  # activation "gelu_approximate"
    hidden = RNG.normal(size=(2, 3, HIDDEN)).astype("float32")
    dense = pretrainer.mlm_head.dense
    expected = keras.activations.gelu(
        hidden @ to_numpy(dense.kernel) + to_numpy(dense.bias), approximate=True
    )
    np.testing.assert_allclose(to_numpy(dense(hidden)), to_numpy(expected), atol=1e-6)
    inputs = dict(INPUTS, mask_positions=np.array([[1, 2], [0, 5]], "int32"))
    path = str(tmp_path / "pretrainer.keras")
    pretrainer.save(path)
    restored = keras.models.load_model(path)
    assert restored.mlm_head.activation == "gelu_approximate"
    np.testing.assert_allclose(
        to_numpy(restored(inputs)["mlm"]), to_numpy(pretrainer(inputs)["mlm"]), atol=1e-6
    )
