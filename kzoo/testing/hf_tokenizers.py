"""Tiny Hugging Face tokenizer directories, built offline with the `tokenizers` and
`sentencepiece` libraries, and the hard texts their ids are compared on.

Each `write_*` function trains a vocabulary of a few hundred tokens in well under
a second and writes the files a real checkpoint has; `reference_*` returns the
reference implementation for the same directory.
"""

import io
import json
import os

import sentencepiece as spm

from kzoo.tokenizers.model_file import write_model_file

# Unicode (accents, combining marks, CJK, Arabic, Greek), emoji (a multi-codepoint
# ZWJ family), whitespace runs, tabs, newlines, leading and trailing spaces, the
# empty string, a 300-character word, punctuation runs, contractions, controls.
HARD_TEXTS = [
    "",
    " ",
    "   ",
    "\n",
    "The quick brown fox's jumps, over the lazy dog!",
    "  leading and trailing spaces  ",
    "tabs\tand\t\ttabs\nnew\n\nlines\r\nwindows",
    "whitespace    runs   before words",
    "Café naïve Über straße déjà vu ΣΊΣΥΦΟΣ İstanbul ﬁne",
    "cafe\u0301 with a combining accent",
    "日本語のテキスト 中文 한국어",
    "مرحبا بالعالم",
    "emoji 😀 family 👨\u200d👩\u200d👧 flags 🇫🇷🎉",
    "x" * 300,
    "é" * 300,
    "!!!???... ---- ((()))",
    "it's we're I'll they've 'S 'll",
    "numbers 12345 3.14 1,000,000",
    "nbsp\u00a0and\u2003em\u3000spaces",
    "controls \x00 \x07 \u200b\ufeff end",
    "<|endoftext|> between <|endoftext|>documents",
]

CORPUS = [
    "The quick brown fox's jumps over the lazy dog. It's a dog's life!",
    "Café naïve über straße déjà vu, Ελληνικά ΣΊΣΥΦΟΣ, İstanbul.",
    "日本語のテキスト 中文的句子 한국어 문장",
    "مرحبا بالعالم العربية",
    "emoji 😀 👨\u200d👩\u200d👧 🎉 numbers 12345 and 3.14",
    "  indented\n\ttabs\r\nwindows   runs",
    "we're they've I'll you'd she's",
] * 30


