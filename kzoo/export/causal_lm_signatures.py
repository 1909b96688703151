"""The serving signatures of a causal language model: strings in, strings out.

Every input is dense and named, so TF Serving accepts requests in both REST
formats (row `"instances"` and columnar `"inputs"`) and over gRPC. Inputs are
declared with any rank and checked in the graph (`input_policy`): a scalar is one
prompt or one value for the batch (`[]` below), any other rank than the one shown
is InvalidArgument naming the input. Every output is `string`, `int32` or
`float32` with the batch first (REST cannot encode half precision or ragged
tensors); a scalar prompt gets outputs with 1 row.

    generate / serving_default
        prompts         string  [B]|[]   prompts; tokenized in the graph
        max_new_tokens  int32   [1|B]|[] clipped into [1, cap] (cap: export.max_new_tokens)
        temperature     float32 [1|B]|[] <= 0: greedy (finite)
        top_k           int32   [1|B]|[] <= 0 or >= vocabulary: no top-k filter
        top_p           float32 [1|B]|[] >= 1: no nucleus filter; <= 0 keeps the
                                         best token (finite)
        seed            int32   [1|B]|[] the same seed gives the same tokens
      ->  generated     string  [B]   the continuation only, stopped before the end token
          token_count   int32   [B]   its number of tokens
    score
        texts           string  [B]|[]
      ->  log_likelihood float32 [B]  sum of log p(token | previous), in nats, of every
                                      token of the text (the first given the
                                      start-of-document token)
          num_tokens    int32   [B]   the number of tokens scored
    generate_ids
        token_ids       int32   [B, L] prompts, right-padded with 0
        prompt_lengths  int32   [B]|[] each in [1, L]
        (the decoding inputs of generate)
      ->  token_ids     int32   [B, W] the prompts then their continuations, 0-padded
          generated_mask int32  [B, W] 1 at generated positions (end token included)

Decoding inputs take one value for the whole request or one per prompt (a REST
"instances" request repeats them in every instance). `max_new_tokens` may differ per
prompt; the sampling settings (`temperature`, `top_k`, `top_p`, `seed`) are shared by
the batch, so their values must all be equal (else InvalidArgument names the input).

String prompts start with the end-of-document token, as in `GPTCausalLM.generate`;
a prompt keeps its last `min(export.max_prompt_tokens, context - max_new_tokens)`
tokens. Texts to score keep their first `context` tokens (start token included);
an LSTM has no context limit. The token buffer is `max(prompt) + max_new_tokens`
rounded up to a power of two (at most the context), like `GPTCausalLM.generate`, so
greedy outputs are the same.

Unusual inputs follow `input_policy`: invalid UTF-8 becomes U+FFFD; "" and
whitespace-only prompts continue the start token alone (a score of 0 over 0 tokens
for "" in `score`); 0 prompts give 0 rows; NaN or infinite `temperature`/`top_p`,
`token_ids` outside the vocabulary and `prompt_lengths` not one per row of
`token_ids` are InvalidArgument naming the input.
"""

import dataclasses
import inspect

import tensorflow as tf

from kzoo.export import causal_lm_reference
from kzoo.export.causal_lm_reference import (
    GenerationLimits,
    document_ids,
    sample_prompts,
    sequence_log_likelihood,
)
from kzoo.export.in_place_cache import with_in_place_cache
from kzoo.export.input_policy import (
    any_rank,
    as_rows,
    checked_ids,
    matrix,
    one_per_row,
    unless_empty,
    valid_utf8,
)
from kzoo.export.signatures import (
    SAMPLE_NEW_TOKENS,
    SAMPLING_SPECS,
    ServingSignatures,
    float_tolerance,
    round_up,
    run_config,
    run_tokenizer,
    sampling_settings,
)
from kzoo.preprocessing import CausalLMPreprocessor

_DECODING_SPECS = {"max_new_tokens": any_rank("max_new_tokens", tf.int32), **SAMPLING_SPECS}
INPUT_SPECS = {
    "generate": {"prompts": any_rank("prompts", tf.string), **_DECODING_SPECS},
    "score": {"texts": any_rank("texts", tf.string)},
    "generate_ids": {
        "token_ids": any_rank("token_ids", tf.int32),
        "prompt_lengths": any_rank("prompt_lengths", tf.int32),
        **_DECODING_SPECS,
    },
}
OUTPUT_DTYPES = {
    "generate": {"generated": "string", "token_count": "int32"},
    "score": {"log_likelihood": "float32", "num_tokens": "int32"},
    "generate_ids": {"token_ids": "int32", "generated_mask": "int32"},
}


