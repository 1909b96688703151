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


def reference_tokenizer(directory):
    """The `tokenizers` library's tokenizer of a `write_gpt2_tokenizer` or
    `write_bert_tokenizer` directory (its `tokenizer.json`)."""
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


def _write_json(directory, name, data):
    with open(os.path.join(directory, name), "w", encoding="utf-8") as file:
        json.dump(data, file, ensure_ascii=False)