def write_gpt2_tokenizer(directory, vocab_size=400):
    """A byte-level BPE like GPT-2's: `vocab.json` (with `<|endoftext|>` last),
    `merges.txt`, `tokenizer.json` and `tokenizer_config.json`. Returns `directory`."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - 1,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS, trainer)
    tokenizer.add_special_tokens(["<|endoftext|>"])
    os.makedirs(directory, exist_ok=True)
    tokenizer.model.save(directory)  # vocab.json (without the added token), merges.txt
    tokenizer.save(os.path.join(directory, "tokenizer.json"))
    _write_json(directory, "vocab.json", tokenizer.get_vocab())
    config = {"tokenizer_class": "GPT2Tokenizer", "eos_token": "<|endoftext|>"}
    _write_json(directory, "tokenizer_config.json", config)
    return directory


def write_bert_tokenizer(directory, lowercase=True, vocab_size=300):
    """A BERT WordPiece (`BertWordPieceTokenizer`): `vocab.txt`, `tokenizer.json`
    and `tokenizer_config.json` (`do_lower_case`). Returns `directory`."""
    from tokenizers import BertWordPieceTokenizer

    tokenizer = BertWordPieceTokenizer(lowercase=lowercase)
    tokenizer.train_from_iterator(
        CORPUS,
        vocab_size=vocab_size,
        special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"],
        show_progress=False,
    )
    os.makedirs(directory, exist_ok=True)
    tokenizer.save_model(directory)
    tokenizer.save(os.path.join(directory, "tokenizer.json"))
    config = {"tokenizer_class": "BertTokenizer", "do_lower_case": lowercase}
    _write_json(directory, "tokenizer_config.json", config)
    return directory


def write_t5_tokenizer(directory, vocab_size=100):
    """A T5-style SentencePiece unigram `spiece.model` (pad 0, eos 1, unk 2, no
    bos; no sentinels: Hugging Face appends 100) and `tokenizer_config.json`.
    Returns `directory`."""
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS),
        model_writer=model,
        model_type="unigram",
        vocab_size=vocab_size,
        pad_id=0,
        eos_id=1,
        unk_id=2,
        bos_id=-1,
        character_coverage=1.0,
        minloglevel=2,
    )
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "spiece.model"), "wb") as file:
        file.write(model.getvalue())
    config = {"tokenizer_class": "T5Tokenizer", "extra_ids": 100}
    _write_json(directory, "tokenizer_config.json", config)
    return directory


LLAMA3_SPECIAL_TOKENS = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|reserved_special_token_0|>",
    "<|start_header_id|>",
    "<|end_header_id|>",
    "<|eot_id|>",
]
QWEN2_SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# Digit runs and contractions, where Llama-3's and Qwen2's patterns differ from GPT-2's.
DIGIT_AND_CONTRACTION_TEXTS = [
    "1 12 123 1234 12345 1234567890 ٣٤٥٦ 3.14159 x2y22z333",
    "IT'S WE'RE I'LL THEY'VE 'D 'M 'T 's'S 'ſ don't",
    "a.b (c) 'tis \n\n\nx  \n y\t\n\tz .\n\nw",
    "<|begin_of_text|>Hi<|eot_id|> <|im_start|>user\nhello<|im_end|>\n",
]


def write_byte_level_bpe(
    directory, pattern, special_tokens, config, nfc=False, ignore_merges=False, vocab_size=400
):
    """A byte-level BPE with a `Split(pattern)` pre-tokenizer, as Llama-3's and
    Qwen2's `tokenizer.json` are: trained on `CORPUS`, `special_tokens` added last,
    `tokenizer.json`, `vocab.json`, `merges.txt` and `tokenizer_config.json`
    (`config`). Returns `directory`."""
    from tokenizers import (
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
        trainers,
    )

    tokenizer = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    if nfc:
        tokenizer.normalizer = normalizers.NFC()
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size - len(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(CORPUS + DIGIT_AND_CONTRACTION_TEXTS * 10, trainer)
    tokenizer.add_special_tokens(special_tokens)
    os.makedirs(directory, exist_ok=True)
    tokenizer.model.save(directory)  # vocab.json (without the added tokens), merges.txt
    tokenizer.save(os.path.join(directory, "tokenizer.json"))
    _write_json(directory, "tokenizer_config.json", config)
    return directory


def write_llama3_tokenizer(directory, vocab_size=400):
    """A tiny Llama-3 `tokenizer.json` (its regex, `ignore_merges`, its special
    tokens, `<|begin_of_text|>` and `<|end_of_text|>` in the config, no pad)."""
    from kzoo.tokenizers.byte_level_words import LLAMA3_PATTERN

    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<|begin_of_text|>",
        "eos_token": "<|end_of_text|>",
    }
    return write_byte_level_bpe(
        directory,
        LLAMA3_PATTERN,
        LLAMA3_SPECIAL_TOKENS,
        config,
        ignore_merges=True,
        vocab_size=vocab_size,
    )


def write_qwen2_tokenizer(directory, vocab_size=400):
    """A tiny Qwen2 `tokenizer.json` (its regex, NFC, `<|endoftext|>` as eos and
    pad, no bos)."""
    from kzoo.tokenizers.byte_level_words import QWEN2_PATTERN

    config = {
        "tokenizer_class": "Qwen2Tokenizer",
        "bos_token": None,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
    }
    return write_byte_level_bpe(
        directory, QWEN2_PATTERN, QWEN2_SPECIAL_TOKENS, config, nfc=True, vocab_size=vocab_size
    )


def write_llama2_tokenizer(directory, vocab_size=400, prepend_scheme="first"):
    """A tiny Llama-2 SentencePiece BPE, trained with Meta's options (byte
    fallback, split digits, dummy prefix, identity normalization, whitespace-only
    pieces): `tokenizer.model`, the `tokenizer.json` that `transformers` 5 uses
    for it, and `tokenizer_config.json`. `prepend_scheme`: `"first"`
    (`LlamaTokenizer`, `legacy: false`), `"always"` (`legacy: true`) or
    `"sentencepiece"` (an older `tokenizer.json` with a `Prepend` normalizer,
    under `PreTrainedTokenizerFast`). Returns `directory`."""
    from kzoo.tokenizers.sentencepiece_bpe_json import sentencepiece_bpe_to_json

    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(CORPUS + DIGIT_AND_CONTRACTION_TEXTS * 10),
        model_writer=model,
        model_type="bpe",
        vocab_size=vocab_size,
        byte_fallback=True,
        split_digits=True,
        add_dummy_prefix=True,
        normalization_rule_name="identity",
        remove_extra_whitespaces=False,
        allow_whitespace_only_pieces=True,
        split_by_unicode_script=True,
        split_by_number=True,
        character_coverage=0.99995,
        max_sentencepiece_length=16,
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        minloglevel=2,
    )
    write_model_file(directory, model.getvalue())  # Llama-2's file name is kzoo's
    sentencepiece_bpe_to_json(model.getvalue(), prepend_scheme).save(
        os.path.join(directory, "tokenizer.json")
    )
    config = {
        "tokenizer_class": "LlamaTokenizer"
        if prepend_scheme != "sentencepiece"
        else "PreTrainedTokenizerFast",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "pad_token": None,
        "legacy": prepend_scheme == "always",
        "add_bos_token": True,
        "add_eos_token": False,
    }
    _write_json(directory, "tokenizer_config.json", config)
    return directory


def reference_tokenizer(directory):
    """The `tokenizers` library's tokenizer of a `write_*_tokenizer` directory
    but T5's (its `tokenizer.json`)."""
    from tokenizers import Tokenizer

    return Tokenizer.from_file(os.path.join(directory, "tokenizer.json"))


