"""Tiny training runs for the export tests: random weights, a char tokenizer.

Building the run directly (no training) takes a second; the export only needs
`config.yaml`, `tokenizer.model` and `model.keras` in the run layout.
"""

import os
import subprocess
import sys

import keras
import pytest

from kzoo.data.builtin_corpus import default_corpus
from kzoo.tokenizers import load_tokenizer, train_sentencepiece
from kzoo.training import families, run_files
from kzoo.training.config import write_yaml_atomic
from kzoo.training.recipe import validate

MODELS = {
    "gpt": {"family": "gpt", "num_layers": 1, "num_heads": 2, "hidden_dim": 16,
            "intermediate_dim": 32, "max_sequence_length": 32},
    "lstm": {"family": "lstm", "embedding_dim": 8, "hidden_dim": 16},
}
# The GPT's buffer is exactly its context: 20 prompt + 12 new tokens = 32.
EXPORTS = {"gpt": {"max_new_tokens": 12, "max_prompt_tokens": 20},
           "lstm": {"max_new_tokens": 64}}
SAMPLE_PROMPTS = ["", "ta"]


def build_run(run_dir, family):
    """Writes a run directory holding an untrained `family` model."""
    # Seed before the tokenizer exists: reseeding TensorFlow invalidates the
    # SentencePiece resources of tokenizers created earlier in the process.
    keras.utils.set_random_seed(0)
    config = validate(
        {
            "model": MODELS[family],
            "tokenizer": {"kind": "char"},
            "data": {"sequence_length": 16},
            "train": {"sample_prompts": SAMPLE_PROMPTS, "sample_max_new_tokens": 8},
            "export": {"name": f"tiny_{family}", **EXPORTS[family]},
        },
        name=f"tiny_{family}",
    )
    write_yaml_atomic(config, os.path.join(run_dir, run_files.CONFIG))
    train_sentencepiece(texts=default_corpus().documents(50, seed=0), model_type="char",
                        output_dir=run_dir)
    model = families.build_model(config["model"], load_tokenizer(run_dir))
    run_files.save_atomically(model.save, os.path.join(run_dir, run_files.MODEL))
    return str(run_dir)


@pytest.fixture(scope="session")
def make_run(tmp_path_factory):
    return lambda family: build_run(tmp_path_factory.mktemp(f"{family}_run"), family)


@pytest.fixture(scope="session")
def kzoo_cli():
    """Runs `python -m kzoo.cli ARGS`; returns the CompletedProcess."""

    def run(*args):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        return subprocess.run([sys.executable, "-m", "kzoo.cli", *args],
                              capture_output=True, text=True, env=env)

    return run


# --- Every family, for the serving fuzz tests and benchmarks/fuzz_serving.py -------

# Seq2seq/T5 and BERT runs are built by hand like `build_run`: a tokenizer of the
# built-in data, an untrained model and a `config.yaml` naming the family.
SEQ2SEQ_MODEL = dict(num_layers=1, num_heads=2, hidden_dim=16, intermediate_dim=32,
                     dropout=0.0, max_sequence_length=64)
SEQ2SEQ_EXPORT = {"max_new_tokens": 10, "max_prompt_tokens": 24}
BERT_MODEL = dict(num_layers=1, num_heads=2, hidden_dim=16, intermediate_dim=32,
                  max_sequence_length=32)
BERT_DATA = {"sequence_length": 32, "max_query_tokens": 8, "doc_stride": 8,
             "max_answer_tokens": 4}
BERT_TAGS = ["O", "B-NP", "I-NP"]
BERT_TOP_K = 3


def build_seq2seq_run(run_dir, family, kernel_scale=1.0):
    """Writes a run directory holding an untrained `family` ("seq2seq"/"t5") model
    (the seq2seq model's kernels multiplied by `kernel_scale`)."""
    from kzoo.data.builtin_translation import translation_pairs
    from kzoo.models import Seq2SeqBackbone, Seq2SeqLM, T5Backbone

    keras.utils.set_random_seed(0)
    pairs = translation_pairs(200)
    train_sentencepiece(texts=[text for pair in pairs for text in pair], model_type="char",
                        output_dir=run_dir)
    tokenizer = load_tokenizer(run_dir)
    size = tokenizer.vocabulary_size
    if family == "t5":  # T5 starts decoding with <pad>.
        model = Seq2SeqLM(T5Backbone(size, **SEQ2SEQ_MODEL), tokenizer=tokenizer,
                          start_token_id=0)
    else:
        model = Seq2SeqLM(Seq2SeqBackbone(size, **SEQ2SEQ_MODEL), tokenizer=tokenizer)
        for weight in model.weights:
            if "kernel" in weight.path:
                weight.assign(weight * kernel_scale)
    config = {"model": {"family": family, **SEQ2SEQ_MODEL}, "tokenizer": {"kind": "char"},
              "data": {"train": "builtin"},
              "export": {"name": f"tiny_{family}", **SEQ2SEQ_EXPORT}}
    write_yaml_atomic(config, os.path.join(run_dir, run_files.CONFIG))
    run_files.save_atomically(model.save, os.path.join(run_dir, run_files.MODEL))
    return str(run_dir)


