"""Hugging Face tokenizers in graph: ids identical to the `tokenizers` library."""

import json
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

from kzoo.models import GPTBackbone, GPTCausalLM
from kzoo.preprocessing import CausalLMPreprocessor
from kzoo.testing.hf_tokenizers import (
    HARD_TEXTS,
    reference_t5_ids,
    reference_tokenizer,
    sweep_characters,
    table_points,
    write_bert_tokenizer,
    write_gpt2_tokenizer,
    write_t5_tokenizer,
)
from kzoo.testing.preprocessor_checks import run_preprocessor_test
from kzoo.testing.tiers import full_only
from kzoo.tokenizers import (
    BytePairTokenizer,
    SentencePieceTokenizer,
    WordPieceTokenizer,
    load_hf_tokenizer,
    load_keras_hub_tokenizer,
    load_tokenizer,
    save_hf_tokenizer,
)
from kzoo.training.run_directory import RunDirectory

SENTINEL_TEXTS = [
    "The <extra_id_0> walks in <extra_id_1> park",
    "a<extra_id_0>b",
    "<extra_id_99>",
    "x <extra_id_5>  y <extra_id_150> <extra_id_1",
]


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory):
    return write_gpt2_tokenizer(str(tmp_path_factory.mktemp("gpt2")))


@pytest.fixture(scope="module")
def gpt2(gpt2_dir):
    return load_hf_tokenizer(gpt2_dir)


@pytest.fixture(scope="module", params=[True, False], ids=["uncased", "cased"])
def bert_dir(request, tmp_path_factory):
    return write_bert_tokenizer(str(tmp_path_factory.mktemp("bert")), lowercase=request.param)


@pytest.fixture(scope="module")
def t5_dir(tmp_path_factory):
    return write_t5_tokenizer(str(tmp_path_factory.mktemp("t5")))


def settings(tokenizer):
    """The tokenizer's config without its (counter-suffixed) layer name."""
    return {key: value for key, value in tokenizer.get_config().items() if key != "name"}


def reference_ids(directory, texts):
    reference = reference_tokenizer(directory)
    return [reference.encode(text, add_special_tokens=False).ids for text in texts]


def test_gpt2_ids_match_the_reference_on_hard_texts(gpt2, gpt2_dir):
    assert isinstance(gpt2, BytePairTokenizer)
    texts = HARD_TEXTS + ["a\x00b \x00\x00 c", "x  'sb  'll"]
    assert gpt2.tokenize(texts).to_list() == reference_ids(gpt2_dir, texts)
    # A scalar gives a 1-D tensor; every special id is <|endoftext|>, the last id.
    ids = gpt2.tokenize(HARD_TEXTS[4])
    assert ids.shape.rank == 1 and ids.dtype == tf.int32
    assert gpt2.eos_id == gpt2.bos_id == gpt2.pad_id == gpt2.vocabulary_size - 1
    assert gpt2.unk_id is None
    assert gpt2.get_vocabulary()[gpt2.eos_id] == "<|endoftext|>"


def test_gpt2_detokenize_gives_the_text_back(gpt2):
    texts = [text for text in HARD_TEXTS if "<|endoftext|>" not in text]
    back = gpt2.detokenize(gpt2.tokenize(texts)).numpy()
    assert [text.decode("utf-8") for text in back] == texts
    # <|endoftext|> (also the padding) is dropped, as SentencePiece drops </s>.
    dense = gpt2.tokenize(["ab<|endoftext|>c", "d"]).to_tensor(gpt2.pad_id)
    assert gpt2.detokenize(dense).numpy().tolist() == [b"abc", b"d"]


def test_ids_beyond_the_vocabulary_are_dropped_by_every_kind(gpt2, bert_dir, t5_dir):
    """A checkpoint's embedding may have more rows than its tokenizer has tokens
    (GPT-2's and T5's are padded): a model can generate those ids, and detokenize
    must not fail on them."""
    for tokenizer in (gpt2, load_hf_tokenizer(bert_dir), load_hf_tokenizer(t5_dir)):
        ids = tokenizer.tokenize(["a b", "c"])
        size = tokenizer.vocabulary_size
        expected = tokenizer.detokenize(ids).numpy().tolist()
        padded = tf.concat([ids, tf.ragged.constant([[size, size + 2], [size + 1]])], axis=1)
        assert tokenizer.detokenize(padded).numpy().tolist() == expected
        assert tokenizer.detokenize(tf.constant([size])).numpy() == b""


def test_gpt2_vocab_json_and_tokenizer_json_give_the_same_tokenizer(gpt2, gpt2_dir, tmp_path):
    for name in ("vocab.json", "merges.txt", "tokenizer_config.json"):
        shutil.copy(os.path.join(gpt2_dir, name), tmp_path)
    from_files = load_hf_tokenizer(tmp_path)
    assert settings(from_files) == settings(gpt2)


