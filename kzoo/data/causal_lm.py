"""Causal language-model batches: documents -> one token stream -> packed blocks.

Every document (a file, or an in-memory string) is tokenized and followed by the
end-of-document id (`tokenizer.eos_id`); the documents are concatenated into one
stream and cut into blocks of `sequence_length + 1` tokens that overlap by one, so
block `i` is `stream[i*T : i*T + T + 1]`, `x = block[:-1]` and `y = block[1:]`.
Every token is an input exactly once and a label exactly once (except the very first
token, which is never a label); nothing is padded, and the tail of fewer than `T`
tokens at the end of the stream is dropped. The documents and their token stream
come from `kzoo.data.text_files`.
"""

import tensorflow as tf

from kzoo.data.text_files import document_dataset, token_stream


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
    (and, with `repeat`, loops forever looking for one: check `kzoo.data.text_files.count_tokens`).

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
        max_line_bytes: Drop bad lines in the graph (see `kzoo.data.text_files.document_dataset`).
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


def num_blocks(num_tokens, sequence_length):
    """The number of `(x, y)` examples `pack_into_blocks` makes from `num_tokens`.

    Example:
    >>> num_blocks(7, 3)
    2
    """
    return max(0, (num_tokens - 1) // sequence_length)