def bert_models(run_dir):
    """Writes a WordPiece vocabulary into `run_dir` (letters, punctuation and some
    words of the built-in tasks: training one takes seconds); returns its tokenizer
    and an untrained model per BERT task (`classify` is a text-pair classifier),
    on one encoder."""
    from kzoo.data import builtin_tasks
    from kzoo.models import (BertBackbone, BertClassifier, BertPretrainer,
                             BertQuestionAnswerer, BertTokenClassifier)
    from kzoo.tokenizers.wordpiece_trainer import SPECIAL_TOKENS, write_vocabulary

    keras.utils.set_random_seed(0)
    characters = list("abcdefghijklmnopqrstuvwxyz0123456789.,;:!?'-")
    words = {w.strip(".,?").lower() for e in builtin_tasks.qa_examples(20)
             for w in (e["question"] + " " + e["context"]).split()}
    write_vocabulary(run_dir, [*SPECIAL_TOKENS, *characters,
                               *("##" + c for c in characters), *sorted(words - {""})],
                     lowercase=True)
    tokenizer = load_tokenizer(run_dir)
    backbone = BertBackbone(tokenizer.vocabulary_size, dropout=0.0, **BERT_MODEL)
    return tokenizer, {
        "classify": BertClassifier(backbone, labels=["next", "random"],
                                   tokenizer=tokenizer),
        "tag": BertTokenClassifier(backbone, labels=BERT_TAGS, tokenizer=tokenizer),
        "qa": BertQuestionAnswerer(backbone, tokenizer=tokenizer),
        "pretrain": BertPretrainer(backbone, tokenizer=tokenizer),
    }


def build_bert_run(run_dir, task):
    """Writes a run directory holding an untrained BERT `task` model."""
    tokenizer, models = bert_models(run_dir)
    config = validate({
        "model": {"family": "bert", "task": task, **BERT_MODEL},
        "tokenizer": {"kind": "wordpiece", "vocab_size": tokenizer.vocabulary_size},
        "data": {"train": "builtin", "builtin_task": "next_sentence", **BERT_DATA},
        "export": {"name": f"tiny_bert_{task}", "top_k": BERT_TOP_K},
    }, name=f"tiny_bert_{task}")
    write_yaml_atomic(config, os.path.join(run_dir, run_files.CONFIG))
    run_files.save_atomically(models[task].save, os.path.join(run_dir, run_files.MODEL))
    return str(run_dir)


def build_bert_export(directory, tasks=("classify", "tag", "qa", "pretrain")):
    """One SavedModel serving the BERT signatures of `tasks` (classify on text
    pairs, tag, answer, fill_mask; embed with pretrain) from untrained task models
    sharing an encoder: the signature functions `kzoo export` writes for each task,
    for the price of one export. Returns its path."""
    from kzoo.export.bert_signatures import BertSignatures

    run_dir = os.path.join(directory, "bert_run")
    os.makedirs(run_dir, exist_ok=True)
    tokenizer, models = bert_models(run_dir)
    archive = keras.export.ExportArchive()
    archive.track(tokenizer)
    for task in tasks:
        signatures = BertSignatures(models[task], tokenizer, BERT_DATA, top_k=BERT_TOP_K,
                                    pairs=task == "classify")
        archive.track(models[task])
        for name, specs in signatures.input_specs().items():
            if name != "embed" or task == "pretrain":
                archive.add_endpoint(name, getattr(signatures, name), list(specs.values()))
    path = os.path.join(directory, "saved_models", "tiny_bert", "1")
    archive.write_out(path, verbose=False)
    return path


