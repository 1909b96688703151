"""Sequence-to-sequence task model: tied output head, scoring and cached generation."""

import keras
import numpy as np
from keras import ops

from kzoo.layers.write_at import write_at
from kzoo.models import generation
from kzoo.models.task_model import TaskModel

STRATEGIES = ("greedy", "sample", "beam")


def decode_with_strategy(
    step_fn, logits, cache, token_ids, prompt_lengths, max_new_tokens, end_id,
    strategy="greedy", temperature=0.0, top_k=0, top_p=1.0, seed=0, num_beams=4,
    length_penalty=0.0,
):
    """Runs `kzoo.models.generation`'s greedy, sampling or beam loop.

    Returns `(token_ids, generated_mask, scores)`; scores are the beam scores,
    zeros for greedy and sampling.
    """
    if strategy == "beam":
        return generation.beam_search(
            step_fn, logits, cache, token_ids, prompt_lengths, max_new_tokens,
            end_id, 0, num_beams=num_beams, length_penalty=length_penalty,
        )
    if strategy == "greedy":
        temperature = 0.0
    ids, mask = generation.decode(
        step_fn, logits, cache, token_ids, prompt_lengths, max_new_tokens, end_id, 0,
        temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
    )
    return ids, mask, ops.zeros((ops.shape(token_ids)[0],), "float32")


def start_buffer(batch, length, start_id):
    """`(batch, length)` int32 target buffer holding `start_id` at position 0,
    and prompt lengths of 1."""
    positions = ops.arange(length)[None, :]
    ids = ops.where(positions == 0, start_id, 0) * ops.ones((batch, 1), "int32")
    return ops.cast(ids, "int32"), ops.ones((batch,), "int32")


class _CompiledFunctions:
    """Compiled generation loops by settings. A plain object, not a dict, so
    Keras tracking leaves it alone."""

    def __init__(self):
        self.by_key = {}


