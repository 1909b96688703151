"""The `tokenizer.json` of a Llama-2 / Mistral SentencePiece BPE, as Hugging Face builds it.

`transformers` converts a `tokenizer.model` (SentencePiece BPE with byte fallback)
into a `tokenizers` BPE: the pieces are the vocabulary in id order, the merges
every split of a piece into two pieces, ordered by the piece's id, and the text is
prefixed with `"▁"` and its spaces replaced by `"▁"`. With `legacy=False` (the
default of `LlamaTokenizer` today) a `Metaspace` pre-tokenizer does that and only
the start of the text gets the prefix, unless it starts with a space. With
`legacy=True`, `transformers` 5 prefixes every piece between special tokens
that does not start with a space (`Metaspace` `"always"`), while older
`tokenizer.json` files (read as they are by the `tokenizers` library, or by
`transformers` under `PreTrainedTokenizerFast`) do it with a `Prepend`
normalizer: every piece, as SentencePiece itself. kzoo tokenizes with the
SentencePiece model itself (`SentencePieceTokenizer`, whose `prepend_scheme`
follows these); `sentencepiece_bpe_settings` reads that setting and the special
tokens from the checkpoint and `sentencepiece_bpe_to_json` writes the
`tokenizer.json` for the `tokenizers` and `transformers` libraries.
"""

import os

from kzoo import staged_files

SPIECE_UNDERLINE = "▁"
# sentencepiece_model.proto's piece types.
CONTROL, USER_DEFINED = 3, 4


def sentencepiece_bpe_to_json(proto, prepend_scheme="first"):
    """The `tokenizers.Tokenizer` that `LlamaTokenizerFast` makes of `proto`.

    Args:
        proto: The serialized SentencePiece BPE model (`tokenizer.model` bytes).
        prepend_scheme: `"sentencepiece"`: Hugging Face's `legacy=True`
            normalizer; else the `Metaspace` scheme (`"first"` is `legacy=False`).

    Returns:
        A `tokenizers.Tokenizer`; write it with `.save(path)`.

    Example:
    >>> import io, sentencepiece as spm
    >>> model = io.BytesIO()
    >>> spm.SentencePieceTrainer.train(
    ...     sentence_iterator=iter(["ab ab ba"] * 10), model_writer=model,
    ...     model_type="bpe", vocab_size=264, byte_fallback=True, minloglevel=2)
    >>> tokenizer = sentencepiece_bpe_to_json(model.getvalue())
    >>> tokenizer.encode("ab", add_special_tokens=False).tokens
    ['▁ab']
    """
    import tokenizers
    from sentencepiece import sentencepiece_model_pb2
    from tokenizers import AddedToken, decoders, models, normalizers, pre_tokenizers

    model = sentencepiece_model_pb2.ModelProto()
    model.ParseFromString(proto)
    vocabulary = {piece.piece: index for index, piece in enumerate(model.pieces)}
    merges = []
    for piece in vocabulary:
        local = [
            (piece[:cut], piece[cut:])
            for cut in range(1, len(piece))
            if piece[:cut] in vocabulary and piece[cut:] in vocabulary
        ]
        local.sort(key=lambda pair: (vocabulary[pair[0]], vocabulary[pair[1]]))
        merges.extend((left, right, vocabulary[piece]) for left, right in local)
    merges.sort(key=lambda merge: (merge[2], len(merge[0]), len(merge[1])))
    unk = model.pieces[model.trainer_spec.unk_id].piece
    tokenizer = tokenizers.Tokenizer(
        models.BPE(
            vocabulary,
            [(left, right) for left, right, _ in merges],
            unk_token=unk,
            fuse_unk=True,
            byte_fallback=model.trainer_spec.byte_fallback,
        )
    )
    prefix = model.normalizer_spec.add_dummy_prefix
    if prepend_scheme == "sentencepiece":
        steps = [normalizers.Prepend(SPIECE_UNDERLINE)] if prefix else []
        steps.append(normalizers.Replace(" ", SPIECE_UNDERLINE))
        tokenizer.normalizer = normalizers.Sequence(steps)
    else:
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(
            replacement=SPIECE_UNDERLINE,
            prepend_scheme=prepend_scheme if prefix else "never",
            split=False,
        )
    steps = [decoders.Replace(SPIECE_UNDERLINE, " "), decoders.ByteFallback(), decoders.Fuse()]
    if prefix:
        steps.append(decoders.Strip(content=" ", left=1))
    tokenizer.decoder = decoders.Sequence(steps)
    special = [p.piece for p in model.pieces if p.type == CONTROL or p.piece == unk]
    tokenizer.add_special_tokens([AddedToken(piece, normalized=False) for piece in special])
    user = [p.piece for p in model.pieces if p.type == USER_DEFINED]
    tokenizer.add_tokens([AddedToken(piece, normalized=False) for piece in user])
    return tokenizer


