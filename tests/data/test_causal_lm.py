"""kzoo.data.causal_lm: documents -> token stream -> packed next-token blocks."""

import os
import random

import numpy as np
import pytest
import sentencepiece as spm
import tensorflow as tf

from kzoo.data import causal_lm, text_files
from kzoo.tokenizers import TOKENIZER_FILENAME, load_tokenizer, train_sentencepiece

WORDS = "the quick brown fox jumps over lazy dog café naïve über to be or".split()
SEQUENCE_LENGTH = 16


def make_document(rng, num_lines):
    lines = (
        " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 8))) for _ in range(num_lines)
    )
    return "\n".join(lines) + rng.choice(["", "\n", "\n\n"])


@pytest.fixture(scope="module")
def documents():
    rng = random.Random(1)
    return [make_document(rng, rng.randint(1, 30)) for _ in range(12)]


@pytest.fixture(scope="module")
def run_dir(documents, tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("run"))
    train_sentencepiece(texts=documents, vocab_size=300, model_type="bpe", output_dir=directory)
    return directory


@pytest.fixture(scope="module")
def tokenizer(run_dir):
    return load_tokenizer(run_dir)


@pytest.fixture(scope="module")
def stream(run_dir, documents):
    """The expected token stream, from the Python SentencePiece processor."""
    processor = spm.SentencePieceProcessor(model_file=os.path.join(run_dir, TOKENIZER_FILENAME))
    return np.concatenate([processor.encode(d) + [processor.eos_id()] for d in documents])


def blocks_of(dataset):
    xs, ys = [], []
    for features, labels in dataset:
        xs.append(features["token_ids"].numpy())
        ys.append(labels.numpy())
    return np.concatenate(xs), np.concatenate(ys)


def test_shapes_and_dtypes(tokenizer, documents):
    dataset = causal_lm.causal_lm_dataset(tokenizer, SEQUENCE_LENGTH, 4, texts=documents)
    features, labels = dataset.element_spec
    assert features["token_ids"] == tf.TensorSpec((4, SEQUENCE_LENGTH), tf.int32)
    assert features["padding_mask"] == tf.TensorSpec((4, SEQUENCE_LENGTH), tf.bool)
    assert labels == tf.TensorSpec((4, SEQUENCE_LENGTH), tf.int32)
    for features, labels in dataset.take(2):
        assert features["padding_mask"].numpy().all()
        np.testing.assert_array_equal(features["token_ids"][:, 1:], labels[:, :-1])


def test_packing_keeps_every_token_in_order(tokenizer, documents, stream):
    dataset = causal_lm.causal_lm_dataset(
        tokenizer, SEQUENCE_LENGTH, 1, texts=documents, shuffle=False
    )
    x, y = blocks_of(dataset)
    num_blocks = causal_lm.num_blocks(len(stream), SEQUENCE_LENGTH)
    assert len(x) == num_blocks > 10
    covered = num_blocks * SEQUENCE_LENGTH
    # All inputs, then the last label, give back the stream; only the tail is dropped.
    np.testing.assert_array_equal(np.concatenate([x.ravel(), y[-1, -1:]]), stream[: covered + 1])
    np.testing.assert_array_equal(y.ravel(), stream[1 : covered + 1])
    assert len(stream) - (covered + 1) < SEQUENCE_LENGTH


def test_end_of_document_between_documents(tokenizer, documents, stream):
    x, _ = blocks_of(
        causal_lm.causal_lm_dataset(tokenizer, SEQUENCE_LENGTH, 1, texts=documents, shuffle=False)
    )
    tokens = x.ravel()
    eos_positions = np.flatnonzero(tokens == tokenizer.eos_id)
    assert len(eos_positions) >= len(documents) - 1
    # Each document's tokens end right before its eos.
    first_document = tokenizer.tokenize(documents[0]).numpy()
    assert eos_positions[0] == len(first_document)
    np.testing.assert_array_equal(tokens[: len(first_document)], first_document)


def test_files_give_the_same_stream_as_texts(tokenizer, documents, tmp_path):
    paths = []
    for i, document in enumerate(documents):
        path = tmp_path / f"doc{i:02d}.txt"
        path.write_text(document, encoding="utf-8")
        paths.append(str(path))
    from_files = blocks_of(
        causal_lm.causal_lm_dataset(tokenizer, SEQUENCE_LENGTH, 2, files=paths, shuffle=False)
    )
    from_texts = blocks_of(
        causal_lm.causal_lm_dataset(tokenizer, SEQUENCE_LENGTH, 2, texts=documents, shuffle=False)
    )
    np.testing.assert_array_equal(from_files[0], from_texts[0])
    np.testing.assert_array_equal(from_files[1], from_texts[1])


