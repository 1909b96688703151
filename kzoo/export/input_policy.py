"""What the serving signatures do with unusual or invalid inputs, and the ops that do it.

A request gets a documented answer or an InvalidArgument error whose message names
the input (e.g. `temperature: must be a finite number; got nan`), never a process
crash, a hang or a NaN in a float output. The same rules hold for every family
(causal LM `signatures`, `seq2seq_signatures`, `bert_signatures`):

    text inputs (prompts, texts, text_pairs, sources, targets, questions, contexts)
        Any bytes. Invalid UTF-8 is replaced with U+FFFD before tokenization, so
        string outputs are valid UTF-8 (and QA byte offsets refer to the context
        after that replacement). NUL is a character like any other. Empty and
        whitespace-only strings are valid: "" tokenizes to no token (a causal LM
        continues the start-of-document token and scores "" as 0 over 0 tokens; a
        seq2seq model translates the end token alone and scores an empty target's
        end token; BERT packs an empty segment) and whitespace is text like any
        other. Texts longer than a model's limit are cut as each module says
        (causal LMs keep a prompt's last tokens and a scored text's first; seq2seq
        and BERT keep the first tokens); an LSTM scores texts of any length.
    batch
        0 rows: outputs with 0 rows, without running the model (BERT runs it on
        the empty batch, with the same result). Inputs that come one per row must
        have the same number of rows, else InvalidArgument naming the input.
    decoding options (1 value for the request, or one per row)
        max_new_tokens  clipped into [1, cap] per row: <= 0 decodes one token,
                        above the export cap decodes at most the cap
        temperature     <= 0: greedy; must be finite
        top_k           <= 0 or >= the vocabulary size: no top-k filter
        top_p           >= 1: no nucleus filter; <= 0: only the most likely token
                        (clipped to 1e-6); must be finite
        seed            any int32
        length_penalty  (beam search) any finite float
        strategy        "greedy", "sample" or "beam", else InvalidArgument
      NaN and +-inf are InvalidArgument. Options shared by the batch (all but
      max_new_tokens) must have equal values in every row.
    ids inputs (token_ids, source_ids)
        Every id read must be in [0, vocabulary size), else InvalidArgument.
"""

import tensorflow as tf


def valid_utf8(texts):
    """`texts` with every invalid UTF-8 sequence replaced by U+FFFD.

    Example:
    >>> valid_utf8(tf.constant([b"ok", b"a\\xffb", b"\\x00"])).numpy().tolist()
    [b'ok', b'a\\xef\\xbf\\xbdb', b'\\x00']
    """
    return tf.strings.unicode_transcode(texts, input_encoding="UTF-8",
                                        output_encoding="UTF-8", errors="replace",
                                        replacement_char=0xFFFD)


def one_per_row(values, batch, name, rows="row"):
    """`values` after checking it has `batch` rows (one per `rows`)."""
    size = tf.shape(values)[0]
    check = tf.debugging.Assert(
        tf.equal(size, batch),
        [f"{name}: expected one per {rows}; got", size, "for", batch, f"{rows}s"],
    )
    with tf.control_dependencies([check]):
        return tf.identity(values)


def per_row(values, batch, name):
    """Broadcasts one value, or checks there is one per row (prompt or source)."""
    size = tf.size(values)
    check = tf.debugging.Assert(
        tf.logical_or(tf.equal(size, 1), tf.equal(size, batch)),
        [f"{name}: expected 1 value or one per prompt; got", size, "values for",
         batch, "prompts"],
    )
    with tf.control_dependencies([check]):
        return tf.broadcast_to(values, [batch])


def finite(values, name):
    """`values` after checking none is NaN or infinite."""
    check = tf.debugging.Assert(
        tf.reduce_all(tf.math.is_finite(values)),
        [f"{name}: must be a finite number; got", values],
    )
    with tf.control_dependencies([check]):
        return tf.identity(values)


def shared_value(values, batch, name, default):
    """The value shared by the whole batch: 1 value, or one per row all equal, else
    an error (floats must be finite too). Every given value is checked, whatever
    the batch; an empty batch with no value gets `default`."""
    if values.dtype.is_floating:
        values = finite(values, name)
    size = tf.size(values)
    check = tf.debugging.Assert(
        tf.logical_and(
            tf.logical_or(tf.equal(size, 1), tf.equal(size, batch)),
            tf.reduce_all(tf.equal(values, values[:1])),
        ),
        [f"{name}: every prompt of a request must use the same value (1 value or "
         "one per prompt); got", values, "for", batch, "prompts"],
    )
    with tf.control_dependencies([check]):
        return tf.concat([values, tf.constant([default], values.dtype)], axis=0)[0]


def checked_ids(ids, vocabulary_size, name):
    """`ids` (any shape, ragged too) after checking each is in [0, vocabulary_size)."""
    flat = ids.flat_values if isinstance(ids, tf.RaggedTensor) else tf.reshape(ids, [-1])
    outside = tf.logical_or(flat < 0, flat >= vocabulary_size)
    check = tf.debugging.Assert(
        tf.logical_not(tf.reduce_any(outside)),
        [f"{name}: every id must be in [0, {vocabulary_size}); got",
         tf.boolean_mask(flat, outside)],
    )
    with tf.control_dependencies([check]):
        return tf.identity(ids)


def unless_empty(batch, compute):
    """`compute()`, a dict of batch-first tensors, or the same outputs with 0 rows
    when `batch` is 0, without running `compute`'s ops (a decoding loop cannot run
    on 0 rows). Unknown inner dimensions of the empty outputs are 0."""
    if tf.executing_eagerly():  # Eager tf.cond runs one branch: trace both.
        return tf.function(lambda: unless_empty(batch, compute), autograph=False)()
    traced = {}

    def full():
        traced.update(compute())
        return dict(traced)

    def empty():  # traced after `full`: tf.cond traces the true branch first
        return {key: tf.zeros([0] + [d or 0 for d in value.shape[1:]], value.dtype)
                for key, value in traced.items()}

    return tf.cond(batch > 0, full, empty)
