"""A float32 copy of a `kzoo quantize`d (int8) or mixed-precision model, for the
TFLite converter.

Keras' int8 layers multiply int8 inputs by int8 kernels into int32
(`BatchMatMulV3` on int8), which TFLite has no kernel for: its quantized
`FULLY_CONNECTED` takes quantized tensor types, not raw int8 ones. So the LiteRT
export traces a float copy whose weights are the int8 weights divided by their
scales, and lets the converter quantize it again (dynamic-range: int8 weights
with a scale per output channel, inputs quantized per row on the fly, as Keras
does per token). Keras' int8 scales are per output channel from the absolute
maximum (`q = round(w * 127 / max|w|)`), so the converter's own per-channel
scales of the dequantized kernels are the same and its int8 weights are Keras'
(for the weights it quantizes: the converter leaves tensors under 1,024 values
float). A mixed-precision model (`train.precision: mixed_bfloat16`) keeps float32
variables; its copy computes in float32 too, which TFLite's CPU kernels do.
"""

import keras
import numpy as np

# Variables holding int8 values, each beside `<name>_scale`; the axis their scale
# runs along (Keras' `AbsMaxQuantizer` axes: a Dense kernel and the reverse
# embeddings per output column, the embeddings per token row).
_SCALE_AXIS = {"kernel": -1, "reverse_embeddings": -1, "embeddings": 0}


def quantization_of(model):
    """The quantization mode of `model`'s quantized layers: None (a float model),
    `"int8"` (`kzoo quantize --mode int8`), or another Keras mode (`"int4"`,
    `"gptq"`, ...; several are listed joined by "+")."""
    modes = sorted(set(_modes(keras.saving.serialize_keras_object(model))))
    return "+".join(modes) or None


def _modes(config):
    if isinstance(config, dict):
        if config.get("class_name") == "QuantizedDTypePolicy":
            yield config["config"]["mode"]
        for value in config.values():
            yield from _modes(value)
    elif isinstance(config, list):
        for value in config:
            yield from _modes(value)


def _float_policies(config):
    """`config` with every `DTypePolicyMap` (a quantized backbone's dtype)
    replaced by its default policy, and every mixed policy by float32."""
    if isinstance(config, dict):
        if config.get("class_name") == "DTypePolicyMap":
            return _float_policies(config["config"]["default_policy"])
        if config.get("class_name") == "DTypePolicy" and str(
            config.get("config", {}).get("name")
        ).startswith("mixed_"):
            return {**config, "config": {**config["config"], "name": "float32"}}
        return {key: _float_policies(value) for key, value in config.items()}
    if isinstance(config, list):
        return [_float_policies(value) for value in config]
    return config


def float_copy(model):
    """A float32 copy of `model`, its int8 weights dequantized.

    Args:
        model: A Keras model, float, mixed-precision, or with int8 quantized
            layers (`kzoo quantize --mode int8`); its config must rebuild it
            (every kzoo task model's does).

    Returns:
        A new model of the same class and config (preprocessor included) with
        float32 layers, each int8 weight `q` replaced by `q / scale`.

    Raises:
        ValueError: The model holds weights quantized otherwise than int8, or
            its variables cannot be matched to the float copy's by path.
    """
    mode = quantization_of(model)
    if mode not in (None, "int8"):
        raise ValueError(
            f"{type(model).__name__}: {mode} weights have no LiteRT form here (only "
            "Keras' int8 ones dequantize exactly to what TFLite's int8 quantizes back); "
            "export the float run, with --quantize dynamic_int8, or a kzoo quantize "
            "--mode int8 one"
        )
    twin = keras.saving.deserialize_keras_object(
        _float_policies(keras.saving.serialize_keras_object(model))
    )
    quantized = _by_path(model.weights, type(model).__name__)
    for variable in twin.weights:
        source = quantized.get(variable.path)
        if source is None:
            raise ValueError(
                f"{type(model).__name__}: no weight {variable.path!r} to copy into its float twin"
            )
        value = keras.ops.convert_to_numpy(source)
        if value.dtype == np.int8:
            value = _dequantized(variable.path, value, quantized)
        if tuple(value.shape) != tuple(variable.shape):
            raise ValueError(
                f"{variable.path}: shape {tuple(value.shape)} does not dequantize to "
                f"{tuple(variable.shape)}"
            )
        variable.assign(value.astype(variable.dtype))
    return twin


def _by_path(variables, owner):
    by_path = {}
    for variable in variables:
        if variable.path in by_path:
            raise ValueError(f"{owner}: two weights have the path {variable.path!r}")
        by_path[variable.path] = variable
    return by_path


def _dequantized(path, value, variables):
    name = path.rsplit("/", 1)[-1]
    scale = variables.get(f"{path}_scale")
    if name not in _SCALE_AXIS or scale is None:
        raise ValueError(f"{path}: int8 weight without a known scale ({path}_scale)")
    scale = keras.ops.convert_to_numpy(scale).astype("float32")
    shape = [1] * value.ndim
    shape[_SCALE_AXIS[name]] = -1
    return value.astype("float32") / scale.reshape(shape)
