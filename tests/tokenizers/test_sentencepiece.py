"""kzoo.tokenizers: training a lossless vocabulary and tokenizing in-graph."""

import os
import random
import time

import keras
import numpy as np
import pytest
import sentencepiece as spm
import tensorflow as tf

from kzoo.testing import strings
from kzoo.testing.tokenizer_texts import (
    LOSSLESS_TEXTS,
    UNSEEN_TEXTS,
    make_corpus,
    train_every_model_type,
)
from kzoo.tokenizers import (
    TOKENIZER_FILENAME,
    SentencePieceTokenizer,
    load_tokenizer,
    train_sentencepiece,
)


@pytest.fixture(scope="module")
def corpus():
    return make_corpus()


@pytest.fixture(scope="module")
def run_dirs(corpus, tmp_path_factory):
    return train_every_model_type(corpus, tmp_path_factory.mktemp)


@pytest.fixture(scope="module")
def tokenizers(run_dirs):
    return {model_type: load_tokenizer(d) for model_type, d in run_dirs.items()}


def python_processor(run_dir):
    return spm.SentencePieceProcessor(model_file=os.path.join(run_dir, TOKENIZER_FILENAME))


@pytest.mark.parametrize("model_type", ["bpe", "unigram", "char"])
def test_round_trip_is_exact(tokenizers, model_type):
    tokenizer = tokenizers[model_type]
    assert strings(tokenizer.detokenize(tokenizer.tokenize(LOSSLESS_TEXTS))) == LOSSLESS_TEXTS
    ids = tokenizer.tokenize(LOSSLESS_TEXTS).flat_values.numpy()
    assert tokenizer.unk_id not in ids


@pytest.mark.parametrize("model_type", ["bpe", "unigram"])
def test_byte_fallback_represents_unseen_characters(tokenizers, model_type):
    tokenizer = tokenizers[model_type]
    ids = tokenizer.tokenize(UNSEEN_TEXTS)
    assert tokenizer.unk_id not in ids.flat_values.numpy()
    assert strings(tokenizer.detokenize(ids)) == UNSEEN_TEXTS


def test_newline_and_space_runs_are_tokens(tokenizers):
    tokenizer = tokenizers["bpe"]
    pieces = tokenizer.get_vocabulary()
    ids = tokenizer.tokenize("a\n\nb").numpy().tolist()
    assert [pieces[i] for i in ids].count("\n") == 2
    assert pieces[:5] == ["<pad>", "<unk>", "<s>", "</s>", "\n"]


def test_char_vocabulary_is_the_corpus_characters(tokenizers, corpus):
    tokenizer = tokenizers["char"]
    pieces = tokenizer.get_vocabulary()
    characters = {"▁" if c == " " else c for c in corpus}
    assert set(pieces) == characters | {"<pad>", "<unk>", "<s>", "</s>"}
    assert tokenizer.vocabulary_size == len(characters) + 4
    # Characters outside the corpus have no byte fallback: they map to <unk>
    # (SentencePiece merges a run of unknown characters into one <unk>).
    ids = tokenizer.tokenize("dog Z😀").numpy().tolist()
    assert ids[-1] == tokenizer.unk_id and ids.count(tokenizer.unk_id) == 1
    assert tokenizer.detokenize(ids).numpy().decode() == "dog  ⁇ "


def test_char_model_ignores_vocab_size(corpus, tmp_path):
    path = train_sentencepiece(
        texts=[corpus], vocab_size=7, model_type="char", output_dir=str(tmp_path)
    )
    assert spm.SentencePieceProcessor(model_file=path).vocab_size() > 7


def test_char_model_counts_every_line(tmp_path):
    text = "abc\n" * 1000 + "rare Z\n"
    path = train_sentencepiece(
        texts=[text], model_type="char", max_sentences=10, output_dir=str(tmp_path)
    )
    processor = spm.SentencePieceProcessor(model_file=path)
    assert processor.decode(processor.encode("rare Z\n")) == "rare Z\n"


@pytest.mark.parametrize("model_type", ["bpe", "unigram", "char"])
def test_matches_python_sentencepiece(tokenizers, run_dirs, model_type):
    processor = python_processor(run_dirs[model_type])
    texts = ["the lazy dog", "über  café\n", " to be or not to be", "jumps\n\nover"]
    expected = processor.encode(texts)
    assert tokenizers[model_type].tokenize(texts).to_list() == expected
    assert processor.vocab_size() == tokenizers[model_type].vocabulary_size


