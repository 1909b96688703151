"""The JAX strategies: `keras.distribution` over the devices JAX sees.

`data_parallel` replicates the variables and splits each batch;
`model_parallel` also splits the variables that the family's sharding rules
name (`kzoo.training.sharding_rules`) over the mesh's `model` axis.
"""

import math
import warnings

import keras

from kzoo.training import sharding_rules
from kzoo.training.placement import Placement


class DataParallelPlacement(Placement):
    """`keras.distribution.DataParallel` over JAX `devices` (`data_parallel`):
    every batch is split along its first axis, the variables are replicated.

    Args:
        devices: `keras.distribution.list_devices()`.
    """

    name = "data_parallel"

    def __init__(self, devices):
        self.distribution = keras.distribution.DataParallel(devices=devices)
        self.num_replicas = len(devices)

    def scope(self):
        return self.distribution.scope()

    def jit_compile(self, requested):
        if not requested:
            warnings.warn(
                "train.jit_compile: false runs JAX eagerly, one op at a time (many "
                "times slower); set train.jit_compile: true on JAX",
                stacklevel=2,
            )
        return requested


class ModelParallelPlacement(DataParallelPlacement):
    """`keras.distribution.ModelParallel` over a `(data, model)` mesh of JAX
    `devices` (`model_parallel`): the variables that the family's sharding rules
    name (`kzoo.training.sharding_rules`) are split over the `model` axis, each
    batch along its first axis over the `data` axis, the rest replicated.

    Args:
        devices: `keras.distribution.list_devices()`.
        mesh_shape: `(data, model)` (`sharding_rules.mesh_shape`).
        rules: The family's `(regex, axes)` rules.

    Example:
    >>> placement = ModelParallelPlacement(
    ...     keras.distribution.list_devices()[:1], (1, 1), sharding_rules.rules_for("gpt"))
    >>> placement.name, placement.num_replicas, placement.axis_sizes
    ('model_parallel', 1, {'data': 1, 'model': 1})
    """

    name = "model_parallel"

    def __init__(self, devices, mesh_shape, rules):
        mesh = keras.distribution.DeviceMesh(
            mesh_shape, (sharding_rules.DATA, sharding_rules.MODEL), devices
        )
        self.axis_sizes = dict(zip(mesh.axis_names, mesh.shape))
        layout_map = keras.distribution.LayoutMap(mesh)
        for pattern, axes in rules:
            layout_map[pattern] = axes
        self.rules = rules
        self.distribution = _CheckedModelParallel(
            self, layout_map=layout_map, batch_dim_name=sharding_rules.DATA
        )
        self.num_replicas = self.axis_sizes[sharding_rules.DATA]

    def check_model(self, model):
        split = [
            v for v in model.variables if sharding_rules.axes_for(self.rules, v.path) is not None
        ]
        if not split:
            paths = ", ".join(v.path for v in model.variables[:6])
            raise RuntimeError(
                "train.strategy model_parallel: no variable of the model matches the "
                f"family's sharding rules (kzoo.training.sharding_rules), so nothing "
                f"would be split; its variables are {paths}, ...: update the rules"
            )
        size = sum(math.prod(v.shape) for v in model.variables)
        print(
            f"model_parallel: a {self.axis_sizes[sharding_rules.DATA]} x "
            f"{self.axis_sizes[sharding_rules.MODEL]} mesh (data x model): "
            f"{len(split)} of {len(model.variables)} variables "
            f"({sum(math.prod(v.shape) for v in split) / size:.0%} of the parameters) split over "
            "the model axis"
        )


class _CheckedModelParallel(keras.distribution.ModelParallel):
    """ModelParallel that refuses a split dimension that does not divide evenly."""

    def __init__(self, placement, **kwargs):
        super().__init__(**kwargs)
        self._axis_sizes = placement.axis_sizes

    def get_variable_layout(self, variable):
        layout = super().get_variable_layout(variable)
        sharding_rules.check_divisible(variable.path, variable.shape, layout.axes, self._axis_sizes)
        return layout
