"""The LiteRT signatures of a causal LM (GPT, Llama): one decoding step with an
explicit KV cache, the shape on-device LLM runtimes take.

    prefill  token_ids int32 [1, T]   the prompt (T >= 1), at positions index..
             index     int32 []       the position of its first token (0)
             cache_0 .. cache_{N-1}   float32 [1, 2, C, kv_heads, head_dim]
                                      each layer's keys and values (zeros at first)
          -> logits    float32 [1, V] the next token's, after the last prompt token
             cache_0 .. cache_{N-1}   the caches with positions index..index+T-1 written
    decode   the same with token_ids [1, 1]: one generated token at `index`

`C` (`cache_length`) is `min(context, export.max_prompt_tokens +
export.max_new_tokens)`; a caller keeps `index + T <= C`. The loop around it
(choose a token, stop at the end token, feed it back) is
`kzoo.export.litert_driver.LiteRTGenerator`, a few lines in any language; the
tokenizer is shipped beside the model (`litert_layout.TOKENIZER_DIR`).

The whole `generate_ids` loop does not convert: Keras' `argmax` (the greedy
choice inside it, `kzoo.models.decoding`) reads the sign bit of its inputs with
`BitwiseAnd`, which has no TFLite kernel; the rest of the greedy loop does.
"""

import os

import numpy as np
import tensorflow as tf

from kzoo.export.causal_lm_reference import GenerationLimits
from kzoo.export.litert_layout import TOKENIZER_DIR
from kzoo.export.signatures import run_tokenizer
from kzoo.tokenizers import SentencePieceTokenizer


class CausalLMLiteRT:
    """The `prefill` and `decode` endpoints of a `GPTCausalLM` or `LlamaCausalLM`
    (anything whose backbone has `call_with_cache`, `empty_cache` and a
    reversible `token_embedding`), batch 1.

    Args:
        model: The causal LM (float: an int8 run's `litert_dequantize.float_copy`).
        run: Its `RunDirectory` (the tokenizer, when the model holds none).
        settings: The run's validated `export` section (`max_new_tokens`,
            `max_prompt_tokens`).
    """

    custom_ops = None  # Builtin TFLite ops only.

    def __init__(self, model, run, settings):
        self.model = model
        self.backbone = model.backbone
        self.tokenizer = run_tokenizer(model, run)
        self.end_token_id = int(model.end_token_id)
        self.limits = GenerationLimits.for_model(
            model, settings["max_new_tokens"], settings["max_prompt_tokens"]
        )
        self.cache_length = min(
            self.limits.context, self.limits.max_prompt_tokens + self.limits.max_new_tokens
        )
        empty = self.backbone.empty_cache(1, self.cache_length)
        self.cache_specs = {
            f"cache_{i}": tf.TensorSpec(cache.shape, tf.float32, name=f"cache_{i}")
            for i, cache in enumerate(empty)
        }

    @classmethod
    def from_model(cls, model, run, settings):
        return cls(model, run, settings)

    def trackables(self):
        return [self.model]

    def endpoints(self):
        """`{name: (function, input specs)}`: `prefill` (any prompt length) and
        `decode` (one token)."""
        return {"prefill": (self.step, self._specs(None)), "decode": (self.step, self._specs(1))}

    def _specs(self, length):
        return {
            "token_ids": tf.TensorSpec([1, length], tf.int32, name="token_ids"),
            "index": tf.TensorSpec([], tf.int32, name="index"),
            **self.cache_specs,
        }

    def step(self, inputs):
        """Runs `inputs["token_ids"]` at positions `index..` against the caches;
        returns the logits after the last one and the updated caches."""
        names = list(self.cache_specs)
        caches = [tf.cast(inputs[name], self.backbone.compute_dtype) for name in names]
        hidden, caches = self.backbone.call_with_cache(inputs["token_ids"], caches, inputs["index"])
        logits = self.backbone.token_embedding(hidden[:, -1], reverse=True)
        return {
            "logits": tf.cast(logits, tf.float32),
            **{name: tf.cast(cache, tf.float32) for name, cache in zip(names, caches)},
        }

    def sample_inputs(self):
        """One small input per endpoint (the export runs each once)."""
        caches = {name: np.zeros(spec.shape, np.float32) for name, spec in self.cache_specs.items()}
        inputs = {
            "token_ids": np.array([[self.end_token_id]], np.int32),
            "index": np.array(0, np.int32),
            **caches,
        }
        return {"prefill": inputs, "decode": inputs}

    def manifest(self):
        """The settings the driver needs, for `litert.json`."""
        return {
            "end_token_id": self.end_token_id,
            # String prompts start with the end-of-document token (`generate()`).
            "prompt_prefix_ids": [self.end_token_id],
            "cache_length": self.cache_length,
            "cache_shapes": {name: spec.shape.as_list() for name, spec in self.cache_specs.items()},
            "max_new_tokens": self.limits.max_new_tokens,
            "max_prompt_tokens": self.limits.max_prompt_tokens,
            "vocabulary_size": int(self.backbone.vocabulary_size),
        }

    def write_assets(self, directory):
        """Saves the tokenizer into `directory/tokenizer/`; returns what
        `litert.json` says of it: `{"kind": "sentencepiece", "model_file": ...}`
        where the `sentencepiece` library alone gives the run's ids, else
        `{"kind": "kzoo", "directory": ...}` (`kzoo.tokenizers.load_tokenizer`)."""
        tokenizer_dir = os.path.join(directory, TOKENIZER_DIR)
        os.makedirs(tokenizer_dir, exist_ok=True)
        path = self.tokenizer.save(tokenizer_dir)
        if plain_sentencepiece(self.tokenizer):
            return {"kind": "sentencepiece", "model_file": os.path.relpath(path, directory)}
        return {"kind": "kzoo", "directory": TOKENIZER_DIR}


def plain_sentencepiece(tokenizer):
    """Whether `tokenizer` is a `SentencePieceTokenizer` that encodes as the
    `sentencepiece` library does (no special tokens cut out, no sentinel
    splitting, SentencePiece's own dummy prefix)."""
    return (
        isinstance(tokenizer, SentencePieceTokenizer)
        and not tokenizer.special_tokens
        and not tokenizer.split_at_sentinels
        and tokenizer.prepend_scheme == "sentencepiece"
    )
