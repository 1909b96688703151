"""Trains a lossless SentencePiece vocabulary (BPE, unigram or characters) on a corpus.

Lossless means `detokenize(tokenize(text)) == text` for every text the corpus could
hold: no Unicode normalization, no dummy prefix, runs of spaces kept, `"\\n"` a
token of its own and, for the subword types, byte fallback so that characters never
seen in training (emoji, other scripts) become UTF-8 byte tokens instead of `<unk>`.

One caveat comes from SentencePiece itself: it stores spaces as `"▁"` (U+2581), so a
literal `"▁"` in the text comes back as a space.

With `num_sentinels=n` the vocabulary also holds T5's span-corruption sentinels
`<extra_id_0>` ... `<extra_id_{n-1}>` right after `"\\n"`, so their ids are 5 to
4 + n for every model type. (T5's released vocabulary appends them after its
32,000 pieces, `<extra_id_0>` last, so code should not assume either layout and
look them up with `SentencePieceTokenizer.sentinel_ids`.) The literal text
`"<extra_id_0>"` is then always that one token.
"""

import io
import os
import random
import re

import sentencepiece as spm

from kzoo.data import text_files
from kzoo.tokenizers.model_file import write_model_file

MODEL_TYPES = ("bpe", "unigram", "char")
# Ids shared by every kzoo tokenizer: pad 0 lets zero-filled buffers mean padding.
PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
SPECIAL_PIECES = {"pad": "<pad>", "unk": "<unk>", "bos": "<s>", "eos": "</s>"}
# SentencePiece trains on sentences without "\n", so the newline is added as a
# user-defined symbol: always one token, never merged, and encodable by every type.
NEWLINE = "\n"
# T5's sentinel pieces, user-defined symbols like the newline (so never merged).
SENTINEL_PIECE = "<extra_id_{}>"
_SPACE = "\u2581"  # How SentencePiece stores " ".
_TOO_HIGH = re.compile(r"Vocabulary size too high \((\d+)\)\. Please set it to a value <= (\d+)")
_TOO_SMALL = re.compile(r"Vocabulary size is smaller than required_chars\. (\d+) vs (\d+)")


