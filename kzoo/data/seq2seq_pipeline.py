"""Encoder-decoder batches with teacher forcing: string pairs -> ids -> padded batches.

The steps are separate so other sources can join midway: `tokenize_pairs` turns
`{"source", "target"}` strings into `{"source_ids", "target_ids"}` (each ending with
the end id), which T5 span corruption also yields, and `batch_seq2seq` turns those
into Keras `(x, y, sample_weight)` batches for `Seq2SeqBackbone`-based translators,
T5 and the LSTM seq2seq alike:

    x = {"encoder_token_ids":    source_ids,                  # a b c </s>
         "encoder_padding_mask": 1 on source tokens,
         "decoder_token_ids":    [start] + target_ids[:-1],   # <s> x y z
         "decoder_padding_mask": 1 on decoder tokens}
    y = target_ids                                            # x y z </s>
    sample_weight = 1.0 on label tokens, 0.0 on padding

so the decoder predicts target token `i` having seen the start id and targets
`< i`. Everything is int32 but the weights (float32); padding is 0 (`pad_id`).
The masks come from the lengths, not from `ids != 0`, so a start id of 0 (T5
starts decoding with `<pad>`) is still a real position.

A pair fits when `len(source_ids) <= max_source_length` and `len(target_ids) <=
max_target_length` (the target's tokens plus the start or the end id); others are
dropped (`filter_lengths`, counted by `count_kept_pairs`).

Batch shapes, for `(source, target)` lengths `S, T` = the two maxima:
    * without `bucket_boundaries`, every batch is `(batch, S)` and `(batch, T)`;
    * with boundaries `b_1 < ... < b_k`, a pair goes to the first bucket `b` with
      `max(len(source_ids), len(target_ids)) <= b` and its batch is padded to
      `(batch, min(b, S))` and `(batch, min(b, T))`; the last bucket, `b =
      max(S, T)`, takes the rest. So the only shapes are `(min(b, S), min(b, T))`
      for `b` in `[b_1, ..., b_k, max(S, T)]` (boundaries `>= max(S, T)` add no
      shape), with `batch` rows (fewer only in a bucket's last batch unless
      `drop_remainder`). The `element_spec` then says `(None, None)`; a
      compiled (XLA) train step is traced once per shape that occurs.
"""

import tensorflow as tf

_INPUTS = ("encoder_token_ids", "encoder_padding_mask", "decoder_token_ids", "decoder_padding_mask")


def tokenize_pairs(
    pairs, tokenizer, end_id, pairs_per_call=256, num_parallel_calls=tf.data.AUTOTUNE
):
    """Tokenizes `{"source", "target"}` strings, appending `end_id` to both.

    Args:
        pairs: A `tf.data.Dataset` of dicts with scalar string `"source"` and
            `"target"` (other keys are ignored).
        tokenizer: A `kzoo.tokenizers.SentencePieceTokenizer`.
        end_id: The id appended to every sequence (usually `tokenizer.eos_id`).
        pairs_per_call: Pairs per tokenizer call (tokenizing in batches is faster).
        num_parallel_calls: Tokenizer calls run in parallel.

    Returns:
        A `tf.data.Dataset` of `{"source_ids", "target_ids"}`, 1-D int32 each.
    """

    def tokenize(batch):
        def with_end(texts):
            ids = tokenizer.tokenize(texts)
            end = tf.fill([ids.nrows(), 1], tf.constant(end_id, tf.int32))
            return tf.concat([ids, tf.RaggedTensor.from_tensor(end)], axis=1)

        return {"source_ids": with_end(batch["source"]), "target_ids": with_end(batch["target"])}

    pairs = pairs.map(lambda pair: {"source": pair["source"], "target": pair["target"]})
    return (
        pairs.batch(pairs_per_call).map(tokenize, num_parallel_calls=num_parallel_calls).unbatch()
    )


