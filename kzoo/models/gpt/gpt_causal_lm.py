"""GPT causal language model: tied output head, scoring and cached decoding."""

import keras
import numpy as np
from keras import ops

from kzoo.layers.write_at import write_at
from kzoo.models import text_generation
from kzoo.models.gpt.gpt_backbone import GPTBackbone  # noqa: F401 (docstring example)
from kzoo.models.text_generation import TextGenerationModel


@keras.saving.register_keras_serializable(package="kzoo")
class GPTCausalLM(TextGenerationModel):
    """Next-token prediction on a `GPTBackbone`, with decoding.

    Outputs float32 logits `(batch, length, vocabulary_size)` from the token
    embedding used in reverse (tied weights). `generate` accepts strings (when a
    tokenizer is attached) or token ids, and decodes with a KV cache inside one
    compiled loop: greedy, temperature sampling with top-k / top-p, or beam search.
    String prompts are prefixed with the end-of-document token, so an empty prompt
    starts a new document; prompts longer than `max_sequence_length -
    max_new_tokens` keep their last tokens.

    Args:
        backbone: A `kzoo.models.GPTBackbone`.
        tokenizer: Optional tokenizer with `tokenize`, `detokenize` and `eos_id`
            (e.g. `kzoo.tokenizers.SentencePieceTokenizer`); needed for strings.
            Give it inside `preprocessor` instead when there is one.
        preprocessor: Optional `kzoo.preprocessing.CausalLMPreprocessor` (the
            tokenizer and the training sequence length), saved with the model.
        end_token_id: Token that ends a document (and generation); defaults to the
            preprocessor's, else the tokenizer's `eos_id`.

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

    def __init__(self, backbone, tokenizer=None, end_token_id=None, preprocessor=None, **kwargs):
        # === Layers ===
        self.backbone = backbone
        self._set_preprocessing(tokenizer, preprocessor)

        # === Functional Model ===
        inputs = backbone.input
        hidden = backbone(inputs)
        logits = ops.cast(backbone.token_embedding(hidden, reverse=True), "float32")
        super().__init__(inputs=inputs, outputs=logits, **kwargs)

        # === Config ===
        if end_token_id is None and preprocessor is not None:
            end_token_id = preprocessor.end_token_id
        if end_token_id is None and self.tokenizer is not None:
            end_token_id = int(self.tokenizer.eos_id)
        self.end_token_id = end_token_id

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
        logits = self({"token_ids": token_ids, "padding_mask": ops.ones_like(token_ids)})
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
        `kzoo.models.decoding`. Returns `(token_ids, generated_mask, scores)`
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
        logits = self.backbone.token_embedding(last_prompt, reverse=True)
        return self._decode(
            step, logits, cache, token_ids, prompt_lengths, max_new_tokens, locals()
        )

    def _generation_buffers(self, rows, is_text, max_new_tokens):
        """String prompts get the end-of-document token first; every prompt keeps
        its last `max_sequence_length - max_new_tokens` tokens."""
        capacity = self.backbone.max_sequence_length
        if is_text:
            rows = [[self.end_token_id] + row for row in rows]
        rows = [row[-(capacity - max_new_tokens) :] for row in rows]
        lengths = np.array([len(row) for row in rows], "int32")
        needed = int(lengths.max()) + max_new_tokens
        buffer, _ = text_generation.right_pad(rows, text_generation.round_up(needed, capacity))
        return {"token_ids": buffer, "prompt_lengths": lengths}