def build_export(directory, family, assets=True):
    """Builds and exports a tiny `family` run under `directory`; returns the version
    directory. `family`: gpt, lstm, seq2seq, t5, bert_TASK (classify, tag, qa,
    pretrain), or bert / bert_pairs (`build_bert_export`, no assets: every BERT
    task / the text-pair ones, classify and qa).
    `assets=False` skips assets.extra: its Keras reference outputs take as long as
    the SavedModel itself."""
    from unittest import mock

    from kzoo.export import bert_export, export_run, saved_model, seq2seq_export

    if family == "bert":
        return build_bert_export(directory)
    if family == "bert_pairs":
        return build_bert_export(directory, tasks=("classify", "qa"))
    run_dir = os.path.join(directory, f"{family}_run")
    os.makedirs(run_dir, exist_ok=True)
    if family in MODELS:
        build_run(run_dir, family)
    elif family.startswith("bert_"):
        build_bert_run(run_dir, family[len("bert_"):])
    else:
        build_seq2seq_run(run_dir, family)
    out_dir = os.path.join(directory, "saved_models")
    if assets:
        return export_run(run_dir, out_dir=out_dir)
    skip = lambda *args, **kwargs: None
    with mock.patch.object(saved_model, "_write_assets_extra", skip), \
            mock.patch.object(saved_model, "_write_export_info", skip), \
            mock.patch.object(bert_export, "write_bert_assets", skip), \
            mock.patch.object(seq2seq_export, "write_seq2seq_assets", skip):
        return export_run(run_dir, out_dir=out_dir)


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory):
    """`tiny_export(family)`: a `TinyExport` of `build_export(family)` without
    assets.extra, built and loaded once per session."""
    cache = {}

    def get(family):
        if family not in cache:
            path = build_export(str(tmp_path_factory.mktemp(family)), family, assets=False)
            cache[family] = TinyExport.load(family, path)
        return cache[family]

    return get


# --- Serving fuzz: requests, the policy's verdict, output checks -------------------
# Shared by tests/export/test_serving_fuzz.py and benchmarks/fuzz_serving.py; the
# policy itself is documented in kzoo/export/input_policy.py.

MAX_NEW_TOKENS = {"gpt": EXPORTS["gpt"]["max_new_tokens"],
                  "lstm": EXPORTS["lstm"]["max_new_tokens"],
                  "seq2seq": SEQ2SEQ_EXPORT["max_new_tokens"],
                  "t5": SEQ2SEQ_EXPORT["max_new_tokens"]}
# The input that sets the batch size, and those that must come one per row of it.
PRIMARY = ("prompts", "texts", "sources", "questions", "token_ids", "source_ids")
PAIRED = ("text_pairs", "targets", "contexts", "prompt_lengths")
SHARED_OPTIONS = ("strategy", "temperature", "top_k", "top_p", "seed", "length_penalty")
FLOAT_OPTIONS = ("temperature", "top_p", "length_penalty")
STRATEGIES = ("greedy", "sample", "beam")
INT32 = (-2**31, 2**31 - 1)


class TinyExport:
    """A loaded tiny export: its `signatures`, and what requests to it depend on."""

    def __init__(self, family, path, loaded, vocabulary_size, max_new_tokens):
        self.family, self.path = family, path
        self.loaded = loaded  # owns the resources (variables, tokenizer) of signatures
        self.signatures = loaded.signatures
        self.vocabulary_size, self.max_new_tokens = vocabulary_size, max_new_tokens

    @classmethod
    def load(cls, family, path):
        import tensorflow as tf

        directory = os.path.dirname(os.path.dirname(os.path.dirname(path)))
        shared = family in ("bert", "bert_pairs")
        run_dir = os.path.join(directory, "bert_run" if shared else f"{family}_run")
        return cls(family, path, tf.saved_model.load(path),
                   int(load_tokenizer(run_dir).vocabulary_size),
                   MAX_NEW_TOKENS.get(family))

    def specs(self, name):
        return self.signatures[name].structured_input_signature[1]


FAULTS = ("rows", "count", "unequal", "value", "ids", "lengths")


