import keras
import numpy as np
import pytest

from kzoo.models import SEQ2SEQ_SIZES, LSTMSeq2SeqBackbone, Seq2SeqBackbone, Seq2SeqLM
from kzoo.testing import assert_cached_decoding_matches_full_pass, run_model_test, to_numpy
from kzoo.testing.model_checks import sequence_log_likelihood
from kzoo.testing.tiny_models import TINY_TRANSFORMER

VOCAB, SOURCE_LENGTH, TARGET_LENGTH = 40, 7, 5
START, END = 1, 2
CONFIG = dict(vocabulary_size=VOCAB, **TINY_TRANSFORMER, dropout=0.0, max_sequence_length=32)
RNG = np.random.default_rng(0)
INPUTS = {
    "encoder_token_ids": RNG.integers(3, VOCAB, (2, SOURCE_LENGTH)).astype("int32"),
    "encoder_padding_mask": np.array([[1] * 7, [1] * 4 + [0] * 3], "int32"),
    "decoder_token_ids": RNG.integers(3, VOCAB, (2, TARGET_LENGTH)).astype("int32"),
    "decoder_padding_mask": np.array([[1] * 5, [1] * 3 + [0] * 2], "int32"),
}
SOURCES = [[5, 6, 7, 8, END], [9, 10, END]]


def build_backbone(dtype=None, **overrides):
    return Seq2SeqBackbone(**{**CONFIG, **overrides}, dtype=dtype)


def build_translator(dtype=None, **overrides):
    return Seq2SeqLM(build_backbone(dtype, **overrides), start_token_id=START, end_token_id=END)


def build_lstm(dtype=None, **overrides):
    config = dict(vocabulary_size=VOCAB, embedding_dim=8, hidden_dim=16, num_layers=2)
    backbone = LSTMSeq2SeqBackbone(**{**config, **overrides}, dtype=dtype)
    return Seq2SeqLM(backbone, start_token_id=START, end_token_id=END)


def with_changes(**changes):
    """A copy of INPUTS with `{name: (index, value)}` assignments applied."""
    inputs = {k: v.copy() for k, v in INPUTS.items()}
    for name, (index, value) in changes.items():
        inputs[name][index] = value
    return inputs


def right_pad(rows):
    length = max(map(len, rows))
    ids = np.array([row + [0] * (length - len(row)) for row in rows], "int32")
    return ids, (ids != 0).astype("int32")


def greedy_by_full_passes(model, sources, max_new_tokens):
    """The reference: each token is the argmax of a full forward pass over the
    target so far (one fixed shape, so JAX compiles each op once)."""
    source_ids, source_mask = right_pad(sources)
    target = np.zeros((len(sources), max_new_tokens + 1), "int32")
    target[:, 0] = START
    for t in range(max_new_tokens):
        logits = to_numpy(
            model(
                {
                    "encoder_token_ids": source_ids,
                    "encoder_padding_mask": source_mask,
                    "decoder_token_ids": target,
                    "decoder_padding_mask": np.ones_like(target),
                }
            )
        )
        target[:, t + 1] = logits[:, t].argmax(-1)
    outputs = []
    for row in target[:, 1:].tolist():
        outputs.append(row[: row.index(END)] if END in row else row)
    return outputs


# --- Transformer backbone ----------------------------------------------------------


def test_backbone_contract():
    run_model_test(
        build_backbone,
        INPUTS,
        {
            "encoder_sequence_output": (2, SOURCE_LENGTH, 16),
            "decoder_sequence_output": (2, TARGET_LENGTH, 16),
        },
    )


def test_layer_counts_sizes_and_errors():
    backbone = build_backbone(num_encoder_layers=3, num_decoder_layers=1)
    assert (len(backbone.encoder_layers), len(backbone.decoder_layers)) == (3, 1)
    config = backbone.get_config()
    assert (config["num_encoder_layers"], config["num_decoder_layers"]) == (3, 1)
    assert Seq2SeqBackbone.from_config(config).count_params() == backbone.count_params()
    assert SEQ2SEQ_SIZES["base"] == dict(
        num_layers=6, num_heads=8, hidden_dim=512, intermediate_dim=2048
    )
    with pytest.raises(ValueError, match="needs num_layers, or both"):
        Seq2SeqBackbone(VOCAB, num_heads=2, hidden_dim=16, intermediate_dim=32)
    with pytest.raises(ValueError, match="hidden_dim must be divisible by num_heads"):
        Seq2SeqBackbone(VOCAB, num_layers=1, num_heads=3, hidden_dim=16)


