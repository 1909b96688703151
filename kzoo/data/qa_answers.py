"""From BERT span logits over `qa_windows` back to answer text, in graph.

`best_answers` runs in the exported `answer` signature as well as in evaluation:
the best span of each window, then the best window of each example, cut out of the
original context by byte offsets. `predict_answers` and `qa_metrics` evaluate a
model on `read_squad_file` examples with the official SQuAD v1.1 scores.
"""

import numpy as np
import tensorflow as tf

from kzoo.data.qa_windows import CHUNK_SIZE, FEATURE_KEYS, qa_eval_windows
from kzoo.metrics import task_metrics


def best_answers(
    start_logits, end_logits, windows, contexts, *, max_answer_tokens, batch_size=None
):
    """The highest-scoring answer span of each example, over all its windows.

    A span runs from a start to an end position of the same window, both holding
    context tokens, with `start <= end < start + max_answer_tokens`; its score is
    `log_softmax(start_logits)[start] + log_softmax(end_logits)[end]` in the window.

    Args:
        start_logits: Float `[N, L]`, the model's `start_logits` on the windows.
        end_logits: Float `[N, L]`, its `end_logits`.
        windows: `qa_windows`'s output (`example_index`, `token_starts`,
            `token_ends` are used).
        contexts: String `[B]`, the contexts the windows were cut from.
        max_answer_tokens: The most tokens an answer may have.
        batch_size: B; defaults to the size of `contexts`.

    Returns:
        A dict: `answers` string `[B]`, the context bytes from the span's first
        token's start to its last token's end; `scores` float32 `[B]`, the exp
        of the best score, in (0, 1]; `byte_starts`, `byte_ends` int64 `[B]`.
        An example without context tokens gets `""`, score 0 and span (0, 0).

    Example:
    >>> windows = {"example_index": tf.constant([0]),
    ...            "token_starts": tf.constant([[-1, 0, 6, 9, -1]], tf.int64),
    ...            "token_ends": tf.constant([[-1, 5, 8, 13, -1]], tf.int64)}
    >>> logits = tf.constant([[0., 0., 9., 0., 0.]])
    >>> out = best_answers(logits, tf.roll(logits, 1, axis=1), windows,
    ...                    ["café au lait"], max_answer_tokens=2)
    >>> out["answers"].numpy()[0].decode(), out["byte_ends"].numpy().tolist()
    ('au lait', [13])
    """
    if not isinstance(max_answer_tokens, int) or max_answer_tokens < 1:
        raise ValueError(f"max_answer_tokens: expected an int >= 1, got {max_answer_tokens!r}")
    contexts = tf.convert_to_tensor(contexts, tf.string)
    if batch_size is None:
        batch_size = tf.shape(contexts)[0]
    example_index = tf.cast(windows["example_index"], tf.int32)
    token_starts = tf.cast(windows["token_starts"], tf.int64)
    token_ends = tf.cast(windows["token_ends"], tf.int64)
    start_scores = tf.nn.log_softmax(tf.cast(start_logits, tf.float32), axis=-1)
    end_scores = tf.nn.log_softmax(tf.cast(end_logits, tf.float32), axis=-1)

    # Spans as (start, start + offset) with 0 <= offset < max_answer_tokens:
    # [N, L, max_answer_tokens] scores, not all L * L pairs.
    is_context = token_starts >= 0
    tail = [[0, 0], [0, max_answer_tokens - 1]]
    end_scores = tf.signal.frame(tf.pad(end_scores, tail), max_answer_tokens, 1, axis=1)
    is_end = tf.signal.frame(tf.pad(is_context, tail), max_answer_tokens, 1, axis=1)
    pair_scores = tf.where(
        is_context[:, :, tf.newaxis] & is_end, start_scores[:, :, tf.newaxis] + end_scores, -np.inf
    )
    flat = tf.reshape(pair_scores, [tf.shape(pair_scores)[0], -1])
    window_scores = tf.reduce_max(flat, axis=1)  # -inf: no context token
    best_pair = tf.argmax(flat, axis=1, output_type=tf.int32)

    # The best window of each example (the first one on ties).
    example_scores = tf.math.unsorted_segment_max(window_scores, example_index, batch_size)
    is_best = tf.equal(window_scores, tf.gather(example_scores, example_index))
    is_best &= tf.math.is_finite(window_scores)
    num_windows = tf.size(example_index)
    window_ids = tf.where(is_best, tf.range(num_windows), num_windows)
    best_window = tf.math.unsorted_segment_min(window_ids, example_index, batch_size)
    found = best_window < num_windows
    best_window = tf.where(found, best_window, 0)
    pair = tf.gather(best_pair, best_window)
    start = pair // max_answer_tokens
    end = start + pair % max_answer_tokens
    byte_starts = tf.gather_nd(token_starts, tf.stack([best_window, start], 1))
    byte_ends = tf.gather_nd(token_ends, tf.stack([best_window, end], 1))
    zeros = tf.zeros([batch_size], tf.int64)
    byte_starts = tf.where(found, byte_starts, zeros)
    byte_ends = tf.where(found, tf.maximum(byte_ends, byte_starts), zeros)
    return {
        "answers": tf.strings.substr(contexts, byte_starts, byte_ends - byte_starts, unit="BYTE"),
        "scores": tf.where(found, tf.exp(example_scores), tf.zeros([batch_size])),
        "byte_starts": byte_starts,
        "byte_ends": byte_ends,
    }