def sentencepiece_bpe_settings(proto, spec=None, config=None):
    """`SentencePieceTokenizer`'s `special_tokens` and `prepend_scheme` for a
    Llama-2 / Mistral checkpoint.

    Args:
        proto: The `tokenizer.model` bytes.
        spec: The parsed `tokenizer.json`, or None: its added tokens are the
            special tokens, its `Prepend` normalizer or `Metaspace`
            pre-tokenizer the prepend scheme.
        config: The parsed `tokenizer_config.json`, or None. Where its
            `tokenizer_class` is `LlamaTokenizer(Fast)`, `transformers` 5 builds
            the pipeline from the config, not from `tokenizer.json`, and so does
            this: `legacy` (default false) is `"always"`, else `"first"`, and
            `add_prefix_space: false` is `"never"`. Otherwise `tokenizer.json`
            says, and without one it is SentencePiece's own.

    Returns:
        `{"special_tokens": [...], "prepend_scheme": ...}`.

    Raises:
        ValueError: An added token strips the spaces beside it (the message
            names it).
    """
    from sentencepiece import sentencepiece_model_pb2

    model = sentencepiece_model_pb2.ModelProto()
    model.ParseFromString(proto)
    config = config or {}
    scheme = "sentencepiece" if spec is None else _scheme(spec)
    if str(config.get("tokenizer_class")).startswith("LlamaTokenizer"):
        scheme = "always" if config.get("legacy", False) else "first"
        if config.get("add_prefix_space") is False:
            scheme = "never"
    if spec is None:
        unk = model.trainer_spec.unk_id
        special = [
            p.piece
            for index, p in enumerate(model.pieces)
            if p.type in (CONTROL, USER_DEFINED) or index == unk
        ]
        return {"special_tokens": special, "prepend_scheme": scheme}
    pieces = {p.piece for p in model.pieces}
    special = []
    for token in spec.get("added_tokens") or []:
        flags = [key for key in ("lstrip", "rstrip", "single_word") if token.get(key)]
        if flags:
            raise ValueError(
                f"tokenizer.json: added token {token['content']!r} sets {', '.join(flags)}; "
                "kzoo keeps added tokens whole without stripping, expected false"
            )
        if token["content"] in pieces:
            special.append(token["content"])
    return {"special_tokens": special, "prepend_scheme": scheme}


def _scheme(spec):
    """The prepend scheme of a SentencePiece-style `tokenizer.json`."""
    steps = []
    for part in (spec.get("normalizer"), spec.get("pre_tokenizer")):
        part = part or {}
        steps += part.get("normalizers") or part.get("pretokenizers") or [part]
    for step in steps:
        if step.get("type") == "Prepend":
            return "sentencepiece"
        if step.get("type") == "Metaspace":
            if "prepend_scheme" in step:
                return step["prepend_scheme"]
            return "always" if step.get("add_prefix_space", True) else "never"
    return "never"


def save_sentencepiece_bpe(tokenizer, directory):
    """Writes a Llama-2 `SentencePieceTokenizer` as Hugging Face does:
    `tokenizer.model`, `tokenizer.json` and `tokenizer_config.json`; returns the
    paths."""
    scheme = tokenizer.prepend_scheme
    paths = [tokenizer.save(directory), os.path.join(directory, "tokenizer.json")]
    reference = sentencepiece_bpe_to_json(tokenizer.proto, scheme)
    staged_files.atomic_write(paths[-1], reference.save)
    vocabulary = tokenizer.get_vocabulary()
    # transformers' LlamaTokenizer rebuilds the pipeline from `legacy` and
    # `add_prefix_space`; SentencePiece's own scheme it reads from tokenizer.json.
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast"
        if scheme == "sentencepiece"
        else "LlamaTokenizer",
        "bos_token": vocabulary[tokenizer.bos_id],
        "eos_token": vocabulary[tokenizer.eos_id],
        "unk_token": vocabulary[tokenizer.unk_id],
        "legacy": scheme == "always",
        "add_prefix_space": scheme != "never",
        "add_bos_token": True,
        "add_eos_token": False,
    }
    path = os.path.join(directory, "tokenizer_config.json")
    paths.append(staged_files.write_json_atomic(path, config, sort_keys=False))
    return paths
