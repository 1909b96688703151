"""kzoo.tokenizers: training a BERT WordPiece vocabulary and tokenizing in-graph."""

import json
import os
import re
import unicodedata

import keras
import numpy as np
import pytest
import tensorflow as tf

from kzoo.data.builtin_corpus import default_corpus
from kzoo.testing import strings
from kzoo.tokenizers import (
    SPECIAL_TOKENS,
    VOCAB_FILENAME,
    SentencePieceTokenizer,
    WordPieceTokenizer,
    load_tokenizer,
    load_wordpiece_tokenizer,
    train_sentencepiece,
    train_wordpiece,
)

MIXED = [
    "Héllo WORLD, café!",
    'Naïve Über-users   say: "ÇA VA?" (über)',
    "ZO Kufe mosan. Déjà vu; straße",
]
VOCAB_SIZE = 300


def normalize(text):
    """BERT uncased normalization: NFD, no accents, lower case (as TF Text does it)."""
    text = unicodedata.normalize("NFD", text)
    text = "".join(c for c in text if unicodedata.category(c) != "Mn")
    return text.casefold()


def bert_words(text):
    """The text as detokenize returns it: punctuation split off, single spaces."""
    return " ".join(re.sub(r"([^\w\s])", r" \1 ", normalize(text)).split())


@pytest.fixture(scope="module")
def corpus():
    return default_corpus().documents(50, seed=0) + MIXED


@pytest.fixture(scope="module")
def run_dir(corpus, tmp_path_factory):
    directory = str(tmp_path_factory.mktemp("wordpiece"))
    train_wordpiece(texts=corpus, vocab_size=VOCAB_SIZE, output_dir=directory)
    return directory


@pytest.fixture(scope="module")
def tokenizer(run_dir):
    return load_wordpiece_tokenizer(run_dir)


def test_vocabulary_holds_specials_and_every_character(tokenizer, corpus, run_dir):
    vocabulary = tokenizer.get_vocabulary()
    assert tuple(vocabulary[:5]) == SPECIAL_TOKENS
    assert tokenizer.special_ids == [0, 1, 2, 3, 4]
    assert (tokenizer.pad_id, tokenizer.unk_id, tokenizer.cls_id) == (0, 1, 2)
    assert (tokenizer.sep_id, tokenizer.mask_id) == (3, 4)
    characters = {c for text in corpus for c in normalize(text) if not c.isspace()}
    # Subwords were learned on top of the characters, within the budget.
    assert 5 + 2 * len(characters) < tokenizer.vocabulary_size <= VOCAB_SIZE
    assert len(set(vocabulary)) == len(vocabulary)
    assert characters <= set(vocabulary)
    assert {"##" + c for c in characters} <= set(vocabulary)
    assert sorted(os.listdir(run_dir)) == [VOCAB_FILENAME, "wordpiece.json"]
    assert json.load(open(os.path.join(run_dir, "wordpiece.json"))) == {"lowercase": True}


def test_round_trip_is_the_normalized_text(tokenizer, corpus):
    ids = tokenizer.tokenize(corpus)
    assert tokenizer.unk_id not in ids.flat_values.numpy()
    assert strings(tokenizer.detokenize(ids)) == [bert_words(t) for t in corpus]
    assert ids.dtype == tf.int32 and ids.shape.rank == 2
    # Subwords were learned: fewer pieces than characters.
    assert ids.flat_values.shape[0] < sum(len(t.replace(" ", "")) for t in corpus) / 2


def test_unseen_characters_are_unk(tokenizer):
    # CJK characters are words of their own, as in BERT: 日 and 本 are two [UNK].
    ids = tokenizer.tokenize("zo 😀 kufe 日本").numpy().tolist()
    assert ids.count(tokenizer.unk_id) == 3
    assert ids[0] != tokenizer.unk_id and ids[-1] == tokenizer.unk_id
    assert tokenizer.detokenize(ids).numpy().decode().split()[1] == "[UNK]"


def test_offsets_point_into_the_original_bytes(tokenizer, corpus):
    texts = MIXED[:2] + corpus[:5] + ["  ÉCOLE,été  "]
    ids, starts, ends = tokenizer.tokenize_with_offsets(texts)
    assert ids.to_list() == tokenizer.tokenize(texts).to_list()
    vocabulary = tokenizer.get_vocabulary()
    for text, row, row_starts, row_ends in zip(
        texts, ids.to_list(), starts.to_list(), ends.to_list()
    ):
        data = text.encode("utf-8")
        assert len(row) == len(row_starts) == len(row_ends)
        for token_id, start, end in zip(row, row_starts, row_ends):
            piece = vocabulary[token_id].removeprefix("##")
            assert normalize(data[start:end].decode("utf-8")) == piece
    ids, starts, ends = tokenizer.tokenize_with_offsets("Héllo WORLD, café!")
    data = "Héllo WORLD, café!".encode()
    words = [data[s:e] for s, e in zip(starts.numpy(), ends.numpy())]
    assert b"".join(words) == b"H\xc3\xa9lloWORLD,caf\xc3\xa9!"
    assert words[-1] == b"!" and ids.dtype == tf.int32 and starts.dtype == tf.int64
    # "ß" normalizes to "ss": pieces inside such an expansion get degenerate spans,
    # but the spans still tile the word without losing or repeating a byte.
    _, starts, ends = tokenizer.tokenize_with_offsets("Straße")
    data = "Straße".encode()
    assert b"".join(data[s:e] for s, e in zip(starts.numpy(), ends.numpy())) == data


