"""A causal LM export's sample requests and what the Keras model answers to them.

One list of requests (signature name + batch-first inputs as Python lists) feeds
the warmup file, the REST examples and `expected_outputs.json`, so what TF Serving
replays at load time, what the README's `curl` examples send and what
`kzoo check-serving` compares are the same inputs.

The answers are computed eagerly from the Keras model and the Python-side
tokenizer, through `GPTCausalLM.generate` when the model has it (the public API
users call), else through `generate_ids` on a buffer built the way
`GPTCausalLM.generate` builds it; scores with `sequence_log_likelihood`, the
formula the exported `score` signature uses. `kzoo check-serving` compares the
SavedModel's answers with them: generated text and tokens exactly, scores with
`rtol=1e-4`. The graph side is `causal_lm_signatures`.
"""

import dataclasses

import numpy as np
from keras import ops

from kzoo.export.signatures import (
    GREEDY,
    SAMPLED,
    decoding_inputs,
    detokenized,
    reference_settings,
    sample_request,
)

DEFAULT_PROMPTS = ("", "a")


def model_context(model):
    """The longest token sequence `model` accepts, or None when unbounded."""
    backbone = getattr(model, "backbone", None)
    return getattr(backbone, "max_sequence_length", None)


@dataclasses.dataclass(frozen=True)
class GenerationLimits:
    """Bounds fixed at export time, obeyed by the signatures and the reference.

    Attributes:
        max_new_tokens: The cap requested `max_new_tokens` are clipped to.
        max_prompt_tokens: Longer prompts keep their last tokens.
        context: The model's longest sequence (None: unbounded).
    """

    max_new_tokens: int
    max_prompt_tokens: int
    context: int | None

    @classmethod
    def for_model(cls, model, max_new_tokens, max_prompt_tokens):
        """Limits for `model`: the cap leaves room for one prompt token."""
        context = model_context(model)
        if context is not None:
            max_new_tokens = min(max_new_tokens, context - 1)
        return cls(int(max_new_tokens), int(max_prompt_tokens), context)


# --- Sample requests --------------------------------------------------------------


def sample_prompts(config_prompts=()):
    """Two distinct prompts: the run's `train.sample_prompts` first."""
    return list(dict.fromkeys([*config_prompts, *DEFAULT_PROMPTS]))[:2]


def sample_requests(prompts, prompt_ids, max_new_tokens):
    """The requests for every signature.

    Args:
        prompts: Prompt strings.
        prompt_ids: The same prompts as token-id lists (start token included), for
            `generate_ids`.
        max_new_tokens: Tokens to generate (within the export's cap).

    Returns:
        A list of `{"signature_name": str, "inputs": {name: list}}`.

    Example:
    >>> requests = sample_requests(["", "a"], [[3], [3, 9]], 8)
    >>> [r["signature_name"] for r in requests]
    ['generate', 'generate', 'serving_default', 'score', 'generate_ids']
    >>> requests[-1]["inputs"]["token_ids"], requests[-1]["inputs"]["prompt_lengths"]
    ([[3, 0], [3, 9]], [1, 2])
    """
    batch = len(prompts)
    width = max(len(ids) for ids in prompt_ids)
    decoding = decoding_inputs(batch, max_new_tokens, GREEDY)
    return [
        sample_request("generate", prompts=list(prompts), **decoding),
        sample_request(
            "generate", prompts=list(prompts), **decoding_inputs(batch, max_new_tokens, SAMPLED)
        ),
        sample_request("serving_default", prompts=list(prompts), **decoding),
        sample_request("score", texts=[*prompts, (" ".join(p for p in prompts if p) + " ") * 3]),
        sample_request(
            "generate_ids",
            token_ids=[list(ids) + [0] * (width - len(ids)) for ids in prompt_ids],
            prompt_lengths=[len(ids) for ids in prompt_ids],
            **decoding,
        ),
    ]


# --- Keras reference --------------------------------------------------------------


def document_ids(tokenizer, end_id, texts):
    """Token ids of each text after the start-of-document (end) token.

    Example:
    >>> import tempfile
    >>> from kzoo.tokenizers import load_tokenizer, train_sentencepiece
    >>> run_dir = tempfile.mkdtemp()
    >>> _ = train_sentencepiece(texts=["to be or not to be"], model_type="char",
    ...                         output_dir=run_dir)
    >>> tokenizer = load_tokenizer(run_dir)
    >>> document_ids(tokenizer, tokenizer.eos_id, ["to", ""])
    [[3, 7, 6], [3]]
    """
    tokenized = tokenizer.tokenize(list(texts)).to_list()
    return [[end_id] + [int(t) for t in ids] for ids in tokenized]


def reference_outputs(model, tokenizer, limits, request):
    """The Keras model's outputs for one sample request.

    Args:
        model: The Keras causal LM.
        tokenizer: Its `SentencePieceTokenizer`.
        limits: The export's `GenerationLimits`.
        request: `{"signature_name", "inputs"}` (see `sample_requests`).

    Returns:
        For generation, `{"generated", "token_count"}`; for `generate_ids`,
        `{"continuations"}` (the generated ids, end token excluded); for `score`,
        `{"log_likelihood", "num_tokens"}`: JSON-ready lists.
    """
    end_id = int(model.end_token_id)
    name, inputs = request["signature_name"], request["inputs"]
    if name == "score":
        return _score(model, tokenizer, end_id, limits, inputs["texts"])
    if name == "generate_ids":
        prompts = [
            row[:length] for row, length in zip(inputs["token_ids"], inputs["prompt_lengths"])
        ]
        return {"continuations": continuations(model, limits, prompts, inputs)}
    ids = continuations(model, limits, document_ids(tokenizer, end_id, inputs["prompts"]), inputs)
    return {
        "generated": [detokenized(tokenizer, row) for row in ids],
        "token_count": [len(row) for row in ids],
    }