def test_count_tokens(tokenizer, documents, stream):
    assert text_files.count_tokens(tokenizer, texts=documents + [""]) == len(stream)
    assert causal_lm.num_blocks(len(stream), 16) == (len(stream) - 1) // 16
    assert causal_lm.num_blocks(1, 16) == 0


def test_shuffle_is_seeded_and_permutes_blocks(tokenizer, documents):
    def blocks(seed, shuffle=True):
        dataset = causal_lm.causal_lm_dataset(
            tokenizer, SEQUENCE_LENGTH, 1, texts=documents, seed=seed, shuffle=shuffle
        )
        return blocks_of(dataset)[0]

    first, again, other = blocks(0), blocks(0), blocks(1)
    ordered = blocks(0, shuffle=False)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    assert not np.array_equal(first, ordered)
    # The same blocks, in another order.
    np.testing.assert_array_equal(np.unique(first, axis=0), np.unique(ordered, axis=0))
    assert len(first) == len(ordered)


def test_deterministic_with_parallel_calls(tokenizer, documents):
    options = causal_lm.causal_lm_dataset(tokenizer, 8, 2, texts=documents).options()
    assert options.deterministic is True
    runs = [
        blocks_of(
            causal_lm.causal_lm_dataset(tokenizer, 8, 2, texts=documents, num_parallel_calls=4)
        )[0]
        for _ in range(2)
    ]
    np.testing.assert_array_equal(*runs)


def test_repeat_and_remainder(tokenizer, documents, stream):
    num_blocks = causal_lm.num_blocks(len(stream), SEQUENCE_LENGTH)
    batch_size = 3 if num_blocks % 3 else 7
    assert num_blocks % batch_size
    kept = causal_lm.causal_lm_dataset(
        tokenizer, SEQUENCE_LENGTH, batch_size, texts=documents, drop_remainder=False
    )
    sizes = [features["token_ids"].shape[0] for features, _ in kept]
    assert sum(sizes) == num_blocks and sizes[-1] == num_blocks % batch_size
    repeated = causal_lm.causal_lm_dataset(
        tokenizer, SEQUENCE_LENGTH, batch_size, texts=documents, repeat=True
    )
    assert len(list(repeated.take(2 * len(sizes) + 1))) == 2 * len(sizes) + 1


def test_pack_into_blocks_on_chunks_of_any_size():
    chunks = tf.data.Dataset.from_tensor_slices(
        tf.ragged.constant([[0, 1], [], [2, 3, 4, 5, 6], [7], [8, 9, 10]])
    )
    blocks = [
        (x.numpy().tolist(), y.numpy().tolist()) for x, y in causal_lm.pack_into_blocks(chunks, 3)
    ]
    assert blocks == [([0, 1, 2], [1, 2, 3]), ([3, 4, 5], [4, 5, 6]), ([6, 7, 8], [7, 8, 9])]


def test_short_corpus_gives_no_batches_and_empty_documents_are_skipped(tokenizer):
    assert list(causal_lm.causal_lm_dataset(tokenizer, 64, 1, texts=["the fox", ""])) == []
    documents = [d.numpy() for d in text_files.document_dataset(texts=["", "a", ""])]
    assert documents == [b"a"]


def test_bad_arguments(tokenizer):
    with pytest.raises(ValueError, match="sequence_length: expected a positive int, got 0"):
        causal_lm.causal_lm_dataset(tokenizer, 0, 2, texts=["a"])
    with pytest.raises(ValueError, match="batch_size: expected a positive int"):
        causal_lm.causal_lm_dataset(tokenizer, 8, None, texts=["a"])
    with pytest.raises(ValueError, match="exactly one of"):
        causal_lm.causal_lm_dataset(tokenizer, 8, 2)


def test_each_pass_packs_from_a_new_offset(tokenizer, documents, stream):
    length = 8
    per_pass = (len(stream) - 1) // length
    dataset = causal_lm.causal_lm_dataset(
        tokenizer,
        length,
        1,
        texts=documents,
        shuffle=True,
        seed=0,
        repeat=True,
        shuffle_buffer_size=1,  # keep passes in order: only the offsets matter here
    )
    blocks = [f["token_ids"].numpy()[0] for (f, _), _ in zip(dataset, range(2 * per_pass - 1))]
    windows = np.lib.stride_tricks.sliding_window_view(stream, length)

    def residues(block):
        """Where in the stream `block` can start, modulo the block length."""
        starts = np.flatnonzero((windows == block).all(axis=1))
        assert starts.size, "every block is a contiguous window of the stream"
        return {int(p) % length for p in starts}

    first = [residues(b) for b in blocks[:per_pass]]
    second = [residues(b) for b in blocks[per_pass:]]
    assert all(0 in r for r in first)  # the first pass packs from token 0
    shared = set.intersection(*second)  # the second pass from one other offset
    assert shared and 0 not in shared