def test_parameter_count_of_the_paper_layout():
    d, f, layers = 16, 32, 2
    attention = 4 * (d * d + d)
    feedforward = d * f + f + f * d + d
    norm = 2 * d
    encoder = layers * (attention + feedforward + 2 * norm)
    decoder = layers * (2 * attention + feedforward + 3 * norm)
    assert build_backbone().count_params() == VOCAB * d + encoder + decoder
    # Pre-norm adds one final norm per stack.
    assert build_backbone(norm_first=True).count_params() == (
        VOCAB * d + encoder + decoder + 2 * norm
    )


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_is_causal_and_encoder_padding_is_ignored(norm_first):
    backbone = build_backbone(norm_first=norm_first)
    base = to_numpy(backbone(INPUTS))
    later_target = to_numpy(backbone(with_changes(decoder_token_ids=((slice(None), 3), 7))))
    np.testing.assert_allclose(
        later_target["decoder_sequence_output"][:, :3],
        base["decoder_sequence_output"][:, :3],
        atol=1e-5,
    )
    assert not np.allclose(
        later_target["decoder_sequence_output"][:, 3:],
        base["decoder_sequence_output"][:, 3:],
        atol=1e-5,
    )
    # Row 1's source has 4 real tokens: what sits in its padding changes nothing.
    padded = to_numpy(backbone(with_changes(encoder_token_ids=((1, slice(4, None)), 9))))
    np.testing.assert_allclose(
        padded["decoder_sequence_output"], base["decoder_sequence_output"], atol=1e-5
    )
    np.testing.assert_allclose(
        padded["encoder_sequence_output"][1, :4], base["encoder_sequence_output"][1, :4], atol=1e-5
    )


@pytest.mark.parametrize("norm_first", [False, True])
def test_decode_with_cache_matches_the_full_decoder_pass(norm_first):
    backbone = build_backbone(norm_first=norm_first)
    cache = assert_cached_decoding_matches_full_pass(backbone, INPUTS)
    # One tensor per decoder layer: (batch, keys/values, length, heads, head_dim).
    assert [tuple(c.shape) for c in cache["cross_attention"]] == [(2, 2, SOURCE_LENGTH, 2, 8)] * 2
    assert [tuple(c.shape) for c in cache["self_attention"]] == [(2, 2, TARGET_LENGTH, 2, 8)] * 2


# --- Transformer translator --------------------------------------------------------


class _CharacterTokenizer:
    """Letters a-z are ids 3..28; 0 pad, 1 bos, 2 eos."""

    bos_id, eos_id = START, END

    def tokenize(self, texts):
        return [[ord(c) - ord("a") + 3 for c in text] for text in texts]

    def detokenize(self, rows):
        return ["".join(chr(t - 3 + ord("a")) for t in row if 3 <= t < 29) for row in rows]


@pytest.fixture(scope="module")
def translator():
    """One translator for the generation tests, so `generate` compiles once."""
    return Seq2SeqLM(build_backbone(), tokenizer=_CharacterTokenizer())


def generate_eagerly(model, sources=SOURCES, max_new_tokens=6, **kwargs):
    """`generate_ids` without compiling (faster for a few tiny calls); lists of ids."""
    ids, mask = right_pad(sources)
    tokens, generated, _ = model.generate_ids(ids, mask, max_new_tokens, **kwargs)
    tokens, generated = to_numpy(tokens), to_numpy(generated)
    return [[int(t) for t in row[keep] if t != END] for row, keep in zip(tokens, generated)]


