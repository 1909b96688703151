"""A seq2seq or T5 export's sample requests and what the Keras model answers to them.

The sample requests (warmup, REST examples, the check-serving comparison) are
built from the run's own vocabulary: the first validation sources of the built-in
translation task when the vocabulary covers them, else its own pieces. Their
expected outputs come from the Keras side, eagerly: `Seq2SeqLM.generate` for
generation and `Seq2SeqLM.score` for scores, on sources cut and padded as the
signatures cut them. `kzoo check-serving` then shows that the SavedModel, loaded
without Keras or kzoo, answers the same (strings and ids exactly, floats to 1e-4).
The graph side is `seq2seq_signatures`.
"""

import numpy as np
from keras import ops

from kzoo.models.text_generation import detokenize, right_pad

SAMPLE_NEW_TOKENS = 8
GREEDY = {
    "strategy": "greedy",
    "temperature": 0.0,
    "top_k": 0,
    "top_p": 1.0,
    "seed": 0,
    "length_penalty": 0.0,
}
SAMPLED = {
    **GREEDY,
    "strategy": "sample",
    "temperature": 0.8,
    "top_k": 20,
    "top_p": 0.95,
    "seed": 7,
}
BEAM = {**GREEDY, "strategy": "beam", "length_penalty": 0.6}


# --- Sample requests --------------------------------------------------------------


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


def sample_requests(tokenizer, end_id, limits, endpoints):
    """Greedy, sampled and beam generation, score and ids generation requests.

    Args:
        tokenizer: The model's `SentencePieceTokenizer`.
        end_id: Its end token id.
        limits: The export's `Seq2SeqLimits`.
        endpoints: The names of the generation endpoint and its ids variant.
    """
    generate, generate_ids = endpoints
    (source, target), (other_source, other_target) = sample_pairs(tokenizer)
    sources = [source, other_source]
    new_tokens = min(SAMPLE_NEW_TOKENS, limits.max_new_tokens)
    long_source = " ".join([source] * limits.capacity)  # gets cut
    ids = source_ids(tokenizer, end_id, limits, sources)
    padded = [row + [0] * (max(map(len, ids)) - len(row)) for row in ids]
    return [
        _request(generate, {"sources": sources}, new_tokens, GREEDY),
        _request(generate, {"sources": sources}, new_tokens, SAMPLED),
        _request(generate, {"sources": [long_source, other_source]}, new_tokens, BEAM),
        _request("serving_default", {"sources": sources}, new_tokens, GREEDY),
        {
            "signature_name": "score",
            "inputs": {"sources": [*sources, long_source], "targets": [target, other_target, ""]},
        },
        _request(generate_ids, {"source_ids": padded}, new_tokens, GREEDY),
    ]


def _request(name, inputs, new_tokens, settings):
    batch = len(next(iter(inputs.values())))
    decoding = {"max_new_tokens": new_tokens, **settings}
    return {
        "signature_name": name,
        "inputs": {**inputs, **{k: [v] * batch for k, v in decoding.items()}},
    }


# --- Keras reference --------------------------------------------------------------


def source_ids(tokenizer, end_id, limits, texts):
    """Token ids of each source, cut as the signatures cut them, end token last."""
    rows = tokenizer.tokenize(list(texts)).to_list()
    keep = limits.max_source_tokens - 1
    return [[int(t) for t in row[:keep]] + [end_id] for row in rows]


def reference_outputs(model, tokenizer, limits, request):
    """The Keras model's outputs for one sample request (JSON-ready lists).

    Generation requests share their decoding settings (their first values are used).
    """
    name, inputs = request["signature_name"], request["inputs"]
    end_id = int(model.end_token_id)
    if name == "score":
        return _score(model, tokenizer, limits, inputs["sources"], inputs["targets"])
    if "source_ids" in inputs:
        sources = [[int(t) for t in row] for row in inputs["source_ids"]]
        sources = [row[: max(i + 1 for i, t in enumerate(row) if t)] for row in sources]
        sources = [row[: limits.max_source_tokens] for row in sources]
    else:
        sources = source_ids(tokenizer, end_id, limits, inputs["sources"])
    new_tokens = min(max(int(inputs["max_new_tokens"][0]), 1), limits.max_new_tokens)
    rows = model.generate(
        sources,
        max_new_tokens=new_tokens,
        strategy=inputs["strategy"][0],
        temperature=float(inputs["temperature"][0]),
        top_k=max(int(inputs["top_k"][0]), 0),
        top_p=min(max(float(inputs["top_p"][0]), 1e-6), 1.0),
        seed=int(inputs["seed"][0]),
        num_beams=limits.num_beams,
        length_penalty=float(inputs["length_penalty"][0]),
    )
    outputs = {
        "target_ids": [row + [0] * (new_tokens - len(row)) for row in rows],
        "num_tokens": [len(row) for row in rows],
    }
    if "sources" in inputs:
        outputs["targets"] = [detokenize(tokenizer, row) for row in rows]
    return outputs


def _score(model, tokenizer, limits, sources, targets):
    start_id, end_id = int(model.start_token_id), int(model.end_token_id)
    encoder = source_ids(tokenizer, end_id, limits, sources)
    decoder = [
        [start_id, *row[: limits.capacity - 2], end_id]
        for row in tokenizer.tokenize(list(targets)).to_list()
    ]
    encoder_ids, encoder_mask = right_pad(encoder, max(map(len, encoder)))
    decoder_ids, decoder_mask = right_pad(decoder, max(map(len, decoder)))
    scores = model.score(
        {
            "encoder_token_ids": encoder_ids,
            "encoder_padding_mask": encoder_mask,
            "decoder_token_ids": decoder_ids,
            "decoder_padding_mask": decoder_mask,
        }
    )
    scores = np.asarray(ops.convert_to_numpy(scores), "float64")
    return {"log_likelihood": scores.tolist(), "num_tokens": [len(row) - 1 for row in decoder]}
