"""Llama-family tokenizers in graph: ids identical to the `tokenizers` library.

Llama-3 and Qwen2: byte-level BPE with their own pre-tokenizer regexes; Llama-2
and Mistral: a SentencePiece BPE with byte fallback, against the `tokenizer.json`
that Hugging Face converts it to (`legacy` on and off).
"""

import json
import os
import random
import unicodedata

import keras
import pytest
import tensorflow as tf

from kzoo.testing.hf_tokenizers import (
    DIGIT_AND_CONTRACTION_TEXTS,
    HARD_TEXTS,
    reference_tokenizer,
    sweep_characters,
    write_llama2_tokenizer,
    write_llama3_tokenizer,
    write_qwen2_tokenizer,
)
from kzoo.testing.tiers import full_only
from kzoo.tokenizers import (
    BytePairTokenizer,
    SentencePieceTokenizer,
    load_hf_tokenizer,
    load_tokenizer,
    save_hf_tokenizer,
)
from kzoo.tokenizers.byte_level_words import (
    GPT2_PATTERN,
    LLAMA3_PATTERN,
    QWEN2_PATTERN,
    split_words,
)
from kzoo.training.run_directory import RunDirectory

TEXTS = (
    HARD_TEXTS
    + DIGIT_AND_CONTRACTION_TEXTS
    + [
        "a\x00b \x00\x00 c",
        "x  'sb  'll",
        "<s>a</s> b <unk>",
        " <s> x",
        "a<s>",
        "</s></s>  x",
        "▁x ▁▁y",
        "e\u0301 \u212b \uff21 \u1e9b\u0323",  # NFC changes these
    ]
)
WRITERS = {
    "llama3": write_llama3_tokenizer,
    "qwen2": write_qwen2_tokenizer,
    "llama2": write_llama2_tokenizer,
    "llama2-legacy": lambda directory: write_llama2_tokenizer(directory, prepend_scheme="always"),
    "llama2-prepend": lambda directory: write_llama2_tokenizer(
        directory, prepend_scheme="sentencepiece"
    ),
}


@pytest.fixture(scope="module", params=list(WRITERS))
def checkpoint(request, tmp_path_factory):
    """`(kind, directory, tokenizer)` of each tiny checkpoint."""
    directory = WRITERS[request.param](str(tmp_path_factory.mktemp(request.param)))
    return request.param, directory, load_hf_tokenizer(directory)


def settings(tokenizer):
    return {key: value for key, value in tokenizer.get_config().items() if key != "name"}


def reference_ids(directory, texts):
    reference = reference_tokenizer(directory)
    return [reference.encode(text, add_special_tokens=False).ids for text in texts]


def test_ids_match_the_reference(checkpoint):
    kind, directory, tokenizer = checkpoint
    assert tokenizer.tokenize(TEXTS).to_list() == reference_ids(directory, TEXTS)
    assert tokenizer.tokenize(TEXTS[4]).numpy().tolist() == reference_ids(directory, TEXTS[4:5])[0]
    vocabulary = tokenizer.get_vocabulary()
    specials = [vocabulary[tokenizer.bos_id], vocabulary[tokenizer.eos_id]]
    specials.append(vocabulary[tokenizer.pad_id])
    assert specials == {
        "llama3": ["<|begin_of_text|>", "<|end_of_text|>", "<|end_of_text|>"],
        "qwen2": ["<|im_end|>", "<|im_end|>", "<|endoftext|>"],
    }.get(kind, ["<s>", "</s>", "</s>"])
    if kind.startswith("llama2"):
        assert isinstance(tokenizer, SentencePieceTokenizer)
        assert tokenizer.special_tokens == ["<unk>", "<s>", "</s>"]
        schemes = {"llama2": "first", "llama2-legacy": "always", "llama2-prepend": "sentencepiece"}
        assert tokenizer.prepend_scheme == schemes[kind]
    else:
        assert isinstance(tokenizer, BytePairTokenizer)
        assert tokenizer.pattern == (LLAMA3_PATTERN if kind == "llama3" else QWEN2_PATTERN)


