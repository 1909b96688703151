"""Compiles a function that calls Keras layers, for whichever backend is active.

Kept outside `kzoo/models` so the models stay free of backend imports: TensorFlow
is imported here only on the TensorFlow backend, JAX only on JAX (and Keras only
when a function is compiled, so `kzoo.jit.XlaFallbackWarning` can be named in a
warning filter before any backend starts).
"""

import warnings

JIT_COMPILE_VALUES = ("auto", True, False)


class XlaFallbackWarning(UserWarning):
    """XLA could not compile a function that `jit_compile="auto"` asked it to, so
    the function runs compiled without XLA (correct, slower)."""


def check_jit_compile(jit_compile):
    """Raises a ValueError unless `jit_compile` is `"auto"`, True or False."""
    if not (isinstance(jit_compile, bool) or jit_compile == "auto"):
        raise ValueError(
            f"jit_compile must be one of {JIT_COMPILE_VALUES}; received {jit_compile!r}"
        )


def jit_function(fn, variables, jit_compile=False, name=None):
    """Returns a compiled version of `fn(*arrays)`.

    Args:
        fn: A function of tensors that calls layers owning `variables`.
        variables: The variables `fn` reads (e.g. `model.variables`). On JAX they
            are passed in as arguments (stateless), so weights are not baked into
            the compiled program as constants.
        jit_compile: On TensorFlow, whether to compile with XLA: True (an XLA
            failure raises), False (a `tf.function` without XLA) or `"auto"`: XLA,
            and where XLA cannot compile a call, the `tf.function` without XLA from
            then on, with one `XlaFallbackWarning`. JAX always uses XLA.
        name: What `fn` is, for the warning (e.g. `"GPTCausalLM.generate()"`).
    """
    import keras

    check_jit_compile(jit_compile)
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        if jit_compile == "auto":
            return _XlaWithFallback(fn, name or getattr(fn, "__name__", "a function"))
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


def _xla_errors():
    """What TensorFlow raises when XLA cannot compile a graph: an op without an XLA
    kernel or an argument XLA needs as a constant is an InvalidArgumentError
    ("Detected unsupported operations", "must be a compile-time constant"), an
    unsupported feature an UnimplementedError."""
    import tensorflow as tf

    return (tf.errors.InvalidArgumentError, tf.errors.UnimplementedError)


class _XlaWithFallback:
    """`fn` as an XLA `tf.function` until XLA fails to compile a call, then (for
    good, with one `XlaFallbackWarning`) as a `tf.function` without XLA.

    The function must be pure (no variable updates), since a failed XLA call is
    run again without XLA.
    """

    def __init__(self, fn, name):
        import tensorflow as tf

        self.fn, self.name = fn, name
        self.xla = tf.function(fn, jit_compile=True, reduce_retracing=True)
        self.fallback = None

    def __call__(self, *args):
        if self.fallback is None:
            try:
                return self.xla(*args)
            except _xla_errors() as error:
                self._fall_back(error)
        return self.fallback(*args)

    def _fall_back(self, error):
        import tensorflow as tf

        self.fallback = tf.function(self.fn, jit_compile=False, reduce_retracing=True)
        message = str(getattr(error, "message", error)).strip()
        first_line = message.splitlines()[0] if message else type(error).__name__
        warnings.warn(
            f"{self.name}: XLA could not compile it ({first_line}); it runs without "
            "XLA from now on (slower). Pass jit_compile=False to skip the attempt, or "
            "jit_compile=True to raise instead.",
            XlaFallbackWarning,
            stacklevel=4,
        )