def test_bert_ids_and_offsets_match_the_reference(bert_dir):
    tokenizer = load_hf_tokenizer(bert_dir)
    assert isinstance(tokenizer, WordPieceTokenizer)
    assert tokenizer.normalization == "huggingface"
    ids, starts, ends = tokenizer.tokenize_with_offsets(HARD_TEXTS)
    reference = reference_tokenizer(bert_dir)
    for text, row, row_starts, row_ends in zip(
        HARD_TEXTS, ids.to_list(), starts.to_list(), ends.to_list()
    ):
        encoding = reference.encode(text, add_special_tokens=False)
        assert row == encoding.ids, text
        data = text.encode("utf-8")
        spans = [data[start:end].decode("utf-8") for start, end in zip(row_starts, row_ends)]
        assert spans == [text[start:end] for start, end in encoding.offsets], text
    assert tokenizer.tokenize(HARD_TEXTS).to_list() == ids.to_list()


def test_bert_vocab_txt_reads_its_casing_from_tokenizer_config(bert_dir, tmp_path):
    for name in ("vocab.txt", "tokenizer_config.json"):
        shutil.copy(os.path.join(bert_dir, name), tmp_path)
    tokenizer = load_hf_tokenizer(tmp_path)
    assert tokenizer.tokenize(HARD_TEXTS).to_list() == reference_ids(bert_dir, HARD_TEXTS)


def test_t5_ids_and_sentinels_match_hugging_face(t5_dir):
    tokenizer = load_hf_tokenizer(t5_dir)
    assert isinstance(tokenizer, SentencePieceTokenizer)
    size = tokenizer.vocabulary_size
    assert size == 100 + 100  # the trained pieces and the 100 sentinels
    assert tokenizer.sentinel_ids[0] == size - 1 and tokenizer.sentinel_ids[99] == size - 100
    assert (tokenizer.pad_id, tokenizer.eos_id, tokenizer.unk_id) == (0, 1, 2)
    texts = HARD_TEXTS + SENTINEL_TEXTS
    expected = [reference_t5_ids(t5_dir, text) for text in texts]
    assert tokenizer.tokenize(texts).to_list() == expected
    assert tokenizer.tokenize(texts[-1]).numpy().tolist() == expected[-1]


@pytest.mark.parametrize("kind", ["gpt2", "bert", "t5"])
def test_save_hf_tokenizer_is_read_back_with_the_same_ids(kind, tmp_path):
    write = {"gpt2": write_gpt2_tokenizer, "bert": write_bert_tokenizer}.get(kind)
    source = str(tmp_path / "source")
    (write or write_t5_tokenizer)(source)
    tokenizer = load_hf_tokenizer(source)
    texts = HARD_TEXTS + SENTINEL_TEXTS
    out = str(tmp_path / "out")
    save_hf_tokenizer(tokenizer, out)
    expected = tokenizer.tokenize(texts).to_list()
    if kind == "t5":
        with open(os.path.join(source, "spiece.model"), "rb") as a:
            with open(os.path.join(out, "spiece.model"), "rb") as b:
                assert a.read() == b.read()
        with open(os.path.join(out, "tokenizer_config.json")) as file:
            assert json.load(file)["extra_ids"] == 100
        assert expected == [reference_t5_ids(out, text) for text in texts]
    else:
        assert reference_ids(out, texts) == expected
    assert load_hf_tokenizer(out).tokenize(texts).to_list() == expected


@pytest.mark.slow
def test_gpt2_tokenizes_in_tf_data(gpt2):
    """In graph mode; in a SavedModel as TF Serving runs it, the GPT-2 import's
    export passes check-serving (tests/training/test_checkpoint_import.py) and the
    Llama-3 tokenizer (the same ops) is saved and restored in
    test_llama_tokenizers.py."""
    texts = HARD_TEXTS[:8]
    expected = gpt2.tokenize(texts).to_list()
    dataset = tf.data.Dataset.from_tensor_slices(texts).map(gpt2.tokenize)
    assert [ids.tolist() for ids in dataset.as_numpy_iterator()] == expected
    back = tf.data.Dataset.from_tensor_slices(texts).map(
        lambda t: gpt2.detokenize(gpt2.tokenize(t))
    )
    assert list(back.as_numpy_iterator()) == [text.encode() for text in texts]


_IN_IMPORT_TEST = full_only(
    "tests/training/test_checkpoint_import.py (an imported GPT-2 run: its model with the "
    "tokenizer inside, its run directory)"
)


@pytest.mark.slow
@_IN_IMPORT_TEST
def test_gpt2_travels_inside_a_keras_model(gpt2):
    preprocessor = CausalLMPreprocessor(gpt2, sequence_length=8)
    backbone = GPTBackbone(gpt2.vocabulary_size, 1, 2, 8, 16, max_sequence_length=16)
    model = GPTCausalLM(backbone, preprocessor=preprocessor)
    assert model.end_token_id == gpt2.eos_id
    inputs = run_preprocessor_test(model, HARD_TEXTS[4:7])
    assert inputs["token_ids"][0, 0] == gpt2.eos_id


