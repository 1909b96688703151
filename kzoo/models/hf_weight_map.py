"""The table between Hugging Face tensor names and kzoo variables, read both ways.

Each family lists its checkpoint as `HFTensor`s (`kzoo/models/<family>/hf_checkpoint.py`):
a tensor name, the kzoo variables it fills and the two conversions. The same list
loads a checkpoint (`load_tensors`: one tensor at a time, shapes checked, missing
optional groups reported) and exports one (`export_tensors`).
"""

import dataclasses

import numpy as np
from keras import ops


@dataclasses.dataclass(frozen=True)
class HFTensor:
    """One tensor of a Hugging Face checkpoint and the kzoo variables it fills.

    Args:
        name: The tensor's name in the checkpoint.
        variables: The kzoo variables it becomes.
        to_kzoo: The checkpoint array to one array per variable.
        to_hf: The variables' arrays (a list) to the checkpoint array.
        group: Set for tensors a checkpoint may lack (a task head, the pooler):
            a group entirely missing starts fresh and is reported.
        aliases: Other names the tensor may have (e.g. `LayerNorm.gamma`), the
            first found is read.
    """

    name: str
    variables: tuple
    to_kzoo: object = None
    to_hf: object = None
    group: str = None
    aliases: tuple = ()

    def expected_shape(self):
        """The checkpoint shape these variables correspond to."""
        empty = [np.empty(tuple(v.shape), "float32") for v in self.variables]
        return self.hf_array(empty).shape

    def kzoo_arrays(self, array):
        return [array] if self.to_kzoo is None else self.to_kzoo(array)

    def hf_array(self, arrays):
        return arrays[0] if self.to_hf is None else self.to_hf(arrays)


def same(name, variable, **kwargs):
    """A tensor stored as the variable is (embeddings, norms, Conv1D kernels)."""
    return HFTensor(name, (variable,), **kwargs)


def transposed(name, variable, **kwargs):
    """A `torch.nn.Linear` weight `(out, in)` for a Keras kernel `(in, out)`."""
    return HFTensor(
        name, (variable,), to_kzoo=lambda a: [a.T], to_hf=lambda arrays: arrays[0].T, **kwargs
    )


def dense(prefix, layer, linear=True, bias=True, **kwargs):
    """`{prefix}.weight` (and `.bias`) for a Keras `Dense` layer."""
    weight = transposed if linear else same
    tensors = [weight(f"{prefix}.weight", layer.kernel, **kwargs)]
    if bias:
        tensors.append(same(f"{prefix}.bias", layer.bias, **kwargs))
    return tensors


def layer_norm(prefix, layer, **kwargs):
    """A `LayerNorm`: `weight`/`bias` (or the older `gamma`/`beta`)."""
    return [
        same(f"{prefix}.weight", layer.gamma, aliases=(f"{prefix}.gamma",), **kwargs),
        same(f"{prefix}.bias", layer.beta, aliases=(f"{prefix}.beta",), **kwargs),
    ]


@dataclasses.dataclass
class HFLoadReport:
    """What loading a checkpoint did.

    Attributes:
        model_type: The checkpoint's `model_type`.
        directory: The checkpoint directory.
        loaded: Number of checkpoint tensors read.
        fresh: Groups the checkpoint lacks, left as initialised (e.g. `"mlm head"`).
        unused: Checkpoint tensors nothing read (logged, not an error).
    """

    model_type: str
    directory: str
    loaded: int = 0
    fresh: list = dataclasses.field(default_factory=list)
    unused: list = dataclasses.field(default_factory=list)

    def summary(self):
        """One line for the log."""
        line = f"{self.directory}: loaded {self.loaded} tensors ({self.model_type})"
        if self.fresh:
            line += f"; not in the checkpoint, starting fresh: {', '.join(self.fresh)}"
        if self.unused:
            shown = ", ".join(self.unused[:5]) + (" ..." if len(self.unused) > 5 else "")
            line += f"; {len(self.unused)} unused tensors: {shown}"
        return line


def _present_name(checkpoint, tensor):
    for name in (tensor.name, *tensor.aliases):
        if name in checkpoint:
            return name
    return None


def load_tensors(checkpoint, tensors, model_type):
    """Assigns every tensor of `tensors` from `checkpoint`, one at a time.

    Returns:
        An `HFLoadReport`.

    Raises:
        ValueError: A tensor is missing (outside a wholly missing group) or has
            the wrong shape.
    """
    report = HFLoadReport(model_type, checkpoint.directory)
    names = {id(t): _present_name(checkpoint, t) for t in tensors}
    groups = {}
    for tensor in tensors:
        if tensor.group:
            groups.setdefault(tensor.group, []).append(names[id(tensor)] is not None)
    fresh = {group for group, found in groups.items() if not any(found)}
    for tensor in tensors:
        name = names[id(tensor)]
        if name is None:
            if tensor.group in fresh:
                continue
            raise ValueError(
                f"{checkpoint.directory}: no tensor {tensor.name!r} in the checkpoint; "
                f"a {model_type} model of this config needs it, shape {tensor.expected_shape()}"
            )
        array = checkpoint.get(name, tensor.expected_shape())
        for variable, value in zip(tensor.variables, tensor.kzoo_arrays(array)):
            variable.assign(ops.cast(value, variable.dtype))
        del array
        report.loaded += 1
    report.fresh = sorted(fresh)
    report.unused = checkpoint.unused()
    return report


def export_tensors(tensors, dtype="float32"):
    """Yields `(name, array)` for every tensor, converted from the variables."""
    for tensor in tensors:
        arrays = [np.asarray(ops.convert_to_numpy(v)).astype(dtype) for v in tensor.variables]
        yield tensor.name, np.ascontiguousarray(tensor.hf_array(arrays))
