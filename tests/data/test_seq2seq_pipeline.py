"""kzoo.data.seq2seq_pipeline: string pairs -> ids -> teacher-forcing batches."""

import collections
import os
import random

import numpy as np
import pytest
import sentencepiece as spm
import tensorflow as tf

from kzoo.data import seq2seq_pipeline as sp
from kzoo.tokenizers import TOKENIZER_FILENAME, load_tokenizer, train_sentencepiece

WORDS = "the cat sat on a mat die katze sitzt auf einer matte ja nein".split()
MAX_SOURCE, MAX_TARGET = 14, 10
BATCH = 4
INPUTS = ("encoder_token_ids", "encoder_padding_mask", "decoder_token_ids", "decoder_padding_mask")


def batches(pairs, tokenizer, **options):
    """`seq2seq_dataset` of `pairs` with the test's tokenizer, batch and lengths."""
    return sp.seq2seq_dataset(
        pairs,
        tokenizer,
        batch_size=BATCH,
        max_source_length=MAX_SOURCE,
        max_target_length=MAX_TARGET,
        **options,
    )


def sentence(rng):
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(1, 3)))


@pytest.fixture(scope="module")
def pairs():
    rng = random.Random(0)
    return [(sentence(rng), sentence(rng)) for _ in range(40)]


@pytest.fixture(scope="module")
def run_dir(pairs, tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("run"))
    texts = [f"{source}\n{target}" for source, target in pairs]
    train_sentencepiece(texts=texts, model_type="char", output_dir=directory)
    return directory


@pytest.fixture(scope="module")
def tokenizer(run_dir):
    return load_tokenizer(run_dir)


@pytest.fixture(scope="module")
def expected_ids(run_dir, pairs):
    """`(source_ids, target_ids)` per pair, from the Python SentencePiece processor."""
    processor = spm.SentencePieceProcessor(model_file=os.path.join(run_dir, TOKENIZER_FILENAME))
    end = processor.eos_id()
    return [
        (tuple(processor.encode(s) + [end]), tuple(processor.encode(t) + [end])) for s, t in pairs
    ]


def fits(ids):
    return len(ids[0]) <= MAX_SOURCE and len(ids[1]) <= MAX_TARGET


def ids_of(dataset):
    return [
        (tuple(x["source_ids"].numpy().tolist()), tuple(x["target_ids"].numpy().tolist()))
        for x in dataset
    ]


def examples_of(dataset):
    """The unpadded `(source_ids, labels)` of every example, checking each batch."""
    examples = []
    for x, y, weights in dataset:
        assert {name: x[name].dtype for name in x} == dict.fromkeys(INPUTS, tf.int32)
        assert y.dtype == tf.int32 and weights.dtype == tf.float32
        x, y = {name: value.numpy() for name, value in x.items()}, y.numpy()
        np.testing.assert_array_equal(weights.numpy(), x["decoder_padding_mask"])
        for row in range(y.shape[0]):
            source_length = x["encoder_padding_mask"][row].sum()
            target_length = x["decoder_padding_mask"][row].sum()
            # Masks are a prefix of ones, and padding is 0 everywhere.
            assert x["encoder_padding_mask"][row, :source_length].all()
            assert x["decoder_padding_mask"][row, :target_length].all()
            assert target_length > 0
            assert not x["encoder_token_ids"][row, source_length:].any()
            assert not x["decoder_token_ids"][row, target_length:].any()
            assert not y[row, target_length:].any()
            examples.append(
                (
                    tuple(x["encoder_token_ids"][row, :source_length].tolist()),
                    tuple(y[row, :target_length].tolist()),
                )
            )
    return examples


def test_tokenize_pairs_appends_the_end_id(tokenizer, pairs, expected_ids):
    dataset = sp.tokenize_pairs(sp.pair_dataset(pairs), tokenizer, tokenizer.eos_id, 7)
    assert ids_of(dataset) == expected_ids
    assert dataset.element_spec["source_ids"].dtype == tf.int32


def test_teacher_forcing_shift_and_real_lengths(tokenizer, pairs, expected_ids):
    dataset = batches(pairs, tokenizer)
    for x, y, _ in dataset:
        assert x["encoder_token_ids"].shape[1:] == [MAX_SOURCE]
        assert y.shape[1:] == x["decoder_token_ids"].shape[1:] == [MAX_TARGET]
        decoder, labels = x["decoder_token_ids"].numpy(), y.numpy()
        mask = x["decoder_padding_mask"].numpy().astype(bool)
        assert (decoder[:, 0] == tokenizer.bos_id).all()
        shifted = mask[:, 1:]
        np.testing.assert_array_equal(decoder[:, 1:][shifted], labels[:, :-1][shifted])
    assert examples_of(dataset) == [ids for ids in expected_ids if fits(ids)]


def test_start_id_zero_is_still_a_real_position():
    # T5 starts decoding with <pad> = 0: the masks come from lengths, not ids.
    ids = tf.data.Dataset.from_tensor_slices(
        {
            "source_ids": tf.ragged.constant([[4, 1]], tf.int64),
            "target_ids": tf.ragged.constant([[5, 1]], tf.int64),
        }
    )
    x, y, weights = next(
        iter(sp.batch_seq2seq(ids, 2, start_id=0, max_source_length=3, max_target_length=3))
    )
    assert x["decoder_token_ids"].numpy().tolist() == [[0, 5, 0]]
    assert x["decoder_padding_mask"].numpy().tolist() == [[1, 1, 0]]
    assert y.numpy().tolist() == [[5, 1, 0]]
    assert weights.numpy().tolist() == [[1.0, 1.0, 0.0]]