def draw_request(draw, export, name):
    """Inputs (Python lists) for signature `name`, drawn with hypothesis's `draw`:
    any text or bytes (invalid UTF-8, NUL, empty, too long), 0 to 3 rows, and up
    to two faults (hypothesis favours none): a paired input with another number of
    rows, an option with a wrong count or unequal shared values, options from the
    whole float range (NaN, inf) or an unknown strategy, bad ids or lengths."""
    from hypothesis import strategies as st

    specs = export.specs(name)
    vocabulary = export.vocabulary_size
    faults = draw(st.sets(st.sampled_from(FAULTS), max_size=2))
    batch = draw(st.integers(0, 3))
    text = st.one_of(
        st.text(max_size=40),
        st.text(alphabet="tamolnrikv ,.", min_size=150, max_size=300),  # too long
        st.binary(max_size=40),  # invalid UTF-8, NUL bytes
        st.sampled_from(["", " ", " \t\n ", "\x00", "[MASK]", "ta [MASK] mo [MASK]"]),
    ).map(lambda t: t.encode("utf-8") if isinstance(t, str) else t)
    number = lambda low, high: st.one_of(st.integers(low, high), st.integers(*INT32))
    real = st.one_of(st.floats(-2, 2, width=32), st.sampled_from([0.0, 1.0, 1e-30, 1e30]))
    strategy = st.sampled_from(STRATEGIES)
    if "value" in faults:
        real = st.one_of(real, st.floats(width=32))  # NaN, inf
        strategy = st.sampled_from(STRATEGIES + ("nucleus", ""))
    option = {"max_new_tokens": number(-2, (export.max_new_tokens or 8) + 2),
              "temperature": real, "top_p": real, "length_penalty": real,
              "top_k": number(-2, vocabulary + 2), "seed": st.integers(*INT32),
              "strategy": strategy}
    options = [k for k in specs if k in option]
    miscounted = draw(st.sampled_from(options)) if options and "count" in faults else None
    shared = [k for k in options if k in SHARED_OPTIONS]
    unequal = draw(st.sampled_from(shared)) if shared and "unequal" in faults else None
    paired = [k for k in specs if k in PAIRED]
    misrowed = draw(st.sampled_from(paired)) if paired and "rows" in faults else None
    rows = lambda key: (draw(st.integers(0, 4).filter(lambda n: n != batch))
                        if key == misrowed else batch)

    inputs = {}
    for key in sorted(specs, key=lambda k: k == "prompt_lengths"):  # after token_ids
        if key in option:
            count = draw(st.sampled_from([1, batch]))
            if key == miscounted:
                count = draw(st.integers(0, 4).filter(lambda n: n not in (1, batch)))
            if key == unequal and count > 1:
                inputs[key] = [draw(option[key]) for _ in range(count)]
            else:
                inputs[key] = [draw(option[key])] * count
        elif key in ("token_ids", "source_ids"):
            width = draw(st.integers(1, 6)) if "ids" not in faults else draw(
                st.integers(0, 6))
            low = 1 if key == "source_ids" else 0
            inputs[key] = [[draw(st.integers(low, vocabulary - 1)) for _ in range(width)]
                           for _ in range(batch)]
            if batch and width and "ids" in faults:  # 0s from a column, maybe a bad id
                row = inputs[key][draw(st.integers(0, batch - 1))]
                column = draw(st.integers(0, width - 1))
                row[column:] = [0] * (width - column)
                row[column] = draw(st.sampled_from([0, -1, vocabulary, INT32[1]]))
            inputs[key + "_width"] = width
        elif key == "prompt_lengths":
            width = inputs["token_ids_width"]
            lengths = (st.integers(-1, width + 1) if "lengths" in faults
                       else st.integers(1, max(width, 1)))
            inputs[key] = [draw(lengths) for _ in range(rows(key))]
        else:
            inputs[key] = [draw(text) for _ in range(rows(key))]
    return inputs


def call(served, signature, **inputs):
    """Calls `served.signatures[signature]` with lists/arrays cast to its input
    dtypes; returns NumPy outputs."""
    import tensorflow as tf

    fn = served.signatures[signature]
    specs = fn.structured_input_signature[1]
    outputs = fn(**{k: tf.constant(v, specs[k].dtype) for k, v in inputs.items()})
    return {k: v.numpy() for k, v in outputs.items()}


def strings(values):
    """A string output as a list of `str`."""
    import numpy as np

    return [v.decode("utf-8") for v in np.asarray(values).ravel().tolist()]


def call_signature(export, name, inputs):
    """Calls signature `name` with `draw_request`'s inputs; returns NumPy outputs."""
    import numpy as np
    import tensorflow as tf

    specs = export.specs(name)
    tensors = {}
    for key, spec in specs.items():
        value = inputs[key]
        if spec.shape.rank == 2:
            value = np.array(value, "int64").reshape(len(value), inputs[key + "_width"])
            value = np.clip(value, *INT32)
        tensors[key] = tf.constant(value, spec.dtype)
    return {k: v.numpy() for k, v in export.signatures[name](**tensors).items()}