def reference_t5_ids(directory, text, extra_ids=100):
    """T5's ids as Hugging Face's `T5Tokenizer` gives them: `spiece.model`'s,
    and `<extra_id_N>` (id `vocab + extra_ids - 1 - N`) cut out of the text first."""
    import re

    processor = spm.SentencePieceProcessor(model_file=os.path.join(directory, "spiece.model"))
    size = processor.vocab_size()
    ids = []
    sentinels = "|".join(str(index) for index in range(extra_ids))
    for part in re.split(f"(<extra_id_(?:{sentinels})>)", text):
        match = re.fullmatch(r"<extra_id_(\d+)>", part)
        if match and int(match.group(1)) < extra_ids:
            ids.append(size + extra_ids - 1 - int(match.group(1)))
        elif part:
            ids.extend(processor.encode(part))
    return ids


def table_points(table):
    """The codepoints of an RE2 character class body like `\\x{41}-\\x{5a}\\x{61}`."""
    ranges, start = set(), None
    for item in table.split("\\x{")[1:]:
        value, _, rest = item.partition("}")
        value = int(value, 16)
        if start is not None:
            ranges.update(range(start, value + 1))
            start = None
        elif rest == "-":
            start = value
        else:
            ranges.add(value)
    return ranges


def sweep_characters():
    """Every codepoint below U+3100, and those around the ranges kzoo lists."""
    from kzoo.tokenizers import bert_words, byte_level_words

    points = set(range(1, 0x3100))
    for table in (
        byte_level_words.NEW_LETTERS,
        byte_level_words.NEW_NUMBERS,
        bert_words.CONTROL,
        bert_words.PUNCTUATION,
        bert_words.CJK,
    ):
        for hex_digits in table.replace("\\x{", " ").replace("}", " ").replace("-", " ").split():
            point = int(hex_digits, 16)
            points.update({point - 1, point, point + 1})
    return [chr(p) for p in sorted(points) if 0 < p < 0x110000 and not 0xD800 <= p < 0xE000]


def _write_json(directory, name, data):
    with open(os.path.join(directory, name), "w", encoding="utf-8") as file:
        json.dump(data, file, ensure_ascii=False)
