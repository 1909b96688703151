"""The recipe schema: what `tokenizer`, `train`, `monitor` and `export` accept,
and the assembly of a recipe's whole schema.

Sections: `model` and `data` (their keys per family: the family's `FamilySchema`
beside its task, found by `kzoo.training.tasks.registry`; the `data` keys every
family shares in `kzoo.training.tasks.schema`), `tokenizer`, `train`, `monitor`
(what TensorBoard shows beyond losses) and `export`.

`load_recipe(path, overrides)` reads a YAML recipe, applies `--set` overrides and
returns the validated config with every default filled in, ready to be written as
the run's `config.yaml`. A validated config is read-only
(`kzoo.training.read_only_config`): a task returns what it derives
(`Task.derived_config`) rather than writing into it.

Paths (the keys whose `Field` has `path=True`: `data.train`, `data.validation`,
`train.init_from`, the seq2seq line-aligned files) are made absolute: those in a
recipe file relative to the file's folder, those of `--set` relative to the
working directory. A run's `config.yaml` stores paths inside the run directory
relative to it (`kzoo.training.run_directory.RunDirectory.write_config`).
"""

import os

import keras

from kzoo.training.config import (
    ConfigError,
    Field,
    apply_overrides,
    blame,
    in_range,
    non_negative,
    positive,
    read_yaml,
    validate_section,
)
from kzoo.training.distillation import DISTILL_SCHEMA
from kzoo.training.lora import LORA_SCHEMA
from kzoo.training.monitoring.profiling import check_profile_steps, profile_steps_problem
from kzoo.training.pruning import PRUNE_SCHEMA
from kzoo.training.read_only_config import freeze
from kzoo.training.tasks import registry
from kzoo.training.tasks.schema import BUILTIN, DATA_SCHEMA

TOKENIZER_SCHEMA = {
    "kind": Field(
        (str,),
        "bpe",
        choices=("bpe", "unigram", "char", "wordpiece", "byte_bpe"),
        doc="SentencePiece bpe/unigram/char (gpt, lstm, seq2seq, t5); wordpiece (bert); "
        "byte_bpe (GPT-2's, from an imported run)",
    ),
    "lowercase": Field((bool,), True, doc="wordpiece: lower-case and strip accents"),
    "vocab_size": Field(
        (int,), 512, positive, nullable=True, doc="ignored for char: the corpus's characters decide"
    ),
}


def precision_problem(precision):
    """`train.precision` check: JAX cannot compile float16 attention on CPU."""
    if precision != "mixed_float16" or keras.backend.backend() != "jax":
        return None
    import jax

    if jax.default_backend() != "cpu":
        return None
    return (
        "cannot train on the JAX backend on CPU: keras.ops.dot_product_attention "
        "(jax.nn.dot_product_attention) does not compile float16 there (no "
        "F16_F16_F32 dot on XLA:CPU); use 'mixed_bfloat16' or 'float32', or "
        "KERAS_BACKEND=tensorflow"
    )


