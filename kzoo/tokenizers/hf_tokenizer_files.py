"""Tokenizers of Hugging Face checkpoints and KerasHub presets, read and written.

`load_hf_tokenizer(directory)` picks the kzoo tokenizer from the files present:

    spiece.model              T5 SentencePiece -> SentencePieceTokenizer, with the
                              `extra_ids` sentinels Hugging Face appends
    tokenizer.model           Llama-2 / Mistral SentencePiece BPE ->
                              SentencePieceTokenizer (its own ids, `legacy` and
                              `pad_token` from tokenizer_config.json)
    tokenizer.json            a byte-level BPE (GPT-2, Llama-3, Qwen2) ->
                              BytePairTokenizer, a WordPiece ->
                              WordPieceTokenizer(normalization="huggingface")
    vocab.json + merges.txt   GPT-2 byte-level BPE -> BytePairTokenizer
    vocab.txt                 BERT WordPiece (settings from tokenizer_config.json:
                              do_lower_case, strip_accents, tokenize_chinese_chars)

`save_hf_tokenizer(tokenizer, directory)` writes what the `tokenizers` and
`transformers` libraries load back with the same ids; `load_keras_hub_tokenizer`
reads a KerasHub preset (`tokenizer.json` config, `assets/tokenizer/...`).
"""

import json
import os

from kzoo import staged_files
from kzoo.tokenizers.byte_level_bpe_json import (
    byte_level_bpe_from_json,
    byte_level_bpe_to_json,
    special_token_settings,
)
from kzoo.tokenizers.byte_level_words import GPT2_PATTERN, QWEN2_PATTERN
from kzoo.tokenizers.byte_pair_tokenizer import (
    END_OF_TEXT,
    MERGES_TXT,
    VOCAB_JSON,
    BytePairTokenizer,
    read_byte_pair_files,
)
from kzoo.tokenizers.model_file import TOKENIZER_FILENAME
from kzoo.tokenizers.sentencepiece_bpe_json import (
    save_sentencepiece_bpe,
    sentencepiece_bpe_settings,
)
from kzoo.tokenizers.sentencepiece_sentinels import append_sentinels, count_sentinels
from kzoo.tokenizers.sentencepiece_tokenizer import SentencePieceTokenizer
from kzoo.tokenizers.sentencepiece_trainer import SENTINEL_PIECE
from kzoo.tokenizers.wordpiece_tokenizer import WordPieceTokenizer
from kzoo.tokenizers.wordpiece_trainer import read_vocabulary

SPIECE_MODEL = "spiece.model"
TOKENIZER_JSON = "tokenizer.json"
TOKENIZER_CONFIG = "tokenizer_config.json"
VOCAB_TXT = "vocab.txt"
# What `load_hf_tokenizer` looks for, in this order.
HF_TOKENIZER_FILES = (
    SPIECE_MODEL,
    TOKENIZER_FILENAME,
    TOKENIZER_JSON,
    f"{VOCAB_JSON} + {MERGES_TXT}",
    VOCAB_TXT,
)
KERAS_HUB_ASSETS = os.path.join("assets", "tokenizer")
T5_EXTRA_IDS = 100