def continuations(model, limits, prompts, inputs):
    """Generated ids (end token excluded) for token-id prompts; the decoding
    settings are the first values of `inputs` (a request shares them)."""
    settings = reference_settings(inputs, limits.max_new_tokens)
    new_tokens = settings.pop("max_new_tokens")
    keep = limits.max_prompt_tokens
    if limits.context is not None:
        keep = min(keep, limits.context - new_tokens)
    prompts = [list(p)[-keep:] for p in prompts]
    if hasattr(model, "generate"):
        strategy = "sample" if settings["temperature"] > 0 else "greedy"
        # The reference of a SavedModel that runs without XLA: the same graph kind.
        return model.generate(
            prompts, max_new_tokens=new_tokens, strategy=strategy, jit_compile=False, **settings
        )
    lengths = np.array([len(p) for p in prompts], "int32")
    width = 1 << (int(lengths.max()) + new_tokens - 1).bit_length()
    buffer = np.zeros((len(prompts), width), "int32")
    for row, prompt in enumerate(prompts):
        buffer[row, : len(prompt)] = prompt
    ids, mask = model.generate_ids(buffer, lengths, new_tokens, **settings)[:2]
    ids, mask = ops.convert_to_numpy(ids), ops.convert_to_numpy(mask)
    end_id = int(model.end_token_id)
    return [[int(t) for t in row[keep_row] if t != end_id] for row, keep_row in zip(ids, mask)]


def generate_texts(
    model, tokenizer, prompts, max_new_tokens, temperature=0.0, top_k=0, top_p=1.0, seed=0
):
    """Continuations of string `prompts`, each generated after the start-of-document
    token as the exported `generate` signature generates them: `kzoo generate` on a
    run of a causal LM without a string `generate()` (`LSTMLanguageModel`).

    Args:
        model: A causal LM with `generate_ids` and `end_token_id`.
        tokenizer: Its `SentencePieceTokenizer`.
        prompts: A list of strings.
        max_new_tokens: Tokens to generate at most per prompt (the model must hold
            them after the prompt: prompts keep their last tokens).
        temperature, top_k, top_p, seed: Sampling controls; `temperature` 0 is greedy.

    Returns:
        A list of `str`, without the prompts.
    """
    rows = document_ids(tokenizer, int(model.end_token_id), prompts)
    limits = GenerationLimits(max_new_tokens, max(map(len, rows)), model_context(model))
    settings = decoding_inputs(
        1, max_new_tokens, dict(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
    )
    return [detokenized(tokenizer, ids) for ids in continuations(model, limits, rows, settings)]


def sequence_log_likelihood(model, token_ids, padding_mask):
    """`sum_t log p(x_t | x_<t)` over the real tokens after the first, under any
    kzoo causal LM: `GPTCausalLM.score`, else the same formula on the logits
    (`LSTMLanguageModel`). The exported `score` signature calls it too.

    Args:
        model: A kzoo causal LM taking `{"token_ids", "padding_mask"}` and
            returning float logits `(batch, length, vocabulary_size)`.
        token_ids: `(batch, length)` int ids, right-padded.
        padding_mask: `(batch, length)`, 1 for real tokens.

    Returns:
        `(batch,)` float32 log-likelihoods (in nats).

    Example:
    >>> from kzoo.models import LSTMLanguageModel
    >>> lm = LSTMLanguageModel(vocabulary_size=10, embedding_dim=4, hidden_dim=8)
    >>> ids = np.array([[3, 5, 6], [3, 4, 0]], "int32")
    >>> scores = sequence_log_likelihood(lm, ids, np.array([[1, 1, 1], [1, 1, 0]]))
    >>> tuple(scores.shape), bool((np.asarray(scores) < 0).all())
    ((2,), True)
    """
    if hasattr(model, "score"):
        return ops.cast(model.score(token_ids, padding_mask), "float32")
    logits = model({"token_ids": token_ids, "padding_mask": padding_mask})
    log_probs = ops.log_softmax(ops.cast(logits[:, :-1], "float32"), axis=-1)
    targets = ops.cast(token_ids[:, 1:], "int32")
    token_log_probs = ops.take_along_axis(log_probs, targets[..., None], axis=-1)[..., 0]
    mask = ops.cast(padding_mask[:, 1:], "float32")
    return ops.sum(token_log_probs * mask, axis=-1)


def _score(model, tokenizer, end_id, limits, texts):
    rows = document_ids(tokenizer, end_id, texts)
    if limits.context is not None:
        rows = [row[: limits.context] for row in rows]
    width = max(len(row) for row in rows)
    token_ids = np.zeros((len(rows), width), "int32")
    padding_mask = np.zeros((len(rows), width), "int32")
    for i, row in enumerate(rows):
        token_ids[i, : len(row)], padding_mask[i, : len(row)] = row, 1
    scores = ops.convert_to_numpy(sequence_log_likelihood(model, token_ids, padding_mask))
    return {
        "log_likelihood": [float(s) for s in scores],
        "num_tokens": [len(row) - 1 for row in rows],
    }
