"""`kzoo import`: a pretrained checkpoint directory becomes an ordinary run directory.

SOURCE is a local directory (nothing is downloaded), in either layout:

- **Hugging Face**: `config.json` with a `model_type` (`gpt2`, `bert`, `t5`),
  `model.safetensors` or a sharded `model.safetensors.index.json`, and tokenizer
  files (`tokenizer.json`, `vocab.json` + `merges.txt`, `vocab.txt`,
  `spiece.model`). Weights go through `kzoo.models.hf_checkpoints` (one tensor at
  a time), the tokenizer through `kzoo.tokenizers.hf_tokenizer_files`.
- **KerasHub preset**: `metadata.json`, `config.json` naming a KerasHub backbone
  class, `model.weights.h5` and `assets/tokenizer/`. The backbone is loaded with
  KerasHub and converted (`kzoo.convert.from_keras_hub`).

The run directory gets what a finished training run has: the tokenizer files,
`model.keras` (the task model with its preprocessor: GPT-2 a `GPTCausalLM`, BERT
a `BertPretrainer`, T5 a `Seq2SeqLM`), a `config.yaml` recipe describing it (the
checkpoint's shapes), and `summary.json` (written last: the run is finished)
saying where it came from and which heads started fresh. So `kzoo evaluate`,
`generate`, `export` and `check-serving` take it, and fine-tuning recipes take it
as `train.init_from`. The directory is written all at once: an error leaves
nothing behind, and an existing run is never overwritten.
"""

import json
import os
import resource
import time

from kzoo import staged_files
from kzoo.training.run_directory import RunDirectory

# Hugging Face `model_type` -> the run's `model.family`, `model.task`, `tokenizer.kind`.
RUN_KINDS = {
    "gpt2": ("gpt", None, "byte_bpe"),
    "bert": ("bert", "pretrain", "wordpiece"),
    "t5": ("t5", "pretrain", "unigram"),
    # Llama-2 and Mistral: SentencePiece BPE; Llama-3 and Qwen2: byte-level BPE.
    "llama": ("llama", None, "bpe"),
    "mistral": ("llama", None, "bpe"),
    "qwen2": ("llama", None, "byte_bpe"),
}
# KerasHub backbone class -> Hugging Face `model_type`.
KERAS_HUB_BACKBONES = {"GPT2Backbone": "gpt2", "BertBackbone": "bert", "T5Backbone": "t5"}


def checkpoint_format(source):
    """`"huggingface"` or `"keras_hub"`, from the files in `source`.

    Raises:
        FileNotFoundError: `source` is not a directory, or holds neither layout
            (the message lists the files each needs).
    """
    if not os.path.isdir(source):
        raise FileNotFoundError(f"{source}: no such checkpoint directory")
    if os.path.isfile(os.path.join(source, "metadata.json")):
        return "keras_hub"
    if os.path.isfile(os.path.join(source, "config.json")):
        return "huggingface"
    raise FileNotFoundError(
        f"{source}: neither a Hugging Face checkpoint (config.json, model.safetensors) "
        "nor a KerasHub preset (metadata.json, config.json, model.weights.h5)"
    )