def predict_answers(
    model,
    tokenizer,
    examples,
    *,
    sequence_length,
    max_query_tokens,
    doc_stride,
    max_answer_tokens,
    batch_size,
):
    """Answers each example's question with `model`, a `BertQuestionAnswerer`.

    Args:
        model: Maps `{"token_ids", "segment_ids", "padding_mask"}` to
            `{"start_logits", "end_logits"}`, called as `model(features,
            training=False)`.
        tokenizer: The model's `WordPieceTokenizer`.
        examples: `read_squad_file` dicts (`question`, `context`).
        sequence_length, max_query_tokens, doc_stride: As in `qa_windows`.
        max_answer_tokens: As in `best_answers`.
        batch_size: Windows per model call.

    Returns:
        A list of answer strings, one per example.

    Example:
    >>> from kzoo.tokenizers.wordpiece_tokenizer import WordPieceTokenizer
    >>> tokenizer = WordPieceTokenizer(
    ...     ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c", "?"])
    >>> def model(features, training=False):  # Always bets on position 5.
    ...     logits = tf.one_hot(tf.fill(tf.shape(features["token_ids"])[:1], 5), 8)
    ...     return {"start_logits": logits, "end_logits": logits}
    >>> predict_answers(model, tokenizer, [{"question": "b?", "context": "a b c"}],
    ...                 sequence_length=8, max_query_tokens=2, doc_stride=2,
    ...                 max_answer_tokens=3, batch_size=4)
    ['b']
    """
    examples = list(examples)
    settings = dict(
        sequence_length=sequence_length, max_query_tokens=max_query_tokens, doc_stride=doc_stride
    )
    answers = []
    for begin in range(0, len(examples), CHUNK_SIZE):
        chunk = examples[begin : begin + CHUNK_SIZE]
        windows = qa_eval_windows(tokenizer, chunk, **settings)
        logits = {"start_logits": [], "end_logits": []}
        for first in range(0, len(windows["example_index"]), batch_size):
            features = {key: windows[key][first : first + batch_size] for key in FEATURE_KEYS}
            outputs = model(features, training=False)
            for key in logits:
                logits[key].append(np.asarray(outputs[key], np.float32))
        best = best_answers(
            np.concatenate(logits["start_logits"]),
            np.concatenate(logits["end_logits"]),
            windows,
            [example["context"] for example in chunk],
            max_answer_tokens=max_answer_tokens,
        )
        answers += [a.decode("utf-8", "replace") for a in best["answers"].numpy()]
    return answers


def qa_metrics(predictions, examples):
    """SQuAD v1.1 exact match and F1, in percent, of answers to `examples`.

    Each prediction scores its best match among the example's gold answers.

    Example:
    >>> qa_metrics(["the Broncos", "Panthers"],
    ...            [{"answers": [{"text": "Broncos"}]}, {"answers": [{"text": "Carolina"}]}])
    {'exact_match': 50.0, 'f1': 50.0}
    """
    predictions, examples = list(predictions), list(examples)
    if len(predictions) != len(examples) or not examples:
        raise ValueError(
            f"qa_metrics: expected one prediction per example (at least one), got "
            f"{len(predictions)} predictions for {len(examples)} examples"
        )
    scores = np.array(
        [
            task_metrics.squad_exact_match_and_f1(
                prediction, [answer["text"] for answer in example["answers"]]
            )
            for prediction, example in zip(predictions, examples)
        ]
    )
    exact_match, f1 = 100.0 * scores.mean(axis=0)
    return {"exact_match": float(exact_match), "f1": float(f1)}
