"""Tiny runs and exports of every family for the export tests and
benchmarks/fuzz_serving.py: random weights, a char (or small WordPiece) vocabulary.

Building a run directly (no training) takes a second; an export only needs
`config.yaml`, the vocabulary and `model.keras` in the run layout.
"""

import os

import keras

from kzoo.data.builtin_corpus import default_corpus
from kzoo.tokenizers import load_tokenizer, train_sentencepiece
from kzoo.training.recipe import validate
from kzoo.training.run_directory import RunDirectory
from kzoo.training.tasks.registry import task_for

MODELS = {
    "gpt": {
        "family": "gpt",
        "num_layers": 1,
        "num_heads": 2,
        "hidden_dim": 16,
        "intermediate_dim": 32,
        "max_sequence_length": 32,
    },
    # Grouped heads (4 on 2) and a sliding window shorter than the prompts.
    "llama": {
        "family": "llama",
        "num_layers": 1,
        "num_heads": 4,
        "num_key_value_heads": 2,
        "hidden_dim": 16,
        "intermediate_dim": 32,
        "sliding_window": 8,
        "max_sequence_length": 32,
    },
    "lstm": {"family": "lstm", "embedding_dim": 8, "hidden_dim": 16},
}
# The GPT's buffer is exactly its context: 20 prompt + 12 new tokens = 32.
EXPORTS = {
    "gpt": {"max_new_tokens": 12, "max_prompt_tokens": 20},
    "llama": {"max_new_tokens": 12, "max_prompt_tokens": 20},
    "lstm": {"max_new_tokens": 64},
}
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
    write_untrained_run(run_dir, config)
    return str(run_dir)


def write_untrained_run(run_dir, config):
    """Writes the validated `config`, a char tokenizer of built-in text and an
    untrained model of the config's task into `run_dir`; returns the model.
    Seed first (`build_run`)."""
    run = RunDirectory(run_dir)
    run.write_config(config)
    train_sentencepiece(
        texts=default_corpus().documents(50, seed=0), model_type="char", output_dir=run_dir
    )
    model = task_for(config).build_model(load_tokenizer(run_dir))
    run.save_model(model)
    return model


# --- Every family, for the serving fuzz tests and benchmarks/fuzz_serving.py -------

# Seq2seq/T5 and BERT runs are built by hand like `build_run`: a tokenizer of the
# built-in data, an untrained model and a `config.yaml` naming the family.
SEQ2SEQ_MODEL = dict(
    num_layers=1,
    num_heads=2,
    hidden_dim=16,
    intermediate_dim=32,
    dropout=0.0,
    max_sequence_length=64,
)
SEQ2SEQ_EXPORT = {"max_new_tokens": 10, "max_prompt_tokens": 24}
BERT_MODEL = dict(
    num_layers=1, num_heads=2, hidden_dim=16, intermediate_dim=32, max_sequence_length=32
)
BERT_DATA = {"sequence_length": 32, "max_query_tokens": 8, "doc_stride": 8, "max_answer_tokens": 4}
BERT_TAGS = ["O", "B-NP", "I-NP"]
BERT_TOP_K = 3


def build_seq2seq_run(run_dir, family, kernel_scale=1.0):
    """Writes a run directory holding an untrained `family` ("seq2seq"/"t5") model
    (the seq2seq model's kernels multiplied by `kernel_scale`)."""
    from kzoo.data.builtin_translation import translation_pairs
    from kzoo.models import Seq2SeqBackbone, Seq2SeqLM, T5Backbone
    from kzoo.preprocessing import Seq2SeqPreprocessor

    keras.utils.set_random_seed(0)
    pairs = translation_pairs(200)
    train_sentencepiece(
        texts=[text for pair in pairs for text in pair], model_type="char", output_dir=run_dir
    )
    tokenizer = load_tokenizer(run_dir)
    size = tokenizer.vocabulary_size
    length = SEQ2SEQ_MODEL["max_sequence_length"]
    if family == "t5":  # T5 starts decoding with <pad>.
        preprocessor = Seq2SeqPreprocessor(tokenizer, length, length, start_token_id=0)
        model = Seq2SeqLM(T5Backbone(size, **SEQ2SEQ_MODEL), preprocessor=preprocessor)
    else:
        preprocessor = Seq2SeqPreprocessor(tokenizer, length, length)
        model = Seq2SeqLM(Seq2SeqBackbone(size, **SEQ2SEQ_MODEL), preprocessor=preprocessor)
        for weight in model.weights:
            if "kernel" in weight.path:
                weight.assign(weight * kernel_scale)
    config = {
        "model": {"family": family, **SEQ2SEQ_MODEL},
        "tokenizer": {"kind": "char"},
        "data": {"train": "builtin"},
        "export": {"name": f"tiny_{family}", **SEQ2SEQ_EXPORT},
    }
    RunDirectory(run_dir).write_config(config)
    RunDirectory(run_dir).save_model(model)
    return str(run_dir)


