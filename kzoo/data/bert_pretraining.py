"""The BERT pretraining pipeline: sentence pairs with NSP labels, dynamic MLM masks.

    documents (lists of sentences)  --tokenize (in graph, batched)-->
    segment pairs, 50% true next / 50% from another document (next_sentence_pairs)
    --> [CLS] A [SEP] B [SEP], segment ids, padding (fixed length)
    --> shuffle, repeat, batch --> masked_lm.mask_tokens keyed by the batch counter

The pairs are built once (NumPy arrays in memory: about 4 bytes x sequence length
per pair); the masks are drawn again for every batch, so every epoch sees new
masks. Elements are `(features, labels, sample_weights)` for `model.fit`:

    features  token_ids, segment_ids, padding_mask  int32 [B, L]
              mask_positions                        int32 [B, P]
    labels    mlm int32 [B, P] (original tokens), nsp int32 [B] (0 next, 1 random)
    weights   mlm float32 [B, P] (1 at used prediction slots), nsp float32 [B]

Text files follow BERT's convention: one sentence (or line of text) per line, a
blank line between documents.
"""

import numpy as np
import tensorflow as tf

from kzoo.data import masked_lm
from kzoo.data.bad_records import BadRecords
from kzoo.data.next_sentence_pairs import pack_pairs, sentence_pairs

TOKENIZE_BATCH = 1024


def read_documents(files, bad_records=None):
    """Documents of text files: blank lines separate documents, lines are sentences.

    Args:
        files: Paths of UTF-8 text files.
        bad_records: The `kzoo.data.bad_records.BadRecords` that bad lines (invalid
            UTF-8, too long) go to; a skipped line is left out, as if it were not
            in the file. `None` stops at the first.

    Returns:
        A list of documents, each a list of stripped, non-empty lines.

    Example:
    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "a.txt")
    >>> _ = open(path, "w").write("one.\\ntwo.\\n\\nthree.\\n")
    >>> read_documents([path])
    [['one.', 'two.'], ['three.']]
    """
    records = bad_records or BadRecords()
    documents = []
    for path in files:
        current = []
        for _, line in records.lines(path):
            if line is None:
                continue
            line = line.strip()
            if line:
                current.append(line)
            elif current:
                documents.append(current)
                current = []
        if current:
            documents.append(current)
    return documents


def tokenize_documents(tokenizer, documents):
    """Token-id lists of every sentence, documents kept: `[doc][sentence][token]`."""
    sentences = [s for doc in documents for s in doc]
    ids = []
    for start in range(0, len(sentences), TOKENIZE_BATCH):
        batch = tf.constant(sentences[start : start + TOKENIZE_BATCH])
        ids += tokenizer.tokenize(batch).to_list()
    tokenized, offset = [], 0
    for doc in documents:
        tokenized.append(ids[offset : offset + len(doc)])
        offset += len(doc)
    return tokenized


def pretraining_examples(
    tokenizer,
    documents,
    sequence_length,
    seed,
    random_next_probability=0.5,
    short_sequence_probability=0.1,
):
    """Packed pairs (see `next_sentence_pairs.pack_pairs`) from raw documents.

    Raises:
        ValueError: No pair could be built (too little text).
    """
    rng = np.random.default_rng(seed)
    pairs = sentence_pairs(
        tokenize_documents(tokenizer, documents),
        sequence_length - 3,
        rng,
        random_next_probability=random_next_probability,
        short_sequence_probability=short_sequence_probability,
    )
    if not pairs:
        raise ValueError(
            "the pretraining text makes no sentence pair: give documents with at least two tokens"
        )
    return pack_pairs(
        pairs, sequence_length, int(tokenizer.cls_id), int(tokenizer.sep_id), int(tokenizer.pad_id)
    )


def bert_pretraining_dataset(
    examples,
    tokenizer,
    batch_size,
    *,
    seed=0,
    shuffle=True,
    repeat=False,
    selection_rate=0.15,
    mask_token_rate=0.8,
    random_token_rate=0.1,
    same_masks_every_pass=False,
):
    """Batches of masked pairs for `BertPretrainer`.

    Args:
        examples: The output of `pretraining_examples`.
        tokenizer: A `WordPieceTokenizer` (special ids, vocabulary size).
        batch_size: Pairs per batch (the last partial batch is dropped).
        seed: Seeds the shuffle and the masks.
        shuffle: Shuffle the pairs (reshuffled every pass).
        repeat: Repeat forever (each pass gets new masks, unless
            `same_masks_every_pass`: then every pass is identical, for validation).
        selection_rate, mask_token_rate, random_token_rate: See
            `masked_lm.mask_tokens`.

    Returns:
        A `tf.data.Dataset` of `(features, labels, sample_weights)`.
    """
    count = len(examples["nsp_labels"])
    dataset = tf.data.Dataset.from_tensor_slices(examples)
    if shuffle:
        dataset = dataset.shuffle(count, seed=seed, reshuffle_each_iteration=True)
    if repeat and not same_masks_every_pass:
        dataset = dataset.repeat()
    dataset = dataset.batch(batch_size, drop_remainder=True)
    special = tf.constant(sorted(int(i) for i in tokenizer.special_ids), tf.int32)
    settings = dict(
        mask_id=int(tokenizer.mask_id),
        vocabulary_size=int(tokenizer.vocabulary_size),
        first_random_id=int(max(tokenizer.special_ids)) + 1,
        selection_rate=selection_rate,
        mask_token_rate=mask_token_rate,
        random_token_rate=random_token_rate,
    )

    def mask(index, batch):
        ids = batch["token_ids"]
        is_special = tf.reduce_any(ids[..., None] == special, axis=-1)
        maskable = tf.logical_and(batch["padding_mask"] > 0, tf.logical_not(is_special))
        masked = masked_lm.mask_tokens(
            ids, maskable, tf.stack([tf.constant(seed, tf.int64), index]), **settings
        )
        features = {
            "token_ids": masked["token_ids"],
            "segment_ids": batch["segment_ids"],
            "padding_mask": batch["padding_mask"],
            "mask_positions": masked["mask_positions"],
        }
        labels = {"mlm": masked["mask_ids"], "nsp": batch["nsp_labels"]}
        # Keras averages a weighted loss over all slots: scaling the weights to
        # average 1 makes that the mean over the used slots.
        used = masked["mask_weights"]
        slots = tf.cast(tf.size(used), tf.float32)
        weights = {
            "mlm": used * slots / tf.maximum(tf.reduce_sum(used), 1.0),
            "nsp": tf.ones_like(batch["nsp_labels"], tf.float32),
        }
        return features, labels, weights

    dataset = dataset.enumerate().map(
        lambda i, batch: mask(tf.cast(i, tf.int64), batch),
        num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True,
    )
    if repeat and same_masks_every_pass:
        dataset = dataset.repeat()  # the batch counter restarts: the same masks
    return dataset.prefetch(tf.data.AUTOTUNE)
