"""Which variables `train.strategy: model_parallel` splits, per model family.

A family's rules are `(regex, axes)` pairs: a variable whose `variable.path`
fully matches `regex` is split as `axes` says, one entry per dimension (`MODEL`:
split over the mesh's `model` axis, `None`: whole); every other variable is
replicated. The mesh's other axis, `DATA`, splits each batch.

The decoders' rules are Megatron-LM's tensor parallelism: the projections into
the attention heads and the feed-forward's hidden layer are split by output
column, the projections back into the residual stream by input row, so a block
needs one all-reduce after attention and one after the feed-forward, and each
device holds `1 / model_axis_size` of every such kernel (and of its optimizer
state). The token embedding is split along `hidden_dim` (vocabularies such as
GPT-2's 50257 do not split evenly); norms, position embeddings and the
row-split layers' biases are small and replicated.

A new family adds one entry to `RULES` (its variable paths:
`for v in model.variables: print(v.path, v.shape)`); a family without one
cannot use `model_parallel`.
"""

import re

from kzoo.training.config import ConfigError

DATA = "data"
MODEL = "model"

# Pre-norm decoders built from `kzoo.layers`: GPT-2, and Llama (gate_dense: its
# SwiGLU; key/value kernels as narrow as its key/value heads; no biases but Qwen2's
# query/key/value ones; reverse_embeddings: an untied output projection).
DECODER_RULES = (
    (r"(.*/)?self_attention/(query|key|value)/kernel", (None, MODEL)),
    (r"(.*/)?self_attention/(query|key|value)/bias", (MODEL,)),
    (r"(.*/)?self_attention/output/kernel", (MODEL, None)),
    (r"(.*/)?feedforward/(intermediate_dense|gate_dense)/kernel", (None, MODEL)),
    (r"(.*/)?feedforward/(intermediate_dense|gate_dense)/bias", (MODEL,)),
    (r"(.*/)?feedforward/output_dense/kernel", (MODEL, None)),
    (r"(.*/)?token_embedding/embeddings", (None, MODEL)),
    (r"(.*/)?token_embedding/reverse_embeddings", (MODEL, None)),
)

# `model.family` -> its rules.
RULES = {"gpt": DECODER_RULES, "llama": DECODER_RULES}


def rules_for(family):
    """The sharding rules of `family` (`model.family`).

    Raises:
        ConfigError: The family has none; the message lists those that do.

    Example:
    >>> rules_for("gpt")[0]
    ('(.*/)?self_attention/(query|key|value)/kernel', (None, 'model'))
    >>> rules_for("bert")
    Traceback (most recent call last):
    ...
    kzoo.training.config.ConfigError: train.strategy: 'model_parallel' has no sharding rules for model.family 'bert' (families with rules: gpt, llama); use 'data_parallel'
    """
    if family not in RULES:
        raise ConfigError(
            f"train.strategy: 'model_parallel' has no sharding rules for model.family "
            f"{family!r} (families with rules: {', '.join(sorted(RULES))}); use "
            "'data_parallel'"
        )
    return RULES[family]


def axes_for(rules, path):
    """The axes of the first rule whose regex fully matches `path`, or None.

    Example:
    >>> axes_for(DECODER_RULES, "transformer_layer_3/feedforward/output_dense/kernel")
    ('model', None)
    >>> axes_for(DECODER_RULES, "transformer_layer_3/feedforward_norm/gamma") is None
    True
    """
    for pattern, axes in rules:
        if re.fullmatch(pattern, path):
            return axes
    return None


def mesh_shape(num_devices, model_axis_size):
    """`(data, model)`: the mesh of `num_devices` for `train.model_axis_size`
    (None: every device on the model axis).

    Raises:
        ConfigError: `model_axis_size` does not divide `num_devices`.

    Example:
    >>> mesh_shape(8, 4)
    (2, 4)
    >>> mesh_shape(8, None)
    (1, 8)
    >>> mesh_shape(8, 3)
    Traceback (most recent call last):
    ...
    kzoo.training.config.ConfigError: train.model_axis_size: 3 does not divide the 8 devices JAX sees; use one of 1, 2, 4, 8
    """
    size = num_devices if model_axis_size is None else model_axis_size
    if num_devices % size:
        divisors = [d for d in range(1, num_devices + 1) if num_devices % d == 0]
        raise ConfigError(
            f"train.model_axis_size: {size} does not divide the {num_devices} devices "
            f"JAX sees; use one of {', '.join(map(str, divisors))}"
        )
    return num_devices // size, size


def check_divisible(path, shape, axes, axis_sizes):
    """Raises a ConfigError unless every split dimension of `shape` divides evenly.

    Args:
        path: The variable's path (for the message).
        shape: Its shape.
        axes: Its axes (`axes_for`).
        axis_sizes: `{axis name: devices}` of the mesh.

    Example:
    >>> check_divisible("q/kernel", (16, 16), (None, MODEL), {DATA: 2, MODEL: 4})
    >>> check_divisible("q/kernel", (16, 6), (None, MODEL), {DATA: 2, MODEL: 4})
    Traceback (most recent call last):
    ...
    kzoo.training.config.ConfigError: train.strategy model_parallel: q/kernel has shape (16, 6), whose dimension 1 (6) does not split over the 4 devices of the mesh's 'model' axis (train.model_axis_size); choose a model_axis_size that divides the model's hidden_dim, intermediate_dim and attention widths
    """
    for dim, (size, axis) in enumerate(zip(shape, axes)):
        if axis is not None and size % axis_sizes[axis]:
            raise ConfigError(
                f"train.strategy model_parallel: {path} has shape {tuple(shape)}, whose "
                f"dimension {dim} ({size}) does not split over the {axis_sizes[axis]} "
                f"devices of the mesh's {axis!r} axis (train.model_axis_size); choose a "
                "model_axis_size that divides the model's hidden_dim, intermediate_dim "
                "and attention widths"
            )
