"""Extractive question answering inputs for BERT, in graph: windows over long contexts.

A context longer than the model's input is cut into overlapping windows of context
tokens, as in BERT's SQuAD code: a window of `W = sequence_length - 3 -
max_query_tokens` tokens starts every `doc_stride` tokens until one reaches the end
of the context (that last one may be shorter). Each window is packed as `[CLS]
question [SEP] window [SEP]`. Only TensorFlow, TF Text and keras-hub ops run, so the
same functions build the training `tf.data` pipeline and the exported `answer`
signature; every window remembers its example and the byte span in the context of
each of its tokens, which maps labels in and answers back out (`qa_answers`).
"""

import functools

import numpy as np
import tensorflow as tf

from kzoo.data.bert_inputs import pack_segments

FEATURE_KEYS = ("token_ids", "segment_ids", "padding_mask")
# Examples tokenized per call when building a whole dataset's windows.
CHUNK_SIZE = 512


def context_window_length(sequence_length, max_query_tokens, doc_stride):
    """The context tokens per window, `sequence_length - 3 - max_query_tokens`.

    Raises:
        ValueError: The window holds no token, or `doc_stride` is not in `[1, W]`
            (a longer stride would skip context tokens).

    Example:
    >>> context_window_length(384, 64, 128)
    317
    >>> context_window_length(16, 8, 6)
    Traceback (most recent call last):
    ...
    ValueError: doc_stride: expected 1 <= doc_stride <= 5 (the context tokens per window), got 6
    """
    window_length = sequence_length - 3 - max_query_tokens
    if max_query_tokens < 1 or window_length < 1:
        raise ValueError(
            f"max_query_tokens: expected 1 <= max_query_tokens <= sequence_length - 4 "
            f"= {sequence_length - 4}, got {max_query_tokens}"
        )
    if not 1 <= doc_stride <= window_length:
        raise ValueError(
            f"doc_stride: expected 1 <= doc_stride <= {window_length} (the context "
            f"tokens per window), got {doc_stride}"
        )
    return window_length


