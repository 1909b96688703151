"""`Dense`: Keras' dense layer, saving GPTQ-calibrated kernels whole, and able to
hold its kernel by rows for serving."""

import keras
from keras import ops

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

    def store_kernel_by_rows(self):
        """Makes the kernel's variable hold its transpose, one row of `input_dim`
        weights per unit (the same shape and bytes, reshaped), and computes with it
        from then on; a layer that is quantized or has LoRA is left as it is.

        Decoding one token multiplies one input row by each kernel, a
        matrix-vector product that streams the weights, and CPUs stream a kernel
        by rows faster than Keras' `(input_dim, units)` (the product becomes
        `matmul(inputs, transpose(rows))`, which grappler folds into
        `MatMul(transpose_b=True)`; under XLA it was 4.6x slower, so only the
        no-XLA export uses it: BENCHMARKS.md, "The no-XLA export"). Only an
        export does this, to its own copy of the model: such a layer cannot be
        saved, trained, quantized or given LoRA as a Keras `Dense`.

        Returns:
            True when the kernel is now stored by rows.
        """
        if self.quantization_mode or self.lora_enabled or self.kernel_by_rows:
            return self.kernel_by_rows
        kernel = self._kernel
        kernel.assign(ops.reshape(ops.transpose(kernel), kernel.shape))
        self.kernel_by_rows = True
        return True

    kernel_by_rows = False

    def call(self, inputs, training=None):
        if not self.kernel_by_rows:
            return super().call(inputs, training=training)
        rows = ops.reshape(self._kernel, (self.units, -1))
        outer = ops.shape(inputs)[:-1]
        x = ops.matmul(ops.reshape(inputs, (-1, ops.shape(rows)[1])), ops.transpose(rows))
        x = ops.reshape(x, (*outer, self.units))
        if self.bias is not None:
            x = ops.add(x, self.bias)
        return x if self.activation is None else self.activation(x)

    def save_own_variables(self, store):
        if self.kernel_by_rows:
            raise ValueError(
                f"{self.name}: its kernel is stored by rows for serving "
                "(store_kernel_by_rows); save the model before that"
            )
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