def filter_lengths(ids_dataset, max_source_length, max_target_length):
    """Keeps the pairs that fit: `len(source_ids) <= max_source_length` and
    `len(target_ids) <= max_target_length` (`target_ids` holds the end id, so its
    length is the target tokens plus the start id the decoder sees).

    Example:
    >>> ids = tf.data.Dataset.from_tensor_slices({
    ...     "source_ids": tf.ragged.constant([[5, 3], [5, 6, 7, 3], [5, 3]]),
    ...     "target_ids": tf.ragged.constant([[8, 3], [8, 3], [8, 9, 9, 3]])})
    >>> [x["source_ids"].numpy().tolist() for x in filter_lengths(ids, 3, 3)]
    [[5, 3]]
    """

    def fits(ids):
        return (tf.size(ids["source_ids"]) <= max_source_length) & (
            tf.size(ids["target_ids"]) <= max_target_length
        )

    return ids_dataset.filter(fits)


def batch_seq2seq(
    ids_dataset,
    batch_size,
    *,
    start_id,
    max_source_length,
    max_target_length,
    bucket_boundaries=None,
    drop_remainder=False,
):
    """Pads `{"source_ids", "target_ids"}` pairs into teacher-forcing batches.

    Pairs that do not fit the maxima are dropped first (`filter_lengths`). See the
    module docstring for the batch layout and the shapes bucketing can produce.

    Args:
        ids_dataset: A dataset of `{"source_ids", "target_ids"}`, 1-D integer
            tensors, `target_ids` ending with the end id (see `tokenize_pairs`).
        batch_size: Pairs per batch.
        start_id: The decoder's first input id (`tokenizer.bos_id`; 0 for T5).
        max_source_length: `S`, the longest `source_ids` kept.
        max_target_length: `T`, the longest `target_ids` kept.
        bucket_boundaries: `None` to pad every batch to `(S, T)`, or increasing
            lengths, e.g. `[8, 16, 32]`, to pad each batch only to its bucket's.
        drop_remainder: Whether to drop each bucket's last, smaller batch.

    Returns:
        A `tf.data.Dataset` of `(x, y, sample_weight)`.

    Example:
    >>> ids = tf.data.Dataset.from_tensor_slices({
    ...     "source_ids": tf.ragged.constant([[5, 6, 3], [7, 3]]),
    ...     "target_ids": tf.ragged.constant([[8, 9, 3], [9, 3]])})
    >>> x, y, w = next(iter(batch_seq2seq(ids, 2, start_id=2, max_source_length=4,
    ...                                   max_target_length=4)))
    >>> x["decoder_token_ids"].numpy().tolist(), y.numpy().tolist()
    ([[2, 8, 9, 0], [2, 9, 0, 0]], [[8, 9, 3, 0], [9, 3, 0, 0]])
    >>> x["encoder_padding_mask"].numpy().tolist(), w.numpy().tolist()
    ([[1, 1, 1, 0], [1, 1, 0, 0]], [[1.0, 1.0, 1.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    """
    _check_positive(
        batch_size=batch_size,
        max_source_length=max_source_length,
        max_target_length=max_target_length,
    )

    def to_example(ids):
        source = tf.cast(ids["source_ids"], tf.int32)
        target = tf.cast(ids["target_ids"], tf.int32)
        return {
            "encoder_token_ids": source,
            "encoder_padding_mask": tf.ones_like(source),
            "decoder_token_ids": tf.concat([[start_id], target[:-1]], axis=0),
            "decoder_padding_mask": tf.ones_like(target),
            "labels": target,
        }

    def pad(examples, source_length, target_length):
        source = tf.reshape(tf.cast(source_length, tf.int64), [1])
        target = tf.reshape(tf.cast(target_length, tf.int64), [1])
        shapes = {
            "encoder_token_ids": source,
            "encoder_padding_mask": source,
            "decoder_token_ids": target,
            "decoder_padding_mask": target,
            "labels": target,
        }
        return examples.padded_batch(
            batch_size, padded_shapes=shapes, drop_remainder=drop_remainder
        )

    examples = filter_lengths(ids_dataset, max_source_length, max_target_length)
    examples = examples.map(to_example, num_parallel_calls=tf.data.AUTOTUNE)
    if bucket_boundaries is None:
        batches = pad(examples, max_source_length, max_target_length)
    else:
        lengths = bucket_lengths(bucket_boundaries, max_source_length, max_target_length)
        boundaries = tf.constant([b for b, _, _ in lengths[:-1]], tf.int32)
        source_lengths = tf.constant([s for _, s, _ in lengths], tf.int64)
        target_lengths = tf.constant([t for _, _, t in lengths], tf.int64)

        def bucket(example):
            length = tf.maximum(tf.size(example["encoder_token_ids"]), tf.size(example["labels"]))
            return tf.reduce_sum(tf.cast(length > boundaries, tf.int64))

        def batch_bucket(key, window):
            return pad(window, source_lengths[key], target_lengths[key])

        batches = examples.group_by_window(bucket, batch_bucket, window_size=batch_size)

    def to_keras(batch):
        x = {name: batch[name] for name in _INPUTS}
        return x, batch["labels"], tf.cast(batch["decoder_padding_mask"], tf.float32)

    return batches.map(to_keras, num_parallel_calls=tf.data.AUTOTUNE)