def qa_windows(tokenizer, questions, contexts, *, sequence_length, max_query_tokens, doc_stride):
    """Packs each question with each window of its context, in graph.

    Args:
        tokenizer: A `WordPieceTokenizer`.
        questions: String tensor `[B]`; each keeps its first `max_query_tokens`
            tokens.
        contexts: String tensor `[B]`. A context shorter than a window, or empty,
            is one window.
        sequence_length: L, the packed length.
        max_query_tokens: The question tokens kept.
        doc_stride: Context tokens between the starts of consecutive windows.

    Returns:
        A dict of dense tensors over the N windows of all examples, in example
        order: `token_ids`, `segment_ids`, `padding_mask` int32 `[N, L]`;
        `example_index` int32 `[N]` (the row of `contexts`); `token_starts`,
        `token_ends` int64 `[N, L]`, the byte span in the context of the token
        at each position, and `token_indices` int32 `[N, L]`, its index among
        the context's tokens, all three -1 at positions that hold no context
        token ([CLS], question, [SEP], padding).

    Example:
    >>> from kzoo.tokenizers.wordpiece_tokenizer import WordPieceTokenizer
    >>> tokenizer = WordPieceTokenizer(
    ...     ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c", "?"])
    >>> windows = qa_windows(tokenizer, ["b?"], ["a b c a"], sequence_length=8,
    ...                      max_query_tokens=2, doc_stride=2)
    >>> windows["token_ids"].numpy().tolist()
    [[2, 6, 8, 3, 5, 6, 7, 3], [2, 6, 8, 3, 7, 5, 3, 0]]
    >>> windows["example_index"].numpy().tolist()
    [0, 0]
    >>> windows["token_starts"].numpy().tolist()[1]
    [-1, -1, -1, -1, 4, 6, -1, -1]
    >>> starts, ends = answer_token_positions(windows, [2], [5])  # "b c"
    >>> starts.numpy().tolist(), ends.numpy().tolist()
    ([5, 0], [6, 0])
    """
    window_length = context_window_length(sequence_length, max_query_tokens, doc_stride)
    questions = tf.convert_to_tensor(questions, tf.string)
    contexts = tf.convert_to_tensor(contexts, tf.string)
    question_ids = tokenizer.tokenize(questions)[:, :max_query_tokens]
    ids, starts, ends = tokenizer.tokenize_with_offsets(contexts)
    num_tokens = tf.cast(ids.row_lengths(), tf.int32)
    num_windows = 1 + (tf.maximum(num_tokens - window_length, 0) + doc_stride - 1) // doc_stride
    example_index = tf.repeat(tf.range(tf.size(num_tokens)), num_windows)
    # The index of each window's first token in its context, and in `ids.values`.
    first = tf.ragged.range(num_windows).flat_values * doc_stride
    lengths = tf.minimum(window_length, tf.gather(num_tokens, example_index) - first)
    row_starts = tf.cast(ids.row_starts(), tf.int32)
    flat_first = tf.gather(row_starts, example_index) + first
    flat_index = tf.ragged.range(flat_first, flat_first + lengths)  # [N, None]
    window_ids = flat_index.with_flat_values(tf.gather(ids.flat_values, flat_index.flat_values))
    inputs = pack_segments(
        tokenizer, sequence_length, [tf.gather(question_ids, example_index), window_ids]
    )

    # Where each context token of a window lands: after [CLS], question, [SEP].
    rows = tf.cast(flat_index.value_rowids(), tf.int32)
    within = flat_index.flat_values - tf.gather(flat_first, rows)
    question_lengths = tf.cast(question_ids.row_lengths(), tf.int32)
    positions = 2 + tf.gather(question_lengths, tf.gather(example_index, rows)) + within
    scatter_at = tf.stack([rows, positions], axis=1)
    shape = tf.stack([tf.size(example_index), sequence_length])

    def scatter(values):
        empty = tf.fill(shape, tf.constant(-1, values.dtype))
        return tf.tensor_scatter_nd_update(empty, scatter_at, values)

    inputs["example_index"] = example_index
    inputs["token_starts"] = scatter(tf.gather(starts.flat_values, flat_index.flat_values))
    inputs["token_ends"] = scatter(tf.gather(ends.flat_values, flat_index.flat_values))
    inputs["token_indices"] = scatter(tf.gather(first, rows) + within)
    return inputs


def answer_token_positions(windows, answer_byte_starts, answer_byte_ends):
    """The answer's first and last token position in each window, for training.

    The first token is the one holding the answer's first byte (or, if that byte
    is whitespace, the next token), the last the one holding its last byte. A
    window that does not hold both gets position 0 ([CLS]) for both, as in
    BERT's SQuAD v1 training.

    Args:
        windows: `qa_windows`'s output.
        answer_byte_starts: Int `[B]`, the answer's first byte in the context.
        answer_byte_ends: Int `[B]`, the byte after its last byte.

    Returns:
        `(start_positions, end_positions)`, int32 `[N]`.

    Example: see `qa_windows`'s, whose second window lacks the answer.
    """
    example_index = windows["example_index"]
    indices = windows["token_indices"]
    token_starts = tf.cast(windows["token_starts"], tf.int64)
    token_ends = tf.cast(windows["token_ends"], tf.int64)
    answer_starts = tf.cast(tf.convert_to_tensor(answer_byte_starts), tf.int64)
    answer_ends = tf.cast(tf.convert_to_tensor(answer_byte_ends), tf.int64)
    batch_size = tf.shape(answer_starts)[0]
    is_context = indices >= 0
    # The answer's first token is the first one ending after its first byte, its
    # last the last one starting before its end; found over all of an example's
    # windows, as token indices, then looked for in each window.
    after = is_context & (token_ends > tf.gather(answer_starts, example_index)[:, None])
    before = is_context & (token_starts < tf.gather(answer_ends, example_index)[:, None])
    first = tf.reduce_min(tf.where(after, indices, tf.int32.max), axis=1)
    last = tf.reduce_max(tf.where(before, indices, -1), axis=1)
    first = tf.gather(tf.math.unsorted_segment_min(first, example_index, batch_size), example_index)
    last = tf.gather(tf.math.unsorted_segment_max(last, example_index, batch_size), example_index)
    is_first = tf.equal(indices, first[:, None])
    is_last = tf.equal(indices, last[:, None])
    inside = tf.reduce_any(is_first, axis=1) & tf.reduce_any(is_last, axis=1) & (first <= last)
    start_positions = tf.argmax(tf.cast(is_first, tf.int32), axis=1, output_type=tf.int32)
    end_positions = tf.argmax(tf.cast(is_last, tf.int32), axis=1, output_type=tf.int32)
    zeros = tf.zeros_like(start_positions)
    return tf.where(inside, start_positions, zeros), tf.where(inside, end_positions, zeros)