def test_tokenize_words_gives_every_word_pieces(tokenizer, corpus):
    sentences = [text.split() for text in corpus[:5] + MIXED] + [["zo", "", "da"]]
    pieces = tokenizer.tokenize_words(tf.ragged.constant(sentences))
    assert pieces.shape.rank == 3 and pieces.dtype == tf.int32
    for words, word_pieces in zip(sentences, pieces.to_list()):
        assert len(word_pieces) == len(words)
        assert all(len(p) >= 1 for p in word_pieces)
        joined = tokenizer.tokenize(" ".join(words)).numpy().tolist()
        assert [i for p in word_pieces for i in p] == joined or "" in words
    assert pieces[-1][1].numpy().tolist() == [tokenizer.unk_id]
    one_sentence = tokenizer.tokenize_words(["Héllo", "WORLD,"]).to_list()
    assert one_sentence == pieces[len(sentences) - 4][:2].to_list()


def test_detokenize_drops_padding_and_keeps_other_specials(tokenizer):
    ids = tokenizer.tokenize(["zo kufe", "da"])
    cls = tf.ragged.constant([[tokenizer.cls_id]] * 2, dtype=tf.int32)
    sep = tf.ragged.constant([[tokenizer.sep_id]] * 2, dtype=tf.int32)
    dense = tf.concat([cls, ids, sep], axis=1).to_tensor(shape=[2, 12])
    assert strings(tokenizer.detokenize(dense)) == ["[CLS] zo kufe [SEP]", "[CLS] da [SEP]"]
    single = tokenizer.detokenize(dense[1])
    assert single.shape.rank == 0 and single.numpy() == b"[CLS] da [SEP]"
    tokens = tokenizer.id_to_token(tf.constant([[0, 1], [2, 4]]))
    assert tokens.numpy().tolist() == [[b"[PAD]", b"[UNK]"], [b"[CLS]", b"[MASK]"]]


def test_works_in_tf_function_and_tf_data(tokenizer, corpus):
    texts = corpus[:3] + MIXED

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def run(batch):
        ids, starts, ends = tokenizer.tokenize_with_offsets(batch)
        return ids.to_tensor(), starts.to_tensor(), tokenizer.detokenize(ids)

    dense, starts, detokenized = run(tf.constant(texts))
    expected = tokenizer.tokenize(texts)
    assert dense.numpy().tolist() == expected.to_tensor().numpy().tolist()
    assert strings(detokenized) == [bert_words(t) for t in texts]
    dataset = tf.data.Dataset.from_tensor_slices(texts).map(tokenizer)
    assert [ids.numpy().tolist() for ids in dataset] == expected.to_list()
    sentences = tf.ragged.constant([t.split() for t in texts])
    words = tf.data.Dataset.from_tensor_slices(sentences)
    pieces = [p.to_list() for p in words.map(tokenizer.tokenize_words)]
    assert pieces == tokenizer.tokenize_words([t.split() for t in texts]).to_list()


def test_saved_model_export(tokenizer, tmp_path):
    module = tf.Module()
    module.tokenizer = tokenizer
    spec = tf.TensorSpec([None], tf.string)
    module.tokenize = tf.function(
        lambda texts: tokenizer.tokenize(texts).to_tensor(), input_signature=[spec]
    )
    module.offsets = tf.function(
        lambda texts: tokenizer.tokenize_with_offsets(texts)[1].to_tensor(), input_signature=[spec]
    )
    module.detokenize = tf.function(
        tokenizer.detokenize, input_signature=[tf.TensorSpec([None, None], tf.int32)]
    )
    tf.saved_model.save(module, str(tmp_path / "export"))
    restored = tf.saved_model.load(str(tmp_path / "export"))
    texts = tf.constant(MIXED + ["zo 😀"])
    ids = restored.tokenize(texts)
    np.testing.assert_array_equal(ids.numpy(), tokenizer.tokenize(texts).to_tensor())
    np.testing.assert_array_equal(
        restored.offsets(texts).numpy(),
        tokenizer.tokenize_with_offsets(texts)[1].to_tensor().numpy(),
    )
    assert strings(restored.detokenize(ids)) == strings(tokenizer.detokenize(ids))