def bert_models(run_dir):
    """Writes a WordPiece vocabulary into `run_dir` (letters, punctuation and some
    words of the built-in tasks: training one takes seconds); returns its tokenizer
    and an untrained model per BERT task (`classify` is a text-pair classifier),
    on one encoder."""
    from kzoo.data import builtin_tasks
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
    from kzoo.tokenizers.wordpiece_trainer import SPECIAL_TOKENS, write_vocabulary

    keras.utils.set_random_seed(0)
    characters = list("abcdefghijklmnopqrstuvwxyz0123456789.,;:!?'-")
    words = {
        w.strip(".,?").lower()
        for e in builtin_tasks.qa_examples(20)
        for w in (e["question"] + " " + e["context"]).split()
    }
    write_vocabulary(
        run_dir,
        [*SPECIAL_TOKENS, *characters, *("##" + c for c in characters), *sorted(words - {""})],
        lowercase=True,
    )
    tokenizer = load_tokenizer(run_dir)
    backbone = BertBackbone(tokenizer.vocabulary_size, dropout=0.0, **BERT_MODEL)
    length = BERT_DATA["sequence_length"]
    qa = {k: BERT_DATA[k] for k in ("max_query_tokens", "doc_stride", "max_answer_tokens")}
    return tokenizer, {
        "classify": BertClassifier(
            backbone,
            labels=["next", "random"],
            preprocessor=BertClassifierPreprocessor(tokenizer, length, pairs=True),
        ),
        "tag": BertTokenClassifier(
            backbone, labels=BERT_TAGS, preprocessor=BertTaggerPreprocessor(tokenizer, length)
        ),
        "qa": BertQuestionAnswerer(
            backbone, preprocessor=BertQuestionAnswererPreprocessor(tokenizer, length, **qa)
        ),
        "pretrain": BertPretrainer(
            backbone, preprocessor=BertMaskedLMPreprocessor(tokenizer, length)
        ),
    }


def build_bert_run(run_dir, task):
    """Writes a run directory holding an untrained BERT `task` model."""
    tokenizer, models = bert_models(run_dir)
    config = validate(
        {
            "model": {"family": "bert", "task": task, **BERT_MODEL},
            "tokenizer": {"kind": "wordpiece", "vocab_size": tokenizer.vocabulary_size},
            "data": {"train": "builtin", "builtin_task": "next_sentence", **BERT_DATA},
            "export": {"name": f"tiny_bert_{task}", "top_k": BERT_TOP_K},
        },
        name=f"tiny_bert_{task}",
    )
    RunDirectory(run_dir).write_config(config)
    RunDirectory(run_dir).save_model(models[task])
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
        signatures = BertSignatures(models[task], top_k=BERT_TOP_K)
        archive.track(models[task])
        for name, specs in signatures.input_specs().items():
            if name != "embed" or task == "pretrain":
                archive.add_endpoint(name, getattr(signatures, name), list(specs.values()))
    path = os.path.join(directory, "saved_models", "tiny_bert", "1")
    archive.write_out(path, verbose=False)
    return path


def build_export(directory, family, assets=True):
    """Builds and exports a tiny `family` run under `directory`; returns the version
    directory. `family`: gpt, llama, lstm, seq2seq, t5, bert_TASK (classify, tag, qa,
    pretrain), or bert / bert_pairs (`build_bert_export`, no assets: every BERT
    task / the text-pair ones, classify and qa).
    `assets=False` skips assets.extra: its Keras reference outputs take as long as
    the SavedModel itself."""
    from unittest import mock

    from kzoo.export import export_run, saved_model

    if family == "bert":
        return build_bert_export(directory)
    if family == "bert_pairs":
        return build_bert_export(directory, tasks=("classify", "qa"))
    run_dir = os.path.join(directory, f"{family}_run")
    os.makedirs(run_dir, exist_ok=True)
    if family in MODELS:
        build_run(run_dir, family)
    elif family.startswith("bert_"):
        build_bert_run(run_dir, family[len("bert_") :])
    else:
        build_seq2seq_run(run_dir, family)
    out_dir = os.path.join(directory, "saved_models")
    if assets:
        return export_run(run_dir, out_dir=out_dir)
    with mock.patch.object(saved_model, "write_assets_extra", lambda *args: None):
        return export_run(run_dir, out_dir=out_dir)
