"""The training pipelines map raw text through the preprocessor the model carries.

Each test gives a task a preprocessor whose settings differ from the recipe's
(`make_preprocessor` replaced), so a pipeline that read the recipe instead would
make other batches than `model.preprocessor(...)` on the same text.
"""

import numpy as np

from kzoo.testing.tiny_recipes import load_tiny_recipe
from kzoo.training.tasks.registry import task_for


def task_with_preprocessor(config, run_dir, make_preprocessor):
    """`(task, tokenizer)`, the task building its preprocessor with
    `make_preprocessor(task, tokenizer)`."""
    task = task_for(config)
    task.resolve_data()
    tokenizer = task.make_tokenizer(str(run_dir))
    task.make_preprocessor = lambda tokenizer: make_preprocessor(task, tokenizer)
    return task, tokenizer


def numpy_of(features):
    return {key: np.asarray(value) for key, value in features.items()}


def numpy_of_all(batch):
    """A `(features, labels, weights)` batch as NumPy, dicts kept."""
    return tuple(numpy_of(part) if isinstance(part, dict) else np.asarray(part) for part in batch)


def test_causal_lm_blocks_are_the_preprocessors_ids(tmp_path):
    from kzoo.preprocessing import CausalLMPreprocessor

    config = load_tiny_recipe("data.builtin_train_documents=20")  # sequence_length 16
    task, tokenizer = task_with_preprocessor(
        config, tmp_path, lambda task, tokenizer: CausalLMPreprocessor(tokenizer, 12)
    )
    plan = task.make_data(tokenizer)
    model = task.build_model(tokenizer)
    assert model.preprocessor is task.preprocessor(tokenizer)
    assert plan.tokens_per_step == 8 * 12
    features, labels = next(iter(plan.validation))
    assert features["token_ids"].shape == labels.shape == (8, 12)
    # The stream is `doc </s> doc </s> ...`; the preprocessor starts a document
    # with `</s>`: the first block is the first document's ids from position 1.
    document = task.source.validation["texts"][0]
    expected = numpy_of(model.preprocessor([document]))["token_ids"][0]
    assert features["token_ids"].numpy()[0, :11].tolist() == expected[1:].tolist()


def bert_task(recipe, run_dir, make_preprocessor, *overrides):
    from kzoo.testing.checkout import recipe_path
    from kzoo.testing.tiny_recipes import TINY_BERT_OVERRIDES
    from kzoo.training.recipe import load_recipe

    settings = ["data.builtin_train_examples=24", "data.builtin_validation_examples=8"]
    config = load_recipe(recipe_path(recipe), [*TINY_BERT_OVERRIDES, *settings, *overrides])
    return task_with_preprocessor(config, run_dir, make_preprocessor)


def assert_same_features(batch, expected):
    expected = numpy_of(expected)
    assert sorted(batch) == sorted(expected)
    for key, value in numpy_of(batch).items():
        np.testing.assert_array_equal(value, expected[key], err_msg=key)


def test_classification_batches_are_the_preprocessors_inputs(tmp_path):
    from kzoo.preprocessing import BertClassifierPreprocessor

    task, tokenizer = bert_task(  # the recipe packs 32 tokens
        "bert_tiny_classify",
        tmp_path,
        lambda task, tokenizer: BertClassifierPreprocessor(tokenizer, 12),
    )
    plan = task.make_data(tokenizer)
    model = task.build_model(tokenizer)
    assert model.preprocessor is task.preprocessor(tokenizer)
    features, labels = next(iter(plan.validation))
    texts = [example["text"] for example in task.validation_examples[: len(labels)]]
    assert_same_features(features, model.preprocessor(texts))
    assert features["token_ids"].shape[1] == 12 and plan.tokens_per_step == 8 * 12


def test_tagging_batches_are_the_preprocessors_inputs(tmp_path):
    from kzoo.preprocessing import BertTaggerPreprocessor

    task, tokenizer = bert_task(
        "bert_tiny_tagging", tmp_path, lambda task, tokenizer: BertTaggerPreprocessor(tokenizer, 10)
    )
    plan = task.make_data(tokenizer)
    model = task.build_model(tokenizer)
    features, labels, weights = next(iter(plan.validation))
    texts = [" ".join(e["tokens"]) for e in task.validation_examples[: len(labels)]]
    assert_same_features(features, model.preprocessor(texts))
    assert labels.shape == weights.shape == (len(texts), 10)


def test_qa_windows_are_the_preprocessors_windows(tmp_path):
    from kzoo.preprocessing import BertQuestionAnswererPreprocessor

    def make_preprocessor(task, tokenizer):  # the recipe's: 32, 8 and 8 tokens
        return BertQuestionAnswererPreprocessor(tokenizer, 24, 6, 5, max_answer_tokens=4)

    task, tokenizer = bert_task(
        "bert_tiny_qa",
        tmp_path,
        make_preprocessor,
        "data.max_query_tokens=8",
        "data.doc_stride=8",
        "data.max_answer_tokens=4",
    )
    plan = task.make_data(tokenizer)
    model = task.build_model(tokenizer)
    features, _ = next(iter(plan.validation))
    examples = task.validation_examples
    expected = model.preprocessor(
        [e["question"] for e in examples], [e["context"] for e in examples]
    )
    rows = len(features["token_ids"])
    assert_same_features(features, {key: value[:rows] for key, value in expected.items()})
    assert features["token_ids"].shape[1] == 24


