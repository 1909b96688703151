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
    shapes (every input is declared with any rank and checked in the graph: TF
        Serving feeds whatever shape a request has, e.g. a scalar from a columnar
        "inputs" request)
        text inputs and prompt_lengths   a vector, one per row; a scalar is one
                        row (a scalar `prompts` gets outputs with 1 row)
        decoding options   a scalar (one value for the batch) or a vector
        ids inputs       a [batch, length] matrix
      Any other rank is InvalidArgument naming the input and the expected shape.
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
    return tf.strings.unicode_transcode(
        texts,
        input_encoding="UTF-8",
        output_encoding="UTF-8",
        errors="replace",
        replacement_char=0xFFFD,
    )


def any_rank(name, dtype):
    """The declared spec of a signature input: any rank, checked in the graph by
    `as_rows`, `one_per_row`, `per_row`, `shared_value` or `matrix` (a declared rank
    would make Python loaders refuse a scalar that TF Serving passes through)."""
    return tf.TensorSpec(None, dtype, name=name)


def declared_shape(spec):
    """`spec`'s shape as a list, or None for any rank (for kzoo_export.json)."""
    return None if spec.shape.rank is None else spec.shape.as_list()


def _vector(values, name, expected):
    """`values` (rank 0 or 1) as a vector: a scalar becomes 1 value."""
    check = tf.debugging.Assert(
        tf.rank(values) <= 1, [f"{name}: expected {expected}; got shape", tf.shape(values)]
    )
    with tf.control_dependencies([check]):
        return tf.reshape(values, [-1])


def as_rows(values, name):
    """The input that sets the batch (prompts, texts, sources, questions) as a
    vector: a scalar is a batch of one row; rank 2 or more is InvalidArgument.

    Example:
    >>> as_rows(tf.constant("one prompt"), "prompts").numpy().tolist()
    [b'one prompt']
    >>> as_rows(tf.constant([["a"]]), "prompts")
    Traceback (most recent call last):
    ...
    tensorflow.python.framework.errors_impl.InvalidArgumentError: ...prompts: expected a string or a vector of strings (one per row); got shape...
    """
    return _vector(values, name, "a string or a vector of strings (one per row)")


def matrix(values, name):
    """`values` after checking it is a `[batch, length]` matrix (ids inputs).

    Example:
    >>> matrix(tf.constant([3, 9]), "token_ids")
    Traceback (most recent call last):
    ...
    tensorflow.python.framework.errors_impl.InvalidArgumentError: ...token_ids: expected a [batch, length] matrix of ids; got shape...
    """
    check = tf.debugging.Assert(
        tf.equal(tf.rank(values), 2),
        [f"{name}: expected a [batch, length] matrix of ids; got shape", tf.shape(values)],
    )
    with tf.control_dependencies([check]):
        shape = tf.shape(values)
        return tf.reshape(values, tf.stack([shape[0], shape[-1]]))


def one_per_row(values, batch, name, rows="row"):
    """`values` after checking it has `batch` rows (one per `rows`); a scalar is
    one row."""
    values = _vector(values, name, f"a scalar or a vector (one per {rows})")
    size = tf.shape(values)[0]
    check = tf.debugging.Assert(
        tf.equal(size, batch),
        [f"{name}: expected one per {rows}; got", size, "for", batch, f"{rows}s"],
    )
    with tf.control_dependencies([check]):
        return tf.identity(values)


def per_row(values, batch, name):
    """Broadcasts one value (a scalar or 1 value), or checks there is one per row
    (prompt or source).

    Example:
    >>> per_row(tf.constant(5), 3, "max_new_tokens").numpy().tolist()
    [5, 5, 5]
    """
    values = _vector(values, name, "a scalar or a vector (1 value or one per prompt)")
    size = tf.size(values)
    check = tf.debugging.Assert(
        tf.logical_or(tf.equal(size, 1), tf.equal(size, batch)),
        [f"{name}: expected 1 value or one per prompt; got", size, "values for", batch, "prompts"],
    )
    with tf.control_dependencies([check]):
        return tf.broadcast_to(values, [batch])


def finite(values, name):
    """`values` after checking none is NaN or infinite."""
    check = tf.debugging.Assert(
        tf.reduce_all(tf.math.is_finite(values)), [f"{name}: must be a finite number; got", values]
    )
    with tf.control_dependencies([check]):
        return tf.identity(values)


def shared_value(values, batch, name, default):
    """The value shared by the whole batch: 1 value, or one per row all equal, else
    an error (floats must be finite too). Every given value is checked, whatever
    the batch; an empty batch with no value gets `default`. A scalar is 1 value.

    Example:
    >>> float(shared_value(tf.constant(0.5), 2, "temperature", 0.0))
    0.5
    >>> shared_value(tf.constant([[0.5]]), 2, "temperature", 0.0)
    Traceback (most recent call last):
    ...
    tensorflow.python.framework.errors_impl.InvalidArgumentError: ...temperature: expected a scalar or a vector (1 value or one per prompt); got shape...
    """
    values = _vector(values, name, "a scalar or a vector (1 value or one per prompt)")
    if values.dtype.is_floating:
        values = finite(values, name)
    size = tf.size(values)
    check = tf.debugging.Assert(
        tf.logical_and(
            tf.logical_or(tf.equal(size, 1), tf.equal(size, batch)),
            tf.reduce_all(tf.equal(values, values[:1])),
        ),
        [
            f"{name}: every prompt of a request must use the same value (1 value or "
            "one per prompt); got",
            values,
            "for",
            batch,
            "prompts",
        ],
    )
    with tf.control_dependencies([check]):
        return tf.concat([values, tf.constant([default], values.dtype)], axis=0)[0]


def checked_ids(ids, vocabulary_size, name):
    """`ids` (any shape, ragged too) after checking each is in [0, vocabulary_size)."""
    flat = ids.flat_values if isinstance(ids, tf.RaggedTensor) else tf.reshape(ids, [-1])
    outside = tf.logical_or(flat < 0, flat >= vocabulary_size)
    check = tf.debugging.Assert(
        tf.logical_not(tf.reduce_any(outside)),
        [
            f"{name}: every id must be in [0, {vocabulary_size}); got",
            tf.boolean_mask(flat, outside),
        ],
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
        return {
            key: tf.zeros([0] + [d or 0 for d in value.shape[1:]], value.dtype)
            for key, value in traced.items()
        }

    return tf.cond(batch > 0, full, empty)
