"""What a recipe trains: the piece of the trainer that differs between families.

`kzoo train` runs the same steps for every model (`kzoo.training.trainer`); a
`Task` supplies what is specific: where the text comes from, the tokenizer, the
`tf.data` pipelines, the model, its loss and metrics, extra callbacks, and how a
trained run is evaluated. `kzoo.training.tasks.registry.task_for(config)` picks
the task from `model.family` and `model.task`.
"""

import dataclasses
import os

import keras

from kzoo.training.read_only_config import updated

# The `tokenizer` keys a `train.init_from` run fixes: its vocabulary is copied.
TOKENIZER_KEYS = ("kind", "lowercase", "vocab_size")


@dataclasses.dataclass
class DataPlan:
    """The datasets of a run and how to read them.

    Attributes:
        train: Repeated training dataset.
        validation: Validation dataset or None.
        validation_steps: Batches per validation (None: the whole dataset).
        steps_per_epoch: Batches in one pass over the training data.
        tokens_per_step: Tokens in a training batch (for tokens/s).
        bad_records: `{config key: kzoo.data.bad_records.BadRecords}` for each key
            whose files were read (`"data.train"`, `"data.validation"`), empty for
            built-in data. Each has `count` (records skipped under
            `data.on_bad_record: skip`; always 0 under `stop`, which raises
            instead), `locations` (the first few `"file:line: problem"`) and
            `summary()` (one line for the log).
    """

    train: object
    validation: object
    validation_steps: int | None
    steps_per_epoch: int
    tokens_per_step: int
    bad_records: dict = dataclasses.field(default_factory=dict)


