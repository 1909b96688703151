"""`Seq2SeqPreprocessor`: sources and targets to encoder-decoder inputs."""

import numpy as np
import pytest

from kzoo.models import Seq2SeqBackbone, Seq2SeqLM, T5Backbone
from kzoo.preprocessing import Seq2SeqPreprocessor
from kzoo.testing.preprocessor_checks import run_preprocessor_test
from kzoo.tokenizers import load_tokenizer, train_sentencepiece

SOURCES = ["to be or not to be", "", "that"]
TARGETS = ["the question", "to", ""]


@pytest.fixture(scope="module")
def tokenizer(tmp_path_factory):
    run_dir = str(tmp_path_factory.mktemp("vocabulary"))
    train_sentencepiece(
        texts=["to be or not to be that is the question"] * 4, model_type="char", output_dir=run_dir
    )
    return load_tokenizer(run_dir)


def test_sources_end_with_the_end_token_and_targets_follow_the_start_token(tokenizer):
    preprocessor = Seq2SeqPreprocessor(tokenizer, max_source_length=5, max_target_length=4)
    inputs = {k: np.asarray(v) for k, v in preprocessor(SOURCES, TARGETS).items()}
    source = tokenizer.tokenize(SOURCES[0]).numpy().tolist()
    target = tokenizer.tokenize(TARGETS[0]).numpy().tolist()
    assert inputs["encoder_token_ids"][0].tolist() == [*source[:4], tokenizer.eos_id]
    assert inputs["encoder_token_ids"][1].tolist()[:2] == [tokenizer.eos_id, 0]
    # The start token, then the target cut to max_target_length (teacher forcing).
    assert inputs["decoder_token_ids"][0].tolist() == [tokenizer.bos_id, *target[:3]]
    assert inputs["decoder_padding_mask"][2].tolist() == [1, 0, 0, 0]


@pytest.mark.parametrize("backbone", [Seq2SeqBackbone, T5Backbone])
def test_a_seq2seq_model_keeps_its_preprocessor_through_keras_saving(tokenizer, backbone):
    preprocessor = Seq2SeqPreprocessor(tokenizer, 8, 6, task_prefix="translate: ")
    model = Seq2SeqLM(
        backbone(tokenizer.vocabulary_size, 1, 2, 8, 16, max_sequence_length=16),
        preprocessor=preprocessor,
    )
    assert (model.start_token_id, model.end_token_id) == (tokenizer.bos_id, tokenizer.eos_id)
    run_preprocessor_test(model, SOURCES, TARGETS)
    inputs = run_preprocessor_test(model, SOURCES)  # no targets: the start token alone
    assert inputs["decoder_token_ids"].tolist() == [[tokenizer.bos_id]] * 3
