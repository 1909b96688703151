"""The `tokenizer.json` of a byte-level BPE (GPT-2, Llama-3, Qwen2), read and written.

Hugging Face writes GPT-2's as a `ByteLevel` pre-tokenizer with its built-in regex,
and Llama-3's and Qwen2's as a `Sequence` of a `Split` (their regex, `Isolated`)
and a `ByteLevel` without regex; Qwen2 adds an `NFC` normalizer and Llama-3 sets
the model's `ignore_merges`. `byte_level_bpe_from_json` reads these into a
`BytePairTokenizer` (its end, start and padding tokens from
`tokenizer_config.json`) and refuses anything else in one line;
`byte_level_bpe_to_json` builds the `tokenizers.Tokenizer` that reads back with the
same ids.
"""

from kzoo.tokenizers.byte_level_words import GPT2_PATTERN, check_pattern
from kzoo.tokenizers.byte_pair_tokenizer import END_OF_TEXT, BytePairTokenizer


def byte_level_bpe_from_json(spec, path, config=None):
    """A `BytePairTokenizer` from a parsed `tokenizer.json`.

    Args:
        spec: The parsed `tokenizer.json` (a BPE model).
        path: Its path, for messages.
        config: The parsed `tokenizer_config.json` (`eos_token`, `bos_token`,
            `pad_token`), or None.

    Raises:
        ValueError: A setting kzoo does not run (the message names it and what
            is expected).

    Example:
    >>> spec = {"model": {"type": "BPE", "vocab": {"a": 0, "aa": 1, "<|endoftext|>": 2},
    ...                   "merges": ["a a"]},
    ...         "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False},
    ...         "added_tokens": [{"id": 2, "content": "<|endoftext|>"}]}
    >>> tokenizer = byte_level_bpe_from_json(spec, "tokenizer.json")
    >>> tokenizer.pattern == GPT2_PATTERN, tokenizer.eos_id
    (True, 2)
    """
    model = spec["model"]
    pattern = _pattern(spec.get("pre_tokenizer") or {}, path)
    normalizer = spec.get("normalizer")
    if normalizer not in (None, {"type": "NFC"}):
        raise ValueError(
            f"{path}: normalizer {normalizer!r} is not supported for a byte-level BPE; "
            'expected none or {"type": "NFC"}'
        )
    for key in ("continuing_subword_prefix", "end_of_word_suffix", "byte_fallback", "dropout"):
        if model.get(key):
            raise ValueError(f"{path}: model.{key}={model[key]!r} is not supported; expected none")
    added = spec.get("added_tokens") or []
    for token in added:
        flags = [key for key in ("lstrip", "rstrip", "single_word") if token.get(key)]
        if flags:
            raise ValueError(
                f"{path}: added token {token['content']!r} sets {', '.join(flags)}; "
                "kzoo keeps added tokens whole without stripping, expected false"
            )
    vocabulary = dict(model["vocab"])
    vocabulary.update({token["content"]: token["id"] for token in added})
    merges = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    specials = [token["content"] for token in added]
    return BytePairTokenizer(
        vocabulary,
        merges,
        special_tokens=specials or None,
        pattern=pattern,
        normalizer=normalizer and normalizer["type"],
        ignore_merges=model.get("ignore_merges", False),
        **special_token_settings(config or {}, vocabulary, specials),
    )


def special_token_settings(config, vocabulary, specials=()):
    """`end_token`, `bos_token` and `pad_token` from `tokenizer_config.json`.

    The end token is `eos_token`, else `<|endoftext|>`, else the first special
    token; `bos_token` and `pad_token` are None where the config has none (or
    names a token outside the vocabulary), so they fall back to the end token.
    """

    def named(key):
        token = config.get(key)
        token = token["content"] if isinstance(token, dict) else token
        return token if token in vocabulary else None

    end = named("eos_token")
    if end is None:
        end = END_OF_TEXT if END_OF_TEXT in vocabulary else next(iter(specials), END_OF_TEXT)
    bos, pad = named("bos_token"), named("pad_token")
    return {
        "end_token": end,
        "bos_token": None if bos == end else bos,
        "pad_token": None if pad == end else pad,
    }


def byte_level_bpe_to_json(tokenizer):
    """The `tokenizers.Tokenizer` of a `BytePairTokenizer` (save it with `.save`)."""
    import tokenizers
    from tokenizers import decoders, models, normalizers, pre_tokenizers, processors

    vocabulary = {token: index for index, token in enumerate(tokenizer.get_vocabulary())}
    merges = [tuple(merge.split(" ")) for merge in tokenizer.merges]
    reference = tokenizers.Tokenizer(
        models.BPE(vocabulary, merges, ignore_merges=tokenizer.ignore_merges)
    )
    if tokenizer.pattern == GPT2_PATTERN:
        reference.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    else:
        reference.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(
                    tokenizers.Regex(tokenizer.pattern), behavior="isolated", invert=False
                ),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
    if tokenizer.normalizer == "NFC":
        reference.normalizer = normalizers.NFC()
    reference.decoder = decoders.ByteLevel()
    reference.post_processor = processors.ByteLevel(trim_offsets=False)
    reference.add_special_tokens(list(tokenizer.special_tokens))
    return reference


def _pattern(pre, path):
    """The regex of a `ByteLevel` or `Sequence[Split, ByteLevel]` pre-tokenizer."""
    steps = pre.get("pretokenizers") if pre.get("type") == "Sequence" else [pre]
    kinds = [step.get("type") for step in steps or []]
    if kinds == ["ByteLevel"] and not pre.get("add_prefix_space") and pre.get("use_regex", True):
        return GPT2_PATTERN
    if kinds == ["Split", "ByteLevel"]:
        split, byte_level = steps
        regex = (split.get("pattern") or {}).get("Regex")
        if (
            regex is not None
            and split.get("behavior") == "Isolated"
            and not split.get("invert")
            and not byte_level.get("add_prefix_space")
            and not byte_level.get("use_regex", True)
        ):
            try:
                return check_pattern(regex)
            except ValueError as error:
                raise ValueError(f"{path}: pre_tokenizer Split {error}") from None
    raise ValueError(
        f"{path}: a BPE tokenizer kzoo does not run; expected a byte-level BPE, a "
        "ByteLevel pre_tokenizer (GPT-2) or Split(Regex, Isolated) + ByteLevel(use_regex="
        f"false) (Llama-3, Qwen2), without add_prefix_space, got pre_tokenizer={pre!r}"
    )
