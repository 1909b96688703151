"""Causal language-model batches: documents -> one token stream -> packed blocks.

Every document (a file, or an in-memory string) is tokenized and followed by the
end-of-document id (`tokenizer.eos_id`); the documents are concatenated into one
stream and cut into blocks of `sequence_length + 1` tokens that overlap by one, so
block `i` is `stream[i*T : i*T + T + 1]`, `x = block[:-1]` and `y = block[1:]`.
Every token is an input exactly once and a label exactly once (except the very first
token, which is never a label); nothing is padded, and the tail of fewer than `T`
tokens at the end of the stream is dropped.

Documents are tokenized line by line (each line keeps its `"\\n"`), in groups of
lines, in parallel. `"\\n"` is a token of its own in kzoo tokenizers, so this gives
the same ids as tokenizing the whole document for BPE and char models; unigram
models may break exact ties between equal-score segmentations differently.
"""

import tensorflow as tf

from kzoo.data.line_ends import normalize_document

_NEWLINE = "\n"


def document_dataset(
    *, files=None, texts=None, num_parallel_calls=tf.data.AUTOTUNE, max_line_bytes=None
):
    """Yields each document as a scalar string; empty documents are skipped.

    Args:
        files: Paths of UTF-8 text files (e.g. from
            `kzoo.data.text_files.resolve_text_files`), one document each. Only the
            names are held in memory; `tf.io.read_file` reads each file when needed.
            A byte-order mark at the start of a file is dropped and `"\\r\\n"`
            read as `"\\n"` (`kzoo.data.line_ends`).
        texts: In-memory documents, a list of `str`. Give `files` or `texts`.
        num_parallel_calls: Files read in parallel.
        max_line_bytes: `None` keeps every line (the files were checked). An int
            drops, in the graph, each line that is not valid UTF-8 or has more
            bytes than this (`"\\n"` not counted), with its `"\\n"`: the document
            is then the file without its bad lines, as
            `kzoo.data.bad_records.scan_lines` finds them (`data.on_bad_record:
            skip`); a document left empty is skipped.

    Returns:
        A `tf.data.Dataset` of scalar `tf.string`.

    Example:
    >>> [d.numpy() for d in document_dataset(texts=["a", "", "b c"])]
    [b'a', b'b c']
    >>> texts = [b"ok\\n\\xff\\nlong line\\nend", b"too long"]
    >>> [d.numpy() for d in document_dataset(texts=texts, max_line_bytes=4)]
    [b'ok\\nend']
    """
    if (files is None) == (texts is None):
        raise ValueError("give exactly one of `files` or `texts`")
    if files is not None:
        files = [files] if isinstance(files, str) else list(files)
        documents = tf.data.Dataset.from_tensor_slices(tf.constant(files, tf.string))
        documents = documents.map(tf.io.read_file, num_parallel_calls=num_parallel_calls)
    else:
        texts = [texts] if isinstance(texts, str) else list(texts)
        documents = tf.data.Dataset.from_tensor_slices(tf.constant(texts, tf.string))
    if max_line_bytes is not None:
        documents = documents.map(
            lambda document: drop_bad_lines(document, max_line_bytes),
            num_parallel_calls=num_parallel_calls,
        )
    if files is not None:  # After `drop_bad_lines`: line lengths count the file's bytes.
        documents = documents.map(normalize_document, num_parallel_calls=num_parallel_calls)
    return documents.filter(lambda document: tf.strings.length(document) > 0)


def drop_bad_lines(document, max_line_bytes):
    """`document` without its lines that are not UTF-8 or longer than `max_line_bytes`.

    Each bad line goes with its `"\\n"`, so the result is the text of the file with
    those lines deleted. Invalid UTF-8 shows as a line that transcoding with
    `errors="ignore"` changes; the length is in bytes, like `scan_lines`'.

    Example:
    >>> drop_bad_lines(tf.constant(b"a\\nb\\xff\\nc"), 8).numpy()
    b'a\\nc'
    """
    lines = tf.strings.split(document, _NEWLINE)
    valid = tf.equal(tf.strings.unicode_transcode(lines, "UTF-8", "UTF-8", errors="ignore"), lines)
    good = tf.logical_and(valid, tf.strings.length(lines) <= max_line_bytes)
    count = tf.size(lines)
    ends = tf.where(tf.range(count) < count - 1, _NEWLINE, "")
    pieces = tf.strings.join([lines, ends])
    return tf.strings.reduce_join(tf.boolean_mask(pieces, good))


