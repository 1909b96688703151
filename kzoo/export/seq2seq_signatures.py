"""The export of a `Seq2SeqLM`: its serving signatures (source strings in, target
strings out), its sample requests and the Keras model's answers to them.

Tokenization and detokenization run in the graph, so a client sends text. Every
input and output is dense (REST encodes no ragged tensors) and every output
batch-first; inputs are declared with any rank and checked in the graph
(`input_policy`): a scalar is one source (outputs with 1 row) or one value for the
batch (`[]` below), any other rank than the one shown is InvalidArgument naming
the input. The endpoint names follow `model.family`: `translate` /
`translate_ids` for `seq2seq`, `generate` / `generate_ids` for `t5`.

    translate (= serving_default; `generate` for T5)
        sources         string  [B]|[]   tokenized in the graph, end token appended
        max_new_tokens  int32   [1|B]|[] clipped into [1, cap] (cap: export.max_new_tokens)
        strategy        string  [1|B]|[] "greedy", "sample" or "beam"
        temperature     float32 [1|B]|[] sampling; <= 0 samples greedily (finite)
        top_k           int32   [1|B]|[] sampling; <= 0 or >= vocabulary: no top-k
                                         filter
        top_p           float32 [1|B]|[] sampling; >= 1: no nucleus filter; <= 0
                                         keeps the best token (finite)
        seed            int32   [1|B]|[] sampling; the same seed gives the same tokens
        length_penalty  float32 [1|B]|[] beam; scores divided by length ** penalty
                                         (finite)
      ->  targets       string  [B]   the generated text
          target_ids    int32   [B, N] its ids (end token excluded), 0-padded to
                                       N = the largest clipped max_new_tokens
          num_tokens    int32   [B]   the number of ids in each row
    score
        sources, targets string [B]|[]
      ->  log_likelihood float32 [B]  sum of log p(token | source, previous), in
                                      nats, over the target's tokens and its end token
          num_tokens    int32   [B]   the number of tokens scored
    translate_ids (`generate_ids` for T5)
        source_ids      int32   [B, L] right-padded with 0, used as given (append
                                       the end token as string sources get it)
        (the decoding inputs of translate)
      ->  target_ids, num_tokens  as for translate

Decoding inputs take one value for the whole request or one per source (a REST
"instances" request repeats them in every instance). `max_new_tokens` may differ
per source; the other settings are shared by the batch, so their values must all
be equal (else InvalidArgument names the input). An unknown `strategy` is an
InvalidArgument naming the valid ones. Beam search keeps `export.num_beams` beams
(default 4), fixed at export.

Sources keep their first `max_source_tokens - 1` tokens before the end token
(`max_source_tokens` = `export.max_prompt_tokens`, at most the model's
`max_sequence_length`); ids sources keep their first `max_source_tokens` ids.
Targets to score keep their first `max_sequence_length - 2` tokens. Buffers are
padded as `Seq2SeqLM.generate` pads them (to powers of two, at most
`max_sequence_length`), so greedy and beam outputs equal its outputs.

Unusual inputs follow `input_policy`: invalid UTF-8 becomes U+FFFD; an empty or
whitespace-only source is translated from the end token alone and an empty target
scores its end token alone (`num_tokens` 1); 0 sources give 0 rows; `targets` not
one per source, NaN or infinite float options, ids outside the vocabulary and
`source_ids` rows with no non-zero id are InvalidArgument naming the input.

The sample requests (warmup, REST examples, the check-serving comparison) are
built from the run's own vocabulary: the first validation sources of the built-in
translation task when the vocabulary covers them, else its own pieces. Their
expected outputs come from the Keras side, eagerly: `Seq2SeqLM.generate` for
generation and `Seq2SeqLM.score` for scores, on sources cut and padded as the
signatures cut them. `kzoo check-serving` then shows that the SavedModel, loaded
without Keras or kzoo, answers the same (strings and ids exactly, floats to 1e-4).
"""

import dataclasses

import numpy as np
import tensorflow as tf
from keras import ops

