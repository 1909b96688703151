"""`generate()` compiles with XLA by default (`jit_compile="auto"`): the same tokens as
without XLA for every family, a fallback with one warning where XLA cannot compile,
an error with `jit_compile=True`."""

import warnings

import keras
import pytest

from kzoo.jit import XlaFallbackWarning
from kzoo.models import (
    GPTBackbone,
    GPTCausalLM,
    LlamaBackbone,
    LlamaCausalLM,
    LSTMSeq2SeqBackbone,
    Seq2SeqBackbone,
    Seq2SeqLM,
    T5Backbone,
)
from kzoo.testing.tiers import full_only
from kzoo.testing.tiny_models import TINY_TRANSFORMER

VOCAB = 40
PROMPTS = [[5, 6, 7, 8], [9, 10, 11]]
OPTIONS = dict(max_new_tokens=5, temperature=0.8, top_k=8, top_p=0.9, seed=3, num_beams=3)
on_tensorflow = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="jit_compile chooses XLA on TensorFlow"
)


def build_gpt(quantize=None):
    lm = GPTCausalLM(GPTBackbone(VOCAB, **TINY_TRANSFORMER, max_sequence_length=24), end_token_id=1)
    if quantize:
        lm.backbone.quantize(quantize)
    return lm


FAMILIES = {
    "gpt": build_gpt,
    "gpt_int8": lambda: build_gpt("int8"),
    "gpt_int4": lambda: build_gpt("int4"),
    "llama": lambda: LlamaCausalLM(
        LlamaBackbone(
            VOCAB,
            **{**TINY_TRANSFORMER, "num_heads": 4},
            num_key_value_heads=2,
            sliding_window=3,
            max_sequence_length=24,
        ),
        end_token_id=1,
    ),
    "seq2seq": lambda: Seq2SeqLM(
        Seq2SeqBackbone(VOCAB, **TINY_TRANSFORMER, dropout=0.0, max_sequence_length=32),
        start_token_id=1,
        end_token_id=2,
    ),
    "lstm_seq2seq": lambda: Seq2SeqLM(
        LSTMSeq2SeqBackbone(VOCAB, embedding_dim=8, hidden_dim=16, num_layers=2),
        start_token_id=1,
        end_token_id=2,
    ),
    "t5": lambda: Seq2SeqLM(
        T5Backbone(
            VOCAB, **TINY_TRANSFORMER, dropout=0.0, use_gated_activation=True, activation="gelu"
        ),
        start_token_id=0,
        end_token_id=1,
    ),
}


@pytest.fixture(scope="module")
def models():
    """One seeded model per family, built on first use and shared by the module's
    tests (each compiled loop stays with its model)."""
    built = {}

    def get(family):
        if family not in built:
            keras.utils.set_random_seed(0)
            built[family] = FAMILIES[family]()
        return built[family]

    return get


# CI compiles one loop per kind of decoding (each XLA compile costs seconds): the
# cached sampling/greedy loop (GPT), the uncached one, beam search (GPT, T5's
# encoder-decoder), a quantized model. `make test-full` runs every case.
full = full_only("the same decoding loop in CI's cases of this test")
CASES = [
    ("gpt", "greedy", True),
    ("gpt", "beam", True),
    ("gpt_int8", "greedy", True),
    ("seq2seq", "greedy", False),
    ("t5", "beam", True),
    pytest.param("gpt", "greedy", False, marks=full),
    pytest.param("gpt", "sample", True, marks=full),
    pytest.param("gpt_int4", "sample", True, marks=full),
    pytest.param("llama", "greedy", True, marks=full),
    pytest.param("llama", "sample", True, marks=full),
    pytest.param("llama", "beam", False, marks=full),
    pytest.param("seq2seq", "greedy", True, marks=full),
    pytest.param("seq2seq", "sample", True, marks=full),
    pytest.param("seq2seq", "beam", True, marks=full),
    pytest.param("seq2seq", "beam", False, marks=full),
    pytest.param("lstm_seq2seq", "greedy", True, marks=full),
    pytest.param("t5", "greedy", True, marks=full),
    pytest.param("t5", "sample", True, marks=full),
]


@on_tensorflow
@pytest.mark.parametrize("family, strategy, use_cache", CASES)
def test_xla_generates_the_tokens_generated_without_xla(models, family, strategy, use_cache):
    lm = models(family)
    options = dict(OPTIONS, strategy=strategy, use_cache=use_cache)
    # XlaFallbackWarning is an error here (pytest.ini): XLA itself compiled it.
    assert lm.generate(PROMPTS, **options) == lm.generate(PROMPTS, jit_compile=False, **options)


class StringDetourLM(GPTCausalLM):
    """A GPT whose decoding sends the prompts through strings and back: the same
    tokens, but a graph XLA cannot compile (string ops have no XLA kernels)."""

    def generate_ids(self, token_ids, **kwargs):
        import tensorflow as tf

        token_ids = tf.strings.to_number(tf.strings.as_string(token_ids), tf.int32)
        return super().generate_ids(token_ids, **kwargs)


@pytest.fixture(scope="module")
def uncompilable():
    keras.utils.set_random_seed(0)
    return StringDetourLM(
        GPTBackbone(VOCAB, **TINY_TRANSFORMER, max_sequence_length=24), end_token_id=1
    )


@on_tensorflow
def test_auto_falls_back_once_with_a_warning(models, uncompilable):
    expected = models("gpt").generate(PROMPTS, max_new_tokens=4, jit_compile=False)
    with pytest.warns(XlaFallbackWarning) as caught:
        assert uncompilable.generate(PROMPTS, max_new_tokens=4) == expected
    assert len(caught) == 1
    message = str(caught[0].message)
    assert "StringDetourLM.generate(" in message and "XLA could not compile" in message
    assert "jit_compile=False" in message
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning, for this shape or another
        assert uncompilable.generate(PROMPTS, max_new_tokens=4) == expected
        assert uncompilable.generate(PROMPTS[:1], max_new_tokens=4) == expected[:1]


@on_tensorflow
def test_jit_compile_true_raises_where_xla_cannot_compile(uncompilable):
    import tensorflow as tf

    with pytest.raises(tf.errors.InvalidArgumentError, match="(?i)xla|compil"):
        uncompilable.generate(PROMPTS, max_new_tokens=4, jit_compile=True)


@pytest.mark.parametrize("value", ["xla", None, 1])
def test_bad_jit_compile_names_the_argument_and_value(models, value):
    with pytest.raises(ValueError, match=rf"jit_compile must be one of .*received {value!r}"):
        models("gpt").generate(PROMPTS, jit_compile=value)
