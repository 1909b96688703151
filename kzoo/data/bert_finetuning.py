"""Fine-tuning pipelines for BERT: sequence classification and token tagging.

Both take the examples of `kzoo.data.labelled_files` (the user's files) or of
`kzoo.data.builtin_tasks` (generated) and return `tf.data` datasets of
`(features, labels[, sample_weights])` for `model.fit`; tokenization and packing
run in the graph, through the model's preprocessor (passed in as a function:
`kzoo.preprocessing` sits above this package), the object its exports call.

Tagging labels the first sub-word of each word; the other sub-words, [CLS], [SEP]
and padding get weight 0, so they are ignored by the loss. Weights are scaled per
batch to average 1 over the batch's positions, so Keras' mean over positions is
the mean over labelled words.
"""

import tensorflow as tf


def _shuffle_repeat(dataset, count, shuffle, seed, repeat):
    if shuffle:
        dataset = dataset.shuffle(count, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    return dataset


def classification_dataset(
    preprocessor, examples, label_ids, batch_size, *, shuffle=False, seed=0, repeat=False
):
    """Batches of `(features, label_ids)` for `BertClassifier`.

    Args:
        preprocessor: `(texts, text_pairs) -> features` of 1-D string tensors
            (`text_pairs` None for single texts): the model's
            `BertClassifierPreprocessor`, so training packs as the model's
            exports do.
        examples: Dicts with `text` and `text_pair` (None for single texts).
        label_ids: One int per example.
        batch_size: Examples per batch; with `repeat`, partial batches are dropped.
        shuffle, seed, repeat: Shuffle each pass / repeat forever.
    """
    texts = [e["text"] for e in examples]
    pairs = [e.get("text_pair") for e in examples]
    has_pairs = any(p is not None for p in pairs)
    columns = {"text": texts, "label": list(label_ids)}
    if has_pairs:
        columns["text_pair"] = [p or "" for p in pairs]
    dataset = _shuffle_repeat(
        tf.data.Dataset.from_tensor_slices(columns), len(texts), shuffle, seed, repeat
    )

    def to_inputs(batch):
        features = preprocessor(batch["text"], batch["text_pair"] if has_pairs else None)
        return features, tf.cast(batch["label"], tf.int32)

    dataset = dataset.batch(batch_size, drop_remainder=repeat)
    return dataset.map(to_inputs, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def tagging_batches(
    word_inputs, examples, tag_ids, batch_size, *, shuffle=False, seed=0, repeat=False
):
    """Batches of `(features, labels, weights, first_positions)`.

    `labels` int32 `[B, L]` holds each word's tag id at its first sub-word;
    `first_positions` ragged `[B, W]` says where each word went (-1: cut off).

    Args:
        word_inputs: `words -> (features, first_positions)` of ragged words
            `[B, W]`: the `word_inputs` of the model's `BertTaggerPreprocessor`
            (see `kzoo.data.bert_inputs.word_inputs`).
        examples: Dicts with `tokens` (the words).
        tag_ids: One list of tag ids per example, one id per word.
        batch_size: Examples per batch; with `repeat`, partial batches are dropped.
        shuffle, seed, repeat: Shuffle each pass / repeat forever.
    """
    words = tf.ragged.constant([e["tokens"] for e in examples], dtype=tf.string)
    tags = tf.ragged.constant([list(t) for t in tag_ids], dtype=tf.int32)
    dataset = _shuffle_repeat(
        tf.data.Dataset.from_tensor_slices({"words": words, "tags": tags}),
        len(examples),
        shuffle,
        seed,
        repeat,
    )

    def to_inputs(batch):
        features, first = word_inputs(batch["words"])
        rows = tf.cast(first.value_rowids(), tf.int32)
        positions = first.flat_values
        kept = positions >= 0
        indices = tf.boolean_mask(tf.stack([rows, positions], axis=1), kept)
        shape = tf.shape(features["token_ids"])
        labels = tf.scatter_nd(indices, tf.boolean_mask(batch["tags"].flat_values, kept), shape)
        weights = tf.scatter_nd(indices, tf.ones(tf.shape(indices)[:1]), shape)
        total = tf.cast(tf.size(weights), tf.float32)
        weights = weights * total / tf.maximum(tf.reduce_sum(weights), 1.0)
        return features, labels, weights, first

    dataset = dataset.ragged_batch(batch_size, drop_remainder=repeat)
    return dataset.map(to_inputs, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)


def tagging_dataset(word_inputs, examples, tag_ids, batch_size, **kwargs):
    """`(features, labels, weights)` batches for `BertTokenClassifier.fit`."""
    return tagging_batches(word_inputs, examples, tag_ids, batch_size, **kwargs).map(
        lambda x, y, w, _: (x, y, w)
    )
