"""`Dense`: Keras' dense layer, saving GPTQ-calibrated kernels whole."""

import keras

CALIBRATED_MODES = ("gptq", "awq")


@keras.saving.register_keras_serializable(package="kzoo")
class Dense(keras.layers.Dense):
    """`keras.layers.Dense`, whose GPTQ- or AWQ-quantized state reloads.

    Keras 3.15's `Dense.save_own_variables` leaves out the `kernel_zero` of a layer
    quantized with GPTQ or AWQ (its LoRA-merging helper returns no zero point for
    those modes) while `load_own_variables` expects it, so a calibrated model does
    not reload ("expected 5 variables, but received 4"). This layer saves every
    variable its mode declares, in the order Keras loads them; every other mode
    is Keras' own. The attention and feed-forward projections use it.

    Example:
    >>> import numpy as np
    >>> layer = Dense(4)
    >>> tuple(layer(np.ones((2, 3), "float32")).shape)
    (2, 4)
    """

    def quantize(self, mode=None, type_check=True, config=None):
        # Keras refuses to quantize subclasses of Dense (they may change `call`);
        # this one computes exactly what Dense does.
        return super().quantize(mode, type_check=False, config=config)

    def save_own_variables(self, store):
        mode = self.quantization_mode
        if mode not in CALIBRATED_MODES or not self.built or self.lora_enabled:
            return super().save_own_variables(store)
        index = 0
        for name in self.variable_serialization_spec[mode]:
            if name == "bias" and self.bias is None:
                continue
            if name in ("kernel_zero", "g_idx", "awq_scales") and not hasattr(self, name):
                continue
            store[str(index)] = getattr(self, name)
            index += 1