def load_hf_tokenizer(directory, extra_ids=None):
    """Loads the tokenizer of a Hugging Face checkpoint directory.

    Args:
        directory: The checkpoint (or a KerasHub preset: its root
            `tokenizer.json` is a Keras config, see `load_keras_hub_tokenizer`).
        extra_ids: For `spiece.model`: how many `<extra_id_N>` sentinels to add;
            defaults to `tokenizer_config.json`'s `extra_ids`, else the number of
            them in its `additional_special_tokens`, else 100 (T5's).

    Returns:
        A `BytePairTokenizer`, `WordPieceTokenizer` or `SentencePieceTokenizer`.

    Raises:
        FileNotFoundError: None of the files (the message names the directory
            and the files looked for).
        ValueError: A `tokenizer.json` of a kind kzoo does not run.

    Example:
    >>> load_hf_tokenizer("/nonexistent")
    Traceback (most recent call last):
    ...
    FileNotFoundError: /nonexistent: no tokenizer files; looked for spiece.model, ...
    """
    directory = os.fspath(directory)
    config = _read_json(os.path.join(directory, TOKENIZER_CONFIG), default={})
    if os.path.isfile(os.path.join(directory, SPIECE_MODEL)):
        with open(os.path.join(directory, SPIECE_MODEL), "rb") as file:
            proto = file.read()
        if extra_ids is None:
            extra_ids = config.get("extra_ids")
        if extra_ids is None and "additional_special_tokens" in config:
            extra_ids = sum(
                str(token).startswith("<extra_id_") for token in config["additional_special_tokens"]
            )
        return SentencePieceTokenizer(
            append_sentinels(proto, T5_EXTRA_IDS if extra_ids is None else extra_ids)
        )
    tokenizer_json = os.path.join(directory, TOKENIZER_JSON)
    if os.path.isfile(os.path.join(directory, TOKENIZER_FILENAME)):
        with open(os.path.join(directory, TOKENIZER_FILENAME), "rb") as file:
            proto = file.read()
        spec = _read_json(tokenizer_json) if os.path.isfile(tokenizer_json) else None
        return SentencePieceTokenizer(proto, **sentencepiece_bpe_settings(proto, spec, config))
    if os.path.isfile(tokenizer_json):
        spec = _read_json(tokenizer_json)
        if "class_name" in spec and "config" in spec:
            return load_keras_hub_tokenizer(directory)
        return _from_tokenizer_json(spec, tokenizer_json, config)
    if os.path.isfile(os.path.join(directory, VOCAB_JSON)):
        vocabulary, merges = read_byte_pair_files(directory)
        # Qwen2's vocab.json lacks its added tokens; the config has their ids.
        for index, token in (config.get("added_tokens_decoder") or {}).items():
            vocabulary.setdefault(_token_text(token), int(index))
        settings = special_token_settings(config, vocabulary)
        special = _added_tokens(config)
        if config.get("tokenizer_class", "").startswith("Qwen2Tokenizer"):
            settings.update(pattern=QWEN2_PATTERN, normalizer="NFC")
        return BytePairTokenizer(
            vocabulary,
            merges,
            special_tokens=sorted({settings["end_token"], *special} & set(vocabulary)),
            **settings,
        )
    if os.path.isfile(os.path.join(directory, VOCAB_TXT)):
        vocabulary, _ = read_vocabulary(directory)
        return WordPieceTokenizer(
            vocabulary,
            lowercase=config.get("do_lower_case", True),
            strip_accents=config.get("strip_accents"),
            tokenize_chinese_chars=config.get("tokenize_chinese_chars", True),
            normalization="huggingface",
        )
    raise FileNotFoundError(
        f"{directory}: no tokenizer files; looked for {', '.join(HF_TOKENIZER_FILES)}"
    )


def save_hf_tokenizer(tokenizer, directory):
    """Writes `tokenizer` as a Hugging Face checkpoint's tokenizer files.

    `BytePairTokenizer`: `vocab.json`, `merges.txt`, `tokenizer.json`;
    `WordPieceTokenizer`: `vocab.txt`, `tokenizer.json`; `SentencePieceTokenizer`:
    `spiece.model` (the sentinels that Hugging Face appends itself left out, their
    number in `extra_ids`), or for a Llama-2 one (with `special_tokens` or a
    `prepend_scheme`) `tokenizer.model` and `tokenizer.json`. Each with a
    `tokenizer_config.json` naming the
    `transformers` class. A WordPiece tokenizer with kzoo's default
    `normalization="tf_text"` is written as BERT's pipeline, which differs on
    the characters listed in `kzoo.tokenizers.bert_words`.

    Args:
        tokenizer: A kzoo tokenizer.
        directory: Created if missing.

    Returns:
        The paths written, a list.
    """
    os.makedirs(directory, exist_ok=True)
    if isinstance(tokenizer, BytePairTokenizer):
        return _save_byte_pair(tokenizer, directory)
    if isinstance(tokenizer, WordPieceTokenizer):
        return _save_wordpiece(tokenizer, directory)
    if isinstance(tokenizer, SentencePieceTokenizer) and not tokenizer.sentinel_ids:
        if tokenizer.prepend_scheme != "sentencepiece" or tokenizer.special_tokens:
            return save_sentencepiece_bpe(tokenizer, directory)
    if isinstance(tokenizer, SentencePieceTokenizer):
        return _save_sentencepiece(tokenizer, directory)
    raise TypeError(
        f"tokenizer: expected a BytePairTokenizer, WordPieceTokenizer or "
        f"SentencePieceTokenizer, got {type(tokenizer).__name__}"
    )