from kzoo.export.in_place_cache import with_in_place_cache
from kzoo.export.input_policy import (
    any_rank,
    as_rows,
    checked_ids,
    matrix,
    one_per_row,
    shared_value,
    unless_empty,
    valid_utf8,
)
from kzoo.export.signatures import (
    GREEDY,
    SAMPLE_NEW_TOKENS,
    SAMPLED,
    SAMPLING_SPECS,
    ServingSignatures,
    checked_strategy,
    decoding_inputs,
    detokenized,
    reference_settings,
    round_up,
    run_config,
    run_tokenizer,
    sample_request,
    sampling_settings,
    unpadded_rows,
)
from kzoo.models.seq2seq.seq2seq_lm import start_buffer
from kzoo.models.text_generation import right_pad
from kzoo.preprocessing import Seq2SeqPreprocessor
from kzoo.preprocessing.seq2seq_preprocessor import dense, id_column

DEFAULT_NUM_BEAMS = 4
# The generation endpoint and its ids variant, by `model.family`.
ENDPOINTS = {"seq2seq": ("translate", "translate_ids"), "t5": ("generate", "generate_ids")}
# The decoding settings of the sample requests, by strategy.
SAMPLE_SETTINGS = {
    "greedy": {"strategy": "greedy", **GREEDY, "length_penalty": 0.0},
    "sample": {"strategy": "sample", **SAMPLED, "length_penalty": 0.0},
    "beam": {"strategy": "beam", **GREEDY, "length_penalty": 0.6},
}

# The inputs of `Seq2SeqLM.score`, in the order `dense` and `right_pad` give them.
SCORE_INPUTS = (
    "encoder_token_ids encoder_padding_mask decoder_token_ids decoder_padding_mask".split()
)
_DECODING_SPECS = {
    "max_new_tokens": any_rank("max_new_tokens", tf.int32),
    "strategy": any_rank("strategy", tf.string),
    **SAMPLING_SPECS,
    "length_penalty": any_rank("length_penalty", tf.float32),
}


@dataclasses.dataclass(frozen=True)
class Seq2SeqLimits:
    """Bounds fixed at export time.

    Attributes:
        max_new_tokens: The cap requested `max_new_tokens` are clipped to.
        max_source_tokens: Longer sources are cut (end token included).
        num_beams: Beams of the `"beam"` strategy.
        capacity: The model's `max_sequence_length`.
    """

    max_new_tokens: int
    max_source_tokens: int
    num_beams: int
    capacity: int

    @classmethod
    def for_model(cls, model, export_config):
        """Limits from the run's `export` section, within the model's capacity.

        Example:
        >>> from kzoo.models import Seq2SeqBackbone, Seq2SeqLM
        >>> model = Seq2SeqLM(Seq2SeqBackbone(20, 1, 2, 8, 16, max_sequence_length=16),
        ...                   start_token_id=2, end_token_id=3)
        >>> Seq2SeqLimits.for_model(model, {"max_new_tokens": 64,
        ...                                 "max_prompt_tokens": 8})
        Seq2SeqLimits(max_new_tokens=15, max_source_tokens=8, num_beams=4, capacity=16)
        """
        capacity = int(model.backbone.max_sequence_length)
        num_beams = export_config.get("num_beams")
        num_beams = DEFAULT_NUM_BEAMS if num_beams is None else num_beams
        if isinstance(num_beams, bool) or not isinstance(num_beams, int) or num_beams < 1:
            raise ValueError(f"export.num_beams: expected a positive int, got {num_beams!r}")
        return cls(
            max_new_tokens=min(int(export_config["max_new_tokens"]), capacity - 1),
            max_source_tokens=min(int(export_config["max_prompt_tokens"]), capacity),
            num_beams=num_beams,
            capacity=capacity,
        )