def test_keras_serialization_round_trip(tokenizer, tmp_path):
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(tokenizer))
    assert isinstance(restored, WordPieceTokenizer) and restored.lowercase
    assert restored.tokenize(MIXED).to_list() == tokenizer.tokenize(MIXED).to_list()
    model = keras.Sequential([keras.Input(shape=(), dtype="string"), tokenizer])
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert loaded.layers[0].get_vocabulary() == tokenizer.get_vocabulary()


def test_load_tokenizer_dispatches_on_the_files(tokenizer, run_dir, tmp_path):
    assert isinstance(load_tokenizer(run_dir), WordPieceTokenizer)
    path = tokenizer.save(str(tmp_path / "copy"))
    assert path == str(tmp_path / "copy" / VOCAB_FILENAME)
    assert load_tokenizer(str(tmp_path / "copy")).get_vocabulary() == (tokenizer.get_vocabulary())
    train_sentencepiece(
        texts=["to be or not\n"], model_type="char", output_dir=str(tmp_path / "sp")
    )
    assert isinstance(load_tokenizer(str(tmp_path / "sp")), SentencePieceTokenizer)
    with pytest.raises(FileNotFoundError, match=f"{tmp_path}/vocab.txt does not"):
        load_wordpiece_tokenizer(str(tmp_path))


def test_cased_training_from_files(tmp_path):
    (tmp_path / "a.txt").write_text("Café CAFÉ café\n" * 20)
    path = train_wordpiece(
        files=str(tmp_path / "*.txt"),
        vocab_size=40,
        lowercase=False,
        output_dir=str(tmp_path / "run"),
    )
    assert {"C", "é", "##É"} <= set(open(path, encoding="utf-8").read().split())
    tokenizer = load_tokenizer(str(tmp_path / "run"))
    assert not tokenizer.lowercase
    ids = tokenizer.tokenize(["Café CAFÉ", "cafe"])
    assert strings(tokenizer.detokenize(ids)) == ["Café CAFÉ", "[UNK]"]


def test_a_windows_corpus_gives_no_bom_or_cr_token(tmp_path):
    # Saved by a Windows editor: a byte-order mark first, "\r\n" line ends.
    text = "\ufeff" + "\n".join(default_corpus().documents(20, seed=0))
    (tmp_path / "a.txt").write_bytes(text.replace("\n", "\r\n").encode("utf-8"))
    path = train_wordpiece(
        files=str(tmp_path / "*.txt"), vocab_size=VOCAB_SIZE, output_dir=str(tmp_path / "run")
    )
    vocabulary = open(path, encoding="utf-8", newline="").read().split("\n")
    assert not [token for token in vocabulary if "\ufeff" in token or "\r" in token]


def test_training_errors_name_the_key(tmp_path):
    output_dir = str(tmp_path / "run")
    with pytest.raises(ValueError, match="exactly one of"):
        train_wordpiece(vocab_size=100, output_dir=output_dir)
    with pytest.raises(ValueError, match="exactly one of"):
        train_wordpiece(texts=["a"], files="a.txt", vocab_size=100, output_dir=output_dir)
    with pytest.raises(ValueError, match=r"texts .*: empty corpus"):
        train_wordpiece(texts=["  \n\t", ""], vocab_size=100, output_dir=output_dir)
    (tmp_path / "blank.txt").write_text(" \n \u3000\n")
    with pytest.raises(ValueError, match=r"data\.train=.*blank\.txt.*empty corpus"):
        train_wordpiece(files=str(tmp_path / "blank.txt"), vocab_size=100, output_dir=output_dir)
    with pytest.raises(FileNotFoundError, match=r"corpus\.files: no files match"):
        train_wordpiece(
            files=str(tmp_path / "*.md"),
            files_key="corpus.files",
            vocab_size=100,
            output_dir=output_dir,
        )
    with pytest.raises(ValueError, match=r"tokenizer\.vocab_size: 10 is too small.*at least 11"):
        train_wordpiece(texts=["abc"], vocab_size=10, output_dir=output_dir)
    with pytest.raises(ValueError, match=r"tokenizer\.vocab_size: .*got 0"):
        train_wordpiece(texts=["abc"], vocab_size=0, output_dir=output_dir)
    assert not os.path.exists(output_dir)


def test_constructor_errors():
    with pytest.raises(TypeError, match="vocabulary: expected a list of str"):
        WordPieceTokenizer("vocab.txt")
    with pytest.raises(ValueError, match=r"vocabulary: missing .*\['\[MASK\]'\]"):
        WordPieceTokenizer(list(SPECIAL_TOKENS[:4]) + ["a"])
    with pytest.raises(ValueError, match="vocabulary: token 'a' appears twice"):
        WordPieceTokenizer(list(SPECIAL_TOKENS) + ["a", "a"])