def import_checkpoint(source, run_dir, dtype=None):
    """Writes the run directory `run_dir` from the checkpoint directory `source`.

    Args:
        source: A Hugging Face checkpoint or KerasHub preset directory.
        run_dir: The run directory to create; it must not exist or be empty.
        dtype: Optional Keras dtype policy of the model (default float32).

    Returns:
        The run's `summary.json` content: `imported_from`, `format`,
        `model_type`, `parameters`, `fresh` (weights the checkpoint lacked, started
        fresh), `unused` (checkpoint tensors kzoo does not use), `seconds`,
        `peak_rss_mib`, and on Linux `anonymous_rss_mib` (`before`/`after` the
        import: the memory the process owns) and `file_rss_mib` (mapped pages of
        the checkpoint's files, shared with the page cache).

    Raises:
        FileNotFoundError, ValueError: A missing file, tensor, shard, or an
            unsupported `model_type`; each message names it.
        FileExistsError: `run_dir` already holds something.
    """
    import kzoo.models  # noqa: F401  (Keras and its backend: before measuring memory)

    start, memory_before = time.perf_counter(), _memory_mib()
    if os.path.isdir(run_dir) and os.listdir(run_dir):
        raise FileExistsError(
            f"{run_dir}: already exists and is not empty; give a new --run-dir "
            "(an import never overwrites a run)"
        )
    kind = checkpoint_format(source)
    load = _load_huggingface if kind == "huggingface" else _load_keras_hub
    model, tokenizer, model_type, report = load(source, dtype)
    config = imported_config(model_type, model, tokenizer)
    from kzoo.training.tasks.registry import task_for

    model.preprocessor = task_for(config).make_preprocessor(tokenizer)
    summary = {
        "imported_from": os.path.abspath(source),
        "format": kind,
        "model_type": model_type,
        "parameters": int(model.count_params()),
        "fresh": list(report.get("fresh", [])),
        "unused": list(report.get("unused", [])),
        "seconds": round(time.perf_counter() - start, 2),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    memory = _memory_mib()
    if memory and memory_before:  # Linux: what the process owns vs mapped file pages.
        summary["anonymous_rss_mib"] = {
            "before": memory_before["RssAnon"],
            "after": memory["RssAnon"],
        }
        summary["file_rss_mib"] = memory["RssFile"]

    def fill(tmp):
        run = RunDirectory(tmp)
        tokenizer.save(tmp)
        run.write_config(config)
        run.save_model(model)
        run.write_summary(summary)

    staged_files.atomic_directory(run_dir, fill)
    return summary


def imported_config(model_type, model, tokenizer):
    """The validated recipe config of an imported model: its family, task and
    tokenizer kind, the schema's `model` keys from the backbone's config, and
    lengths that fit its context."""
    from kzoo.training.recipe import validate
    from kzoo.training.tasks.registry import model_schema

    family, task, tokenizer_kind = RUN_KINDS[model_type]
    if type(tokenizer).__name__ == "BytePairTokenizer":  # Llama-3 is model_type llama.
        tokenizer_kind = "byte_bpe"
    backbone = model.backbone.get_config()
    keys = model_schema({"family": family})
    section = {k: backbone[k] for k in keys if k in backbone and k != "family"}
    section.update(family=family, **({"task": task} if task else {}))
    context = backbone.get("max_sequence_length")
    data = {"batch_size": 8}  # Real checkpoints' contexts are long: small batches.
    raw = {
        "model": section,
        "tokenizer": {"kind": tokenizer_kind, "vocab_size": int(tokenizer.vocabulary_size)},
        "data": data,
    }
    if family in ("gpt", "llama"):
        data["sequence_length"] = min(context, 1024)
        new_tokens = min(64, context // 4)
        raw["export"] = {"max_new_tokens": new_tokens, "max_prompt_tokens": context - new_tokens}
        raw["train"] = {"sample_max_new_tokens": new_tokens}
    elif family == "bert":
        data["sequence_length"] = min(context, 512)
        raw["tokenizer"]["lowercase"] = bool(getattr(tokenizer, "lowercase", True))
    return validate(raw)


def _memory_mib():
    """`{"RssAnon": MiB, "RssFile": MiB}` of this process (Linux), else `{}`.

    Loading maps the checkpoint's files: their pages count in RSS as file pages
    (shared with the page cache, dropped under memory pressure), not as memory
    the process owns; `RssAnon` is the model's own copy."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
        return {key: int(fields[key].split()[0]) // 1024 for key in ("RssAnon", "RssFile")}
    except (OSError, KeyError, ValueError):
        return {}


def _load_huggingface(source, dtype):
    from kzoo.models.hf_checkpoints import load_hf_checkpoint
    from kzoo.tokenizers.hf_tokenizer_files import load_hf_tokenizer

    with open(os.path.join(source, "config.json"), encoding="utf-8") as f:
        model_type = json.load(f).get("model_type")
    tokenizer = load_hf_tokenizer(source)
    model, report = load_hf_checkpoint(source, dtype=dtype)
    if model_type not in RUN_KINDS:  # load_hf_checkpoint refuses it first.
        raise ValueError(f"{source}/config.json: model_type {model_type!r} is not supported")
    _check_vocabulary(source, model, tokenizer)
    return model, tokenizer, model_type, {"fresh": report.fresh, "unused": report.unused}


def _load_keras_hub(source, dtype):
    import keras_hub

    from kzoo.convert import from_keras_hub
    from kzoo.tokenizers.hf_tokenizer_files import load_keras_hub_tokenizer

    with open(os.path.join(source, "config.json"), encoding="utf-8") as f:
        class_name = json.load(f).get("class_name")
    if class_name not in KERAS_HUB_BACKBONES:
        raise ValueError(
            f"{source}/config.json: KerasHub backbone {class_name!r} is not supported; "
            f"supported: {', '.join(sorted(KERAS_HUB_BACKBONES))}"
        )
    model_type = KERAS_HUB_BACKBONES[class_name]
    tokenizer = load_keras_hub_tokenizer(source)
    hub = keras_hub.models.Backbone.from_preset(source, dtype=dtype)
    backbone = from_keras_hub(hub)
    del hub
    model = _task_model(model_type, backbone, tokenizer)
    _check_vocabulary(source, model, tokenizer)
    return model, tokenizer, model_type, {"fresh": _fresh_heads(model_type), "unused": []}


def _task_model(model_type, backbone, tokenizer):
    from kzoo.models import BertPretrainer, GPTCausalLM, Seq2SeqLM

    if model_type == "gpt2":
        return GPTCausalLM(backbone, end_token_id=int(tokenizer.eos_id))
    if model_type == "bert":
        return BertPretrainer(backbone)
    return Seq2SeqLM(
        backbone, start_token_id=int(tokenizer.pad_id), end_token_id=int(tokenizer.eos_id)
    )


def _fresh_heads(model_type):
    """KerasHub presets hold backbones only: BERT's pretraining heads start fresh."""
    return ["masked-LM head", "next-sentence head"] if model_type == "bert" else []


def _check_vocabulary(source, model, tokenizer):
    """The embedding must have a row for every token id (padded rows are fine)."""
    rows = int(model.backbone.vocabulary_size)
    if tokenizer.vocabulary_size > rows:
        raise ValueError(
            f"{source}: the tokenizer has {tokenizer.vocabulary_size} tokens but the "
            f"embedding only {rows} rows; the tokenizer files do not belong to these weights"
        )
