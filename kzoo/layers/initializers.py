"""Kernel initializers of the Transformer layers: resolved in `__init__`,
serialized in `get_config`."""

import keras

# The initializer attributes (and constructor arguments) of the attention layers
# and of the Transformer blocks.
ATTENTION_INITIALIZERS = (
    "kernel_initializer",
    "output_kernel_initializer",
    "query_kernel_initializer",
)


def kernel_initializers(kernel_initializer, *overrides):
    """Keras initializers of `kernel_initializer` and of each override, an override
    left None taking `kernel_initializer` (as `output_kernel_initializer` and
    `query_kernel_initializer` do in every layer that has them).

    Example:
    >>> kernel, output = kernel_initializers("zeros", None)
    >>> type(kernel).__name__, type(output).__name__
    ('Zeros', 'Zeros')
    """
    return [keras.initializers.get(kernel_initializer)] + [
        keras.initializers.get(override or kernel_initializer) for override in overrides
    ]


def serialized_initializers(layer, *names):
    """`{name: config}` of the initializers `layer` holds as attributes `names`,
    for its `get_config`.

    Example:
    >>> layer = keras.layers.Layer()
    >>> layer.kernel_initializer = keras.initializers.get("zeros")
    >>> serialized_initializers(layer, "kernel_initializer")["kernel_initializer"]["class_name"]
    'Zeros'
    """
    return {name: keras.initializers.serialize(getattr(layer, name)) for name in names}