class Task:
    """Base class: one subclass per kind of run (causal LM, BERT pretraining, ...).

    Args:
        config: The validated recipe, read-only (`kzoo.training.read_only_config`):
            what a task derives from it, it returns (`derived_config`).
    """

    # The loss is a language model's (perplexity is meaningful).
    reports_perplexity = False
    # `train.sample_prompts` make sense for the model (TensorBoard text samples).
    generates_from_prompts = True

    def __init__(self, config):
        self.config = config

    def resolve_data(self):
        """Finds and checks the input files before anything is written."""
        raise NotImplementedError

    def make_tokenizer(self, run_dir):
        """Trains (or copies) the tokenizer into `run_dir` and returns it."""
        raise NotImplementedError

    def make_data(self, tokenizer):
        """Returns a `DataPlan`."""
        raise NotImplementedError

    def make_preprocessor(self, tokenizer):
        """The `kzoo.preprocessing` layer of the recipe: `tokenizer` and every
        setting that turns raw text into the model's inputs. `build_model`
        attaches it to the model (saved in `model.keras`), so exports and
        `generate` read it there, not the recipe."""
        raise NotImplementedError

    def preprocessor(self, tokenizer):
        """The run's preprocessor: `make_preprocessor(tokenizer)`, built once.

        `make_data` maps the raw text through it and `build_model` attaches the
        same object to the model, so the training pipelines and the saved model
        (its exports, `generate`) cannot use different settings.
        """
        cached = getattr(self, "_preprocessor", None)
        if cached is None or cached.tokenizer is not tokenizer:
            self._preprocessor = self.make_preprocessor(tokenizer)
        return self._preprocessor

    def model_preprocessor(self, model, tokenizer):
        """The preprocessor `model` carries (a trained run's model, evaluated with
        its own settings), else `preprocessor(tokenizer)`."""
        preprocessor = getattr(model, "preprocessor", None)
        return preprocessor if preprocessor is not None else self.preprocessor(tokenizer)

    def build_model(self, tokenizer, dtype=None):
        """The model of the recipe, with `preprocessor(tokenizer)` attached."""
        raise NotImplementedError

    # The `model` keys a `train.init_from` run fixes (its shapes), if any.
    INIT_FROM_KEYS = ()

    def pretrained_backbone(self, backbone_class, dtype=None, context_key=None):
        """A copy of the `train.init_from` run's backbone, with the recipe's
        `model.dropout` and `dtype`.

        Args:
            backbone_class: The backbone the run must hold (e.g. `GPTBackbone`).
            dtype: The Keras dtype policy of the copy.
            context_key: A `data` key that must not exceed the backbone's
                `max_sequence_length` (e.g. `"sequence_length"`).

        Raises:
            ValueError: The run holds another model, or `context_key` does not fit.
        """
        from kzoo.training.run_directory import RunDirectory

        init_from = self.config["train"]["init_from"]
        model = RunDirectory(init_from).load_model()
        pretrained = getattr(model, "backbone", None)
        if not isinstance(pretrained, backbone_class):
            raise ValueError(
                f"train.init_from: {init_from} holds a {type(model).__name__}, not a model "
                f"on a {backbone_class.__name__}; give the --run-dir of a run of this family"
            )
        if context_key and self.config["data"][context_key] > pretrained.max_sequence_length:
            raise ValueError(
                f"data.{context_key}: {self.config['data'][context_key]} exceeds the "
                f"pretrained model's {pretrained.max_sequence_length} positions "
                f"(train.init_from: {init_from})"
            )
        config = {**pretrained.get_config(), "dropout": self.config["model"]["dropout"]}
        config.update(dtype=_keeping_quantized_layers(config["dtype"], dtype))
        config.pop("name", None)
        backbone = backbone_class.from_config(config)
        backbone.set_weights(pretrained.get_weights())
        return backbone

    def size_table(self):
        """`{size name: model keys}` of this kind's named `model.size`s, or None."""
        return None

    def model_settings(self):
        """The `model` section, a named `model.size`'s keys in place of the recipe's
        (with `train.init_from`, the pretrained model's: `derived_config`)."""
        model = self.config["model"]
        table = self.size_table()
        if not model.get("size") or self.config["train"]["init_from"] or table is None:
            return model
        return {**model, **table[model["size"]]}

    def derived_keys(self):
        """Names of the keys whose `config.yaml` value the task derives rather than
        the recipe: a named size's keys, or the `train.init_from` run's shapes (and
        `model.size`). A resumed run does not compare them with the recipe."""
        inherited = {f"tokenizer.{key}" for key in TOKENIZER_KEYS}
        if self.config["train"]["init_from"] and self.INIT_FROM_KEYS:
            return {"model.size", *(f"model.{key}" for key in self.INIT_FROM_KEYS), *inherited}
        model = self.config["model"]
        sized = {f"model.{k}" for k, v in self.model_settings().items() if model.get(k) != v}
        # A distilled student takes its teacher's tokenizer.
        return sized | inherited if self.config["train"].get("distill_from") else sized

    def derived_config(self, model):
        """The config as `model` (built by `build_model`) was made: a new read-only
        config with the keys of a named `model.size`, or those of the
        `train.init_from` run (`model.size` then null, the path absolute, the
        tokenizer settings that run's); the run's `config.yaml`."""
        from kzoo.training.run_directory import RunDirectory

        init_from = self.config["train"]["init_from"]
        if not (init_from and self.INIT_FROM_KEYS):
            teacher = self.config["train"].get("distill_from")
            if not teacher:
                return updated(self.config, model=self.model_settings())
            taught = RunDirectory(teacher).config().get("tokenizer", {})
            return updated(
                self.config,
                model=self.model_settings(),
                tokenizer={k: taught[k] for k in TOKENIZER_KEYS if k in taught},
            )

        shapes = {key: getattr(model.backbone, key) for key in self.INIT_FROM_KEYS}
        pretrained = RunDirectory(init_from).config().get("tokenizer", {})
        sized = {"size": None} if "size" in self.config["model"] else {}
        return updated(
            self.config,
            model={**shapes, **sized},
            train={"init_from": os.path.abspath(init_from)},
            tokenizer={k: pretrained[k] for k in TOKENIZER_KEYS if k in pretrained},
        )

    def compile_args(self):
        """`loss`, `metrics`, ... for `model.compile` (optimizer and jit aside)."""
        return {
            "loss": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            "metrics": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        }

    def callbacks(self, run_dir, model, plan):
        """Task callbacks, run before TensorBoard writes the epoch logs."""
        return []

    def evaluate(self, run_dir, model, tokenizer, data=None, batch_size=None):
        """Metrics of a trained run on `data` (paths) or its validation data."""
        raise NotImplementedError


def _keeping_quantized_layers(policy, dtype):
    """`dtype` for a copy of a backbone whose config's dtype is `policy`; for a
    quantized one (`kzoo quantize`), a `DTypePolicyMap` keeping each quantized
    layer's policy (QLoRA-style training on a quantized base), `dtype` the default
    of the other layers."""
    policy = keras.dtype_policies.deserialize(policy) if isinstance(policy, dict) else policy
    if not isinstance(policy, keras.dtype_policies.DTypePolicyMap):
        return dtype
    kept = keras.dtype_policies.DTypePolicyMap(default_policy=dtype or policy.default_policy)
    for path, layer_policy in policy.items():
        kept[path] = layer_policy
    return kept
