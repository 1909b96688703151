"""The sample requests an export ships: warmup, REST examples and the Keras check.

One list of requests (signature name + batch-first inputs as Python lists) feeds
three files, so what TF Serving replays at load time, what the README's `curl`
examples send and what `kzoo check-serving` compares with the Keras model are the
same inputs:

    VERSION/assets.extra/tf_serving_warmup_requests    (PredictionLog TFRecord)
    VERSION/assets.extra/example_requests/SIG.json     (REST :predict bodies)
    VERSION/assets.extra/expected_outputs.json         (Keras outputs per request)
"""

DEFAULT_PROMPTS = ("", "a")
GREEDY = {"temperature": 0.0, "top_k": 0, "top_p": 1.0, "seed": 0}
SAMPLED = {"temperature": 0.8, "top_k": 20, "top_p": 0.95, "seed": 7}


def sample_prompts(config_prompts=()):
    """Two distinct prompts: the run's `train.sample_prompts` first."""
    return list(dict.fromkeys([*config_prompts, *DEFAULT_PROMPTS]))[:2]


def decoding_inputs(batch, max_new_tokens, settings):
    """Decoding inputs repeated per prompt, so each row is a valid REST instance."""
    inputs = {"max_new_tokens": max_new_tokens, **settings}
    return {key: [value] * batch for key, value in inputs.items()}


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
    return [
        _request(
            "generate", prompts=list(prompts), **decoding_inputs(batch, max_new_tokens, GREEDY)
        ),
        _request(
            "generate", prompts=list(prompts), **decoding_inputs(batch, max_new_tokens, SAMPLED)
        ),
        _request(
            "serving_default",
            prompts=list(prompts),
            **decoding_inputs(batch, max_new_tokens, GREEDY),
        ),
        _request("score", texts=[*prompts, (" ".join(p for p in prompts if p) + " ") * 3]),
        _request(
            "generate_ids",
            token_ids=[list(ids) + [0] * (width - len(ids)) for ids in prompt_ids],
            prompt_lengths=[len(ids) for ids in prompt_ids],
            **decoding_inputs(batch, max_new_tokens, GREEDY),
        ),
    ]


def rest_body(request):
    """A REST `:predict` body in the row ("instances") format."""
    inputs = request["inputs"]
    batch = len(next(iter(inputs.values())))
    return {
        "signature_name": request["signature_name"],
        "instances": [{key: values[row] for key, values in inputs.items()} for row in range(batch)],
    }


def _request(signature_name, **inputs):
    return {"signature_name": signature_name, "inputs": inputs}