def test_detokenize_gives_the_text_back(checkpoint):
    kind, _, tokenizer = checkpoint
    texts = [t for t in TEXTS if "<" not in t and "\x00" not in t and "▁" not in t]
    if kind == "qwen2":  # NFC is not undone
        texts = [t for t in texts if unicodedata.normalize("NFC", t) == t]
    if kind.startswith("llama2"):  # the dummy prefix goes, and the space after it
        texts = [t for t in texts if not t.startswith(" ")]
    back = tokenizer.detokenize(tokenizer.tokenize(texts)).numpy()
    assert [text.decode("utf-8") for text in back] == texts


@pytest.mark.parametrize("pattern", [LLAMA3_PATTERN, QWEN2_PATTERN], ids=["llama3", "qwen2"])
def test_word_splitting_agrees_with_the_reference(pattern):
    from tokenizers import Regex, pre_tokenizers

    rng = random.Random(0)
    alphabet = list(" \n\r\t\u00a0\u3000\u2028\x0baZé1٣'sSt.!(-ſ日")
    texts = [f"a{c}b {c}{c} {c}\n{c}" for c in sweep_characters()]
    texts += ["".join(rng.choices(alphabet, k=rng.randint(0, 12))) for _ in range(3000)]
    reference = pre_tokenizers.Split(Regex(pattern), behavior="isolated")
    words = split_words(tf.constant(texts), pattern=pattern).to_list()
    for text, row in zip(texts, words):
        assert [w.decode() for w in row] == [w for w, _ in reference.pre_tokenize_str(text)], text


def test_ignore_merges_takes_whole_words_from_the_vocabulary():
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocabulary = {"<|end_of_text|>": 0, "a": 1, "b": 2, "c": 3, "ab": 4, "bc": 5, "abc": 6}
    merges = ["b c", "a b", "ab c"]
    tokenizer = BytePairTokenizer(
        vocabulary, merges, end_token="<|end_of_text|>", pattern=LLAMA3_PATTERN, ignore_merges=True
    )
    # (Only one kzoo tokenizer: each traces its merge loop for seconds.)
    assert tokenizer.tokenize(["abc", "abcab"]).to_list() == [[6], [1, 5, 4]]
    for ignore_merges, expected in ((False, [1, 5]), (True, [6])):
        reference = Tokenizer(
            models.BPE(vocabulary, [tuple(m.split()) for m in merges], ignore_merges=ignore_merges)
        )
        reference.pre_tokenizer = pre_tokenizers.Split(LLAMA3_PATTERN, behavior="isolated")
        assert reference.encode("abc").ids == expected
    assert reference.encode("abcab").ids == [1, 5, 4]


def test_save_hf_tokenizer_is_read_back_with_the_same_ids(checkpoint, tmp_path):
    kind, _, tokenizer = checkpoint
    paths = save_hf_tokenizer(tokenizer, tmp_path)
    assert os.path.basename(paths[0]) == ("tokenizer.model" if "llama2" in kind else "vocab.json")
    expected = tokenizer.tokenize(TEXTS).to_list()
    assert reference_ids(tmp_path, TEXTS) == expected
    # The same settings are the same ids (a byte-level BPE traces for seconds).
    assert settings(load_hf_tokenizer(tmp_path)) == settings(tokenizer)


def test_qwen2_vocab_json_reads_as_its_tokenizer_json(tmp_path):
    directory = write_qwen2_tokenizer(str(tmp_path))
    from_json = settings(load_hf_tokenizer(directory))
    added = reference_tokenizer(directory).get_added_tokens_decoder()
    os.remove(os.path.join(directory, "tokenizer.json"))
    with open(os.path.join(directory, "tokenizer_config.json"), encoding="utf-8") as file:
        config = json.load(file)
    # As Qwen2's: vocab.json without the added tokens, their ids in the config.
    config["added_tokens_decoder"] = {str(i): {"content": t.content} for i, t in added.items()}
    with open(os.path.join(directory, "tokenizer_config.json"), "w", encoding="utf-8") as file:
        json.dump(config, file)
    from_files = settings(load_hf_tokenizer(directory))
    assert (from_files["pattern"], from_files["normalizer"]) == (QWEN2_PATTERN, "NFC")
    assert sorted(from_files.pop("special_tokens")) == sorted(from_json.pop("special_tokens"))
    # Settings equal, ids equal (no second tokenizer traced: that takes seconds).
    assert from_files == from_json


