"""What the Keras model answers to the sample requests: the export's ground truth.

Computed eagerly from the Keras model and the Python-side tokenizer, through
`GPTCausalLM.generate` when the model has it (the public API users call), else
through `generate_ids` on a buffer built the way `GPTCausalLM.generate` builds it.
Stored in `assets.extra/expected_outputs.json`; `kzoo check-serving` compares the
SavedModel's answers with them: generated text and tokens exactly, scores with
`rtol=1e-4`.
"""

import numpy as np
from keras import ops

from kzoo.export.scoring import sequence_log_likelihood

SCORE_TOLERANCE = {"rtol": 1e-4, "atol": 1e-5}


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
        request: `{"signature_name", "inputs"}` (see `serving_requests`).

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
        "generated": [_detokenize(tokenizer, row) for row in ids],
        "token_count": [len(row) for row in ids],
    }


def continuations(model, limits, prompts, inputs):
    """Generated ids (end token excluded) for token-id prompts; the decoding
    settings are the first values of `inputs` (a request shares them)."""
    new_tokens = min(max(int(inputs["max_new_tokens"][0]), 1), limits.max_new_tokens)
    temperature = float(inputs["temperature"][0])
    settings = dict(
        temperature=temperature,
        top_k=max(int(inputs["top_k"][0]), 0),
        top_p=min(max(float(inputs["top_p"][0]), 1e-6), 1.0),
        seed=int(inputs["seed"][0]),
    )
    keep = limits.max_prompt_tokens
    if limits.context is not None:
        keep = min(keep, limits.context - new_tokens)
    prompts = [list(p)[-keep:] for p in prompts]
    if hasattr(model, "generate"):
        strategy = "sample" if temperature > 0 else "greedy"
        return model.generate(prompts, max_new_tokens=new_tokens, strategy=strategy, **settings)
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
    from kzoo.export.causal_lm_signatures import GenerationLimits, model_context

    rows = document_ids(tokenizer, int(model.end_token_id), prompts)
    limits = GenerationLimits(max_new_tokens, max(map(len, rows)), model_context(model))
    settings = {
        "max_new_tokens": [max_new_tokens],
        "temperature": [temperature],
        "top_k": [top_k],
        "top_p": [top_p],
        "seed": [seed],
    }
    return [_detokenize(tokenizer, ids) for ids in continuations(model, limits, rows, settings)]


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


def _detokenize(tokenizer, ids):
    text = tokenizer.detokenize([ids] if ids else [[]]).numpy()[0]
    return text.decode("utf-8", errors="replace")