@keras.saving.register_keras_serializable(package="kzoo")
class Seq2SeqTranslator(TaskModel):
    """Translation (any sequence-to-sequence task) on a `Seq2SeqBackbone`.

    Outputs float32 logits `(batch, target_length, vocabulary_size)` from the
    shared token embedding used in reverse (tied weights) over the decoder
    outputs. Training is teacher forcing: `decoder_token_ids` is the target after
    `start_token_id`, the labels are the target followed by `end_token_id` (label
    smoothing belongs to the loss, e.g. `CategoricalCrossentropy(label_smoothing=
    0.1)`). `generate` encodes the source once, projects the cross-attention
    keys/values once, and decodes with the self-attention KV cache inside one
    compiled loop: greedy, sampling (temperature, top-k, top-p) or beam search.

    Args:
        backbone: A `kzoo.models.Seq2SeqBackbone`.
        tokenizer: Optional tokenizer with `tokenize`, `detokenize`, `bos_id` and
            `eos_id`; needed for string inputs.
        start_token_id: First decoder token; defaults to the tokenizer's `bos_id`.
        end_token_id: Token that ends a sequence; defaults to the tokenizer's
            `eos_id`.

    Example:
    >>> from kzoo.models import Seq2SeqBackbone
    >>> backbone = Seq2SeqBackbone(vocabulary_size=50, num_layers=1, num_heads=2,
    ...                            hidden_dim=8, intermediate_dim=16,
    ...                            max_sequence_length=16)
    >>> translator = Seq2SeqTranslator(backbone, start_token_id=1, end_token_id=2)
    >>> out = translator.generate([[5, 6, 7, 2]], max_new_tokens=4)
    >>> len(out[0]) <= 4
    True
    """

    CONFIG_KEYS = ("start_token_id", "end_token_id")

    def __init__(
        self, backbone, tokenizer=None, start_token_id=None, end_token_id=None, **kwargs
    ):
        # === Layers ===
        self.backbone = backbone
        self.tokenizer = tokenizer

        # === Functional Model ===
        inputs = backbone.input
        hidden = backbone(inputs)["decoder_sequence_output"]
        logits = ops.cast(backbone.token_embedding(hidden, reverse=True), "float32")
        super().__init__(inputs=inputs, outputs=logits, **kwargs)

        # === Config ===
        if start_token_id is None and tokenizer is not None:
            start_token_id = int(tokenizer.bos_id)
        if end_token_id is None and tokenizer is not None:
            end_token_id = int(tokenizer.eos_id)
        self.start_token_id = start_token_id
        self.end_token_id = end_token_id
        self._generate_functions = _CompiledFunctions()

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
        token_log_probs = ops.take_along_axis(
            log_probs, target_ids[:, 1:, None], axis=-1
        )[..., 0]
        mask = ops.cast(inputs["decoder_padding_mask"], "float32")[:, 1:]
        return ops.sum(token_log_probs * mask, axis=-1)

    # --- Generation (keras.ops only: runs compiled, on any backend) --------------

    def _step(self, tokens, cache, index):
        hidden, cache = self.backbone.decode_with_cache(tokens[:, None], cache, index)
        logits = self.backbone.token_embedding(hidden[:, 0], reverse=True)
        return ops.cast(logits, "float32"), cache

    def _uncached_step(self, tokens, state, index):
        """The reference: the whole model re-run on everything so far."""
        target_ids = write_at(state["decoder_token_ids"], tokens[:, None], index)
        state = {**state, "decoder_token_ids": target_ids,
                 "decoder_padding_mask": ops.ones_like(target_ids)}
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
            `(target_ids, generated_mask, scores)` as `kzoo.models.generation`'s
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
            # Prefill the whole buffer once; positions past each prefix are
            # rewritten as the loop reaches them and are causally invisible before.
            hidden, cache = self.backbone.decode_with_cache(target_ids, cache, 0)
            hidden = ops.take(hidden, start - 1, axis=1)
            logits = self.backbone.token_embedding(hidden, reverse=True)
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
        return decode_with_strategy(
            step, ops.cast(logits, "float32"), cache, target_ids, target_prompt_lengths,
            max_new_tokens, self.end_token_id, strategy=strategy,
            temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
            num_beams=num_beams, length_penalty=length_penalty,
        )

    def generate(
        self,
        inputs,
        max_new_tokens=32,
        strategy="greedy",
        temperature=1.0,
        top_k=0,
        top_p=1.0,
        seed=0,
        num_beams=4,
        length_penalty=0.0,
        use_cache=True,
    ):
        """Generates a target for each source.

        Args:
            inputs: A string or list of strings (needs a tokenizer; each source
                gets the end token appended), or a list of token-id lists (used as
                given).
            max_new_tokens: Tokens to generate at most per source.
            strategy: `"greedy"`, `"sample"` or `"beam"`.
            temperature, top_k, top_p: Sampling controls (`top_k=0` and `top_p=1`
                disable their filters).
            seed: Sampling seed; the same seed gives the same tokens.
            num_beams, length_penalty: Beam search controls.
            use_cache: Decode with the caches (the default) or re-run the whole
                model at every step (same output, slower).

        Returns:
            The targets without the start and end tokens: a string or list of
            strings for string inputs, else lists of ids. Sources longer than
            `max_sequence_length` keep their first tokens.
        """
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}; received {strategy!r}")
        if strategy == "sample" and temperature <= 0:
            raise ValueError(f"temperature must be > 0 for sampling; received {temperature}")
        capacity = self.backbone.max_sequence_length
        if not 0 < max_new_tokens < capacity:
            raise ValueError(
                f"max_new_tokens must be in [1, {capacity - 1}] (max_sequence_length "
                f"is {capacity}); received {max_new_tokens}"
            )
        single = isinstance(inputs, str)
        is_text = single or (len(inputs) > 0 and isinstance(inputs[0], str))
        sources = [s[:capacity] for s in self._source_ids([inputs] if single else inputs, is_text)]
        start_id = self._require_start_id()
        # Powers of two bound the set of shapes the compiled loop is traced for.
        source_ids, source_mask = _right_pad(sources, _round_up(max(map(len, sources)), capacity))
        target_length = _round_up(max_new_tokens + 1, capacity)
        target_ids = np.zeros((len(sources), target_length), "int32")
        target_ids[:, 0] = start_id
        fn = self._generate_function(strategy, num_beams, use_cache)
        ids, mask, _ = fn(
            source_ids, source_mask, target_ids, np.ones((len(sources),), "int32"),
            np.int32(max_new_tokens), np.float32(temperature), np.int32(top_k),
            np.float32(top_p), np.int32(seed), np.float32(length_penalty),
        )
        ids, mask = ops.convert_to_numpy(ids), ops.convert_to_numpy(mask)
        outputs = [
            [int(t) for t in row[keep] if t != self.end_token_id]
            for row, keep in zip(ids, mask)
        ]
        if is_text:
            outputs = [self._detokenize(ids) for ids in outputs]
        return outputs[0] if single else outputs

    def _require_start_id(self):
        if self.start_token_id is None:
            raise ValueError(
                "generation needs a start token: Seq2SeqTranslator(..., "
                "start_token_id=...) or a tokenizer with bos_id"
            )
        return self.start_token_id

    def _source_ids(self, inputs, is_text):
        if not inputs:
            raise ValueError("generate() needs at least one source; received none")
        if not is_text:
            sources = [[int(t) for t in s] for s in inputs]
            if any(len(s) == 0 for s in sources):
                raise ValueError("token-id sources must not be empty")
            return sources
        if self.tokenizer is None:
            raise ValueError(
                "string sources need a tokenizer: Seq2SeqTranslator(..., tokenizer=...)"
            )
        tokenized = self.tokenizer.tokenize(list(inputs))
        tokenized = tokenized.to_list() if hasattr(tokenized, "to_list") else tokenized
        return [[int(t) for t in ids] + [self.end_token_id] for ids in tokenized]

    def _detokenize(self, ids):
        text = self.tokenizer.detokenize([ids] if ids else [[]])
        text = ops.convert_to_numpy(text) if not isinstance(text, (list, str)) else text
        value = text[0] if not isinstance(text, str) else text
        return value.decode("utf-8") if isinstance(value, bytes) else str(value)

    def _generate_function(self, strategy, num_beams, use_cache):
        key = (strategy, num_beams, use_cache)
        functions = self._generate_functions.by_key
        if key not in functions:
            from kzoo.jit import jit_function

            def fn(source_ids, source_mask, target_ids, target_lengths, new_tokens,
                   temperature, top_k, top_p, seed, penalty):
                return self.generate_ids(
                    source_ids, source_mask, new_tokens, strategy=strategy,
                    temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
                    num_beams=num_beams, length_penalty=penalty, target_ids=target_ids,
                    target_prompt_lengths=target_lengths, use_cache=use_cache,
                )

            functions[key] = jit_function(fn, self.variables)
        return functions[key]


def _round_up(length, capacity):
    """The next power of two, capped at `capacity`."""
    return min(capacity, 1 << (length - 1).bit_length())


def _right_pad(rows, length):
    ids = np.zeros((len(rows), length), "int32")
    mask = np.zeros((len(rows), length), "int32")
    for i, row in enumerate(rows):
        ids[i, : len(row)], mask[i, : len(row)] = row, 1
    return ids, mask
