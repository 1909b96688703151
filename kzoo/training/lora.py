"""LoRA fine-tuning (`train.lora`) on Keras' own low-rank adapters.

`keras.layers.Dense.enable_lora` adds the two factors `A` (in x rank) and `B`
(rank x out, zeros at first) next to a frozen kernel; the layer computes
`x @ (W + alpha / rank * A @ B)`. kzoo freezes the whole backbone, enables LoRA on
the chosen projections of every attention (and feed-forward) layer, and leaves the
task's own heads (a classifier's output layer) trainable.

Merging is Keras' too: a LoRA-enabled `Dense` saves its kernel merged
(`W + alpha / rank * A @ B`), so a run's `model.keras`, and every export made from
it, is an ordinary model with merged weights. The adapters alone live in
`adapter_model.safetensors` + `adapter_config.json` (the run's `lora_adapters/`,
`kzoo export --lora-only`), which `train.adapters_from` applies to a base run again.
"""

import json
import os
import shutil

import numpy as np

from kzoo.staged_files import atomic_directory, write_json_atomic
from kzoo.training.config import Field, positive

# Recipe name -> (the kzoo layer holding it, its attribute).
TARGETS = {
    "query": ("attention", "query_dense"),
    "key": ("attention", "key_dense"),
    "value": ("attention", "value_dense"),
    "attention_output": ("attention", "output_dense"),
    "ffn_intermediate": ("feedforward", "intermediate_dense"),
    "ffn_gate": ("feedforward", "gate_dense"),
    "ffn_output": ("feedforward", "output_dense"),
}
DEFAULT_TARGETS = ["query", "value"]
WEIGHTS_FILE = "adapter_model.safetensors"
CONFIG_FILE = "adapter_config.json"


def _targets_problem(targets):
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        return f"unknown target {unknown[0]!r}; valid: {', '.join(TARGETS)}"
    if not targets:
        return "must name at least one target"
    if len(set(targets)) != len(targets):
        return "names a target twice"
    return None


LORA_SCHEMA = {
    "rank": Field((int,), 8, positive, doc="the adapters' rank r"),
    "alpha": Field(
        (float,), None, positive, nullable=True, doc="scale alpha (update = alpha/r A B); null: r"
    ),
    "targets": Field(
        (list,),
        DEFAULT_TARGETS,
        _targets_problem,
        doc=f"projections that get adapters: {', '.join(TARGETS)}",
    ),
}


class LoraError(ValueError):
    """Adapters that do not fit the model (the message names the layer)."""


def _backbone(model):
    """A task model's backbone; a model without one (the LSTM baseline) itself."""
    return getattr(model, "backbone", model)


def lora_layers(model, targets):
    """`[(path, Dense)]`: the `targets` projections of `model`'s backbone, in layer
    order (the order of the adapters in a file)."""
    from kzoo.layers.attention import MultiHeadAttention
    from kzoo.layers.feedforward import FeedForward

    kinds = {"attention": MultiHeadAttention, "feedforward": FeedForward}
    found = []
    for layer in _backbone(model)._flatten_layers(include_self=False):
        for target in targets:
            kind, attribute = TARGETS[target]
            dense = getattr(layer, attribute, None) if isinstance(layer, kinds[kind]) else None
            if dense is not None:
                found.append((f"{layer.path}/{dense.name}", dense))
    return found


def _alpha(settings):
    """`train.lora.alpha`, whose default (null) is the rank."""
    return settings["alpha"] or settings["rank"]


def enable_lora(model, settings):
    """Freezes `model.backbone` and gives its `settings["targets"]` projections LoRA
    adapters of `settings["rank"]` (scale `alpha / rank`); returns the layers.

    Layers outside the backbone (task heads) stay trainable.

    Raises:
        LoraError: The backbone has none of the targets (an LSTM).
    """
    layers = lora_layers(model, settings["targets"])
    if not layers:
        raise LoraError(
            f"train.lora: {type(_backbone(model)).__name__} has no "
            f"{'/'.join(settings['targets'])} projections to adapt (LoRA needs attention layers)"
        )
    # The leaves, not the backbone: a frozen layer hides its sublayers' weights
    # from `trainable_weights`, the adapters included.
    for layer in _backbone(model)._flatten_layers(include_self=False):
        if not layer._layers:
            layer.trainable = False
    for _, dense in layers:
        dense.trainable = True
        # Keras makes the kernel non-trainable and adds float32 factors.
        dense.enable_lora(settings["rank"], lora_alpha=_alpha(settings))
        if dense.bias is not None:
            dense.bias.trainable = False
    return layers