TRAIN_SCHEMA = {
    "steps": Field(
        (int,),
        None,
        positive,
        nullable=True,
        doc="total optimizer steps; null: train.epochs passes over the data",
    ),
    "epochs": Field((int,), 1, positive, doc="passes over the data when steps is null"),
    "steps_per_epoch": Field(
        (int,), None, positive, nullable=True, doc="logging/validation period when steps is set"
    ),
    "max_minutes": Field(
        (float,), None, positive, nullable=True, doc="time budget: training stops cleanly and saves"
    ),
    "learning_rate": Field((float,), 1e-3, positive),
    "warmup_steps": Field((int,), 100, non_negative),
    "decay": Field((str,), "cosine", choices=("cosine", "constant")),
    "min_learning_rate": Field((float,), 1e-4, non_negative),
    "weight_decay": Field((float,), 0.1, non_negative),
    "beta_1": Field((float,), 0.9, in_range(0.0, 0.9999)),
    "beta_2": Field((float,), 0.99, in_range(0.0, 0.9999)),
    "clipnorm": Field((float,), 1.0, positive, nullable=True),
    "precision": Field(
        (str,),
        "float32",
        precision_problem,
        choices=("float32", "mixed_bfloat16", "mixed_float16"),
        doc="Keras dtype policy: mixed_* keep float32 variables and "
        "losses and compute in bfloat16 (TPUs, recent GPUs) or "
        "float16 (GPUs), slower on CPU; mixed_float16 adds "
        "dynamic loss scaling (saved in checkpoints) and is "
        "refused on JAX on CPU",
    ),
    "jit_compile": Field(
        (bool,),
        False,
        doc="compile the training and evaluation steps with XLA "
        "(any precision); on JAX false runs them op by op",
    ),
    "strategy": Field(
        (str,),
        "auto",
        choices=(
            "auto",
            "default",
            "mirrored",
            "multi_worker",
            "tpu",
            "data_parallel",
            "model_parallel",
        ),
        doc="distribution (kzoo.training.distribute): auto picks "
        "multi_worker under a TF_CONFIG of several tasks, mirrored "
        "on several GPUs (TensorFlow), data_parallel on several "
        "devices (JAX), else default; model_parallel (JAX, gpt) also "
        "splits the attention and feed-forward kernels over "
        "train.model_axis_size devices; data.batch_size is the "
        "global batch, split evenly over the replicas",
    ),
    "model_axis_size": Field(
        (int,),
        None,
        positive,
        nullable=True,
        doc="strategy model_parallel: devices each attention/feed-forward "
        "kernel is split over (the mesh's model axis; the data axis takes "
        "devices / model_axis_size); null: every device",
    ),
    "tpu": Field(
        (str,),
        "",
        doc="strategy tpu: the TPU's name or grpc:// address, 'local' on a TPU VM, '': $TPU_NAME",
    ),
    "seed": Field((int,), 0, non_negative),
    "init_from": Field(
        (str,),
        None,
        nullable=True,
        path=True,
        doc="a pretraining run directory whose encoder and tokenizer a fine-tuning run starts from",
    ),
    "lora": Field(
        (dict,),
        None,
        nullable=True,
        schema=LORA_SCHEMA,
        doc="LoRA: {rank, alpha, targets}; the backbone is frozen and only the "
        "adapters (and task heads) train; needs train.init_from",
    ),
    "adapters_from": Field(
        (str,),
        None,
        nullable=True,
        path=True,
        doc="a `kzoo export --lora-only` directory whose adapters train.lora starts from",
    ),
    "distill_from": Field(
        (str,),
        None,
        nullable=True,
        path=True,
        doc="a trained run of the same task (the teacher) whose temperature-softened "
        "outputs the model learns from as well as the labels; its tokenizer is used",
    ),
    "distill": Field(
        (dict,),
        {key: field.default for key, field in DISTILL_SCHEMA.items()},
        schema=DISTILL_SCHEMA,
        doc="with train.distill_from: {temperature, alpha}; loss = alpha * task loss "
        "+ (1 - alpha) * T^2 * KL(teacher || student) at temperature T",
    ),
    "prune": Field(
        (dict,),
        None,
        nullable=True,
        schema=PRUNE_SCHEMA,
        doc="magnitude pruning: {target_sparsity, begin_step, end_step, frequency}; "
        "the dense kernels' smallest weights are zeroed on a polynomial schedule",
    ),
    "validation_steps": Field((int,), None, positive, nullable=True),
    "log_every": Field((int,), 50, positive, doc="steps between step-level scalars"),
    "checkpoint_every": Field(
        (int,),
        500,
        positive,
        nullable=True,
        doc="steps between resumable checkpoints (also written "
        "at every epoch end and on SIGTERM/SIGINT); null: "
        "epoch ends only",
    ),
    "deterministic": Field(
        (bool,),
        False,
        doc="TensorFlow op determinism: bit-identical reruns and resumes, somewhat slower",
    ),
    "sample_prompts": Field((list,), [""], doc="prompts for TensorBoard text samples"),
    "sample_max_new_tokens": Field((int,), 48, positive),
}