def train_sentencepiece(
    *,
    output_dir,
    vocab_size=None,
    model_type="bpe",
    files=None,
    texts=None,
    files_key="data.train",
    byte_fallback=None,
    character_coverage=None,
    max_sentences=2_000_000,
    max_sentence_length=8192,
    seed=0,
    num_threads=None,
    num_sentinels=0,
):
    """Trains a SentencePiece model and writes it to `output_dir/tokenizer.model`.

    The corpus is streamed line by line (SentencePiece trains on "sentences"); lines
    longer than `max_sentence_length` bytes are cut into pieces rather than dropped,
    so one-long-line documents still count. Special ids are fixed: `<pad>` 0,
    `<unk>` 1, `<s>` 2 (bos), `</s>` 3 (eos, used as end-of-document), then `"\\n"`
    4, then the sentinels `<extra_id_0>` 5, `<extra_id_1>` 6, ... if any.

    Args:
        output_dir: The run directory; the model is written there atomically.
        vocab_size: The number of pieces, specials and byte pieces included
            (config key `tokenizer.vocab_size`); the sentinels count too. Ignored
            for `"char"`, whose vocabulary is every character of the corpus plus
            the specials and sentinels (plus 256 byte pieces with
            `byte_fallback=True`).
        model_type: `"bpe"`, `"unigram"` or `"char"`.
        files: Paths or glob patterns of UTF-8 text files (see
            `kzoo.data.text_files.resolve_text_files`).
        texts: In-memory documents, a list of `str`. Give `files` or `texts`.
        files_key: The config key of `files`, quoted in errors.
        byte_fallback: Encode unseen characters as UTF-8 bytes. Defaults to `True`
            for `"bpe"`/`"unigram"` and `False` for `"char"` (unseen characters
            then map to `<unk>`).
        character_coverage: The share of characters that get their own piece;
            the rest use byte fallback. Defaults to 1.0 (every character), which
            `"char"` needs; lower it (e.g. 0.9995) for corpora with huge alphabets.
        max_sentences: At most this many lines are sampled (uniformly, with
            `seed`) for training; `None` for all. `"char"` still takes its
            characters from every line.
        max_sentence_length: Lines are cut into pieces of at most this many bytes.
        seed: Seeds the sampling of lines, so training is reproducible.
        num_threads: Trainer threads; defaults to the number of CPUs.
        num_sentinels: How many T5 sentinels `<extra_id_0>`, `<extra_id_1>`, ...
            to reserve as single, never-merged tokens (T5 uses 100).

    Returns:
        The path of the written `tokenizer.model`.

    Raises:
        ValueError: Unknown `model_type`, an empty corpus, or a `vocab_size` the
            corpus cannot support (the message names `tokenizer.vocab_size`, the
            value and SentencePiece's bound).

    Example:
    >>> import tempfile
    >>> path = train_sentencepiece(
    ...     texts=["hello world\\n" * 50],
    ...     model_type="char",
    ...     output_dir=tempfile.mkdtemp(),
    ... )
    >>> import sentencepiece as spm
    >>> sp = spm.SentencePieceProcessor(model_file=path)
    >>> sp.vocab_size(), sp.decode(sp.encode("hello  world\\n"))
    (13, 'hello  world\\n')
    """
    if model_type not in MODEL_TYPES:
        raise ValueError(f"tokenizer.model_type: expected one of {MODEL_TYPES}, got {model_type!r}")
    if (files is None) == (texts is None):
        raise ValueError("train_sentencepiece: give exactly one of `files` or `texts`")
    if model_type != "char" and (not isinstance(vocab_size, int) or vocab_size < 1):
        raise ValueError(
            f"tokenizer.vocab_size: expected a positive int for model_type "
            f"{model_type!r}, got {vocab_size!r}"
        )
    if not isinstance(num_sentinels, int) or num_sentinels < 0:
        raise ValueError(f"tokenizer.num_sentinels: expected an int >= 0, got {num_sentinels!r}")
    if byte_fallback is None:
        byte_fallback = model_type != "char"
    sentinels = [SENTINEL_PIECE.format(index) for index in range(num_sentinels)]
    # No sentinel is a prefix of another, so matching left to right finds the
    # same ones as SentencePiece's longest match. "(?!)" never matches.
    sentinel_pattern = re.compile("|".join(map(re.escape, sentinels)) or "(?!)")
    lines, source = _corpus_lines(files, texts, files_key)
    sentences = (
        piece
        for line in lines
        for piece in _cut(line.rstrip(NEWLINE), max_sentence_length)
        if piece
    )
    characters = set()
    if model_type == "char":
        sentences = _recording_characters(sentences, characters, sentinel_pattern)
    sample = _reservoir_sample(sentences, max_sentences, random.Random(seed))
    if not sample:
        raise ValueError(f"empty corpus: {source} holds no text to train a tokenizer on")
    required_chars = ""
    if model_type == "char":
        # Spaces are stored as U+2581, so the two are one piece.
        characters = {_SPACE if c == " " else c for c in characters}
        vocab_size = len(characters) + len(SPECIAL_PIECES) + 1 + num_sentinels + 256 * byte_fallback
        # Characters only in lines left out of the sample. (Listing characters
        # the sample has too makes SentencePiece drop the others.)
        in_sample = {_SPACE if c == " " else c for s in sample for c in sentinel_pattern.sub("", s)}
        required_chars = "".join(sorted(characters - in_sample))

    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(sample),
            model_writer=model,
            model_type=model_type,
            vocab_size=vocab_size,
            byte_fallback=byte_fallback,
            character_coverage=(1.0 if character_coverage is None else character_coverage),
            required_chars=required_chars,
            normalization_rule_name="identity",
            add_dummy_prefix=False,
            remove_extra_whitespaces=False,
            split_by_whitespace=True,
            allow_whitespace_only_pieces=True,
            split_digits=False,
            user_defined_symbols=[NEWLINE, *sentinels],
            pad_id=PAD_ID,
            unk_id=UNK_ID,
            bos_id=BOS_ID,
            eos_id=EOS_ID,
            pad_piece=SPECIAL_PIECES["pad"],
            unk_piece=SPECIAL_PIECES["unk"],
            bos_piece=SPECIAL_PIECES["bos"],
            eos_piece=SPECIAL_PIECES["eos"],
            # Sampled above, reproducibly; SentencePiece's own sampling is not.
            input_sentence_size=0,
            shuffle_input_sentence=False,
            max_sentence_length=max_sentence_length,
            num_threads=num_threads or os.cpu_count() or 1,
            minloglevel=2,
        )
    except RuntimeError as error:
        raise _explain(
            error, vocab_size, model_type, byte_fallback, num_sentinels, source
        ) from error
    proto = model.getvalue()
    trained_size = spm.SentencePieceProcessor(model_proto=proto).vocab_size()
    if model_type == "char" and trained_size != vocab_size:
        # SentencePiece truncates a char vocabulary silently; never ship a lossy one.
        raise RuntimeError(
            f"SentencePiece kept {trained_size} of the {vocab_size} pieces of the "
            f"char vocabulary of {source}"
        )
    return write_model_file(output_dir, proto)


