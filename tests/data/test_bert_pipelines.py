"""BERT pipelines: pretraining batches, classification packing, tagging alignment."""

import functools

import numpy as np
import pytest
import tensorflow as tf

from kzoo.data import builtin_tasks
from kzoo.data.bert_finetuning import classification_dataset, tagging_batches
from kzoo.data.bert_inputs import split_words, text_inputs, word_inputs
from kzoo.data.bert_pretraining import bert_pretraining_dataset, pretraining_examples
from kzoo.tokenizers import load_tokenizer, train_wordpiece


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("wordpiece"))
    documents = builtin_tasks.pretraining_documents(60, seed=0)
    train_wordpiece(output_dir=directory, vocab_size=300, texts=[s for d in documents for s in d])
    return load_tokenizer(directory)


def test_pretraining_batches_mask_15_percent_and_keep_the_originals(tokenizer):
    documents = builtin_tasks.pretraining_documents(60, seed=1)
    examples = pretraining_examples(tokenizer, documents, 32, seed=0)
    dataset = bert_pretraining_dataset(examples, tokenizer, 8, seed=0, shuffle=False)
    maskable = selected = 0
    for (features, labels, weights), original in zip(
        dataset, tf.data.Dataset.from_tensor_slices(examples).batch(8)
    ):
        ids, used = original["token_ids"].numpy(), weights["mlm"].numpy() > 0
        positions = features["mask_positions"].numpy()
        rows = np.nonzero(used)[0]
        np.testing.assert_array_equal(labels["mlm"].numpy()[used], ids[rows, positions[used]])
        np.testing.assert_array_equal(labels["nsp"], original["nsp_labels"])
        np.testing.assert_array_equal(features["segment_ids"], original["segment_ids"])
        special = np.isin(ids, tokenizer.special_ids)
        maskable += np.sum((original["padding_mask"].numpy() > 0) & ~special)
        selected += used.sum()
        # Weighted-mean normalisation: the weights average 1 over the slots.
        assert abs(weights["mlm"].numpy().mean() - 1.0) < 1e-5
    assert 0.12 < selected / maskable < 0.18


def test_pretraining_masks_change_between_epochs_but_not_in_validation(tokenizer):
    examples = pretraining_examples(tokenizer, builtin_tasks.pretraining_documents(30), 32, 0)
    batches = len(examples["nsp_labels"]) // 8

    def two_passes(same):
        dataset = bert_pretraining_dataset(
            examples, tokenizer, 8, shuffle=False, repeat=True, same_masks_every_pass=same
        )
        return [x["mask_positions"].numpy() for x, _, _ in dataset.take(2 * batches)]

    fresh, fixed = two_passes(False), two_passes(True)
    assert not np.array_equal(fresh[0], fresh[batches])
    np.testing.assert_array_equal(fixed[0], fixed[batches])


def test_pair_packing_and_classification_batches(tokenizer):
    packed = text_inputs(tokenizer, 16, tf.constant(["ta molan"]), tf.constant(["ki"]))
    ids = packed["token_ids"].numpy()[0]
    length = int(packed["padding_mask"].numpy().sum())
    assert ids[0] == tokenizer.cls_id and ids[length - 1] == tokenizer.sep_id
    assert list(ids).count(tokenizer.sep_id) == 2
    assert packed["segment_ids"].numpy()[0, length - 1] == 1
    examples = builtin_tasks.pair_classification_examples(10, seed=0)
    dataset = classification_dataset(
        functools.partial(text_inputs, tokenizer, 32), examples, list(range(10)), 4
    )
    labels = np.concatenate([y.numpy() for _, y in dataset])
    assert labels.tolist() == list(range(10))  # in order, last partial batch kept


def test_tagging_labels_sit_on_first_sub_words(tokenizer):
    examples = [{"tokens": ["ta", "molanteriv", ","], "tags": ["B-NP", "I-NP", "O"]}]
    word_inputs_of = functools.partial(word_inputs, tokenizer, 16)
    ((features, labels, weights, first),) = tagging_batches(
        word_inputs_of, examples, [[1, 2, 0]], 4
    )
    positions = first.to_list()[0]
    pieces = tokenizer.tokenize_words(tf.ragged.constant([examples[0]["tokens"]]))
    counts = [len(p) for p in pieces.to_list()[0]]
    assert positions == [1, 1 + counts[0], 1 + counts[0] + counts[1]]
    labelled = np.nonzero(weights.numpy()[0])[0].tolist()
    assert labelled == positions
    assert labels.numpy()[0, positions].tolist() == [1, 2, 0]


def test_words_are_split_like_bert(tokenizer):
    words = split_words(tf.constant(["Hello, world!  a-b", ""])).to_list()
    assert words == [[b"Hello", b",", b"world", b"!", b"a", b"-", b"b"], []]
