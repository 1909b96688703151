"""The recurrent baseline: LSTM encoder-decoder with Luong attention."""

import keras
from keras import ops

from kzoo.layers import Dropout, ReversibleEmbedding
from kzoo.models.functional_model import ENCODER_DECODER_INPUTS, FunctionalModel, token_inputs


@keras.saving.register_keras_serializable(package="kzoo")
class LSTMSeq2SeqBackbone(FunctionalModel):
    """LSTM encoder-decoder with global attention, the baseline the Transformer
    is compared with.

    Same inputs and outputs as `Seq2SeqBackbone` (`{"encoder_token_ids",
    "encoder_padding_mask", "decoder_token_ids", "decoder_padding_mask"}` in,
    `{"encoder_sequence_output", "decoder_sequence_output"}` out, `logits()` for
    the head), so `Seq2SeqLM` trains, decodes and exports it on the same pipeline. A (bi)LSTM encoder reads the source; each decoder LSTM starts from
    the final state of the encoder layer below it (both directions concatenated);
    each decoder output `h_t` attends to the encoder outputs `s` with Luong's
    "general" score `h_t^T W_a s`, and `tanh(W_c [context; h_t])` feeds the output
    projection. There is no input feeding, so training runs the decoder over the
    whole target at once, and decoding caches only the LSTM states (plus the
    encoder outputs and their attention keys, computed once); `recurrent` tells
    `Seq2SeqLM` to feed a target prefix one token at a time.

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
        max_sequence_length: Longest target `Seq2SeqLM.generate` produces (the
            model itself has no length limit).
        dtype: Dtype policy.

    Example:
    >>> import numpy as np
    >>> model = LSTMSeq2SeqBackbone(vocabulary_size=30, embedding_dim=8,
    ...                             hidden_dim=16)
    >>> out = model({"encoder_token_ids": np.ones((2, 6), "int32"),
    ...                 "encoder_padding_mask": np.ones((2, 6), "int32"),
    ...                 "decoder_token_ids": np.ones((2, 4), "int32"),
    ...                 "decoder_padding_mask": np.ones((2, 4), "int32")})
    >>> tuple(model.logits(out["decoder_sequence_output"]).shape)
    (2, 4, 30)

    References:
        Luong et al., "Effective Approaches to Attention-based Neural Machine
        Translation", 2015.
    """

    recurrent = True

    def __init__(
        self,
        vocabulary_size,
        embedding_dim,
        hidden_dim,
        num_layers=1,
        bidirectional=True,
        dropout=0.0,
        tie_embeddings=True,
        max_sequence_length=512,
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
            keras.layers.LSTM(
                hidden_dim,
                return_sequences=True,
                return_state=True,
                dtype=dtype,
                name=f"decoder_lstm_{i}",
            )
            for i in range(num_layers)
        ]
        self.attention_key = keras.layers.Dense(
            hidden_dim, use_bias=False, dtype=dtype, name="attention_key"
        )
        self.attention_output = keras.layers.Dense(
            hidden_dim, activation="tanh", use_bias=False, dtype=dtype, name="attention_output"
        )
        self.dropout_layer = Dropout(dropout, dtype=dtype, name="dropout")
        self.output_dense = keras.layers.Dense(
            embedding_dim if tie_embeddings else vocabulary_size,
            dtype=dtype,
            name="projection" if tie_embeddings else "output_dense",
        )

        # === Functional Model ===
        inputs = token_inputs(*ENCODER_DECODER_INPUTS)
        self.tie_embeddings = tie_embeddings
        cache = self.encode(inputs["encoder_token_ids"], inputs["encoder_padding_mask"])
        # Right-padded targets need no mask: the decoder only looks back.
        hidden, _ = self.decode_with_cache(inputs["decoder_token_ids"], cache, 0)
        outputs = {
            "encoder_sequence_output": cache["encoder_outputs"],
            "decoder_sequence_output": hidden,
        }
        super().__init__(inputs=inputs, outputs=outputs, dtype=dtype, **kwargs)

        # === Config ===
        self._store_config(locals())

    @staticmethod
    def _encoder_lstm(hidden_dim, bidirectional, dtype, name):
        if not bidirectional:
            return keras.layers.LSTM(
                hidden_dim, return_sequences=True, return_state=True, dtype=dtype, name=name
            )
        return keras.layers.Bidirectional(
            keras.layers.LSTM(
                hidden_dim // 2, return_sequences=True, return_state=True, dtype=dtype
            ),
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
                state = [
                    ops.concatenate([state[0], state[2]], axis=-1),
                    ops.concatenate([state[1], state[3]], axis=-1),
                ]
            states.append(tuple(state))
            x = self.dropout_layer(x, training=training)
        return {
            "encoder_outputs": x,
            "encoder_keys": self.attention_key(x),
            "encoder_padding_mask": ops.cast(encoder_padding_mask, "int32"),
            "states": tuple(states),
        }

    def decoder_cache(self, encoder_output, encoder_padding_mask, max_length):
        """The decoding state: `encode()`'s output already is (the arguments after
        it are the `Seq2SeqLM` interface)."""
        return encoder_output

    def decode_with_cache(self, token_ids, cache, cache_update_index, training=None):
        """Decoder outputs for `token_ids` continuing from the cached states;
        returns `(decoder_sequence_output, cache)` with the states after the last
        token (the index is implied by the states)."""
        x = self.dropout_layer(self.token_embedding(token_ids), training=training)
        states = []
        for lstm, (h, c) in zip(self.decoder_layers, cache["states"]):
            x, h, c = lstm(x, initial_state=[h, c], training=training)
            states.append((h, c))
            x = self.dropout_layer(x, training=training)
        x = self.dropout_layer(self._attend(x, cache), training=training)
        return x, {**cache, "states": tuple(states)}

    def logits(self, decoder_sequence_output):
        """The output projection (through the embedding when tied)."""
        if self.tie_embeddings:
            return self.token_embedding(self.output_dense(decoder_sequence_output), reverse=True)
        return self.output_dense(decoder_sequence_output)

    def _attend(self, queries, cache):
        """Luong "general" attention: `tanh(W_c [context; h_t])`."""
        scores = ops.einsum("btd,bsd->bts", queries, cache["encoder_keys"])
        visible = ops.cast(cache["encoder_padding_mask"], "bool")[:, None, :]
        scores = ops.where(visible, ops.cast(scores, "float32"), -1e9)
        weights = ops.cast(ops.softmax(scores, axis=-1), queries.dtype)
        context = ops.einsum("bts,bsd->btd", weights, cache["encoder_outputs"])
        return self.attention_output(ops.concatenate([context, queries], axis=-1))