def token_stream(
    documents, tokenizer, num_parallel_calls=tf.data.AUTOTUNE, lines_per_call=512, end_token_id=None
):
    """Tokenizes documents into consecutive int32 chunks of the token stream.

    Concatenating the chunks gives, for each document in order, its tokens followed
    by the end-of-document id.

    Args:
        documents: A dataset of scalar strings (see `document_dataset`).
        tokenizer: A `kzoo.tokenizers.SentencePieceTokenizer`.
        num_parallel_calls: Groups of lines tokenized in parallel.
        lines_per_call: Lines per tokenizer call (lines of several documents may
            share a call).
        end_token_id: The end-of-document id; defaults to `tokenizer.eos_id`.

    Returns:
        A `tf.data.Dataset` of 1-D int32 tensors of varying length.

    Example:
    >>> import tempfile
    >>> from kzoo.tokenizers import load_tokenizer, train_sentencepiece
    >>> run_dir = tempfile.mkdtemp()
    >>> _ = train_sentencepiece(texts=["ab\\nb"], model_type="char", output_dir=run_dir)
    >>> tokenizer = load_tokenizer(run_dir)
    >>> chunks = token_stream(document_dataset(texts=["ab\\n", "b"]), tokenizer)
    >>> # a b \\n </s> b </s>
    >>> tokenizer.eos_id, tf.concat(list(chunks), 0).numpy().tolist()
    (3, [6, 5, 4, 3, 5, 3])
    """
    eos_id = tokenizer.eos_id if end_token_id is None else end_token_id

    def split_lines(document):
        lines = tf.strings.split(document, _NEWLINE)
        count = tf.size(lines)
        is_last = tf.range(count) == count - 1
        lines = tf.strings.join([lines, tf.where(is_last, "", _NEWLINE)])
        return lines, is_last

    def tokenize(lines, ends_document):
        tokens = tokenizer.tokenize(lines)
        ends = tf.cast(ends_document, tokens.row_splits.dtype)
        eos = tf.RaggedTensor.from_row_lengths(
            tf.fill([tf.reduce_sum(ends)], tf.constant(eos_id, tf.int32)), ends
        )
        return tf.concat([tokens, eos], axis=1).flat_values

    lines = documents.map(split_lines, num_parallel_calls=num_parallel_calls).unbatch()
    return lines.batch(lines_per_call).map(tokenize, num_parallel_calls=num_parallel_calls)


def pack_into_blocks(chunks, sequence_length):
    """Packs a stream of token chunks into `(x, y)` pairs of `sequence_length` tokens.

    `x` is `stream[i*T : (i+1)*T]` and `y` is `stream[i*T + 1 : (i+1)*T + 1]`; see
    the module docstring. Works on whole chunks (`rebatch`), never one element per
    token.

    Args:
        chunks: A dataset of 1-D integer tensors whose concatenation is the stream.
        sequence_length: `T`, tokens per block.

    Returns:
        A `tf.data.Dataset` of `(x, y)`, each of shape `(T,)`.

    Example:
    >>> stream = tf.ragged.constant([[0, 1, 2], [3, 4, 5, 6]])
    >>> blocks = pack_into_blocks(tf.data.Dataset.from_tensor_slices(stream), 3)
    >>> [(x.numpy().tolist(), y.numpy().tolist()) for x, y in blocks]
    [([0, 1, 2], [1, 2, 3]), ([3, 4, 5], [4, 5, 6])]
    """
    pieces = chunks.rebatch(sequence_length, drop_remainder=False)
    # Pair every full piece with its successor, whose first token is the last label.
    pairs = pieces.scan(
        tf.zeros([0], pieces.element_spec.dtype), lambda previous, piece: (piece, (previous, piece))
    ).skip(1)

    def to_block(piece, successor):
        x = tf.ensure_shape(piece, [sequence_length])
        y = tf.concat([piece[1:], successor[:1]], axis=0)
        return x, tf.ensure_shape(y, [sequence_length])

    return pairs.map(to_block)


def skip_tokens(chunks, count):
    """Drops the first `count` tokens of a chunk stream (at most one chunk's worth)."""
    count = tf.cast(count, tf.int64)

    def drop(index, chunk):
        start = tf.where(index == 0, tf.minimum(count, tf.size(chunk, tf.int64)), 0)
        return chunk[start:]

    return chunks.enumerate().map(drop)