def char_to_byte_offsets(context, answer_start, answer_text):
    """Turns a character span (`read_squad_file`'s `answer_start`) into UTF-8 bytes.

    Returns:
        `(byte_start, byte_end)`, `byte_end` exclusive.

    Raises:
        ValueError: `answer_text` is not at `answer_start` in `context`.

    Example:
    >>> char_to_byte_offsets("café au lait", 5, "au")
    (6, 8)
    """
    end = answer_start + len(answer_text)
    if answer_start < 0 or context[answer_start:end] != answer_text:
        raise ValueError(
            f"answer {answer_text!r} is not in the context at answer_start="
            f"{answer_start} (offsets count characters)"
        )
    byte_start = len(context[:answer_start].encode("utf-8"))
    return byte_start, byte_start + len(answer_text.encode("utf-8"))


def qa_eval_windows(tokenizer, examples, *, sequence_length, max_query_tokens, doc_stride):
    """`qa_windows` of all examples (`read_squad_file` dicts) at once, as NumPy.

    Example:
    >>> from kzoo.tokenizers.wordpiece_tokenizer import WordPieceTokenizer
    >>> tokenizer = WordPieceTokenizer(
    ...     ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c", "?"])
    >>> examples = [{"question": "b?", "context": "a b c a"}] * 3
    >>> qa_eval_windows(tokenizer, examples, sequence_length=8, max_query_tokens=2,
    ...                 doc_stride=2)["example_index"].tolist()
    [0, 0, 1, 1, 2, 2]
    """
    windows_of = functools.partial(
        qa_windows,
        tokenizer,
        sequence_length=sequence_length,
        max_query_tokens=max_query_tokens,
        doc_stride=doc_stride,
    )
    windows, _ = _windows_in_chunks(windows_of, examples, labels=False)
    return windows


def qa_dataset(
    tokenizer,
    examples,
    *,
    sequence_length,
    max_query_tokens,
    doc_stride,
    batch_size,
    shuffle=False,
    seed=0,
    repeat=False,
):
    """A `tf.data.Dataset` of `(features, labels)` windows for `model.fit`.

    All windows are built once, up front; the first answer of each example labels
    them (`answer_token_positions`).

    Args:
        tokenizer: A `WordPieceTokenizer`.
        examples: `read_squad_file` dicts (`question`, `context`, `answers`).
        sequence_length, max_query_tokens, doc_stride: As in `qa_windows`.
        batch_size: Windows per batch; with `repeat`, partial batches are dropped.
        shuffle: Shuffle the windows (again each epoch), seeded by `seed`.
        seed: The shuffle seed.
        repeat: Repeat forever.

    Returns:
        Batches of `({"token_ids", "segment_ids", "padding_mask"}` int32 `[batch,
        L]`, `{"start_logits", "end_logits"}` int32 `[batch]`).

    Example:
    >>> from kzoo.tokenizers.wordpiece_tokenizer import WordPieceTokenizer
    >>> tokenizer = WordPieceTokenizer(
    ...     ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c", "?"])
    >>> examples = [{"question": "b?", "context": "a b c a",
    ...              "answers": [{"text": "c", "answer_start": 4}]}]
    >>> dataset = qa_dataset(tokenizer, examples, sequence_length=8,
    ...                      max_query_tokens=2, doc_stride=2, batch_size=2)
    >>> features, labels = next(iter(dataset))
    >>> labels["start_logits"].numpy().tolist(), labels["end_logits"].numpy().tolist()
    ([6, 4], [6, 4])
    """
    windows_of = functools.partial(
        qa_windows,
        tokenizer,
        sequence_length=sequence_length,
        max_query_tokens=max_query_tokens,
        doc_stride=doc_stride,
    )
    features, labels = qa_training_windows(windows_of, examples)
    return windows_dataset(
        features, labels, batch_size=batch_size, shuffle=shuffle, seed=seed, repeat=repeat
    )


