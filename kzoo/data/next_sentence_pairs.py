"""Segment pairs for next-sentence prediction, the way BERT builds them.

Sentences of a document are gathered into a chunk of about `max_tokens` tokens
(sometimes shorter, so the model also sees short inputs); the chunk is cut at a
random sentence boundary into segment A and the rest. With probability
`random_next_probability` segment B comes from another document (label
`RANDOM_NEXT`) and the unused rest of the chunk is kept for the next pair; else B
is the rest (label `IS_NEXT`). A one-sentence chunk is cut inside the sentence, so
the label rate stays what was asked instead of drifting towards "random". Pairs
longer than `max_tokens` are trimmed, one token at a time from the longer segment,
at a random end.
"""

import numpy as np

IS_NEXT = 0
RANDOM_NEXT = 1


def sentence_pairs(
    documents, max_tokens, rng, random_next_probability=0.5, short_sequence_probability=0.1
):
    """Builds `(segment_a, segment_b, label)` triples from tokenized documents.

    Args:
        documents: A list of documents, each a list of sentences, each a list of
            token ids.
        max_tokens: Most tokens of `segment_a + segment_b` (the sequence length
            less the [CLS] and two [SEP] tokens).
        rng: A `numpy.random.Generator`.
        random_next_probability: Share of pairs whose B comes from another document.
        short_sequence_probability: Share of chunks with a random, shorter target.

    Returns:
        A list of `(list, list, int)`.

    Example:
    >>> documents = [[[5, 6], [7, 8, 9]], [[10, 11], [12]]]
    >>> pairs = sentence_pairs(documents, 8, np.random.default_rng(0))
    >>> all(len(a) + len(b) <= 8 and label in (IS_NEXT, RANDOM_NEXT)
    ...     for a, b, label in pairs)
    True
    """
    documents = [[list(s) for s in doc if len(s)] for doc in documents]
    documents = [doc for doc in documents if doc]
    pairs = []
    for index in range(len(documents)):
        pairs += _document_pairs(
            documents, index, max_tokens, rng, random_next_probability, short_sequence_probability
        )
    return pairs


def _document_pairs(documents, index, max_tokens, rng, random_probability, short_probability):
    document = documents[index]
    pairs = []
    target = _target_length(max_tokens, rng, short_probability)
    chunk, chunk_length, i = [], 0, 0
    while i < len(document):
        chunk.append(document[i])
        chunk_length += len(document[i])
        if i == len(document) - 1 or chunk_length >= target:
            pair, unused = _chunk_pair(documents, index, chunk, target, rng, random_probability)
            if pair is not None:
                pairs.append(_truncate(*pair, max_tokens, rng))
            i -= unused  # a random B leaves the rest of the chunk for the next pair
            chunk, chunk_length = [], 0
            target = _target_length(max_tokens, rng, short_probability)
        i += 1
    return pairs


def _target_length(max_tokens, rng, short_probability):
    if rng.random() < short_probability:
        return int(rng.integers(2, max_tokens + 1))
    return max_tokens


def _chunk_pair(documents, index, chunk, target, rng, random_probability):
    """`((a, b, label), unused_sentences)` for one chunk; pair None if too short."""
    random_next = len(documents) > 1 and rng.random() < random_probability
    if len(chunk) >= 2:
        cut = int(rng.integers(1, len(chunk)))
        a, rest = _flat(chunk[:cut]), _flat(chunk[cut:])
        unused = len(chunk) - cut
    else:
        tokens = chunk[0]
        if len(tokens) < 2:
            return None, 0
        cut = int(rng.integers(1, len(tokens)))
        a, rest, unused = tokens[:cut], tokens[cut:], 0
    if not random_next:
        return (a, rest, IS_NEXT), 0
    other = int(rng.integers(0, len(documents) - 1))
    other += other >= index
    sentences = documents[other]
    start = int(rng.integers(0, len(sentences)))
    b = []
    for sentence in sentences[start:]:
        b += sentence
        if len(a) + len(b) >= target:
            break
    # A cut inside a single sentence cannot give the rest back: it is dropped.
    return (a, b, RANDOM_NEXT), unused


def _flat(sentences):
    return [token for sentence in sentences for token in sentence]


def _truncate(a, b, label, max_tokens, rng):
    a, b = list(a), list(b)
    while len(a) + len(b) > max_tokens:
        longer = a if len(a) > len(b) else b
        if rng.random() < 0.5:
            del longer[0]
        else:
            longer.pop()
    return a, b, label


def pack_pairs(pairs, sequence_length, cls_id, sep_id, pad_id=0):
    """`[CLS] A [SEP] B [SEP]`, padded: a dict of int32 arrays `token_ids`,
    `segment_ids`, `padding_mask` `[N, sequence_length]` and `nsp_labels` `[N]`.

    Example:
    >>> packed = pack_pairs([([5, 6], [7], IS_NEXT)], 8, cls_id=2, sep_id=3)
    >>> packed["token_ids"].tolist(), packed["segment_ids"].tolist()
    ([[2, 5, 6, 3, 7, 3, 0, 0]], [[0, 0, 0, 0, 1, 1, 0, 0]])
    """
    count = len(pairs)
    token_ids = np.full((count, sequence_length), pad_id, np.int32)
    segment_ids = np.zeros((count, sequence_length), np.int32)
    padding_mask = np.zeros((count, sequence_length), np.int32)
    labels = np.zeros((count,), np.int32)
    for row, (a, b, label) in enumerate(pairs):
        tokens = [cls_id, *a, sep_id, *b, sep_id]
        if len(tokens) > sequence_length:
            raise ValueError(
                f"pack_pairs: a pair of {len(tokens)} tokens exceeds "
                f"sequence_length {sequence_length}"
            )
        token_ids[row, : len(tokens)] = tokens
        segment_ids[row, len(a) + 2 : len(tokens)] = 1
        padding_mask[row, : len(tokens)] = 1
        labels[row] = label
    return {
        "token_ids": token_ids,
        "segment_ids": segment_ids,
        "padding_mask": padding_mask,
        "nsp_labels": labels,
    }
