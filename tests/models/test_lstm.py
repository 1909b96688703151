import numpy as np

from kzoo.models import LSTMLanguageModel
from kzoo.testing import run_model_test, to_numpy

VOCAB = 30
IDS = np.random.default_rng(0).integers(2, VOCAB, (2, 8)).astype("int32")
INPUTS = {"token_ids": IDS, "padding_mask": np.ones_like(IDS)}


def build(dtype=None):
    return LSTMLanguageModel(VOCAB, 8, 16, num_layers=2, end_token_id=1, dtype=dtype)


def test_lstm_contract():
    run_model_test(build, INPUTS, (2, 8, VOCAB))


def test_lstm_is_causal():
    lm = build()
    base = to_numpy(lm(INPUTS))
    changed = IDS.copy()
    changed[:, 5:] = 3
    out = to_numpy(lm({"token_ids": changed, "padding_mask": np.ones_like(IDS)}))
    np.testing.assert_allclose(out[:, :5], base[:, :5], atol=1e-5)


def test_greedy_generation_continues_the_full_forward_pass():
    lm = build()
    buffer = np.zeros((2, 14), "int32")
    buffer[0, :8], buffer[1, :5] = IDS[0], IDS[1, :5]
    ids, mask = lm.generate_ids(buffer, np.array([8, 5]), 4)
    ids, mask = to_numpy(ids), to_numpy(mask)
    # Each generated token is the argmax of a full forward pass over what precedes it.
    for row, length in enumerate([8, 5]):
        generated = ids[row][mask[row]].tolist()
        assert 1 <= len(generated) <= 4
        for offset, token in enumerate(generated):
            prefix = ids[row : row + 1, : length + offset]
            logits = to_numpy(lm({"token_ids": prefix, "padding_mask": np.ones_like(prefix)}))
            assert token == logits[0, -1].argmax()