def test_translator_contract_and_tied_head():
    translator, logits = run_model_test(build_translator, INPUTS, (2, TARGET_LENGTH, VOCAB))
    assert keras.backend.standardize_dtype(logits.dtype) == "float32"
    assert sum("embeddings" in w.path for w in translator.weights) == 1
    hidden = to_numpy(translator.backbone(INPUTS)["decoder_sequence_output"])
    table = to_numpy(translator.backbone.token_embedding.embeddings)
    np.testing.assert_allclose(to_numpy(logits), hidden @ table.T, rtol=1e-4, atol=1e-5)
    config = translator.get_config()
    assert (config["start_token_id"], config["end_token_id"]) == (START, END)


def test_score_is_the_sum_of_target_log_probs(translator):
    ids, mask = INPUTS["decoder_token_ids"], INPUTS["decoder_padding_mask"]
    expected = sequence_log_likelihood(translator(INPUTS), ids, mask)
    np.testing.assert_allclose(to_numpy(translator.score(INPUTS)), expected, rtol=1e-5)


def test_cached_greedy_generation_matches_full_passes(translator):
    expected = greedy_by_full_passes(translator, SOURCES, 6)
    assert translator.generate(SOURCES, max_new_tokens=6) == expected
    assert generate_eagerly(translator, use_cache=False) == expected


@pytest.mark.slow  # TensorFlow only: JAX_SKIPPED_SLOW_TESTS in tests/test_backend_agnostic.py
def test_beam_search_with_one_beam_is_greedy_and_caching_does_not_matter(translator):
    greedy = translator.generate(SOURCES, max_new_tokens=6)  # compiled once per module
    assert generate_eagerly(translator, strategy="beam", num_beams=1) == greedy
    beams = generate_eagerly(translator, strategy="beam", num_beams=3)
    assert beams == generate_eagerly(translator, strategy="beam", num_beams=3, use_cache=False)


@pytest.mark.slow  # also on JAX: JAX_SLOW_TESTS in tests/test_backend_agnostic.py
def test_beam_search_finds_at_least_the_greedy_score(translator):
    ids, mask = right_pad(SOURCES)
    _, _, beam_scores = translator.generate_ids(ids, mask, 5, strategy="beam", num_beams=4)
    greedy_scores = []
    for source, target in zip(SOURCES, translator.generate(SOURCES, max_new_tokens=5)):
        ended = len(target) < 5  # stopped on the end token: score it too
        decoder = [START] + target + ([END] if ended else [])
        greedy_scores.append(
            to_numpy(
                translator.score(
                    {
                        "encoder_token_ids": np.array([source], "int32"),
                        "encoder_padding_mask": np.ones((1, len(source)), "int32"),
                        "decoder_token_ids": np.array([decoder], "int32"),
                        "decoder_padding_mask": np.ones((1, len(decoder)), "int32"),
                    }
                )
            )[0]
        )
    assert np.all(to_numpy(beam_scores) >= np.array(greedy_scores) - 1e-4)


@pytest.mark.slow  # also on JAX: JAX_SLOW_TESTS in tests/test_backend_agnostic.py
def test_sampling_is_reproducible_with_a_seed(translator):
    kwargs = dict(max_new_tokens=6, strategy="sample", temperature=2.0)
    first = generate_eagerly(translator, seed=1, **kwargs)
    assert first == generate_eagerly(translator, seed=1, **kwargs)
    assert first != generate_eagerly(translator, seed=2, **kwargs)


def test_generate_strings_and_argument_errors(translator):
    assert (translator.start_token_id, translator.end_token_id) == (START, END)
    # Same shapes as SOURCES (5 and 3 tokens with the end token): no retracing.
    texts = translator.generate(["abcd", "ab"], max_new_tokens=6)
    ids = translator.generate([[3, 4, 5, 6, END], [3, 4, END]], max_new_tokens=6)
    assert texts == _CharacterTokenizer().detokenize(ids)
    assert translator.generate(np.array(["abcd", "ab"]), max_new_tokens=6) == texts
    assert translator.generate(np.array([b"abcd", b"ab"], object), max_new_tokens=6) == texts
    assert translator.generate(np.array("abcd"), max_new_tokens=6) == texts[0]

    with pytest.raises(ValueError, match="strategy must be one of"):
        translator.generate(SOURCES, strategy="nucleus")
    with pytest.raises(ValueError, match=r"max_new_tokens must be in \[1, 31\]"):
        translator.generate(SOURCES, max_new_tokens=32)
    with pytest.raises(ValueError, match="temperature must be > 0"):
        translator.generate(SOURCES, strategy="sample", temperature=0)
    untokenized = Seq2SeqLM(translator.backbone, end_token_id=END)
    with pytest.raises(ValueError, match="need a tokenizer"):
        untokenized.generate("abc", max_new_tokens=4)
    with pytest.raises(ValueError, match="needs a start token"):
        untokenized.generate(SOURCES, max_new_tokens=4)