def test_masked_lm_pairs_are_packed_and_masked_as_the_preprocessor_says(tmp_path):
    import tensorflow as tf

    from kzoo.preprocessing import BertMaskedLMPreprocessor

    def make_preprocessor(task, tokenizer):  # the recipe's: 32 tokens, 15% selected
        return BertMaskedLMPreprocessor(tokenizer, 24, mask_selection_rate=0.3)

    task, tokenizer = bert_task(
        "bert_tiny_pretrain",
        tmp_path,
        make_preprocessor,
        "data.builtin_train_documents=20",
        "data.builtin_validation_documents=10",
    )
    plan = task.make_data(tokenizer)
    model = task.build_model(tokenizer)
    assert model.preprocessor is task.preprocessor(tokenizer)
    features, labels, weights = numpy_of_all(next(iter(plan.validation)))
    assert features["token_ids"].shape == (8, 24)
    # Unmask, split at [SEP] and pack the two segments again with the preprocessor.
    ids, used = features["token_ids"].copy(), weights["mlm"] > 0
    rows = np.nonzero(used)[0]
    ids[rows, features["mask_positions"][used]] = labels["mlm"][used]
    segments = [[], []]
    for row, length in zip(ids, features["padding_mask"].sum(1)):
        first = row.tolist().index(tokenizer.sep_id)
        segments[0].append(row[1:first].tolist())
        segments[1].append(row[first + 1 : length - 1].tolist())
    packed = model.preprocessor.pack([tf.ragged.constant(s, tf.int32) for s in segments])
    unmasked = {**{k: features[k] for k in ("segment_ids", "padding_mask")}, "token_ids": ids}
    assert_same_features(unmasked, packed)
    # The preprocessor's rate (0.3), not the recipe's (0.15).
    maskable = features["padding_mask"].sum() - 3 * len(ids)
    assert used.sum() / maskable > 0.22


def test_seq2seq_batches_are_the_preprocessors_inputs(tmp_path):
    from kzoo.preprocessing import Seq2SeqPreprocessor
    from kzoo.testing.checkout import recipe_path
    from kzoo.training.recipe import load_recipe

    tiny = [
        *("model.num_layers=1", "model.num_heads=2", "model.hidden_dim=16"),
        *("model.intermediate_dim=32", "model.max_sequence_length=48"),
        *("tokenizer.vocab_size=320", "data.batch_size=8", "data.bucket_boundaries=null"),
        *("data.builtin_train_examples=160", "data.builtin_validation_examples=16"),
    ]  # the recipe's lengths: 32 and 32 tokens
    config = load_recipe(recipe_path("seq2seq_tiny"), tiny)
    task, tokenizer = task_with_preprocessor(
        config, tmp_path, lambda task, tokenizer: Seq2SeqPreprocessor(tokenizer, 40, 36)
    )
    plan = task.make_data(tokenizer)
    model = task.build_model(tokenizer)
    assert model.preprocessor is task.preprocessor(tokenizer)
    features, labels, weights = next(iter(plan.validation))
    assert features["encoder_token_ids"].shape == (8, 40)
    assert labels.shape == weights.shape == (8, 36)
    pairs = task.source.validation[:8]  # every pair fits: none is dropped
    expected = model.preprocessor([p["source"] for p in pairs], [p["target"] for p in pairs])
    padded = {
        key: np.pad(value, [(0, 0), (0, features[key].shape[1] - value.shape[1])])
        for key, value in numpy_of(expected).items()
    }
    assert_same_features(features, padded)


def test_t5_span_corruption_batches_have_the_preprocessors_lengths_and_tokens(tmp_path):
    from kzoo.preprocessing import Seq2SeqPreprocessor
    from kzoo.testing.checkout import recipe_path
    from kzoo.training.recipe import load_recipe

    tiny = [
        *("model.size=null", "model.num_layers=1", "model.num_heads=2", "model.hidden_dim=16"),
        *("model.intermediate_dim=32", "tokenizer.vocab_size=320", "data.batch_size=8"),
        *("data.builtin_train_documents=60", "data.builtin_validation_documents=30"),
        "data.num_sentinels=8",
    ]  # the recipe's lengths: 64 and 16 tokens
    config = load_recipe(recipe_path("t5_tiny_pretrain"), tiny)
    task, tokenizer = task_with_preprocessor(
        config, tmp_path, lambda task, tokenizer: Seq2SeqPreprocessor(tokenizer, 32, 12)
    )
    plan = task.make_data(tokenizer)
    model = task.build_model(tokenizer)
    preprocessor = model.preprocessor
    assert preprocessor is task.preprocessor(tokenizer)
    features, labels, _ = numpy_of_all(next(iter(plan.validation)))
    assert features["encoder_token_ids"].shape == (8, 32) and labels.shape == (8, 12)
    assert plan.tokens_per_step == 8 * (32 + 12)
    assert (features["decoder_token_ids"][:, 0] == preprocessor.start_token_id).all()
    lengths = features["encoder_padding_mask"].sum(1)
    ends = features["encoder_token_ids"][np.arange(8), lengths - 1]
    assert (ends == preprocessor.end_token_id).all()