def test_length_filter_drops_exactly_the_long_ones(tokenizer, pairs, expected_ids):
    kept = [ids for ids in expected_ids if fits(ids)]
    assert 0 < len(kept) < len(expected_ids)  # The data exercises both sides.
    ids = sp.tokenize_pairs(sp.pair_dataset(pairs), tokenizer, tokenizer.eos_id)
    filtered = sp.filter_lengths(ids, MAX_SOURCE, MAX_TARGET)
    assert ids_of(filtered) == kept
    assert sp.count_kept_pairs(pairs, tokenizer, MAX_SOURCE, MAX_TARGET) == (len(kept), len(pairs))


def test_length_limits_are_inclusive():
    ids = tf.data.Dataset.from_tensor_slices(
        {
            "source_ids": tf.ragged.constant([[4, 3], [4, 4, 3], [4, 3], [4, 3]]),
            "target_ids": tf.ragged.constant([[5, 3], [5, 3], [5, 5, 5, 3], [5, 5, 3]]),
        }
    )
    kept = sp.filter_lengths(ids, 2, 3)
    assert [x["target_ids"].numpy().tolist() for x in kept] == [[5, 3], [5, 5, 3]]


@pytest.mark.parametrize("drop_remainder", [False, True])
def test_bucketing_gives_only_documented_shapes_and_loses_nothing(
    tokenizer, pairs, expected_ids, drop_remainder
):
    boundaries = [4, 8, 12, 20]
    dataset = batches(pairs, tokenizer, bucket_boundaries=boundaries, drop_remainder=drop_remainder)
    buckets = sp.bucket_lengths(boundaries, MAX_SOURCE, MAX_TARGET)
    assert buckets == [(4, 4, 4), (8, 8, 8), (12, 12, 10), (14, 14, 10)]
    allowed = {(source, target) for _, source, target in buckets}
    shapes = collections.Counter()
    for x, y, _ in dataset:
        shape = (x["encoder_token_ids"].shape[1], y.shape[1])
        assert shape in allowed
        assert x["decoder_token_ids"].shape == y.shape
        assert x["encoder_padding_mask"].shape[1] == shape[0]
        if drop_remainder:
            assert y.shape[0] == BATCH
        shapes[shape] += 1
    assert len(shapes) > 1  # Several buckets are in use.
    got = collections.Counter(examples_of(dataset))
    kept = collections.Counter(ids for ids in expected_ids if fits(ids))
    if drop_remainder:
        # Only each bucket's last, partial batch is dropped.
        assert got <= kept
        assert sum((kept - got).values()) < BATCH * len(buckets)
    else:
        assert got == kept


def test_shuffle_is_deterministic_per_seed_and_reshuffles_each_pass(tokenizer, pairs, expected_ids):
    def shuffled(seed):
        return batches(pairs, tokenizer, shuffle=True, seed=seed)

    dataset = shuffled(1)
    first, second = examples_of(dataset), examples_of(dataset)
    kept = [ids for ids in expected_ids if fits(ids)]
    assert sorted(first) == sorted(second) == sorted(kept)
    assert first != kept and second != first
    again = shuffled(1)
    assert examples_of(again) == first and examples_of(again) == second
    assert examples_of(shuffled(2)) != first


def test_repeat_continues_with_the_next_shuffled_pass(tokenizer, pairs, expected_ids):
    kept = [ids for ids in expected_ids if fits(ids)]
    dataset = batches(pairs, tokenizer, shuffle=True, seed=1, repeat=True, drop_remainder=True)
    examples = examples_of(dataset.take(2 * len(kept) // BATCH))
    first, second = examples[: len(kept)], examples[len(kept) :]
    assert sorted(first) == sorted(kept) and first != kept
    assert len(second) >= len(kept) - BATCH and second != first[: len(second)]


def test_detokenized_labels_give_back_the_targets(tokenizer, pairs, expected_ids):
    dicts = [{"source": s, "target": t} for s, t in pairs]
    columns = {"source": [s for s, _ in pairs], "target": [t for _, t in pairs]}
    dataset = batches(tf.data.Dataset.from_tensor_slices(columns), tokenizer)
    texts = [
        t for y in dataset.map(lambda x, y, w: y) for t in tokenizer.detokenize(y).numpy().tolist()
    ]
    expected = [d["target"].encode() for d, ids in zip(dicts, expected_ids) if fits(ids)]
    assert texts == expected
    from_dicts = batches(dicts, tokenizer)
    assert examples_of(from_dicts) == examples_of(dataset)


def test_bad_arguments_name_what_was_expected(tokenizer):
    with pytest.raises(ValueError, match=r"^pairs\[1\]: expected a \{'source'"):
        sp.pair_dataset([("a", "b"), {"src": "a"}])
    with pytest.raises(ValueError, match=r"^pairs: no pairs given"):
        sp.pair_dataset([])
    with pytest.raises(ValueError, match=r"^bucket_boundaries: expected increasing"):
        sp.bucket_lengths([8, 4], 16, 16)
    with pytest.raises(ValueError, match=r"^batch_size: expected a positive int, got 0"):
        sp.seq2seq_dataset(
            [("a", "b")], tokenizer, batch_size=0, max_source_length=4, max_target_length=4
        )
