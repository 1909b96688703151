"""Sequence-to-sequence task model: output head, scoring and cached decoding."""

import keras
import numpy as np
from keras import ops

from kzoo.layers.write_at import write_at
from kzoo.models import decoding, text_generation
from kzoo.models.text_generation import TextGenerationModel


def start_buffer(batch, length, start_id):
    """`(batch, length)` int32 target buffer holding `start_id` at position 0,
    and prompt lengths of 1."""
    positions = ops.arange(length)[None, :]
    ids = ops.where(positions == 0, start_id, 0) * ops.ones((batch, 1), "int32")
    return ops.cast(ids, "int32"), ops.ones((batch,), "int32")


@keras.saving.register_keras_serializable(package="kzoo")
class Seq2SeqLM(TextGenerationModel):
    """Translation or any text-to-text task on an encoder-decoder backbone.

    The backbone is a `Seq2SeqBackbone`, a `T5Backbone` or an
    `LSTMSeq2SeqBackbone`: anything with their interface (the four-key input
    dict, `{"decoder_sequence_output", ...}` out, `logits()`, `encode()`,
    `decoder_cache()` and `decode_with_cache()`; `recurrent = True` when the
    decoder must be fed one token at a time). Outputs float32 logits
    `(batch, target_length, vocabulary_size)` of the decoder outputs. Training is teacher forcing: `decoder_token_ids` is the target after
    `start_token_id`, the labels are the target followed by `end_token_id` (label
    smoothing belongs to the loss, e.g. `CategoricalCrossentropy(label_smoothing=
    0.1)`). `generate` encodes the source once, projects the cross-attention
    keys/values once, and decodes with the self-attention KV cache inside one
    compiled loop: greedy, sampling (temperature, top-k, top-p) or beam search.
    String sources get the end token appended (id sources are used as given);
    sources longer than `max_sequence_length` keep their first tokens (and, for
    strings, the end token).

    Args:
        backbone: A `Seq2SeqBackbone`, `T5Backbone` or `LSTMSeq2SeqBackbone`.
        tokenizer: Optional tokenizer with `tokenize`, `detokenize`, `bos_id` and
            `eos_id`; needed for string inputs. Give it inside `preprocessor`
            instead when there is one.
        start_token_id: First decoder token; defaults to the preprocessor's, else
            the tokenizer's `bos_id`.
        end_token_id: Token that ends a sequence; defaults to the preprocessor's,
            else the tokenizer's `eos_id`.
        preprocessor: Optional `kzoo.preprocessing.Seq2SeqPreprocessor` (the
            tokenizer and the length limits), saved with the model.

    Example:
    >>> from kzoo.models import Seq2SeqBackbone
    >>> backbone = Seq2SeqBackbone(vocabulary_size=50, num_layers=1, num_heads=2,
    ...                            hidden_dim=8, intermediate_dim=16,
    ...                            max_sequence_length=16)
    >>> translator = Seq2SeqLM(backbone, start_token_id=1, end_token_id=2)
    >>> out = translator.generate([[5, 6, 7, 2]], max_new_tokens=4)
    >>> len(out[0]) <= 4
    True
    """

    CONFIG_KEYS = ("start_token_id", "end_token_id")
    PROMPT_NAME = "source"

    def __init__(
        self,
        backbone,
        tokenizer=None,
        start_token_id=None,
        end_token_id=None,
        preprocessor=None,
        **kwargs,
    ):
        # === Layers ===
        self.backbone = backbone
        self._set_preprocessing(tokenizer, preprocessor)

        # === Functional Model ===
        inputs = backbone.input
        hidden = backbone(inputs)["decoder_sequence_output"]
        logits = ops.cast(backbone.logits(hidden), "float32")
        super().__init__(inputs=inputs, outputs=logits, **kwargs)

        # === Config ===
        # Defaults: the preprocessor's ids, else the tokenizer's.
        if preprocessor is not None:
            start_token_id = (
                preprocessor.start_token_id if start_token_id is None else start_token_id
            )
            end_token_id = preprocessor.end_token_id if end_token_id is None else end_token_id
        if start_token_id is None and self.tokenizer is not None:
            start_token_id = int(self.tokenizer.bos_id)
        if end_token_id is None and self.tokenizer is not None:
            end_token_id = int(self.tokenizer.eos_id)
        self.start_token_id = start_token_id
        self.end_token_id = end_token_id

    # --- Scoring -----------------------------------------------------------------

    def score(self, inputs):
        """Log-likelihood of each target given its source: `sum_t log p(y_t |
        y_<t, x)` over the real decoder tokens after the first (the start token).

        Args:
            inputs: The model's input dict; `decoder_token_ids` is the start token,
                the target and (to score ending there) the end token.

        Returns:
            `(batch,)` float32.
        """
        logits = self(inputs)
        target_ids = ops.cast(inputs["decoder_token_ids"], "int32")
        log_probs = ops.log_softmax(logits[:, :-1], axis=-1)
        token_log_probs = ops.take_along_axis(log_probs, target_ids[:, 1:, None], axis=-1)[..., 0]
        mask = ops.cast(inputs["decoder_padding_mask"], "float32")[:, 1:]
        return ops.sum(token_log_probs * mask, axis=-1)

    # --- Generation (keras.ops only: runs compiled, on any backend) --------------

    def _step(self, tokens, cache, index):
        hidden, cache = self.backbone.decode_with_cache(tokens[:, None], cache, index)
        return ops.cast(self.backbone.logits(hidden[:, 0]), "float32"), cache

    def _uncached_step(self, tokens, state, index):
        """The reference: the whole model re-run on everything so far."""
        target_ids = write_at(state["decoder_token_ids"], tokens[:, None], index)
        state = {
            **state,
            "decoder_token_ids": target_ids,
            "decoder_padding_mask": ops.ones_like(target_ids),
        }
        return ops.take(self(state), index, axis=1), state

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
        use_cache=True,
    ):
        """Generates targets for a batch of right-padded sources.

        Args:
            source_ids, source_padding_mask: `(batch, source_length)` sources.
            max_new_tokens: Tokens to generate at most per row.
            strategy, temperature, top_k, top_p, seed, num_beams, length_penalty:
                See `generate`.
            target_ids: Optional `(batch, max_length)` right-padded target buffer
                holding each row's forced prefix (at least the start token); by
                default a buffer of `max_new_tokens + 1` (an int then) starting
                with `start_token_id`.
            target_prompt_lengths: `(batch,)` prefix lengths in `target_ids`.
            use_cache: Decode with the caches, or re-run the whole model at every
                step (same outputs, slower; a reference for tests).

        Returns:
            `(target_ids, generated_mask, scores)` as `kzoo.models.decoding`'s
            loops return them (scores are beam scores, zeros otherwise).
        """
        source_ids = ops.cast(source_ids, "int32")
        source_padding_mask = ops.cast(source_padding_mask, "int32")
        batch = ops.shape(source_ids)[0]
        if target_ids is None:
            target_ids, target_prompt_lengths = start_buffer(
                batch, max_new_tokens + 1, self._require_start_id()
            )
        target_ids = ops.cast(target_ids, "int32")
        target_prompt_lengths = ops.cast(target_prompt_lengths, "int32")
        start = ops.min(target_prompt_lengths)
        if use_cache:
            encoder_output = self.backbone.encode(source_ids, source_padding_mask)
            cache = self.backbone.decoder_cache(
                encoder_output, source_padding_mask, ops.shape(target_ids)[1]
            )
            if getattr(self.backbone, "recurrent", False):
                logits, cache = decoding.stepwise_prefill(self._step, cache, target_ids, start)
            else:
                # Prefill the whole buffer once; positions past each prefix are
                # rewritten as the loop reaches them and are causally invisible.
                hidden, cache = self.backbone.decode_with_cache(target_ids, cache, 0)
                logits = self.backbone.logits(ops.take(hidden, start - 1, axis=1))
            step = self._step
        else:
            cache = {
                "encoder_token_ids": source_ids,
                "encoder_padding_mask": source_padding_mask,
                "decoder_token_ids": target_ids,
                "decoder_padding_mask": ops.ones_like(target_ids),
            }
            logits = ops.take(self(cache), start - 1, axis=1)
            step = self._uncached_step
        return self._decode(
            step, logits, cache, target_ids, target_prompt_lengths, max_new_tokens, locals()
        )

    def _generation_buffers(self, rows, is_text, max_new_tokens):
        """String sources end with the end token, cut before it as the exported
        signature does; every source keeps its first `max_sequence_length`
        tokens. The targets start with `start_token_id`."""
        capacity = self.backbone.max_sequence_length
        if is_text:
            rows = [row[: capacity - 1] + [self.end_token_id] for row in rows]
        rows = [row[:capacity] for row in rows]
        start_id = self._require_start_id()
        source_ids, source_mask = text_generation.right_pad(
            rows, text_generation.round_up(max(map(len, rows)), capacity)
        )
        target_length = text_generation.round_up(max_new_tokens + 1, capacity)
        target_ids = np.zeros((len(rows), target_length), "int32")
        target_ids[:, 0] = start_id
        return {
            "source_ids": source_ids,
            "source_padding_mask": source_mask,
            "target_ids": target_ids,
            "target_prompt_lengths": np.ones((len(rows),), "int32"),
        }

    def _require_start_id(self):
        if self.start_token_id is None:
            raise ValueError(
                "generation needs a start token: Seq2SeqLM(..., "
                "start_token_id=...) or a tokenizer with bos_id"
            )
        return self.start_token_id