def load_keras_hub_tokenizer(directory):
    """Loads the tokenizer of a KerasHub preset directory.

    The preset root holds `tokenizer.json` (the Keras config of a KerasHub
    tokenizer) and `assets/tokenizer/` its files: `vocabulary.json` and
    `merges.txt` (byte-level BPE), `vocabulary.txt` (WordPiece; `lowercase`
    from the config) or `vocabulary.spm` (SentencePiece; a T5 tokenizer gets
    T5's 100 sentinels unless the model holds them).

    Raises:
        FileNotFoundError: No `tokenizer.json` or no asset file (the message
            names the directory and the files looked for).

    Example:
    >>> load_keras_hub_tokenizer("/nonexistent")
    Traceback (most recent call last):
    ...
    FileNotFoundError: /nonexistent/tokenizer.json does not exist; ...
    """
    directory = os.fspath(directory)
    path = os.path.join(directory, TOKENIZER_JSON)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path} does not exist; not a KerasHub preset directory")
    spec = _read_json(path)
    config = spec.get("config", {})
    assets = os.path.join(directory, KERAS_HUB_ASSETS)
    if os.path.isfile(os.path.join(assets, "vocabulary.json")):
        vocabulary = _read_json(os.path.join(assets, "vocabulary.json"))
        with open(os.path.join(assets, MERGES_TXT), encoding="utf-8") as file:
            merges = [line.rstrip("\r\n") for line in file if line.strip()]
        specials = [t for t in config.get("unsplittable_tokens") or [] if t in vocabulary]
        end_token = END_OF_TEXT if END_OF_TEXT in vocabulary else (specials or [None])[0]
        return BytePairTokenizer(
            vocabulary, merges, special_tokens=specials or None, end_token=end_token
        )
    if os.path.isfile(os.path.join(assets, "vocabulary.txt")):
        with open(os.path.join(assets, "vocabulary.txt"), encoding="utf-8") as file:
            vocabulary = [line.rstrip("\r\n") for line in file]
        while vocabulary and not vocabulary[-1]:
            vocabulary.pop()
        return WordPieceTokenizer(
            vocabulary, lowercase=config.get("lowercase", False), normalization="huggingface"
        )
    if os.path.isfile(os.path.join(assets, "vocabulary.spm")):
        with open(os.path.join(assets, "vocabulary.spm"), "rb") as file:
            proto = file.read()
        if "T5" in spec.get("class_name", "") and not count_sentinels(proto):
            proto = append_sentinels(proto, T5_EXTRA_IDS)
        return SentencePieceTokenizer(proto)
    raise FileNotFoundError(
        f"{assets}: no tokenizer assets; looked for vocabulary.json + merges.txt, "
        "vocabulary.txt, vocabulary.spm"
    )


def _from_tokenizer_json(spec, path, config):
    """A kzoo tokenizer from the `tokenizers` library's `tokenizer.json`."""
    model = spec.get("model") or {}
    kind = model.get("type")
    if kind == "BPE":
        return byte_level_bpe_from_json(spec, path, config)
    if kind == "WordPiece":
        normalizer = spec.get("normalizer") or {}
        if normalizer.get("type") != "BertNormalizer":
            raise ValueError(
                f"{path}: expected a BertNormalizer for a WordPiece model, got {normalizer!r}"
            )
        vocabulary = [None] * len(model["vocab"])
        for token, index in model["vocab"].items():
            vocabulary[index] = token
        return WordPieceTokenizer(
            vocabulary,
            lowercase=normalizer.get("lowercase", True),
            strip_accents=normalizer.get("strip_accents"),
            tokenize_chinese_chars=normalizer.get("handle_chinese_chars", True),
            normalization="huggingface",
        )
    raise ValueError(
        f"{path}: model type {kind!r} is not supported; expected BPE (GPT-2) or "
        f"WordPiece (BERT); for a Unigram (T5) tokenizer put its {SPIECE_MODEL} beside it"
    )