@pytest.mark.parametrize("kind", [pytest.param("gpt2", marks=_IN_IMPORT_TEST), "bert", "t5"])
def test_a_run_directory_holds_every_kind(kind, tmp_path):
    write = {"gpt2": write_gpt2_tokenizer, "bert": write_bert_tokenizer}.get(kind)
    source = (write or write_t5_tokenizer)(str(tmp_path / "source"))
    tokenizer = load_hf_tokenizer(source)
    run = RunDirectory(tmp_path / "run")
    tokenizer.save(run.path)
    assert run.tokenizer_kind() == {"gpt2": "byte_pair", "bert": "wordpiece"}.get(
        kind, "sentencepiece"
    )
    copy = RunDirectory(tmp_path / "copy")
    copy.copy_tokenizer_from(run)
    texts = HARD_TEXTS + SENTINEL_TEXTS
    expected = tokenizer.tokenize(texts).to_list()
    for loaded in (run.tokenizer(), load_tokenizer(copy.path)):
        assert type(loaded) is type(tokenizer)
        assert settings(loaded) == settings(tokenizer)
    assert loaded.tokenize(texts).to_list() == expected


@pytest.mark.slow
def test_keras_hub_presets_load_with_the_same_ids(gpt2_dir, t5_dir, tmp_path):
    import keras_hub

    gpt2 = load_hf_tokenizer(gpt2_dir)
    with open(os.path.join(gpt2_dir, "vocab.json"), encoding="utf-8") as file:
        vocabulary = json.load(file)
    with open(os.path.join(gpt2_dir, "merges.txt"), encoding="utf-8") as file:
        merges = [line.rstrip("\n") for line in file if not line.startswith("#")]
    keras_hub.models.GPT2Tokenizer(vocabulary, merges).save_to_preset(str(tmp_path / "gpt2"))
    loaded = load_keras_hub_tokenizer(tmp_path / "gpt2")
    assert loaded.tokenize(HARD_TEXTS).to_list() == gpt2.tokenize(HARD_TEXTS).to_list()

    with open(os.path.join(t5_dir, "spiece.model"), "rb") as file:
        keras_hub.models.T5Tokenizer(file.read()).save_to_preset(str(tmp_path / "t5"))
    t5 = load_hf_tokenizer(t5_dir)
    loaded = load_keras_hub_tokenizer(tmp_path / "t5")
    texts = HARD_TEXTS + SENTINEL_TEXTS
    assert loaded.tokenize(texts).to_list() == t5.tokenize(texts).to_list()


def test_missing_or_unsupported_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no tokenizer files; looked for spiece.model"):
        load_hf_tokenizer(tmp_path)
    (tmp_path / "tokenizer.json").write_text(json.dumps({"model": {"type": "Unigram"}}))
    with pytest.raises(ValueError, match="tokenizer.json: model type 'Unigram'.*spiece.model"):
        load_hf_tokenizer(tmp_path)
    with pytest.raises(ValueError, match="not in the vocabulary"):
        BytePairTokenizer({"a": 0}, [])
    with pytest.raises(ValueError, match="expected the ids 0 to 1"):
        BytePairTokenizer({"<|endoftext|>": 0, "a": 5}, [])


def test_tf_text_normalization_refuses_settings_it_cannot_follow():
    vocabulary = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a"]
    with pytest.raises(ValueError, match='use normalization="huggingface"'):
        WordPieceTokenizer(vocabulary, lowercase=True, strip_accents=False)
    tokenizer = WordPieceTokenizer(
        vocabulary, lowercase=False, strip_accents=True, normalization="huggingface"
    )
    restored = keras.layers.deserialize(keras.layers.serialize(tokenizer))
    assert settings(restored) == settings(tokenizer)
    assert np.array_equal(restored.tokenize("Á a").numpy(), [1, 5])


def test_word_splitting_agrees_with_the_reference_character_by_character(bert_dir):
    from tokenizers import Regex, pre_tokenizers

    from kzoo.tokenizers.bert_words import LOWERCASE_DIFFERENCES
    from kzoo.tokenizers.byte_level_words import split_words

    texts = [f"a{c}b {c}{c} {c}" for c in sweep_characters()]
    gpt2_pattern = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
    reference = pre_tokenizers.Split(Regex(gpt2_pattern), behavior="isolated")
    words = split_words(tf.constant(texts)).to_list()
    for text, row in zip(texts, words):
        assert [w.decode() for w in row] == [w for w, _ in reference.pre_tokenize_str(text)], text
    # Beside the documented lower-casing differences (newer case pairs).
    known = table_points(LOWERCASE_DIFFERENCES)
    texts = [text for text in texts if ord(text[1]) not in known]
    tokenizer = load_hf_tokenizer(bert_dir)
    assert tokenizer.tokenize(texts).to_list() == reference_ids(bert_dir, texts)
