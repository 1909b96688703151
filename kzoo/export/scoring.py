"""Log-likelihood of token sequences under any kzoo causal language model.

`GPTCausalLM` has a `score` method; models without one (`LSTMLanguageModel`) are
scored from their logits with the same formula, so the exported `score` signature
and the Keras reference it is checked against mean the same thing for every family.
"""

from keras import ops


def sequence_log_likelihood(model, token_ids, padding_mask):
    """`sum_t log p(x_t | x_<t)` over the real tokens after the first.

    Args:
        model: A kzoo causal LM taking `{"token_ids", "padding_mask"}` and
            returning float logits `(batch, length, vocabulary_size)`.
        token_ids: `(batch, length)` int ids, right-padded.
        padding_mask: `(batch, length)`, 1 for real tokens.

    Returns:
        `(batch,)` float32 log-likelihoods (in nats).

    Example:
    >>> import numpy as np
    >>> from kzoo.models import LSTMLanguageModel
    >>> lm = LSTMLanguageModel(vocabulary_size=10, embedding_dim=4, hidden_dim=8)
    >>> ids = np.array([[3, 5, 6], [3, 4, 0]], "int32")
    >>> scores = sequence_log_likelihood(lm, ids, np.array([[1, 1, 1], [1, 1, 0]]))
    >>> tuple(scores.shape), bool((np.asarray(scores) < 0).all())
    ((2,), True)
    """
    if hasattr(model, "score"):
        return ops.cast(model.score(token_ids, padding_mask), "float32")
    logits = model({"token_ids": token_ids, "padding_mask": padding_mask})
    log_probs = ops.log_softmax(ops.cast(logits[:, :-1], "float32"), axis=-1)
    targets = ops.cast(token_ids[:, 1:], "int32")
    token_log_probs = ops.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
    mask = ops.cast(padding_mask[:, 1:], "float32")
    return ops.sum(token_log_probs * mask, axis=-1)