MONITOR_SCHEMA = {
    "graph": Field((bool,), True, doc="the traced forward pass's op graph (TensorFlow)"),
    "projector": Field(
        (bool,),
        True,
        doc="token embeddings for TensorBoard's projector, with "
        "token metadata, at the end of every epoch",
    ),
    "attention_maps": Field(
        (bool,), True, doc="attention heatmaps of a fixed probe input every epoch"
    ),
    "histograms": Field((bool,), True, doc="weight histograms every epoch"),
    "gradient_norms": Field(
        (bool,), True, doc="global gradient norm (before clipping) every train.log_every steps"
    ),
    "profile_steps": Field(
        (list,),
        None,
        profile_steps_problem,
        nullable=True,
        doc="[first, last]: a profiler trace of these steps "
        "(counted from 1, at most train.steps) into "
        "tensorboard/train/plugins/profile "
        "(tensorboard-plugin-profile); null: none",
    ),
}

EXPORT_SCHEMA = {
    "name": Field((str,), None, nullable=True, doc="null: the recipe file's name"),
    "version": Field((int,), 1, positive),
    "max_new_tokens": Field((int,), 64, positive, doc="cap of generate's max_new_tokens"),
    "max_prompt_tokens": Field((int,), 128, positive, doc="longer prompts keep their last tokens"),
    "xla": Field((bool,), False, doc="jit_compile the exported functions"),
    "top_k": Field((int,), 5, positive, doc="fill_mask: candidates per [MASK]"),
    "num_beams": Field(
        (int,), 4, positive, doc="seq2seq/t5: beams of beam search (evaluate and export)"
    ),
}


def recipe_schema(raw_model_section):
    """`{section: {key: Field}}` of a recipe whose (raw) `model` section is
    `raw_model_section`: the family's `model` and `data` keys (its `FamilySchema`,
    `kzoo.training.tasks.registry`) with the shared sections, in config order.

    Raises:
        ConfigError: An unknown `model.family`.
    """
    model = raw_model_section if isinstance(raw_model_section, dict) else {}
    family = registry.family_schema(model.get("family", registry.DEFAULT_FAMILY))
    return {
        "model": registry.model_schema(model),
        "tokenizer": TOKENIZER_SCHEMA,
        "data": {**DATA_SCHEMA, **family.data},
        "train": TRAIN_SCHEMA,
        "monitor": MONITOR_SCHEMA,
        "export": EXPORT_SCHEMA,
    }


def path_keys(raw):
    """`[(section, key)]` of the path-valued keys (`Field.path`) of a raw config
    (with an unknown `model.family`, those every family has)."""
    try:
        schemas = recipe_schema(raw.get("model"))
    except ConfigError:
        schemas = {"data": DATA_SCHEMA, "train": TRAIN_SCHEMA}
    return [
        (section, key)
        for section, schema in schemas.items()
        for key, field in schema.items()
        if field.path
    ]


def map_paths(config, convert):
    """A copy of `config` (raw or validated) with `convert(path)` applied to every path
    of a path-valued key: a string, or each string of a list. `builtin`, null and
    values of a wrong type (left for `validate` to report) are kept as they are."""

    def one(value):
        return convert(value) if isinstance(value, str) and value not in ("", BUILTIN) else value

    result = dict(config)
    for section, key in path_keys(config):
        values = config.get(section)
        if not isinstance(values, dict) or key not in values:
            continue
        value = values[key]
        value = [one(v) for v in value] if isinstance(value, (list, tuple)) else one(value)
        result[section] = {**result[section], key: value}
    return result


def resolve_paths(config, base_dir):
    """`config` with its relative paths (and globs) taken relative to `base_dir`:
    absolute, normalised, `~` expanded."""
    return map_paths(
        config, lambda path: os.path.abspath(os.path.join(base_dir, os.path.expanduser(path)))
    )


def read_recipe(path):
    """Reads a recipe file, unvalidated; its relative paths are relative to its folder."""
    return resolve_paths(read_yaml(path), os.path.dirname(os.path.abspath(path)))


def with_overrides(raw, overrides):
    """`raw` with the `--set` overrides applied; their paths are relative to the
    working directory."""
    return resolve_paths(apply_overrides(raw, overrides), os.getcwd())


