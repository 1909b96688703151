"""GPT causal language model: tied output head, scoring and cached generation."""

import keras
import numpy as np
from keras import ops

from kzoo.layers.write_at import write_at
from kzoo.models import generation
from kzoo.models.gpt.gpt_backbone import GPTBackbone
from kzoo.models.task_model import TaskModel

STRATEGIES = ("greedy", "sample", "beam")


class _CompiledFunctions:
    """Compiled `generate` loops by settings. A plain object, not a dict, so
    Keras/SavedModel tracking leaves it alone (exports work after generating)."""

    def __init__(self):
        self.by_key = {}


@keras.saving.register_keras_serializable(package="kzoo")
class GPTCausalLM(TaskModel):
    """Next-token prediction on a `GPTBackbone`, with generation.

    Outputs float32 logits `(batch, length, vocabulary_size)` from the token
    embedding used in reverse (tied weights). `generate` accepts strings (when a
    tokenizer is attached) or token ids, and decodes with a KV cache inside one
    compiled loop: greedy, temperature sampling with top-k / top-p, or beam search.

    Args:
        backbone: A `kzoo.models.GPTBackbone`.
        tokenizer: Optional tokenizer with `tokenize`, `detokenize` and `eos_id`
            (e.g. `kzoo.tokenizers.SentencePieceTokenizer`); needed for strings.
        end_token_id: Token that ends a document (and generation); defaults to the
            tokenizer's `eos_id`.

    Example:
    >>> import numpy as np
    >>> backbone = GPTBackbone(vocabulary_size=50, num_layers=1, num_heads=2,
    ...                        hidden_dim=8, intermediate_dim=16,
    ...                        max_sequence_length=16)
    >>> lm = GPTCausalLM(backbone, end_token_id=1)
    >>> out = lm.generate([[1, 7, 9]], max_new_tokens=4)
    >>> len(out[0]) <= 4
    True
    """

    CONFIG_KEYS = ("end_token_id",)

    def __init__(self, backbone, tokenizer=None, end_token_id=None, **kwargs):
        # === Layers ===
        self.backbone = backbone
        self.tokenizer = tokenizer

        # === Functional Model ===
        inputs = backbone.input
        hidden = backbone(inputs)
        logits = ops.cast(backbone.token_embedding(hidden, reverse=True), "float32")
        super().__init__(inputs=inputs, outputs=logits, **kwargs)

        # === Config ===
        if end_token_id is None and tokenizer is not None:
            end_token_id = int(tokenizer.eos_id)
        self.end_token_id = end_token_id
        self._generate_functions = _CompiledFunctions()

    # --- Scoring -----------------------------------------------------------------

    def score(self, token_ids, padding_mask):
        """Log-likelihood of each sequence: `sum_t log p(x_t | x_<t)` over the real
        tokens after the first. Returns `(batch,)` float32."""
        logits = self({"token_ids": token_ids, "padding_mask": padding_mask})
        log_probs = ops.log_softmax(logits[:, :-1], axis=-1)
        targets = ops.cast(token_ids[:, 1:], "int32")
        token_log_probs = ops.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
        mask = ops.cast(padding_mask[:, 1:], "float32")
        return ops.sum(token_log_probs * mask, axis=-1)

    # --- Generation (keras.ops only: runs compiled, on any backend, and exported) --

    def _step(self, tokens, cache, index):
        hidden, cache = self.backbone.call_with_cache(tokens[:, None], cache, index)
        logits = self.backbone.token_embedding(hidden[:, 0], reverse=True)
        return ops.cast(logits, "float32"), cache

    def _uncached_step(self, tokens, token_ids, index):
        token_ids = write_at(token_ids, tokens[:, None], index)
        logits = self(
            {"token_ids": token_ids, "padding_mask": ops.ones_like(token_ids)}
        )
        next_logits = ops.take(logits, index, axis=1)
        return next_logits, token_ids

    def generate_ids(
        self,
        token_ids,
        prompt_lengths,
        max_new_tokens,
        strategy="greedy",
        temperature=0.0,
        top_k=0,
        top_p=1.0,
        seed=0,
        num_beams=4,
        length_penalty=0.0,
        use_cache=True,
    ):
        """Fills a right-padded `(batch, max_length)` buffer (room for
        `max(prompt_lengths) + max_new_tokens`); see
        `kzoo.models.generation`. Returns `(token_ids, generated_mask, scores)`
        (scores are beam scores, zeros otherwise)."""
        token_ids = ops.cast(token_ids, "int32")
        prompt_lengths = ops.cast(prompt_lengths, "int32")
        batch, max_length = ops.shape(token_ids)[0], ops.shape(token_ids)[1]
        start = ops.min(prompt_lengths)
        if use_cache:
            # Prefill the whole buffer once; positions past each prompt are
            # rewritten as the loop reaches them and are causally invisible before.
            cache = self.backbone.empty_cache(batch, max_length)
            hidden, cache = self.backbone.call_with_cache(token_ids, cache, 0)
            step = self._step
        else:
            hidden = self.backbone(
                {"token_ids": token_ids, "padding_mask": ops.ones_like(token_ids)}
            )
            cache, step = token_ids, self._uncached_step
        last_prompt = ops.take(hidden, start - 1, axis=1)
        logits = ops.cast(self.backbone.token_embedding(last_prompt, reverse=True), "float32")
        end_id, pad_id = self.end_token_id, 0
        if strategy == "beam":
            return generation.beam_search(
                step, logits, cache, token_ids, prompt_lengths, max_new_tokens,
                end_id, pad_id, num_beams=num_beams, length_penalty=length_penalty,
            )
        if strategy == "greedy":
            temperature = 0.0
        ids, mask = generation.decode(
            step, logits, cache, token_ids, prompt_lengths, max_new_tokens, end_id,
            pad_id, temperature=temperature, top_k=top_k, top_p=top_p, seed=seed,
        )
        return ids, mask, ops.zeros((batch,), "float32")

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
        """Continues each prompt by up to `max_new_tokens` tokens.

        Args:
            inputs: A string or list of strings (needs a tokenizer), or a list of
                token-id lists. String prompts are prefixed with the end-of-document
                token, so an empty prompt starts a new document.
            strategy: `"greedy"`, `"sample"` or `"beam"`.
            temperature, top_k, top_p: Sampling controls (`top_k=0` and `top_p=1`
                disable their filters).
            seed: Sampling seed; the same seed gives the same tokens.
            num_beams, length_penalty: Beam search controls.
            use_cache: Decode with the KV cache (the default) or recompute the full
                forward pass at every step (same greedy output, slower).

        Returns:
            The continuations only (without the prompt, stopping before the end
            token): a string or list of strings for string inputs, else lists of ids.
            Prompts longer than `max_sequence_length - max_new_tokens` keep their
            last tokens.
        """
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}; received {strategy!r}")
        if strategy == "sample" and temperature <= 0:
            raise ValueError(f"temperature must be > 0 for sampling; received {temperature}")
        capacity = self.backbone.max_sequence_length
        if not 0 < max_new_tokens < capacity:
            raise ValueError(
                f"max_new_tokens must be in [1, {capacity - 1}] (the context is "
                f"{capacity} tokens); received {max_new_tokens}"
            )
        single = isinstance(inputs, str)
        is_text = single or (len(inputs) > 0 and isinstance(inputs[0], str))
        prompts = self._prompt_ids([inputs] if single else inputs, is_text)
        prompts = [p[-(capacity - max_new_tokens):] for p in prompts]
        lengths = np.array([len(p) for p in prompts], "int32")
        # Round the buffer up to a power of two: a bounded set of shapes, so the
        # compiled loop is traced a few times, not once per prompt length.
        needed = int(lengths.max()) + max_new_tokens
        max_length = min(capacity, 1 << (needed - 1).bit_length())
        buffer = np.zeros((len(prompts), max_length), "int32")
        for row, prompt in enumerate(prompts):
            buffer[row, : len(prompt)] = prompt
        fn = self._generate_function(strategy, num_beams, use_cache)
        ids, mask, _ = fn(
            buffer,
            lengths,
            np.int32(max_new_tokens),
            np.float32(temperature),
            np.int32(top_k),
            np.float32(top_p),
            np.int32(seed),
            np.float32(length_penalty),
        )
        ids, mask = ops.convert_to_numpy(ids), ops.convert_to_numpy(mask)
        outputs = [
            [int(t) for t in row[keep] if t != self.end_token_id]
            for row, keep in zip(ids, mask)
        ]
        if is_text:
            outputs = [self._detokenize(ids) for ids in outputs]
        return outputs[0] if single else outputs

    def _prompt_ids(self, inputs, is_text):
        if not inputs:
            raise ValueError("generate() needs at least one prompt; received none")
        if not is_text:
            prompts = [[int(t) for t in p] for p in inputs]
            if any(len(p) == 0 for p in prompts):
                raise ValueError("token-id prompts must not be empty")
            return prompts
        if self.tokenizer is None:
            raise ValueError("string prompts need a tokenizer: GPTCausalLM(..., tokenizer=...)")
        tokenized = self.tokenizer.tokenize(list(inputs))
        tokenized = tokenized.to_list() if hasattr(tokenized, "to_list") else tokenized
        return [[self.end_token_id] + [int(t) for t in ids] for ids in tokenized]

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

            def fn(ids, lengths, new_tokens, temperature, top_k, top_p, seed, penalty):
                return self.generate_ids(
                    ids, lengths, new_tokens, strategy=strategy, temperature=temperature,
                    top_k=top_k, top_p=top_p, seed=seed, num_beams=num_beams,
                    length_penalty=penalty, use_cache=use_cache,
                )

            functions[key] = jit_function(fn, self.variables)
        return functions[key]