class CausalLMSignatures(ServingSignatures):
    """The `ServingSignatures` of a kzoo causal LM: `generate` (TF Serving's
    default), `score` and `generate_ids`.

    The endpoint methods are plain functions of tensors, to be wrapped by
    `keras.export.ExportArchive.add_endpoint` with `INPUT_SPECS`; the sample
    requests and their Keras answers are `causal_lm_reference`'s.

    Args:
        model: `GPTCausalLM` or `LSTMLanguageModel` (anything with
            `generate_ids` and `end_token_id`).
        tokenizer: A `kzoo.tokenizers.SentencePieceTokenizer`; texts are
            tokenized by `model.preprocessor` (a `CausalLMPreprocessor`) when it
            has one.
        limits: A `GenerationLimits`.
        xla: Compile the decoding and scoring cores with XLA (tokenization stays
            outside: the SentencePiece ops have no XLA kernels).
        prompts: The first sample prompts (`train.sample_prompts`).

    Example:
    >>> import tempfile
    >>> from kzoo.models import LSTMLanguageModel
    >>> from kzoo.tokenizers import load_tokenizer, train_sentencepiece
    >>> run_dir = tempfile.mkdtemp()
    >>> _ = train_sentencepiece(texts=["to be or not to be"], model_type="char",
    ...                         output_dir=run_dir)
    >>> tokenizer = load_tokenizer(run_dir)
    >>> lm = LSTMLanguageModel(tokenizer.vocabulary_size, 4, 8,
    ...                        end_token_id=tokenizer.eos_id)
    >>> signatures = CausalLMSignatures(lm, tokenizer, GenerationLimits(4, 16, None))
    >>> out = signatures.generate(tf.constant(["to"]), tf.constant([3]),
    ...                           tf.constant([0.0]), tf.constant([0]),
    ...                           tf.constant([1.0]), tf.constant([0]))
    >>> int(out["token_count"][0]) <= 3
    True
    """

    decodes_tokens = True

    def __init__(self, model, tokenizer, limits, xla=False, prompts=()):
        self.model = model
        self.prompts = sample_prompts(prompts)
        self.limits = limits
        self.end_id = int(model.end_token_id)
        self.preprocessor = getattr(model, "preprocessor", None) or CausalLMPreprocessor(
            tokenizer, limits.context or limits.max_prompt_tokens, end_token_id=self.end_id
        )
        self.tokenizer = self.preprocessor.tokenizer
        self.vocabulary_size = int(getattr(model, "backbone", model).vocabulary_size)
        self._takes_strategy = "strategy" in inspect.signature(model.generate_ids).parameters
        # One function each, traced once and called by every signature that needs it
        # (generate, serving_default and generate_ids share the decoding loop).
        # Without XLA the decoding loop writes its caches in place (in_place_cache).
        decode_ids = self._decode_ids if xla else with_in_place_cache(self._decode_ids)
        self._decode_ids = tf.function(decode_ids, jit_compile=xla, autograph=False)
        self._log_likelihood = tf.function(self._log_likelihood, jit_compile=xla, autograph=False)

    @classmethod
    def from_model(cls, model, export_settings, xla=False, run=None):
        """Limits from `export.max_new_tokens` and `export.max_prompt_tokens`
        (within the model's context); the rest from `run_settings`."""
        limits = GenerationLimits.for_model(
            model, export_settings["max_new_tokens"], export_settings["max_prompt_tokens"]
        )
        tokenizer, prompts = run_settings(model, run)
        return cls(model, tokenizer, limits, xla=xla, prompts=prompts)

    # --- The export interface ----------------------------------------------------

    def input_specs(self):
        return INPUT_SPECS

    def output_dtypes(self):
        return OUTPUT_DTYPES

    def sample_requests(self):
        ids = document_ids(self.tokenizer, self.end_id, self.prompts)
        new_tokens = min(SAMPLE_NEW_TOKENS, self.limits.max_new_tokens)
        return causal_lm_reference.sample_requests(self.prompts, ids, new_tokens)

    def reference_outputs(self, request):
        return causal_lm_reference.reference_outputs(
            self.model, self.tokenizer, self.limits, request
        )

    def expected_fields(self):
        return {"end_token_id": self.end_id, "score_tolerance": float_tolerance(self.model)}

    def export_info(self):
        return {"end_token_id": self.end_id, "limits": dataclasses.asdict(self.limits)}

    # --- Signatures ------------------------------------------------------------

    def generate(self, prompts, max_new_tokens, temperature, top_k, top_p, seed):
        prompts = as_rows(prompts, "prompts")
        batch = tf.shape(prompts)[0]
        settings = self._decoding_settings(batch, max_new_tokens, temperature, top_k, top_p, seed)

        def run():
            ids, mask = self._decode(self._tokenize_documents(prompts), *settings)
            continuation = tf.logical_and(mask, ids != self.end_id)
            return {
                "generated": self.tokenizer.detokenize(tf.ragged.boolean_mask(ids, continuation)),
                "token_count": tf.reduce_sum(tf.cast(continuation, tf.int32), axis=1),
            }

        return unless_empty(batch, run)

    def score(self, texts):
        texts = as_rows(texts, "texts")

        def run():
            ids = self._tokenize_documents(texts)
            if self.limits.context is not None:
                ids = ids[:, : self.limits.context]
            lengths = tf.cast(ids.row_lengths(), tf.int32)
            token_ids = ids.to_tensor(default_value=0)
            padding_mask = tf.sequence_mask(lengths, tf.shape(token_ids)[1], tf.int32)
            return {
                "log_likelihood": self._log_likelihood(token_ids, padding_mask),
                "num_tokens": lengths - 1,
            }

        return unless_empty(tf.shape(texts)[0], run)

    def generate_ids(
        self, token_ids, prompt_lengths, max_new_tokens, temperature, top_k, top_p, seed
    ):
        token_ids = matrix(token_ids, "token_ids")
        batch, width = tf.shape(token_ids)[0], tf.shape(token_ids)[1]
        prompt_lengths = one_per_row(prompt_lengths, batch, "prompt_lengths", "row of token_ids")
        valid = tf.logical_and(prompt_lengths >= 1, prompt_lengths <= width)
        check = tf.debugging.Assert(
            tf.reduce_all(valid),
            [
                "prompt_lengths: each must be in [1, width of token_ids]; got width",
                width,
                "and prompt_lengths",
                prompt_lengths,
            ],
        )
        with tf.control_dependencies([check]):
            prompts = tf.RaggedTensor.from_tensor(token_ids, lengths=prompt_lengths)
        prompts = checked_ids(prompts, self.vocabulary_size, "token_ids")
        settings = self._decoding_settings(batch, max_new_tokens, temperature, top_k, top_p, seed)

        def run():
            ids, mask = self._decode(prompts, *settings)
            return {"token_ids": ids, "generated_mask": tf.cast(mask, tf.int32)}

        return unless_empty(batch, run)

    # --- Shared steps -----------------------------------------------------------

    def _tokenize_documents(self, texts):
        """Ragged ids, each row starting with the end-of-document token."""
        return self.preprocessor.tokenize_documents(valid_utf8(texts))

    def _decoding_settings(self, batch, max_new_tokens, temperature, top_k, top_p, seed):
        cap = self.limits.max_new_tokens
        return sampling_settings(batch, max_new_tokens, cap, temperature, top_k, top_p, seed)

    def _decode(self, prompts, new_tokens, temperature, top_k, top_p, seed):
        """Keeps each prompt's last tokens, pads into a buffer and decodes."""
        lengths = tf.cast(prompts.row_lengths(), tf.int32)
        limit = tf.fill(tf.shape(lengths), self.limits.max_prompt_tokens)
        if self.limits.context is not None:
            limit = tf.minimum(limit, self.limits.context - new_tokens)
        kept = tf.minimum(lengths, limit)
        starts = prompts.row_starts() + tf.cast(lengths - kept, tf.int64)
        trimmed = tf.gather(
            prompts.values, tf.ragged.range(starts, starts + tf.cast(kept, tf.int64))
        )
        width = round_up(tf.reduce_max(kept) + tf.reduce_max(new_tokens), self.limits.context)
        buffer = trimmed.to_tensor(default_value=0)
        buffer = tf.pad(buffer, [[0, 0], [0, width - tf.shape(buffer)[1]]])
        return self._decode_ids(buffer, kept, new_tokens, temperature, top_k, top_p, seed)

    def _decode_ids(self, buffer, lengths, new_tokens, temperature, top_k, top_p, seed):
        kwargs = dict(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
        if self._takes_strategy:  # GPTCausalLM: one loop for greedy and sampling.
            kwargs["strategy"] = "sample"
        outputs = self.model.generate_ids(buffer, lengths, new_tokens, **kwargs)
        return tf.convert_to_tensor(outputs[0]), tf.convert_to_tensor(outputs[1])

    def _log_likelihood(self, token_ids, padding_mask):
        return sequence_log_likelihood(self.model, token_ids, padding_mask)


def run_settings(model, run):
    """What a causal LM export reads from its run directory besides the model: the
    tokenizer (a model saved without one has it beside it) and `train.sample_prompts`
    (the first sample prompts)."""
    prompts = run_config(run).get("train", {}).get("sample_prompts", [])
    return run_tokenizer(model, run), prompts