def _corpus_lines(files, texts, files_key):
    """Returns a generator of the corpus lines and a description for errors."""
    if files is not None:
        files = text_files.resolve_text_files(files, files_key)
        lines = (line for path in files for line in text_files.read_lines(path))
        return lines, f"{files_key}={files!r}" if len(files) <= 3 else files_key
    texts = [texts] if isinstance(texts, str) else list(texts)
    lines = (line for text in texts for line in text.split(NEWLINE))
    return lines, f"{len(texts)} in-memory text(s)"


def _reservoir_sample(items, size, rng):
    """Keeps a uniform sample of at most `size` items, in corpus order (all if None)."""
    sample = []
    for index, item in enumerate(items):
        if size is None or index < size:
            sample.append((index, item))
        else:
            slot = rng.randrange(index + 1)
            if slot < size:
                sample[slot] = (index, item)
    return [item for _, item in sorted(sample, key=lambda pair: pair[0])]


def _recording_characters(sentences, characters, sentinel_pattern):
    # SentencePiece does not count the characters of user-defined symbols: a
    # literal "<extra_id_0>" in the corpus is one token, not 12 characters.
    for sentence in sentences:
        characters.update(sentinel_pattern.sub("", sentence))
        yield sentence


def _cut(line, max_bytes):
    """Cuts `line` into pieces of at most `max_bytes` UTF-8 bytes (4 per character)."""
    if len(line) * 4 <= max_bytes or len(line.encode("utf-8")) <= max_bytes:
        yield line
        return
    step = max(1, max_bytes // 4)
    for start in range(0, len(line), step):
        yield line[start : start + step]


def _explain(error, vocab_size, model_type, byte_fallback, num_sentinels, source):
    """Turns SentencePiece's RuntimeError into a ValueError naming the config key."""
    message = str(error)
    too_high = _TOO_HIGH.search(message)
    if too_high:
        return ValueError(
            f"tokenizer.vocab_size: {vocab_size} is more than this corpus supports; "
            f"SentencePiece ({model_type}) allows at most {too_high.group(2)} for "
            f"{source}. Lower tokenizer.vocab_size or train on more text."
        )
    too_small = _TOO_SMALL.search(message)
    if too_small:
        return ValueError(
            f"tokenizer.vocab_size: {vocab_size} is too small; SentencePiece "
            f"({model_type}) needs at least {too_small.group(2)} pieces for the "
            "specials"
            f"{f', the {num_sentinels} sentinels' if num_sentinels else ''}"
            f"{', the 256 byte pieces' if byte_fallback else ''} and the characters "
            f"of {source}."
        )
    return ValueError(f"SentencePiece ({model_type}) failed to train on {source}: {message}")