def qa_training_windows(windows_of, examples):
    """The labelled windows of `qa_dataset` as NumPy: `(features, labels)`, one row
    per window (build them once, count them, then `windows_dataset`).

    Args:
        windows_of: `(questions, contexts) -> windows` of 1-D string tensors, as
            `qa_windows` with its settings: a run passes its model's
            `BertQuestionAnswererPreprocessor.windows`.
        examples: `read_squad_file` dicts (`question`, `context`, `answers`).
    """
    windows, labels = _windows_in_chunks(windows_of, examples, labels=True)
    return {key: windows[key] for key in FEATURE_KEYS}, labels


def windows_dataset(features, labels, *, batch_size, shuffle=False, seed=0, repeat=False):
    """Batches `qa_training_windows` output as `qa_dataset` does."""
    dataset = tf.data.Dataset.from_tensor_slices((features, labels))
    if shuffle:
        count = len(labels["start_logits"])
        dataset = dataset.shuffle(max(count, 1), seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    return dataset.batch(batch_size, drop_remainder=repeat).prefetch(tf.data.AUTOTUNE)


def _windows_in_chunks(make_windows, examples, labels):
    """Windows (and labels) of all examples, `CHUNK_SIZE` examples per call of
    `make_windows(questions, contexts)`.

    The ops run eagerly: the same ops as in a `tf.function`, without the seconds
    that tracing the tokenizer's graph takes.
    """
    examples = list(examples)
    if not examples:
        raise ValueError("examples: expected at least one question answering example")

    def windows_of(questions, contexts, answer_starts, answer_ends):
        windows = make_windows(questions, contexts)
        if labels:
            positions = answer_token_positions(windows, answer_starts, answer_ends)
            windows["start_logits"], windows["end_logits"] = positions
        return windows

    chunks = []
    for begin in range(0, len(examples), CHUNK_SIZE):
        chunk = examples[begin : begin + CHUNK_SIZE]
        spans = np.zeros((len(chunk), 2), np.int64)
        if labels:
            spans[:] = [_first_answer_bytes(example) for example in chunk]
        outputs = windows_of(
            tf.constant([example["question"] for example in chunk], tf.string),
            tf.constant([example["context"] for example in chunk], tf.string),
            spans[:, 0],
            spans[:, 1],
        )
        outputs = {key: value.numpy() for key, value in outputs.items()}
        outputs["example_index"] += begin
        chunks.append(outputs)
    windows = {key: np.concatenate([chunk[key] for chunk in chunks]) for key in chunks[0]}
    targets = {key: windows.pop(key) for key in ("start_logits", "end_logits") if key in windows}
    return windows, targets


def _first_answer_bytes(example):
    if not example.get("answers"):
        raise ValueError(f"examples: example {example.get('id', '?')!r} has no answer to train on")
    answer = example["answers"][0]
    return char_to_byte_offsets(example["context"], answer["answer_start"], answer["text"])