def causal_lm_dataset(
    tokenizer,
    sequence_length,
    batch_size,
    *,
    files=None,
    texts=None,
    shuffle=True,
    seed=0,
    shuffle_buffer_size=10_000,
    num_parallel_calls=tf.data.AUTOTUNE,
    repeat=False,
    drop_remainder=True,
    max_line_bytes=None,
    end_token_id=None,
):
    """Builds `(features, labels)` batches for next-token prediction.

    `features` is `{"token_ids": int32 (batch, T), "padding_mask": bool (batch, T)}`
    (the mask is all true: packed blocks hold no padding) and `labels` is int32
    `(batch, T)`, the `token_ids` shifted left by one. The output is deterministic
    for a given `seed` (`options.deterministic = True`); with `repeat` and `shuffle`,
    every pass over the data is reshuffled and packed from a seeded random offset in
    `[0, T)` (the first pass from 0), so block boundaries differ between passes. A corpus of fewer than `T + 1` tokens yields no batch
    (and, with `repeat`, loops forever looking for one: check `count_tokens`).

    Args:
        tokenizer: A `kzoo.tokenizers.SentencePieceTokenizer`.
        sequence_length: `T`, tokens per example.
        batch_size: Examples per batch.
        files: UTF-8 text files, one document each. Give `files` or `texts`.
        texts: In-memory documents, a list of `str`.
        shuffle: Whether to shuffle the blocks.
        seed: The shuffle seed.
        shuffle_buffer_size: Blocks held in the shuffle buffer.
        num_parallel_calls: Parallelism of file reading and tokenization.
        repeat: Whether to repeat forever (for `fit(steps_per_epoch=...)`).
        drop_remainder: Whether to drop the last, smaller batch (static shapes).
        max_line_bytes: Drop bad lines in the graph (see `document_dataset`).
        end_token_id: The id between documents; defaults to `tokenizer.eos_id`.
            A run passes its `CausalLMPreprocessor`'s `tokenizer`,
            `sequence_length` and `end_token_id`, the settings its model is saved
            with.

    Returns:
        A prefetched `tf.data.Dataset`.

    Example:
    >>> import tempfile
    >>> from kzoo.tokenizers import load_tokenizer, train_sentencepiece
    >>> run_dir = tempfile.mkdtemp()
    >>> texts = ["the cat sat on the mat\\n" * 20, "a dog barked\\n" * 20]
    >>> _ = train_sentencepiece(texts=texts, model_type="char", output_dir=run_dir)
    >>> dataset = causal_lm_dataset(load_tokenizer(run_dir), 16, 4, texts=texts)
    >>> features, labels = next(iter(dataset))
    >>> features["token_ids"].shape, features["padding_mask"].dtype, labels.shape
    (TensorShape([4, 16]), tf.bool, TensorShape([4, 16]))
    """
    for name, value in (("sequence_length", sequence_length), ("batch_size", batch_size)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"{name}: expected a positive int, got {value!r}")

    def one_pass(offset):
        documents = document_dataset(
            files=files,
            texts=texts,
            num_parallel_calls=num_parallel_calls,
            max_line_bytes=max_line_bytes,
        )
        chunks = token_stream(documents, tokenizer, num_parallel_calls, end_token_id=end_token_id)
        return pack_into_blocks(skip_tokens(chunks, offset), sequence_length)

    if repeat and shuffle:
        # Every pass starts the packing at a seeded random offset in [0, T), so
        # block boundaries move between passes (like nanoGPT's random windows)
        # instead of the model seeing the same blocks again.
        def seeded_pass(index):
            offset = tf.random.stateless_uniform(
                [], seed=[seed, index], maxval=sequence_length, dtype=tf.int64
            )
            return one_pass(tf.where(index > 0, offset, tf.zeros_like(offset)))

        blocks = tf.data.Dataset.range(1 << 62).flat_map(seeded_pass)
        blocks = blocks.shuffle(shuffle_buffer_size, seed=seed)
    else:
        blocks = one_pass(0)
        if shuffle:
            blocks = blocks.shuffle(shuffle_buffer_size, seed=seed, reshuffle_each_iteration=True)
        if repeat:
            blocks = blocks.repeat()
    batches = blocks.batch(batch_size, drop_remainder=drop_remainder)

    def to_features(x, y):
        return {"token_ids": x, "padding_mask": tf.ones_like(x, tf.bool)}, y

    batches = batches.map(to_features).prefetch(tf.data.AUTOTUNE)
    options = tf.data.Options()
    options.deterministic = True
    return batches.with_options(options)


def count_tokens(
    tokenizer, *, files=None, texts=None, num_parallel_calls=tf.data.AUTOTUNE, max_line_bytes=None
):
    """Counts the tokens of the stream (end-of-document ids included) in one pass.

    Args:
        tokenizer: A `kzoo.tokenizers.SentencePieceTokenizer`.
        files: UTF-8 text files. Give `files` or `texts`.
        texts: In-memory documents.
        num_parallel_calls: Parallelism of reading and tokenization.
        max_line_bytes: Drop bad lines in the graph (see `document_dataset`).

    Returns:
        The number of tokens, `int`; `num_blocks(count, T)` gives the examples.

    Example:
    >>> import tempfile
    >>> from kzoo.tokenizers import load_tokenizer, train_sentencepiece
    >>> run_dir = tempfile.mkdtemp()
    >>> _ = train_sentencepiece(texts=["abc"], model_type="char", output_dir=run_dir)
    >>> count_tokens(load_tokenizer(run_dir), texts=["abc", "", "c"])  # abc</s>c</s>
    6
    """
    chunks = token_stream(
        document_dataset(
            files=files,
            texts=texts,
            num_parallel_calls=num_parallel_calls,
            max_line_bytes=max_line_bytes,
        ),
        tokenizer,
        num_parallel_calls,
    )
    sizes = chunks.map(lambda chunk: tf.size(chunk, tf.int64))
    return int(sizes.reduce(tf.constant(0, tf.int64), lambda total, size: total + size))


def num_blocks(num_tokens, sequence_length):
    """The number of `(x, y)` examples `pack_into_blocks` makes from `num_tokens`.

    Example:
    >>> num_blocks(7, 3)
    2
    """
    return max(0, (num_tokens - 1) // sequence_length)