def validate(raw, name="recipe"):
    """Validates a raw config dict; returns it with defaults filled in, read-only
    (`kzoo.training.read_only_config.freeze`)."""
    config = {
        section: validate_section(section, raw.get(section), schema)
        for section, schema in recipe_schema(raw.get("model")).items()
    }
    if config["export"]["name"] is None:
        config["export"]["name"] = name
    _check_consistency(config, registry.family_schema(config["model"]["family"]))
    return freeze(config)


def _check_consistency(config, family):
    check_profile_steps(config)
    train = config["train"]
    if train["decay"] == "cosine" and train["learning_rate"] < train["min_learning_rate"]:
        raise ConfigError(
            f"train.learning_rate: {train['learning_rate']} is below "
            f"train.min_learning_rate {train['min_learning_rate']}, where the cosine "
            "decay ends; lower train.min_learning_rate (or set train.decay: constant)"
        )
    context = None if family.encoder_decoder else config["model"].get("max_sequence_length")
    length = config["data"]["sequence_length"]
    if context is not None and length > context:
        raise ConfigError(
            f"data.sequence_length: {length} exceeds model.max_sequence_length {context}"
        )
    kind = config["tokenizer"]["kind"]
    if kind not in family.tokenizer_kinds:
        raise ConfigError(
            f"tokenizer.kind: {kind!r} does not suit model.family "
            f"{config['model']['family']!r}; it takes {', '.join(map(repr, family.tokenizer_kinds))}"
        )
    fine_tuning = config["model"].get("task") in family.fine_tuning_tasks
    if train["lora"] is not None and train["init_from"] is None:
        raise ConfigError(
            "train.lora: LoRA adapts a pretrained model; set train.init_from "
            "(a trained or `kzoo import`ed run)"
        )
    if train["adapters_from"] is not None and train["lora"] is None:
        raise ConfigError(
            "train.adapters_from: set train.lora too (the adapters' rank and targets)"
        )
    _check_compression(train)
    if config["train"]["init_from"] is not None and not fine_tuning:
        raise ConfigError(
            "train.init_from: only fine-tuning recipes (GPT; BERT model.task "
            "classify, tag or qa; T5 model.task finetune) start from a "
            "pretrained run"
        )
    if family.check is not None:
        family.check(config)
    if config["tokenizer"]["kind"] != "char" and config["tokenizer"]["vocab_size"] is None:
        raise ConfigError("tokenizer.vocab_size: required for bpe and unigram tokenizers")
    for key in ("train", "validation"):
        value = config["data"][key]
        if isinstance(value, list) and not all(isinstance(v, str) for v in value):
            raise ConfigError(f"data.{key}: every entry must be a path or glob, got {value!r}")
    if not all(isinstance(p, str) for p in config["train"]["sample_prompts"]):
        raise ConfigError("train.sample_prompts: every prompt must be a string")


def recipe_name(path):
    return os.path.splitext(os.path.basename(path))[0]


def load_recipe(path, overrides=()):
    """Reads, overrides and validates a recipe file."""
    raw = with_overrides(read_recipe(path), overrides)
    try:
        return validate(raw, name=recipe_name(path))
    except ConfigError as error:
        raise blame(error, overrides, path) from None


def _check_compression(train):
    """Combinations of `train.lora`, `train.prune` and `train.distill*` that
    cannot work, refused by name."""
    defaults = {key: field.default for key, field in DISTILL_SCHEMA.items()}
    if train["distill_from"] is None and train["distill"] != defaults:
        raise ConfigError(
            "train.distill: set train.distill_from too (the teacher run the "
            "temperature and alpha apply to)"
        )
    if train["prune"] is not None:
        if train["lora"] is not None:
            raise ConfigError(
                "train.prune: LoRA freezes the kernels pruning would zero; prune a "
                "full fine-tuning run, or drop train.lora"
            )
        prune = train["prune"]
        end = prune["end_step"]
        if end is not None and end <= prune["begin_step"]:
            raise ConfigError(
                f"train.prune.end_step: {end} is not after train.prune.begin_step "
                f"{prune['begin_step']}"
            )
