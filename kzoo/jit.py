"""Compiles a function that calls Keras layers, for whichever backend is active.

Kept outside `kzoo/models` so the models stay free of backend imports: TensorFlow
is imported here only on the TensorFlow backend, JAX only on JAX.
"""

import keras


def jit_function(fn, variables, jit_compile=False):
    """Returns a compiled version of `fn(*arrays)`.

    Args:
        fn: A function of tensors that calls layers owning `variables`.
        variables: The variables `fn` reads (e.g. `model.variables`). On JAX they
            are passed in as arguments (stateless), so weights are not baked into
            the compiled program as constants.
        jit_compile: On TensorFlow, compile with XLA (JAX always uses XLA).
    """
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, jit_compile=jit_compile, reduce_retracing=True)
    if backend == "jax":
        import jax

        variables = list(variables)

        @jax.jit
        def stateless(values, *args):
            with keras.StatelessScope(state_mapping=list(zip(variables, values))):
                return fn(*args)

        return lambda *args: stateless([v.value for v in variables], *args)
    return fn