def test_special_ids(tokenizers):
    tokenizer = tokenizers["bpe"]
    assert (tokenizer.pad_id, tokenizer.unk_id, tokenizer.bos_id, tokenizer.eos_id) == (0, 1, 2, 3)
    assert tokenizer.vocabulary_size == 320


def test_output_types(tokenizers):
    tokenizer = tokenizers["bpe"]
    single = tokenizer.tokenize("the fox")
    assert isinstance(single, tf.Tensor) and single.dtype == tf.int32 and single.shape.rank == 1
    batch = tokenizer.tokenize(["the fox", "dog"])
    assert isinstance(batch, tf.RaggedTensor) and batch.dtype == tf.int32
    assert batch.shape[0] == 2
    assert tokenizer("the fox").numpy().tolist() == single.numpy().tolist()


def test_detokenize_drops_padding_and_end_of_document(tokenizers):
    tokenizer = tokenizers["bpe"]
    ids = tokenizer.tokenize(["the fox", "café  dog\n"])
    eos = tf.ragged.constant([[tokenizer.eos_id]] * 2, dtype=tf.int32)
    dense = tf.concat([ids, eos], axis=1).to_tensor(default_value=tokenizer.pad_id, shape=[2, 20])
    assert strings(tokenizer.detokenize(dense)) == ["the fox", "café  dog\n"]
    single = tf.concat([[tokenizer.bos_id], ids[0], [tokenizer.eos_id, 0, 0]], axis=0)
    assert tokenizer.detokenize(single).numpy().decode() == "the fox"


def test_works_in_tf_function_and_tf_data(tokenizers):
    tokenizer = tokenizers["unigram"]
    texts = ["the quick fox", "naïve\n dog"]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def round_trip(texts):
        ids = tokenizer.tokenize(texts)
        return ids.to_tensor(), tokenizer.detokenize(ids)

    dense, detokenized = round_trip(tf.constant(texts))
    assert strings(detokenized) == texts
    assert dense.numpy().tolist() == tokenizer.tokenize(texts).to_tensor().numpy().tolist()
    dataset = tf.data.Dataset.from_tensor_slices(texts).map(tokenizer.tokenize)
    assert [ids.numpy().tolist() for ids in dataset] == tokenizer.tokenize(texts).to_list()


def test_keras_serialization_round_trip(tokenizers, tmp_path):
    tokenizer = tokenizers["bpe"]
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(tokenizer))
    assert isinstance(restored, SentencePieceTokenizer)
    assert restored.proto == tokenizer.proto
    model = keras.Sequential([keras.Input(shape=(), dtype="string"), tokenizer])
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert loaded.layers[0].tokenize("the dog").numpy().tolist() == (
        tokenizer.tokenize("the dog").numpy().tolist()
    )


def test_saved_model_export(tokenizers, tmp_path):
    tokenizer = tokenizers["bpe"]
    module = tf.Module()
    module.tokenizer = tokenizer
    module.tokenize = tf.function(
        lambda texts: tokenizer.tokenize(texts).to_tensor(),
        input_signature=[tf.TensorSpec([None], tf.string)],
    )
    tf.saved_model.save(module, str(tmp_path / "export"))
    restored = tf.saved_model.load(str(tmp_path / "export"))
    texts = ["the lazy  dog", "😀"]
    expected = tokenizer.tokenize(texts).to_tensor().numpy()
    np.testing.assert_array_equal(restored.tokenize(tf.constant(texts)).numpy(), expected)


def test_save_and_load_the_model_file(tokenizers, tmp_path):
    path = tokenizers["char"].save(str(tmp_path / "run"))
    assert path == str(tmp_path / "run" / TOKENIZER_FILENAME)
    assert os.listdir(tmp_path / "run") == [TOKENIZER_FILENAME]  # no temporary left over
    assert load_tokenizer(str(tmp_path / "run")).proto == tokenizers["char"].proto


def test_load_tokenizer_without_a_model_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="tokenizer.model does not exist"):
        load_tokenizer(str(tmp_path))


def test_training_is_deterministic_and_writes_atomically(corpus, tmp_path):
    def train(seed, name):
        # 200 of the 600 lines are sampled: the seed decides which.
        path = train_sentencepiece(
            texts=[corpus],
            vocab_size=300,
            max_sentences=200,
            seed=seed,
            output_dir=str(tmp_path / name),
        )
        return open(path, "rb").read()

    assert train(0, "a") == train(0, "b")
    assert train(0, "a") != train(1, "c")
    assert os.listdir(tmp_path / "a") == [TOKENIZER_FILENAME]