class Seq2SeqSignatures(ServingSignatures):
    """The `ServingSignatures` of a `Seq2SeqLM`: `translate` (TF Serving's
    default), `score` and `translate_ids` (`generate`, `score`, `generate_ids` for
    T5), with their sample requests and Keras answers.

    The endpoint methods are plain functions of tensors, to be wrapped by
    `keras.export.ExportArchive.add_endpoint` with `input_specs()`.

    Args:
        model: A `Seq2SeqLM` (any of its backbones).
        tokenizer: Its `SentencePieceTokenizer`; sources are tokenized by
            `model.preprocessor` (a `Seq2SeqPreprocessor`) when it has one.
        limits: A `Seq2SeqLimits`.
        family: `model.family` of the run: `"t5"` names the endpoints
            `generate`/`generate_ids`, anything else `translate`/`translate_ids`.
        xla: Compile the decoding and scoring cores with XLA (tokenization stays
            outside: the SentencePiece ops have no XLA kernels).
    """

    decodes_tokens = True

    def __init__(self, model, tokenizer, limits, family="seq2seq", xla=False):
        self.model = model
        self.limits = limits
        self.endpoints = ENDPOINTS.get(family, ENDPOINTS["seq2seq"])
        self.start_id = int(model.start_token_id)
        self.end_id = int(model.end_token_id)
        self.preprocessor = getattr(model, "preprocessor", None) or Seq2SeqPreprocessor(
            tokenizer, limits.capacity, limits.capacity, self.start_id, self.end_id
        )
        self.tokenizer = self.preprocessor.tokenizer
        self.vocabulary_size = int(model.backbone.vocabulary_size)
        # One function each, traced once and shared by the signatures that call it.
        # Without XLA the decoding loop writes its caches in place (in_place_cache).
        decode = self._decode if xla else with_in_place_cache(self._decode)
        self._decode = tf.function(decode, jit_compile=xla, autograph=False)
        self._score = tf.function(model.score, jit_compile=xla, autograph=False)

    def input_specs(self):
        """`{signature: {input: TensorSpec}}`, the default signature first."""
        generate, generate_ids = self.endpoints
        return {
            generate: {"sources": any_rank("sources", tf.string), **_DECODING_SPECS},
            "score": {
                "sources": any_rank("sources", tf.string),
                "targets": any_rank("targets", tf.string),
            },
            generate_ids: {"source_ids": any_rank("source_ids", tf.int32), **_DECODING_SPECS},
        }

    @classmethod
    def from_model(cls, model, export_settings, xla=False, run=None):
        """Limits from the `export` section (`Seq2SeqLimits.for_model`); the
        endpoint names and tokenizer from `run_settings`."""
        tokenizer, family = run_settings(model, run)
        limits = Seq2SeqLimits.for_model(model, export_settings)
        return cls(model, tokenizer, limits, family=family, xla=xla)

    def export_info(self):
        return {"limits": dataclasses.asdict(self.limits)}

    # --- Sample requests and the Keras reference -----------------------------------

    def sample_requests(self):
        """Greedy, sampled and beam generation (one with a source that gets cut),
        `serving_default`, score and ids generation requests."""
        generate, generate_ids = self.endpoints
        (source, target), (other_source, other_target) = sample_pairs(self.tokenizer)
        sources = [source, other_source]
        long_source = " ".join([source] * self.limits.capacity)  # gets cut
        ids = self._source_id_lists(sources)
        padded = [row + [0] * (max(map(len, ids)) - len(row)) for row in ids]
        new_tokens = min(SAMPLE_NEW_TOKENS, self.limits.max_new_tokens)
        greedy, sampled, beam = (
            decoding_inputs(len(sources), new_tokens, SAMPLE_SETTINGS[strategy])
            for strategy in ("greedy", "sample", "beam")
        )
        return [
            sample_request(generate, sources=sources, **greedy),
            sample_request(generate, sources=sources, **sampled),
            sample_request(generate, sources=[long_source, other_source], **beam),
            sample_request("serving_default", sources=sources, **greedy),
            sample_request(
                "score", sources=[*sources, long_source], targets=[target, other_target, ""]
            ),
            sample_request(generate_ids, source_ids=padded, **greedy),
        ]

    def reference_outputs(self, request):
        """The Keras model's outputs for one sample request (JSON-ready lists).

        Generation requests share their decoding settings (their first values are used).
        """
        name, inputs = request["signature_name"], request["inputs"]
        if name == "score":
            return self._reference_score(inputs["sources"], inputs["targets"])
        if "source_ids" in inputs:
            sources = [[int(t) for t in row] for row in inputs["source_ids"]]
            sources = [row[: max(i + 1 for i, t in enumerate(row) if t)] for row in sources]
            sources = [row[: self.limits.max_source_tokens] for row in sources]
        else:
            sources = self._source_id_lists(inputs["sources"])
        settings = reference_settings(inputs, self.limits.max_new_tokens)
        settings["length_penalty"] = float(inputs["length_penalty"][0])
        rows = self.model.generate(
            sources,
            strategy=inputs["strategy"][0],
            num_beams=self.limits.num_beams,
            jit_compile=False,  # as the SavedModel runs: without XLA
            **settings,
        )
        new_tokens = settings["max_new_tokens"]
        outputs = {
            "target_ids": [row + [0] * (new_tokens - len(row)) for row in rows],
            "num_tokens": [len(row) for row in rows],
        }
        if "sources" in inputs:
            outputs["targets"] = [detokenized(self.tokenizer, row) for row in rows]
        return outputs

    def _source_id_lists(self, texts):
        """Each source's ids (lists), cut as the signatures cut them, end token last."""
        rows = self.tokenizer.tokenize(list(texts)).to_list()
        keep = self.limits.max_source_tokens - 1
        return [[int(t) for t in row[:keep]] + [self.end_id] for row in rows]

    def _reference_score(self, sources, targets):
        encoder = self._source_id_lists(sources)
        decoder = [
            [self.start_id, *row[: self.limits.capacity - 2], self.end_id]
            for row in self.tokenizer.tokenize(list(targets)).to_list()
        ]
        encoder_inputs = right_pad(encoder, max(map(len, encoder)))
        decoder_inputs = right_pad(decoder, max(map(len, decoder)))
        scores = self.model.score(dict(zip(SCORE_INPUTS, encoder_inputs + decoder_inputs)))
        scores = np.asarray(ops.convert_to_numpy(scores), "float64")
        return {"log_likelihood": scores.tolist(), "num_tokens": [len(row) - 1 for row in decoder]}

    # --- Signatures ------------------------------------------------------------

    def translate(
        self, sources, max_new_tokens, strategy, temperature, top_k, top_p, seed, length_penalty
    ):
        sources = as_rows(sources, "sources")
        batch = tf.shape(sources)[0]
        settings = self._decoding_settings(
            batch, max_new_tokens, strategy, temperature, top_k, top_p, seed, length_penalty
        )

        def run():
            outputs = self._generate(self._source_ids(sources), *settings)
            return {"targets": self.tokenizer.detokenize(outputs["target_ids"]), **outputs}

        return unless_empty(batch, run)

    def translate_ids(
        self, source_ids, max_new_tokens, strategy, temperature, top_k, top_p, seed, length_penalty
    ):
        source_ids = matrix(source_ids, "source_ids")
        batch = tf.shape(source_ids)[0]
        sources = unpadded_rows(source_ids, "source_ids")
        sources = checked_ids(sources, self.vocabulary_size, "source_ids")
        sources = sources[:, : self.limits.max_source_tokens]
        settings = self._decoding_settings(
            batch, max_new_tokens, strategy, temperature, top_k, top_p, seed, length_penalty
        )
        return unless_empty(batch, lambda: self._generate(sources, *settings))

    # T5 names its endpoints like the causal LMs.
    generate = translate
    generate_ids = translate_ids

    def score(self, sources, targets):
        sources = as_rows(sources, "sources")
        batch = tf.shape(sources)[0]
        targets = one_per_row(targets, batch, "targets", "source")

        def run():
            source = self._source_ids(sources)
            target = tf.cast(self.tokenizer.tokenize(valid_utf8(targets)), tf.int32)
            target = target[:, : self.limits.capacity - 2]
            decoder = tf.concat(
                [id_column(batch, self.start_id), target, id_column(batch, self.end_id)], axis=1
            )
            log_likelihood = self._score(dict(zip(SCORE_INPUTS, (*dense(source), *dense(decoder)))))
            return {
                "log_likelihood": tf.cast(log_likelihood, tf.float32),
                "num_tokens": tf.cast(decoder.row_lengths(), tf.int32) - 1,
            }

        return unless_empty(batch, run)

    # --- Shared steps -----------------------------------------------------------

    def _source_ids(self, texts):
        """Ragged ids of each text, cut, with the end token appended."""
        return self.preprocessor.source_ids(valid_utf8(texts), self.limits.max_source_tokens)

    def _decoding_settings(
        self, batch, max_new_tokens, strategy, temperature, top_k, top_p, seed, length_penalty
    ):
        """The checked decoding inputs: `new_tokens` (`signatures.sampling_settings`),
        the shared strategy, and the sampling settings and length penalty as the
        keyword arguments of `Seq2SeqLM.generate_ids`."""
        new_tokens, temperature, top_k, top_p, seed = sampling_settings(
            batch, max_new_tokens, self.limits.max_new_tokens, temperature, top_k, top_p, seed
        )
        strategy = checked_strategy(shared_value(strategy, batch, "strategy", "greedy"))
        # Greedy is the sampling loop at temperature 0 (the same argmax).
        temperature = tf.where(strategy == "greedy", 0.0, temperature)
        length_penalty = shared_value(length_penalty, batch, "length_penalty", 0.0)
        sampling = {"temperature": temperature, "top_k": top_k, "top_p": top_p, "seed": seed}
        sampling["length_penalty"] = length_penalty
        return new_tokens, strategy, sampling

    def _generate(self, sources, new_tokens, strategy, sampling):
        """Pads the ragged `sources` as `Seq2SeqLM.generate` does and decodes."""
        batch = tf.cast(sources.nrows(), tf.int32)
        capacity = self.limits.capacity
        source_length = round_up(tf.reduce_max(tf.cast(sources.row_lengths(), tf.int32)), capacity)
        source_ids, source_mask = dense(sources, source_length)
        target_length = round_up(tf.reduce_max(new_tokens) + 1, capacity)
        target_ids, target_lengths = start_buffer(batch, target_length, self.start_id)
        beam = strategy == "beam"
        ids, mask = self._decode(
            source_ids, source_mask, target_ids, target_lengths, new_tokens, beam, sampling
        )
        generated = tf.ragged.boolean_mask(ids, mask & (ids != self.end_id))
        target_ids, _ = dense(generated, tf.reduce_max(new_tokens))
        return {"target_ids": target_ids, "num_tokens": tf.cast(generated.row_lengths(), tf.int32)}

    def _decode(
        self, source_ids, source_mask, target_ids, target_lengths, new_tokens, beam, sampling
    ):
        """`Seq2SeqLM.generate_ids` with beam search or the greedy/sampling loop,
        chosen in the graph (`sampling`: its temperature, top_k, top_p, seed and
        length_penalty)."""

        def decode_with(strategy):
            def branch():
                ids, mask, _ = self.model.generate_ids(
                    source_ids,
                    source_mask,
                    new_tokens,
                    strategy=strategy,
                    num_beams=self.limits.num_beams,
                    target_ids=target_ids,
                    target_prompt_lengths=target_lengths,
                    **sampling,
                )
                return tf.convert_to_tensor(ids), tf.cast(mask, tf.bool)

            return branch

        return tf.cond(beam, decode_with("beam"), decode_with("sample"))


def run_settings(model, run):
    """What a seq2seq export reads from its run directory besides the model: the
    tokenizer (a model saved without one has it beside it) and `model.family`
    (which names the endpoints, `ENDPOINTS`)."""
    family = run_config(run).get("model", {}).get("family")
    return run_tokenizer(model, run), family


def sample_pairs(tokenizer):
    """Two `(source, target)` pairs the vocabulary covers (no unknown piece)."""
    from kzoo.data.builtin_translation import translation_pairs

    pairs = translation_pairs(2, split="validation")
    texts = [text for pair in pairs for text in pair]
    if tokenizer.unk_id not in tokenizer.tokenize(texts).flat_values.numpy():
        return pairs
    pieces = [p.lstrip("\u2581") for p in tokenizer.get_vocabulary()[4:]]
    words = [p for p in pieces if p.isalpha()] or ["a"]
    w = [words[i % len(words)] for i in range(9)]
    return [(f"{w[0]} {w[1]} {w[2]}", f"{w[3]} {w[4]}"), (w[5], f"{w[6]} {w[7]} {w[8]}")]