def invalid_inputs(export, name, inputs):
    """The inputs that make the request an InvalidArgument under
    kzoo/export/input_policy.py (empty: it must succeed)."""
    import math

    specs = export.specs(name)
    batch = len(next(inputs[k] for k in PRIMARY if k in specs))
    bad = {k for k in PAIRED if k in specs and len(inputs[k]) != batch}
    if "max_new_tokens" in specs and len(inputs["max_new_tokens"]) not in (1, batch):
        bad.add("max_new_tokens")
    for key in SHARED_OPTIONS:
        values = inputs.get(key) if key in specs else None
        if values is None:
            continue
        if key in FLOAT_OPTIONS and not all(math.isfinite(v) for v in values):
            bad.add(key)
        elif len(values) not in (1, batch) or len(set(values)) > 1:
            bad.add(key)
        elif key == "strategy" and values and values[0] not in STRATEGIES:
            bad.add(key)
    vocabulary = range(export.vocabulary_size)
    if "token_ids" in specs and "prompt_lengths" not in bad:
        width = inputs["token_ids_width"]
        if any(not 1 <= n <= width for n in inputs["prompt_lengths"]):
            bad.add("prompt_lengths")
        elif any(t not in vocabulary for row, n in zip(inputs["token_ids"],
                                                        inputs["prompt_lengths"])
                 for t in row[:n]):
            bad.add("token_ids")
    if "source_ids" in specs:
        for row in inputs["source_ids"]:
            used = row[: max([i + 1 for i, t in enumerate(row) if t] or [0])]
            if not used or any(t not in vocabulary for t in used):
                bad.add("source_ids")
    return bad


def check_outputs(export, name, inputs, outputs):
    """Asserts the outputs of a successful call: one row per input row, the
    declared dtypes, finite floats, valid UTF-8 strings, and the documented bounds."""
    import numpy as np

    specs = export.specs(name)
    batch = len(next(inputs[k] for k in PRIMARY if k in specs))
    declared = export.signatures[name].structured_outputs
    assert set(outputs) == set(declared), name
    for key, value in outputs.items():
        assert value.dtype == declared[key].dtype.as_numpy_dtype, (name, key, value.dtype)
        assert value.shape[0] == batch, (name, key, value.shape, batch)
        if value.dtype.kind == "f":
            assert np.isfinite(value).all(), (name, key, value)
        if value.dtype == object:
            for item in value.ravel():
                item.decode("utf-8")  # string outputs are valid UTF-8
    if "max_new_tokens" in specs and batch:
        cap = np.clip(np.broadcast_to(inputs["max_new_tokens"], [batch]), 1,
                      export.max_new_tokens)
        made = outputs.get("token_count", outputs.get("num_tokens"))
        if "generated_mask" in outputs:
            made = outputs["generated_mask"].sum(axis=1)
        assert (0 <= made).all() and (made <= cap).all(), (name, made, cap)
    if "log_likelihood" in outputs:
        assert (outputs["log_likelihood"] <= 1e-4).all(), outputs["log_likelihood"]
    if "probabilities" in outputs and batch:
        np.testing.assert_allclose(outputs["probabilities"].sum(axis=1), 1.0, rtol=1e-5)
    if "start_byte" in outputs:
        assert (0 <= outputs["start_byte"]).all()
        assert (outputs["start_byte"] <= outputs["end_byte"]).all()
    if "scores" in outputs:
        assert ((0 <= outputs["scores"]) & (outputs["scores"] <= 1)).all()


def fuzz_once(export, name, inputs):
    """One fuzz case: "ok" or "invalid" when the signature answered as the policy
    says, else raises AssertionError (or the unexpected exception)."""
    import tensorflow as tf

    bad = invalid_inputs(export, name, inputs)
    try:
        outputs = call_signature(export, name, inputs)
    except tf.errors.InvalidArgumentError as error:
        message = error.message
        assert bad, f"{name}: a valid request was rejected: {message[:500]}"
        assert any(f"{key}:" in message for key in bad), (
            f"{name}: the error names none of {sorted(bad)}: {message[:500]}")
        return "invalid"
    assert not bad, f"{name}: accepted although {sorted(bad)} are invalid"
    check_outputs(export, name, inputs, outputs)
    return "ok"