def bucket_lengths(bucket_boundaries, max_source_length, max_target_length):
    """The buckets `batch_seq2seq` uses: `[(bound, source_length, target_length)]`.

    Example:
    >>> bucket_lengths([8, 16, 32], 24, 12)
    [(8, 8, 8), (16, 16, 12), (24, 24, 12)]
    """
    bounds = list(bucket_boundaries)
    if (
        not bounds
        or any(type(b) is not int or b < 1 for b in bounds)
        or any(a >= b for a, b in zip(bounds, bounds[1:]))
    ):
        raise ValueError(
            f"bucket_boundaries: expected increasing positive ints such as [8, 16, 32], "
            f"got {bucket_boundaries!r}"
        )
    longest = max(max_source_length, max_target_length)
    bounds = [b for b in bounds if b < longest] + [longest]
    return [(b, min(b, max_source_length), min(b, max_target_length)) for b in bounds]


def seq2seq_dataset(
    pairs,
    tokenizer,
    *,
    batch_size,
    max_source_length,
    max_target_length,
    start_id=None,
    end_id=None,
    bucket_boundaries=None,
    shuffle=False,
    seed=0,
    shuffle_buffer_size=10_000,
    repeat=False,
    drop_remainder=False,
):
    """Builds teacher-forcing `(x, y, sample_weight)` batches from string pairs.

    Tokenizes (`tokenize_pairs`), shuffles (seeded, reshuffled every pass),
    repeats, drops pairs that do not fit and pads (`batch_seq2seq`). The output is
    deterministic for a given `seed`. With `repeat`, check `count_kept_pairs`
    first: if no pair fits, the dataset loops forever looking for one.

    Args:
        pairs: A `tf.data.Dataset` of `{"source", "target"}` string dicts (or of
            `(source, target)` tuples), or a list of such dicts or tuples (e.g.
            from `kzoo.data.parallel_files`).
        tokenizer: A `kzoo.tokenizers.SentencePieceTokenizer`.
        batch_size, max_source_length, max_target_length, bucket_boundaries,
            drop_remainder: See `batch_seq2seq`.
        start_id: The decoder's first input; defaults to `tokenizer.bos_id`.
        end_id: Appended to source and target; defaults to `tokenizer.eos_id`.
        shuffle: Whether to shuffle the pairs.
        seed: The shuffle seed.
        shuffle_buffer_size: Pairs held in the shuffle buffer.
        repeat: Whether to repeat forever (for `fit(steps_per_epoch=...)`).

    Returns:
        A prefetched `tf.data.Dataset` of `(x, y, sample_weight)`.

    Example:
    >>> import tempfile
    >>> from kzoo.tokenizers import load_tokenizer, train_sentencepiece
    >>> run_dir = tempfile.mkdtemp()
    >>> _ = train_sentencepiece(texts=["hallo welt hello world"], model_type="char",
    ...                         output_dir=run_dir)
    >>> tokenizer = load_tokenizer(run_dir)
    >>> dataset = seq2seq_dataset([("hallo", "hello"), ("welt", "world")], tokenizer,
    ...                           batch_size=2, max_source_length=8,
    ...                           max_target_length=8)
    >>> x, y, w = next(iter(dataset))
    >>> x["encoder_token_ids"].shape, y.shape, w.dtype
    (TensorShape([2, 8]), TensorShape([2, 8]), tf.float32)
    >>> tokenizer.detokenize(y).numpy().tolist()
    [b'hello', b'world']
    """
    start_id = tokenizer.bos_id if start_id is None else start_id
    end_id = tokenizer.eos_id if end_id is None else end_id
    ids = tokenize_pairs(pair_dataset(pairs), tokenizer, end_id)
    if shuffle:
        ids = ids.shuffle(shuffle_buffer_size, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        ids = ids.repeat()
    batches = batch_seq2seq(
        ids,
        batch_size,
        start_id=start_id,
        max_source_length=max_source_length,
        max_target_length=max_target_length,
        bucket_boundaries=bucket_boundaries,
        drop_remainder=drop_remainder,
    )
    options = tf.data.Options()
    options.deterministic = True
    return batches.prefetch(tf.data.AUTOTUNE).with_options(options)


def count_kept_pairs(pairs, tokenizer, max_source_length, max_target_length, end_id=None):
    """Counts the pairs that fit the maxima, in one pass over the data.

    Returns:
        `(kept, total)`, two ints: `kept` pairs make it into batches (for
        `steps_per_epoch`), `total - kept` are too long and dropped.

    Example:
    >>> import tempfile
    >>> from kzoo.tokenizers import load_tokenizer, train_sentencepiece
    >>> run_dir = tempfile.mkdtemp()
    >>> _ = train_sentencepiece(texts=["abc"], model_type="char", output_dir=run_dir)
    >>> count_kept_pairs([("a", "b"), ("abc", "b")], load_tokenizer(run_dir), 3, 3)
    (1, 2)
    """
    end_id = tokenizer.eos_id if end_id is None else end_id
    ids = tokenize_pairs(pair_dataset(pairs), tokenizer, end_id)
    counts = ids.map(
        lambda x: (
            tf.cast(
                (tf.size(x["source_ids"]) <= max_source_length)
                & (tf.size(x["target_ids"]) <= max_target_length),
                tf.int64,
            ),
            tf.constant(1, tf.int64),
        )
    )
    kept, total = counts.reduce(
        (tf.constant(0, tf.int64), tf.constant(0, tf.int64)),
        lambda sums, x: (sums[0] + x[0], sums[1] + x[1]),
    )
    return int(kept), int(total)


def pair_dataset(pairs):
    """A dataset of `{"source", "target"}` strings from a dataset or a list.

    Example:
    >>> [p["target"].numpy() for p in pair_dataset([{"source": "a", "target": "b"}])]
    [b'b']
    """
    if isinstance(pairs, tf.data.Dataset):
        if isinstance(pairs.element_spec, tuple):
            return pairs.map(lambda source, target: {"source": source, "target": target})
        return pairs
    columns = {"source": [], "target": []}
    for index, pair in enumerate(pairs):
        if isinstance(pair, dict) and {"source", "target"} <= pair.keys():
            source, target = pair["source"], pair["target"]
        elif isinstance(pair, (tuple, list)) and len(pair) == 2:
            source, target = pair
        else:
            raise ValueError(
                f"pairs[{index}]: expected a {{'source': ..., 'target': ...}} dict or "
                f"a (source, target) tuple, got {pair!r}"
            )
        if not isinstance(source, str) or not isinstance(target, str):
            raise ValueError(f"pairs[{index}]: expected two strings, got {pair!r}")
        columns["source"].append(source)
        columns["target"].append(target)
    if not columns["source"]:
        raise ValueError("pairs: no pairs given; expected at least one")
    return tf.data.Dataset.from_tensor_slices(
        {name: tf.constant(texts, tf.string) for name, texts in columns.items()}
    )


def _check_positive(**values):
    for name, value in values.items():
        if type(value) is not int or value < 1:
            raise ValueError(f"{name}: expected a positive int, got {value!r}")