def test_trains_from_files_and_cuts_long_lines(tmp_path):
    # One document on one line, far longer than max_sentence_length: it must be cut
    # into sentences, not skipped (skipping it would leave nothing to learn from).
    (tmp_path / "one_line.txt").write_text(make_corpus().replace("\n", " "))
    path = train_sentencepiece(
        files=str(tmp_path / "*.txt"),
        vocab_size=320,
        max_sentence_length=256,
        output_dir=str(tmp_path / "run"),
    )
    processor = spm.SentencePieceProcessor(model_file=path)
    assert processor.vocab_size() == 320
    assert len(processor.encode("the quick brown fox")) < len("the quick brown fox")


@pytest.mark.parametrize("model_type, vocab_size", [("char", None), ("bpe", 320)])
def test_a_windows_corpus_gives_no_bom_or_cr_piece(tmp_path, model_type, vocab_size):
    # Saved by a Windows editor: a byte-order mark first, "\r\n" line ends.
    text = "\ufeff" + make_corpus().replace("\n", "\r\n")
    (tmp_path / "corpus.txt").write_bytes(text.encode("utf-8"))
    path = train_sentencepiece(
        files=str(tmp_path / "*.txt"),
        vocab_size=vocab_size,
        model_type=model_type,
        output_dir=str(tmp_path / "run"),
    )
    processor = spm.SentencePieceProcessor(model_file=path)
    pieces = [processor.id_to_piece(i) for i in range(processor.vocab_size())]
    assert not [p for p in pieces if "\ufeff" in p or "\r" in p]
    assert "\n" in pieces


@pytest.mark.slow
@pytest.mark.parametrize("model_type", ["bpe", "unigram"])
def test_trains_on_a_megabyte_in_seconds(tmp_path, model_type):
    rng = random.Random(0)
    syllables = [a + b for a in "bdgklmnprstvz" for b in "aeiou"]
    words = ["".join(rng.choice(syllables) for _ in range(rng.randint(1, 4))) for _ in range(5000)]
    lines = [" ".join(rng.choice(words) for _ in range(rng.randint(3, 15))) for _ in range(19_000)]
    text = "\n".join(lines)
    assert len(text) > 1_000_000
    start = time.perf_counter()
    path = train_sentencepiece(
        texts=[text], vocab_size=4000, model_type=model_type, output_dir=str(tmp_path)
    )
    assert time.perf_counter() - start < 20  # ~0.5 s (bpe), ~2.5 s (unigram) here
    processor = spm.SentencePieceProcessor(model_file=path)
    assert processor.vocab_size() == 4000
    assert processor.decode(processor.encode(text[:5000])) == text[:5000]


def test_vocab_size_too_large_names_the_config_key(corpus, tmp_path):
    with pytest.raises(ValueError, match=r"tokenizer\.vocab_size: 50000 .* at most \d+") as error:
        train_sentencepiece(texts=[corpus], vocab_size=50000, output_dir=str(tmp_path))
    bound = int(str(error.value).split("at most ")[1].split()[0])
    train_sentencepiece(texts=[corpus], vocab_size=bound, output_dir=str(tmp_path))


def test_vocab_size_too_small_names_the_config_key(corpus, tmp_path):
    with pytest.raises(ValueError, match=r"tokenizer\.vocab_size: 100 is too small.*256 byte"):
        train_sentencepiece(texts=[corpus], vocab_size=100, output_dir=str(tmp_path))


@pytest.mark.parametrize("model_type", ["bpe", "char"])
def test_empty_corpus(tmp_path, model_type):
    with pytest.raises(ValueError, match="empty corpus"):
        train_sentencepiece(
            texts=["", "\n\n"], vocab_size=300, model_type=model_type, output_dir=str(tmp_path)
        )
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(ValueError, match=r"data\.train: empty corpus.*empty\.txt"):
        train_sentencepiece(
            files=[str(tmp_path / "empty.txt")], vocab_size=300, output_dir=str(tmp_path)
        )
    assert not (tmp_path / TOKENIZER_FILENAME).exists()


def test_missing_files_and_bad_arguments(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data\.train: no files match '.*\*\.md'"):
        train_sentencepiece(files=str(tmp_path / "*.md"), vocab_size=300, output_dir=str(tmp_path))
    with pytest.raises(ValueError, match=r"tokenizer\.model_type: .*'wordpiece'"):
        train_sentencepiece(
            texts=["a"], model_type="wordpiece", vocab_size=9, output_dir=str(tmp_path)
        )
    with pytest.raises(ValueError, match="exactly one of"):
        train_sentencepiece(vocab_size=300, output_dir=str(tmp_path))
    with pytest.raises(TypeError, match="proto: expected the bytes"):
        SentencePieceTokenizer("tokenizer.model")
