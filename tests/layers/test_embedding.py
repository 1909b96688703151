import numpy as np

from kzoo.layers import ReversibleEmbedding
from kzoo.testing import run_layer_test, to_numpy


def test_reversible_embedding_ties_input_and_output():
    ids = np.array([[1, 2, 3], [4, 0, 9]], "int32")
    layer, out = run_layer_test(
        ReversibleEmbedding,
        {"input_dim": 10, "output_dim": 4},
        ids,
        expected_output_shape=(2, 3, 4),
        run_mixed_precision=False,
    )
    table = to_numpy(layer.embeddings)
    np.testing.assert_allclose(to_numpy(out), table[ids])
    hidden = np.random.default_rng(0).normal(size=(2, 3, 4)).astype("float32")
    logits = to_numpy(layer(hidden, reverse=True))
    np.testing.assert_allclose(logits, hidden @ table.T, rtol=1e-5, atol=1e-6)
    assert len(layer.weights) == 1  # one shared matrix, no separate output kernel