def _copy_task(batch=32, length=5):
    """Reverse copy: target is the source backwards (needs cross-attention)."""
    source = np.random.default_rng(1).integers(3, 12, (batch, length)).astype("int32")
    target = source[:, ::-1]
    inputs = {
        "encoder_token_ids": source,
        "encoder_padding_mask": np.ones_like(source),
        "decoder_token_ids": np.concatenate([np.full((batch, 1), START, "int32"), target], axis=1),
        "decoder_padding_mask": np.ones((batch, length + 1), "int32"),
    }
    labels = np.concatenate([target, np.full((batch, 1), END, "int32")], axis=1)
    return inputs, labels


def _losses_after_fit(model, learning_rate, epochs=4):
    inputs, labels = _copy_task()
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    history = model.fit(inputs, labels, batch_size=16, epochs=epochs, verbose=0)
    return history.history["loss"]


@pytest.mark.slow
def test_fit_on_a_copy_task_reduces_the_loss():
    keras.utils.set_random_seed(0)
    losses = _losses_after_fit(build_translator(num_layers=1), 1e-2)
    assert losses[-1] < 0.8 * losses[0], losses


# --- LSTM baseline -----------------------------------------------------------------


@pytest.mark.slow  # TensorFlow only: JAX_SKIPPED_SLOW_TESTS in tests/test_backend_agnostic.py
def test_lstm_contract():
    run_model_test(build_lstm, INPUTS, (2, TARGET_LENGTH, VOCAB))


@pytest.mark.slow  # TensorFlow only: JAX_SKIPPED_SLOW_TESTS in tests/test_backend_agnostic.py
def test_lstm_untied_head_and_odd_width_error():
    untied = build_lstm(tie_embeddings=False, num_layers=1)
    assert tuple(untied.backbone.output_dense.kernel.shape) == (16, VOCAB)
    assert tuple(untied(INPUTS).shape) == (2, TARGET_LENGTH, VOCAB)
    with pytest.raises(ValueError, match="even hidden_dim"):
        build_lstm(hidden_dim=15)


@pytest.mark.parametrize("bidirectional", [True, False])
def test_lstm_is_causal_and_ignores_encoder_padding(bidirectional):
    model = build_lstm(bidirectional=bidirectional)
    base = to_numpy(model(INPUTS))
    later = to_numpy(model(with_changes(decoder_token_ids=((slice(None), 3), 7))))
    np.testing.assert_allclose(later[:, :3], base[:, :3], atol=1e-5)
    padded = to_numpy(model(with_changes(encoder_token_ids=((1, slice(4, None)), 9))))
    np.testing.assert_allclose(padded, base, atol=1e-5)


@pytest.mark.slow  # TensorFlow only: JAX_SKIPPED_SLOW_TESTS in tests/test_backend_agnostic.py
def test_lstm_greedy_and_one_beam_generation_match_full_passes():
    keras.utils.set_random_seed(0)
    model = build_lstm()
    model(INPUTS)
    # Larger weights separate the logits: at its initial scale an untrained LSTM
    # has near-ties that greedy (argmax) and beam search (log-softmax sums) may
    # break differently.
    for weight in model.weights:
        if "kernel" in weight.path or "embeddings" in weight.path:
            weight.assign(weight * 4.0)
    greedy = generate_eagerly(model)
    assert greedy == greedy_by_full_passes(model, SOURCES, 6)
    assert generate_eagerly(model, strategy="beam", num_beams=1) == greedy


@pytest.mark.slow
def test_lstm_fit_on_a_copy_task_reduces_the_loss():
    keras.utils.set_random_seed(0)
    losses = _losses_after_fit(build_lstm(num_layers=1), 2e-2)
    assert losses[-1] < 0.8 * losses[0], losses
