"""`CausalLMPreprocessor`: documents to GPT / LSTM inputs, saved with the model."""

import numpy as np
import pytest

from kzoo.models import GPTBackbone, GPTCausalLM, LSTMLanguageModel
from kzoo.preprocessing import CausalLMPreprocessor
from kzoo.testing.preprocessor_checks import run_preprocessor_test
from kzoo.tokenizers import load_tokenizer, train_sentencepiece

TEXTS = ["to be or not", "", "that is the question to be"]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    run_dir = str(tmp_path_factory.mktemp("vocabulary"))
    train_sentencepiece(
        texts=["to be or not to be that is the question"] * 4, model_type="char", output_dir=run_dir
    )
    return load_tokenizer(run_dir)


def test_documents_start_with_the_end_token_and_are_cut_and_padded(tokenizer):
    preprocessor = CausalLMPreprocessor(tokenizer, sequence_length=6)
    inputs = {k: np.asarray(v) for k, v in preprocessor(TEXTS).items()}
    ids = tokenizer.tokenize(TEXTS[0]).numpy().tolist()
    assert inputs["token_ids"][0].tolist() == [tokenizer.eos_id, *ids[:5]]
    assert inputs["token_ids"][1].tolist() == [tokenizer.eos_id, 0, 0, 0, 0, 0]
    assert inputs["padding_mask"].tolist()[1] == [1, 0, 0, 0, 0, 0]
    assert preprocessor.end_token_id == tokenizer.eos_id


def test_gpt_keeps_its_preprocessor_through_keras_saving(tokenizer):
    preprocessor = CausalLMPreprocessor(tokenizer, sequence_length=8)
    backbone = GPTBackbone(tokenizer.vocabulary_size, 1, 2, 8, 16, max_sequence_length=16)
    model = GPTCausalLM(backbone, preprocessor=preprocessor)
    assert model.tokenizer is tokenizer and model.end_token_id == tokenizer.eos_id
    inputs = run_preprocessor_test(model, TEXTS)
    assert inputs["token_ids"].shape == (3, 8)


def test_lstm_keeps_its_preprocessor_through_keras_saving(tokenizer):
    model = LSTMLanguageModel(
        tokenizer.vocabulary_size, 4, 8, preprocessor=CausalLMPreprocessor(tokenizer, 8)
    )
    assert model.end_token_id == tokenizer.eos_id and model.tokenizer is tokenizer
    run_preprocessor_test(model, TEXTS)


def test_a_model_takes_its_tokenizer_inside_the_preprocessor_not_beside_it(tokenizer, tmp_path):
    train_sentencepiece(texts=["other words"] * 4, model_type="char", output_dir=str(tmp_path))
    other = load_tokenizer(str(tmp_path))
    backbone = GPTBackbone(tokenizer.vocabulary_size, 1, 2, 8, 16, max_sequence_length=16)
    with pytest.raises(ValueError, match="tokenizer: pass the tokenizer inside the preprocessor"):
        GPTCausalLM(backbone, tokenizer=other, preprocessor=CausalLMPreprocessor(tokenizer, 8))
