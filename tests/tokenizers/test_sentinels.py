"""T5 sentinels `<extra_id_N>` in kzoo SentencePiece vocabularies (`num_sentinels`)."""

import io

import keras
import pytest
import sentencepiece as spm

from kzoo.testing import strings
from kzoo.testing.tokenizer_texts import LOSSLESS_TEXTS, make_corpus, train_every_model_type
from kzoo.tokenizers import SentencePieceTokenizer, load_tokenizer, train_sentencepiece

# More than 10, so that "<extra_id_1>" and "<extra_id_10>" are both in the vocabulary.
NUM_SENTINELS = 12
SENTINELS = [f"<extra_id_{index}>" for index in range(NUM_SENTINELS)]
# User-defined symbols follow <pad> <unk> <s> </s> "\n" for every model type (byte
# pieces and learned pieces come after them), so the first sentinel is always id 5.
FIRST_SENTINEL_ID = 5
SPAN_TEXT = "the<extra_id_0> fox <extra_id_11>\n<extra_id_1><extra_id_10>jumps"


@pytest.fixture(scope="module")
def corpus():
    return make_corpus()


@pytest.fixture(scope="module")
def tokenizers(corpus, tmp_path_factory):
    directories = train_every_model_type(
        corpus, tmp_path_factory.mktemp, num_sentinels=NUM_SENTINELS
    )
    return {model_type: load_tokenizer(d) for model_type, d in directories.items()}


@pytest.mark.parametrize("model_type", ["bpe", "unigram", "char"])
def test_sentinel_ids_are_distinct_in_order_and_follow_the_newline(tokenizers, model_type):
    tokenizer = tokenizers[model_type]
    ids = tokenizer.sentinel_ids
    assert ids == list(range(FIRST_SENTINEL_ID, FIRST_SENTINEL_ID + NUM_SENTINELS))
    pieces = tokenizer.get_vocabulary()
    assert pieces[:FIRST_SENTINEL_ID] == ["<pad>", "<unk>", "<s>", "</s>", "\n"]
    assert [pieces[i] for i in ids] == SENTINELS


@pytest.mark.parametrize("model_type", ["bpe", "unigram", "char"])
def test_sentinels_are_single_tokens_and_round_trip(tokenizers, model_type):
    tokenizer = tokenizers[model_type]
    sentinel_ids = tokenizer.sentinel_ids
    for index, sentinel in enumerate(SENTINELS):
        assert tokenizer.tokenize(sentinel).numpy().tolist() == [sentinel_ids[index]]
        assert tokenizer.detokenize([sentinel_ids[index]]).numpy().decode() == sentinel
    ids = tokenizer.tokenize(SPAN_TEXT).numpy().tolist()
    assert [i for i in ids if i in sentinel_ids] == [
        sentinel_ids[0],
        sentinel_ids[11],
        sentinel_ids[1],
        sentinel_ids[10],
    ]
    assert tokenizer.detokenize(ids).numpy().decode() == SPAN_TEXT
    assert tokenizer.unk_id not in ids


@pytest.mark.parametrize("model_type", ["bpe", "unigram", "char"])
def test_vocabulary_stays_lossless(tokenizers, model_type):
    tokenizer = tokenizers[model_type]
    ids = tokenizer.tokenize(LOSSLESS_TEXTS)
    assert strings(tokenizer.detokenize(ids)) == LOSSLESS_TEXTS
    assert tokenizer.unk_id not in ids.flat_values.numpy()


@pytest.mark.parametrize("model_type", ["bpe", "unigram"])
def test_an_unreserved_sentinel_is_plain_text(tokenizers, model_type):
    tokenizer = tokenizers[model_type]
    ids = tokenizer.tokenize("<extra_id_12>").numpy().tolist()
    assert len(ids) > 1 and not set(ids) & set(tokenizer.sentinel_ids)
    assert tokenizer.detokenize(ids).numpy().decode() == "<extra_id_12>"