def parameter_counts(model):
    """`(all parameters, trainable parameters)` of `model`."""
    count = lambda weights: int(sum(np.prod(w.shape) for w in weights))
    return count(model.weights), count(model.trainable_weights)


def save_adapters(model, directory, settings, base=None, replace=False):
    """Writes `model`'s adapters to `directory` (`adapter_model.safetensors` with
    `lora/{i}/a` and `lora/{i}/b`, and `adapter_config.json`: rank, alpha,
    targets, the layers' paths and the base run), all at once."""
    from safetensors.numpy import save_file

    layers = lora_layers(model, settings["targets"])
    tensors = {}
    for index, (_, dense) in enumerate(layers):
        tensors[f"lora/{index}/a"] = np.asarray(dense.lora_kernel_a.numpy())
        tensors[f"lora/{index}/b"] = np.asarray(dense.lora_kernel_b.numpy())
    config = {
        "rank": settings["rank"],
        "alpha": _alpha(settings),
        "targets": list(settings["targets"]),
        "layers": [path for path, _ in layers],
        "base_run": base,
    }

    def fill(tmp):
        save_file(tensors, os.path.join(tmp, WEIGHTS_FILE))
        write_json_atomic(os.path.join(tmp, CONFIG_FILE), config, sort_keys=False)

    return atomic_directory(str(directory), fill, replace=replace)


def read_adapter_config(directory):
    """The `adapter_config.json` of an adapters directory.

    Raises:
        FileNotFoundError: `directory` holds no adapters.
    """
    path = os.path.join(directory, CONFIG_FILE)
    if not os.path.isfile(path) or not os.path.isfile(os.path.join(directory, WEIGHTS_FILE)):
        raise FileNotFoundError(
            f"{directory}: no LoRA adapters ({CONFIG_FILE} and {WEIGHTS_FILE}); "
            "`kzoo export RUN --lora-only --out DIR` writes them"
        )
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def load_adapters(model, directory, settings):
    """Assigns the adapters saved in `directory` to `model` (LoRA enabled with
    `settings`).

    Raises:
        LoraError: Rank, targets, layer count or a shape differ (the message names
            the layer and both shapes).
    """
    from safetensors.numpy import load_file

    saved = read_adapter_config(directory)
    where = os.path.join(directory, CONFIG_FILE)
    for key, ours in (("rank", settings["rank"]), ("alpha", _alpha(settings))):
        if saved[key] != ours:
            raise LoraError(f"{where}: {key} {saved[key]}, but train.lora.{key} is {ours}")
    if list(saved["targets"]) != list(settings["targets"]):
        raise LoraError(
            f"{where}: targets {saved['targets']}, but train.lora.targets is "
            f"{list(settings['targets'])}"
        )
    layers = lora_layers(model, settings["targets"])
    if len(saved["layers"]) != len(layers):
        raise LoraError(
            f"{where}: adapters for {len(saved['layers'])} layers, the model has {len(layers)}"
        )
    tensors = load_file(os.path.join(directory, WEIGHTS_FILE))
    for index, (path, dense) in enumerate(layers):
        for factor, variable in (("a", dense.lora_kernel_a), ("b", dense.lora_kernel_b)):
            value = tensors[f"lora/{index}/{factor}"]
            if tuple(value.shape) != tuple(variable.shape):
                raise LoraError(
                    f"{where}: {saved['layers'][index]} factor {factor.upper()} has shape "
                    f"{tuple(value.shape)}, the model's {path} {tuple(variable.shape)}"
                )
            variable.assign(value)


def export_adapters(run, out, replace=False):
    """Copies the adapters of the `train.lora` run (a `RunDirectory`) to the
    directory `out` (all at once).

    Raises:
        FileNotFoundError: The run has no adapters (not a finished LoRA run).
        FileExistsError: `out` exists and is not empty, without `replace`.
    """
    source = run.adapters_dir
    if not os.path.isdir(source):
        raise FileNotFoundError(
            f"{run.path}: no LoRA adapters; only a finished run with train.lora has them"
        )

    def fill(tmp):
        for name in (WEIGHTS_FILE, CONFIG_FILE):
            shutil.copyfile(os.path.join(source, name), os.path.join(tmp, name))

    return atomic_directory(str(out), fill, replace=replace)