def _save_byte_pair(tokenizer, directory):
    paths = [tokenizer.save(directory), os.path.join(directory, MERGES_TXT)]
    paths.append(os.path.join(directory, TOKENIZER_JSON))
    staged_files.atomic_write(paths[-1], byte_level_bpe_to_json(tokenizer).save)
    end = tokenizer.end_token
    named = {end, tokenizer.bos_token, tokenizer.pad_token}
    config = {
        "tokenizer_class": "GPT2Tokenizer",
        "add_prefix_space": False,
        "bos_token": tokenizer.bos_token or end,
        "eos_token": end,
        "unk_token": end,
        "pad_token": tokenizer.pad_token,
        "additional_special_tokens": [t for t in tokenizer.special_tokens if t not in named],
    }
    if tokenizer.pattern != GPT2_PATTERN:
        # Llama-3's and Qwen2's: no unknown token; bos None where there is none.
        config.update(tokenizer_class="PreTrainedTokenizerFast", bos_token=tokenizer.bos_token)
        del config["unk_token"], config["add_prefix_space"]
    if config["pad_token"] is None:
        del config["pad_token"]
    paths.append(_write_config(directory, config))
    return paths


def _save_wordpiece(tokenizer, directory):
    import tokenizers
    from tokenizers import decoders, models, normalizers, pre_tokenizers, processors

    vocabulary = tokenizer.get_vocabulary()
    path = os.path.join(directory, VOCAB_TXT)
    staged_files.write_text_atomic(path, "".join(token + "\n" for token in vocabulary))
    ids = {token: index for index, token in enumerate(vocabulary)}
    reference = tokenizers.Tokenizer(
        models.WordPiece(ids, unk_token="[UNK]", max_input_chars_per_word=100)
    )
    reference.normalizer = normalizers.BertNormalizer(
        clean_text=True,
        handle_chinese_chars=tokenizer.tokenize_chinese_chars,
        strip_accents=tokenizer.strip_accents,
        lowercase=tokenizer.lowercase,
    )
    reference.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    reference.decoder = decoders.WordPiece()
    reference.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", tokenizer.cls_id), ("[SEP]", tokenizer.sep_id)],
    )
    reference.add_special_tokens(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    json_path = os.path.join(directory, TOKENIZER_JSON)
    staged_files.atomic_write(json_path, reference.save)
    config = {
        "tokenizer_class": "BertTokenizer",
        "do_lower_case": tokenizer.lowercase,
        "strip_accents": tokenizer.strip_accents,
        "tokenize_chinese_chars": tokenizer.tokenize_chinese_chars,
        "unk_token": "[UNK]",
        "sep_token": "[SEP]",
        "pad_token": "[PAD]",
        "cls_token": "[CLS]",
        "mask_token": "[MASK]",
    }
    return [path, json_path, _write_config(directory, config)]


def _save_sentencepiece(tokenizer, directory):
    from sentencepiece import sentencepiece_model_pb2

    model = sentencepiece_model_pb2.ModelProto()
    model.ParseFromString(tokenizer.proto)
    pieces = [piece.piece for piece in model.pieces]
    # Sentinels last, <extra_id_0> at the very end: Hugging Face appends them.
    extra_ids = 0
    while extra_ids < len(pieces) and pieces[-1 - extra_ids] == SENTINEL_PIECE.format(extra_ids):
        extra_ids += 1
    extra_ids = extra_ids if extra_ids == count_sentinels(tokenizer.proto) else 0
    for _ in range(extra_ids):
        model.pieces.pop()
    path = os.path.join(directory, SPIECE_MODEL)
    staged_files.write_bytes_atomic(path, model.SerializeToString())
    config = {
        "tokenizer_class": "T5Tokenizer",
        "extra_ids": extra_ids,
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": "<pad>",
    }
    return [path, _write_config(directory, config)]


def _write_config(directory, config):
    return staged_files.write_json_atomic(
        os.path.join(directory, TOKENIZER_CONFIG), config, sort_keys=False
    )


def _read_json(path, default=None):
    if default is not None and not os.path.isfile(path):
        return default
    with open(path, encoding="utf-8") as file:
        try:
            return json.load(file)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: not valid JSON ({error})") from None


def _token_text(token):
    """A special token of `tokenizer_config.json`: a string or `{"content": ...}`."""
    return token["content"] if isinstance(token, dict) else token


def _added_tokens(config):
    """The special tokens that `tokenizer_config.json` names."""
    tokens = [
        _token_text(config[key])
        for key in ("bos_token", "eos_token", "unk_token", "pad_token")
        if config.get(key)
    ]
    tokens += [_token_text(token) for token in config.get("additional_special_tokens") or []]
    tokens += [_token_text(token) for token in (config.get("added_tokens_decoder") or {}).values()]
    return tokens
