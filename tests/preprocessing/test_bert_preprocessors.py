"""The BERT preprocessors: masked LM, classifier, tagger and QA, saved with the model."""

import numpy as np
import pytest

from kzoo.models import (
    BertBackbone,
    BertClassifier,
    BertPretrainer,
    BertQuestionAnswerer,
    BertTokenClassifier,
)
from kzoo.preprocessing import (
    BertClassifierPreprocessor,
    BertMaskedLMPreprocessor,
    BertQuestionAnswererPreprocessor,
    BertTaggerPreprocessor,
)
from kzoo.testing.preprocessor_checks import run_preprocessor_test
from kzoo.tokenizers import WordPieceTokenizer

VOCABULARY = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "!", ",", "a", "b", "c"]
VOCABULARY += ["f", "e", "##a", "##f", "##e", "cafe", "be"]
PAD, UNK, CLS, SEP, MASK = range(5)


@pytest.fixture(scope="module")
def tokenizer():
    return WordPieceTokenizer(VOCABULARY)


def backbone():
    return BertBackbone(
        len(VOCABULARY),
        num_layers=1,
        num_heads=2,
        hidden_dim=8,
        intermediate_dim=16,
        max_sequence_length=16,
    )


def test_a_classifier_packs_pairs_as_its_preprocessor_says(tokenizer):
    preprocessor = BertClassifierPreprocessor(tokenizer, sequence_length=8, pairs=True)
    model = BertClassifier(backbone(), ["no", "yes"], preprocessor=preprocessor)
    inputs = run_preprocessor_test(model, ["cafe be", "a"], ["b", "fa"])
    assert inputs["token_ids"].tolist() == [
        [CLS, 15, 16, SEP, 8, SEP, PAD, PAD],
        [CLS, 7, SEP, 10, 12, SEP, PAD, PAD],
    ]
    assert inputs["segment_ids"][0].tolist() == [0, 0, 0, 0, 1, 1, 0, 0]


def test_a_tagger_packs_words_and_punctuation(tokenizer):
    model = BertTokenClassifier(
        backbone(), ["O", "B"], preprocessor=BertTaggerPreprocessor(tokenizer, 6)
    )
    inputs = run_preprocessor_test(model, ["Cafe, be a b!", "a"])
    # [CLS] cafe , be a [SEP]: the words past the length are cut.
    assert inputs["token_ids"].tolist() == [[CLS, 15, 6, 16, 7, SEP], [CLS, 7, SEP, 0, 0, 0]]


def test_a_question_answerer_splits_long_contexts_into_windows(tokenizer):
    preprocessor = BertQuestionAnswererPreprocessor(
        tokenizer, sequence_length=10, max_query_tokens=3, doc_stride=3, max_answer_tokens=4
    )
    model = BertQuestionAnswerer(backbone(), preprocessor=preprocessor)
    inputs = run_preprocessor_test(model, ["cafe?", "a"], ["a b c be cafe fa a b c", "b"])
    assert len(inputs["token_ids"]) > 2  # the long context makes several windows
    assert all(row[0] == CLS for row in inputs["token_ids"].tolist())


def test_a_pretrainer_fills_the_literal_masks(tokenizer):
    preprocessor = BertMaskedLMPreprocessor(tokenizer, 8, mask_selection_rate=0.2)
    model = BertPretrainer(backbone(), preprocessor=preprocessor)
    inputs = run_preprocessor_test(model, ["cafe [MASK] be", "[MASK] a [MASK]", "b"])
    assert inputs["token_ids"][1].tolist()[:5] == [CLS, MASK, 7, MASK, SEP]
    # Each row's [MASK] positions, then 0 ([CLS]) in unused slots.
    assert inputs["mask_positions"].tolist() == [[2, 0], [1, 3], [0, 0]]
    assert model.preprocessor.get_config()["mask_selection_rate"] == 0.2


def test_a_model_saved_before_preprocessors_keeps_its_tokenizer(tokenizer, tmp_path):
    import keras

    model = BertClassifier(backbone(), ["no", "yes"], tokenizer=tokenizer)
    assert model.preprocessor is None
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True, compile=False)
    assert loaded.preprocessor is None
    assert loaded.tokenizer.get_vocabulary() == VOCABULARY
    np.testing.assert_array_equal(loaded.tokenizer.tokenize(["cafe be"]).to_list(), [[15, 16]])
