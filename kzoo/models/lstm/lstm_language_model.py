"""The classic recurrent language model: embedding, stacked LSTMs, tied softmax."""

import keras
from keras import ops

from kzoo.layers import Dropout, ReversibleEmbedding
from kzoo.models import decoding
from kzoo.models.functional_model import FunctionalModel, token_inputs


@keras.saving.register_keras_serializable(package="kzoo")
class LSTMLanguageModel(FunctionalModel):
    """A stacked-LSTM next-token model, the baseline GPT is compared with.

    Same inputs (`{"token_ids", "padding_mask"}`) and outputs (float32 logits) as
    `GPTCausalLM`, so it trains on the same pipeline. The output projection is tied
    to the input embedding (Press and Wolf, 2017) through a projection to
    `embedding_dim`. `generate` uses the LSTM state as the decoding cache.

    Args:
        vocabulary_size: Number of tokens.
        embedding_dim: Width of the token embedding.
        hidden_dim: Width of each LSTM.
        num_layers: Number of stacked LSTMs.
        dropout: Dropout between layers.
        end_token_id: Token that ends decoding; defaults to the preprocessor's.
        preprocessor: Optional `kzoo.preprocessing.CausalLMPreprocessor` (the
            tokenizer and the training sequence length), saved with the model;
            `generate` then takes strings.
        dtype: Dtype policy.

    Example:
    >>> import numpy as np
    >>> lm = LSTMLanguageModel(vocabulary_size=30, embedding_dim=8, hidden_dim=16)
    >>> logits = lm({"token_ids": np.ones((2, 5), "int32"),
    ...              "padding_mask": np.ones((2, 5), "int32")})
    >>> tuple(logits.shape)
    (2, 5, 30)

    References:
        Zaremba et al., "Recurrent Neural Network Regularization", 2014.
    """

    NESTED_KEYS = ("preprocessor",)

    def __init__(
        self,
        vocabulary_size,
        embedding_dim,
        hidden_dim,
        num_layers=1,
        dropout=0.0,
        end_token_id=None,
        preprocessor=None,
        dtype=None,
        **kwargs,
    ):
        if end_token_id is None and preprocessor is not None:
            end_token_id = preprocessor.end_token_id
        # === Layers ===
        self.token_embedding = ReversibleEmbedding(
            vocabulary_size, embedding_dim, dtype=dtype, name="token_embedding"
        )
        self.lstm_layers = [
            keras.layers.LSTM(
                hidden_dim, return_sequences=True, return_state=True, dtype=dtype, name=f"lstm_{i}"
            )
            for i in range(num_layers)
        ]
        self.dropout_layer = Dropout(dropout, dtype=dtype, name="dropout")
        self.projection = keras.layers.Dense(embedding_dim, dtype=dtype, name="projection")

        # === Functional Model ===
        inputs = token_inputs("token_ids", "padding_mask")
        x = self.dropout_layer(self.token_embedding(inputs["token_ids"]))
        for lstm in self.lstm_layers:
            x = self.dropout_layer(lstm(x)[0])
        super().__init__(inputs=inputs, outputs=self._logits(x), dtype=dtype, **kwargs)

        # === Config ===
        self._store_config(locals())

    @property
    def tokenizer(self):
        """The preprocessor's tokenizer (None without a preprocessor)."""
        return None if self.preprocessor is None else self.preprocessor.tokenizer

    def _logits(self, x):
        hidden = self.projection(x)
        return ops.cast(self.token_embedding(hidden, reverse=True), "float32")

    def _step(self, tokens, states, index):
        x = self.token_embedding(tokens[:, None])
        new_states = []
        for lstm, (h, c) in zip(self.lstm_layers, states):
            x, h, c = lstm(x, initial_state=[h, c])
            new_states.append((h, c))
        return self._logits(x[:, 0]), tuple(new_states)

    def generate_ids(
        self, token_ids, prompt_lengths, max_new_tokens, temperature=0.0, top_k=0, top_p=1.0, seed=0
    ):
        """Greedy or sampled decoding; see `kzoo.models.decoding.decode`."""
        token_ids = ops.cast(token_ids, "int32")
        batch = ops.shape(token_ids)[0]
        zeros = ops.zeros((batch, self.hidden_dim), self.compute_dtype)
        states = tuple((zeros, zeros) for _ in self.lstm_layers)
        start = ops.min(ops.cast(prompt_lengths, "int32"))
        logits, states = decoding.stepwise_prefill(self._step, states, token_ids, start)
        return decoding.decode(
            self._step,
            logits,
            states,
            token_ids,
            prompt_lengths,
            max_new_tokens,
            self.end_token_id,
            0,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            seed=seed,
        )
