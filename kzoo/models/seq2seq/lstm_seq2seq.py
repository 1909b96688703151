"""The recurrent baseline: LSTM encoder-decoder with Luong attention."""

import keras
from keras import ops

from kzoo.layers import ReversibleEmbedding
from kzoo.models import generation
from kzoo.models.functional_model import FunctionalModel
from kzoo.models.seq2seq.seq2seq_translator import decode_with_strategy, start_buffer


@keras.saving.register_keras_serializable(package="kzoo")
class LSTMSeq2Seq(FunctionalModel):
    """LSTM encoder-decoder with global attention, the baseline the Transformer
    is compared with.

    Same inputs as `Seq2SeqBackbone` (`{"encoder_token_ids", "encoder_padding_mask",
    "decoder_token_ids", "decoder_padding_mask"}`) and the same output as
    `Seq2SeqTranslator` (float32 logits over the target), so it trains on the same
    pipeline. A (bi)LSTM encoder reads the source; each decoder LSTM starts from
    the final state of the encoder layer below it (both directions concatenated);
    each decoder output `h_t` attends to the encoder outputs `s` with Luong's
    "general" score `h_t^T W_a s`, and `tanh(W_c [context; h_t])` feeds the output
    projection. There is no input feeding, so training runs the decoder over the
    whole target at once, and decoding caches only the LSTM states (plus the
    encoder outputs and their attention keys, computed once).

    Args:
        vocabulary_size: Number of tokens (source and target share the embedding).
        embedding_dim: Width of the token embedding.
        hidden_dim: Width of the decoder LSTMs and of the encoder outputs (each
            direction has `hidden_dim // 2` units when bidirectional).
        num_layers: LSTMs in the encoder and in the decoder.
        bidirectional: Whether the encoder LSTMs read in both directions.
        dropout: Dropout on embeddings and between layers.
        tie_embeddings: Output projection tied to the embedding (through a
            projection to `embedding_dim`) or a separate dense layer.
        start_token_id: First decoder token of generation.
        end_token_id: Token that ends generation.
        dtype: Dtype policy.

    Example:
    >>> import numpy as np
    >>> model = LSTMSeq2Seq(vocabulary_size=30, embedding_dim=8, hidden_dim=16,
    ...                     start_token_id=1, end_token_id=2)
    >>> logits = model({"encoder_token_ids": np.ones((2, 6), "int32"),
    ...                 "encoder_padding_mask": np.ones((2, 6), "int32"),
    ...                 "decoder_token_ids": np.ones((2, 4), "int32"),
    ...                 "decoder_padding_mask": np.ones((2, 4), "int32")})
    >>> tuple(logits.shape)
    (2, 4, 30)

    References:
        Luong et al., "Effective Approaches to Attention-based Neural Machine
        Translation", 2015.
    """

    CONFIG_KEYS = ("vocabulary_size", "embedding_dim", "hidden_dim", "num_layers",
                   "bidirectional", "dropout", "tie_embeddings", "start_token_id",
                   "end_token_id")

    def __init__(
        self,
        vocabulary_size,
        embedding_dim,
        hidden_dim,
        num_layers=1,
        bidirectional=True,
        dropout=0.0,
        tie_embeddings=True,
        start_token_id=None,
        end_token_id=None,
        dtype=None,
        **kwargs,
    ):
        if bidirectional and hidden_dim % 2:
            raise ValueError(
                f"a bidirectional encoder needs an even hidden_dim (two halves); "
                f"received hidden_dim={hidden_dim}"
            )

        # === Layers ===
        self.token_embedding = ReversibleEmbedding(
            vocabulary_size, embedding_dim, dtype=dtype, name="token_embedding"
        )
        self.encoder_layers = [
            self._encoder_lstm(hidden_dim, bidirectional, dtype, f"encoder_lstm_{i}")
            for i in range(num_layers)
        ]
        self.decoder_layers = [
            keras.layers.LSTM(hidden_dim, return_sequences=True, return_state=True,
                              dtype=dtype, name=f"decoder_lstm_{i}")
            for i in range(num_layers)
        ]
        self.attention_key = keras.layers.Dense(
            hidden_dim, use_bias=False, dtype=dtype, name="attention_key"
        )
        self.attention_output = keras.layers.Dense(
            hidden_dim, activation="tanh", use_bias=False, dtype=dtype,
            name="attention_output",
        )
        self.dropout_layer = keras.layers.Dropout(dropout, dtype=dtype, name="dropout")
        self.output_dense = keras.layers.Dense(
            embedding_dim if tie_embeddings else vocabulary_size,
            dtype=dtype,
            name="projection" if tie_embeddings else "output_dense",
        )

        # === Functional Model ===
        inputs = {
            name: keras.Input(shape=(None,), dtype="int32", name=name)
            for name in ("encoder_token_ids", "encoder_padding_mask",
                         "decoder_token_ids", "decoder_padding_mask")
        }
        self.tie_embeddings = tie_embeddings
        cache = self.encode(inputs["encoder_token_ids"], inputs["encoder_padding_mask"])
        # Right-padded targets need no mask: the decoder only looks back.
        logits, _ = self._decode(inputs["decoder_token_ids"], cache)
        super().__init__(inputs=inputs, outputs=logits, dtype=dtype, **kwargs)

        # === Config ===
        self.vocabulary_size = vocabulary_size
        self.embedding_dim = embedding_dim
        self.hidden_dim = hidden_dim
        self.num_layers = num_layers
        self.bidirectional = bidirectional
        self.dropout = dropout
        self.tie_embeddings = tie_embeddings
        self.start_token_id = start_token_id
        self.end_token_id = end_token_id

    @staticmethod
    def _encoder_lstm(hidden_dim, bidirectional, dtype, name):
        if not bidirectional:
            return keras.layers.LSTM(hidden_dim, return_sequences=True,
                                     return_state=True, dtype=dtype, name=name)
        return keras.layers.Bidirectional(
            keras.layers.LSTM(hidden_dim // 2, return_sequences=True,
                              return_state=True, dtype=dtype),
            dtype=dtype,
            name=name,
        )

    def encode(self, encoder_token_ids, encoder_padding_mask, training=None):
        """Runs the encoder; returns the decoding cache: the encoder outputs, their
        attention keys, the padding mask and one `(h, c)` per decoder LSTM."""
        mask = ops.cast(encoder_padding_mask, "bool")
        x = self.dropout_layer(self.token_embedding(encoder_token_ids), training=training)
        states = []
        for lstm in self.encoder_layers:
            x, *state = lstm(x, mask=mask, training=training)
            if len(state) == 4:  # forward (h, c), backward (h, c)
                state = [ops.concatenate([state[0], state[2]], axis=-1),
                         ops.concatenate([state[1], state[3]], axis=-1)]
            states.append(tuple(state))
            x = self.dropout_layer(x, training=training)
        return {
            "encoder_outputs": x,
            "encoder_keys": self.attention_key(x),
            "encoder_padding_mask": ops.cast(encoder_padding_mask, "int32"),
            "states": tuple(states),
        }

    def _decode(self, token_ids, cache, training=None):
        """Logits for `token_ids` continuing from the cached states; returns
        `(logits, cache)` with the states after the last token."""
        x = self.dropout_layer(self.token_embedding(token_ids), training=training)
        states = []
        for lstm, (h, c) in zip(self.decoder_layers, cache["states"]):
            x, h, c = lstm(x, initial_state=[h, c], training=training)
            states.append((h, c))
            x = self.dropout_layer(x, training=training)
        x = self._attend(x, cache)
        x = self.dropout_layer(x, training=training)
        if self.tie_embeddings:
            logits = self.token_embedding(self.output_dense(x), reverse=True)
        else:
            logits = self.output_dense(x)
        return ops.cast(logits, "float32"), {**cache, "states": tuple(states)}

    def _attend(self, queries, cache):
        """Luong "general" attention: `tanh(W_c [context; h_t])`."""
        scores = ops.einsum("btd,bsd->bts", queries, cache["encoder_keys"])
        visible = ops.cast(cache["encoder_padding_mask"], "bool")[:, None, :]
        scores = ops.where(visible, ops.cast(scores, "float32"), -1e9)
        weights = ops.cast(ops.softmax(scores, axis=-1), queries.dtype)
        context = ops.einsum("bts,bsd->btd", weights, cache["encoder_outputs"])
        return self.attention_output(ops.concatenate([context, queries], axis=-1))

    def _step(self, tokens, cache, index):
        logits, cache = self._decode(tokens[:, None], cache)
        return logits[:, 0], cache

    def generate_ids(
        self,
        source_ids,
        source_padding_mask,
        max_new_tokens,
        strategy="greedy",
        temperature=0.0,
        top_k=0,
        top_p=1.0,
        seed=0,
        num_beams=4,
        length_penalty=0.0,
        target_ids=None,
        target_prompt_lengths=None,
    ):
        """Greedy, sampled or beam decoding with the LSTM states as the cache;
        arguments and result as for `Seq2SeqTranslator.generate_ids`."""
        if target_ids is None:
            if self.start_token_id is None:
                raise ValueError("generation needs LSTMSeq2Seq(..., start_token_id=...)")
            target_ids, target_prompt_lengths = start_buffer(
                ops.shape(source_ids)[0], max_new_tokens + 1, self.start_token_id
            )
        target_ids = ops.cast(target_ids, "int32")
        cache = self.encode(ops.cast(source_ids, "int32"), source_padding_mask)
        start = ops.min(ops.cast(target_prompt_lengths, "int32"))
        logits, cache = generation.stepwise_prefill(self._step, cache, target_ids, start)
        return decode_with_strategy(
            self._step, logits, cache, target_ids, target_prompt_lengths,
            max_new_tokens, self.end_token_id, strategy=strategy,
            temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
            num_beams=num_beams, length_penalty=length_penalty,
        )