def test_a_run_directory_and_a_keras_config_keep_the_settings(checkpoint, tmp_path):
    _, _, tokenizer = checkpoint
    run = RunDirectory(tmp_path / "run")
    tokenizer.save(run.path)
    copy = RunDirectory(tmp_path / "copy")
    copy.copy_tokenizer_from(run)
    restored = keras.layers.deserialize(keras.layers.serialize(tokenizer))
    for loaded in (run.tokenizer(), load_tokenizer(copy.path), restored):
        assert type(loaded) is type(tokenizer)
        assert settings(loaded) == settings(tokenizer)
    if isinstance(tokenizer, SentencePieceTokenizer):
        assert loaded.tokenize(TEXTS).to_list() == tokenizer.tokenize(TEXTS).to_list()


@pytest.mark.slow
@pytest.mark.parametrize(
    "kind",
    [
        pytest.param(
            "llama3",
            marks=full_only(
                "tests/training/test_checkpoint_import.py (GPT-2's byte-level BPE, the same "
                "BytePairTokenizer and ops, exported and checked as TF Serving loads it)"
            ),
        ),
        "llama2",
    ],
)
def test_tokenizes_in_tf_data_and_in_a_saved_model(kind, tmp_path):
    tokenizer = load_hf_tokenizer(WRITERS[kind](str(tmp_path / kind)))
    texts = TEXTS[:8] + TEXTS[-8:]
    expected = tokenizer.tokenize(texts).to_list()
    dataset = tf.data.Dataset.from_tensor_slices(texts).map(tokenizer.tokenize)
    assert [ids.tolist() for ids in dataset.as_numpy_iterator()] == expected
    module = tf.Module()
    module.tokenizer = tokenizer

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def tokenize(texts):
        return tokenizer.tokenize(texts).to_tensor(-1)

    module.tokenize = tokenize
    tf.saved_model.save(module, str(tmp_path / "saved"))
    restored = tf.saved_model.load(str(tmp_path / "saved"))
    dense = restored.tokenize(tf.constant(texts)).numpy().tolist()
    assert [[i for i in row if i >= 0] for row in dense] == expected


def test_unsupported_settings_are_named(tmp_path):
    directory = write_llama3_tokenizer(str(tmp_path / "llama3"))
    path = os.path.join(directory, "tokenizer.json")
    with open(path, encoding="utf-8") as file:
        spec = json.load(file)
    spec["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = r"\w+|\s+"
    with open(path, "w", encoding="utf-8") as file:
        json.dump(spec, file)
    with pytest.raises(ValueError, match=r"tokenizer.json: pre_tokenizer Split pattern: '\\\\w"):
        load_hf_tokenizer(directory)
    spec["pre_tokenizer"]["pretokenizers"][0]["pattern"]["Regex"] = LLAMA3_PATTERN
    spec["added_tokens"][0]["lstrip"] = True
    with open(path, "w", encoding="utf-8") as file:
        json.dump(spec, file)
    with pytest.raises(ValueError, match="'<|begin_of_text|>' sets lstrip"):
        load_hf_tokenizer(directory)
    with pytest.raises(ValueError, match="is not a pre-tokenizer regex kzoo runs"):
        BytePairTokenizer({"<|endoftext|>": 0}, [], pattern=GPT2_PATTERN + "|x")
    with pytest.raises(ValueError, match="prepend_scheme: expected one of"):
        SentencePieceTokenizer(b"", prepend_scheme="first ")