def test_sentinels_count_towards_the_vocab_size(tokenizers, corpus):
    assert tokenizers["bpe"].vocabulary_size == 320
    assert tokenizers["unigram"].vocabulary_size == 320
    characters = {"▁" if c == " " else c for c in corpus if c != "\n"}
    assert tokenizers["char"].vocabulary_size == len(characters) + 5 + NUM_SENTINELS


def test_vocab_size_bounds_include_the_sentinels(corpus, tmp_path):
    def upper_bound(num_sentinels):
        with pytest.raises(ValueError, match=r"at most \d+") as error:
            train_sentencepiece(
                texts=[corpus],
                vocab_size=50000,
                num_sentinels=num_sentinels,
                output_dir=str(tmp_path),
            )
        return int(str(error.value).split("at most ")[1].split()[0])

    bound = upper_bound(NUM_SENTINELS)
    assert bound == upper_bound(0) + NUM_SENTINELS
    path = train_sentencepiece(
        texts=[corpus], vocab_size=bound, num_sentinels=NUM_SENTINELS, output_dir=str(tmp_path)
    )
    assert spm.SentencePieceProcessor(model_file=path).vocab_size() == bound
    with pytest.raises(
        ValueError, match=r"vocab_size: 100 is too small.*the 12 sentinels, the 256"
    ):
        train_sentencepiece(
            texts=[corpus], vocab_size=100, num_sentinels=NUM_SENTINELS, output_dir=str(tmp_path)
        )


def test_sentinels_in_the_corpus_are_never_merged(tmp_path):
    # Span-corrupted text: the sentinels are frequent, yet stay whole tokens.
    text = "".join(
        f"the fox<extra_id_{i % 3}> jumps over<extra_id_{(i + 1) % 3}>\n" for i in range(300)
    )
    for model_type, vocab_size in [("bpe", 280), ("char", None)]:
        train_sentencepiece(
            texts=[text],
            vocab_size=vocab_size,
            model_type=model_type,
            num_sentinels=3,
            output_dir=str(tmp_path / model_type),
        )
    bpe = load_tokenizer(str(tmp_path / "bpe"))
    assert [p for p in bpe.get_vocabulary() if "<e" in p or "_" in p] == SENTINELS[:3]
    assert bpe.detokenize(bpe.tokenize(text)).numpy().decode() == text
    # The char vocabulary has the characters outside sentinels only: no "<" or "_".
    char = load_tokenizer(str(tmp_path / "char"))
    characters = set("the fox jumps over".replace(" ", "▁"))
    assert set(char.get_vocabulary()[FIRST_SENTINEL_ID + 3 :]) == characters
    assert char.detokenize(char.tokenize(text)).numpy().decode() == text


def test_no_sentinels_by_default(tokenizers, corpus, tmp_path):
    path = train_sentencepiece(
        texts=[corpus], vocab_size=320, num_sentinels=0, output_dir=str(tmp_path)
    )
    tokenizer = SentencePieceTokenizer(open(path, "rb").read())
    assert tokenizer.sentinel_ids == []
    assert tokenizer.get_vocabulary()[5] == "<0x00>"  # byte pieces follow "\n"


def test_sentinel_ids_are_found_by_piece_not_by_position():
    # T5's released vocabulary lists the sentinels last, <extra_id_0> with the
    # highest id; sentinel_ids must follow the pieces, not the id order.
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(["abc cab"] * 10),
        model_writer=model,
        model_type="char",
        vocab_size=10,
        user_defined_symbols=["<extra_id_2>", "<extra_id_1>", "<extra_id_0>"],
        minloglevel=2,
    )
    tokenizer = SentencePieceTokenizer(model.getvalue())
    assert tokenizer.sentinel_ids == [5, 4, 3]


def test_sentinel_ids_survive_keras_serialization(tokenizers):
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(tokenizers["unigram"])
    )
    assert restored.sentinel_ids == tokenizers["unigram"].sentinel_ids


@pytest.mark.parametrize("value", [-1, 2.0, "3"])
def test_bad_num_sentinels(tmp_path, value):
    with pytest.raises(ValueError, match=r"tokenizer\.num_sentinels: .*got"):
        train_sentencepiece(
            texts=["abc"], vocab_size=300, num_sentinels=value, output_dir=str(tmp_path)
        )
