"""The model's op graph for TensorBoard's Graphs dashboard.

Keras 3's TensorBoard callback writes no graph for kzoo's models
(`write_graph` draws only what Keras traced for its own train function, and
nothing on most set-ups). Here the forward pass itself is traced: a
`tf.function` of `model(inputs, training=False)` on the model's input
signature, whose graph is written once as a `tf.summary.graph`. TensorFlow
backend only: under JAX there is no TensorFlow graph to draw, and nothing is
written.
"""

import keras
import tensorflow as tf

from kzoo.training.callbacks import warns_instead_of_failing


def input_signature(model, features_spec=None):
    """`tf.TensorSpec`s of `model.input`: its structure and dtypes, with the
    shapes of `features_spec` (the training batches' features) where it has the
    input. Known shapes trace a smaller, more readable graph."""
    features_spec = features_spec if isinstance(features_spec, dict) else {}

    def spec(tensor):
        name = getattr(tensor, "name", None)
        known = features_spec.get(name)
        shape = known.shape if isinstance(known, tf.TensorSpec) else tensor.shape
        return tf.TensorSpec(shape, tensor.dtype, name=name)

    return tf.nest.map_structure(spec, model.input)


def forward_graph(model, features_spec=None):
    """The `tf.Graph` of `model(inputs, training=False)` traced on its inputs."""
    call = tf.function(lambda inputs: model(inputs, training=False), autograph=False)
    return call.get_concrete_function(input_signature(model, features_spec)).graph


def write_graph(model, log_dir, features_spec=None):
    """Writes the forward pass's op graph to an event file in `log_dir`.

    Example:
    >>> import tempfile
    >>> inputs = keras.Input((3,), name="features")
    >>> model = keras.Model(inputs, keras.layers.Dense(2, name="head")(inputs))
    >>> log_dir = tempfile.mkdtemp()
    >>> write_graph(model, log_dir)
    >>> events = tf.io.gfile.glob(f"{log_dir}/events.*")
    >>> graphs = [event.graph_def for event in tf.compat.v1.train.summary_iterator(
    ...     events[0]) if event.graph_def]
    >>> graph = tf.compat.v1.GraphDef.FromString(graphs[0])
    >>> any("head" in node.name and node.op == "MatMul" for node in graph.node)
    True
    """
    graph = forward_graph(model, features_spec)
    writer = tf.summary.create_file_writer(log_dir)
    try:
        with writer.as_default():
            tf.summary.graph(graph)
    finally:
        writer.close()


class GraphSummary(keras.callbacks.Callback):
    """Writes the model's forward op graph once, when training first begins.

    Args:
        log_dir: Event directory (e.g. `RUN/tensorboard/train`).
        features_spec: `{input name: tf.TensorSpec}` of the training batches
            (`dataset.element_spec[0]`), for the inputs' shapes; None: the
            model's (batch and length unknown).
    """

    def __init__(self, log_dir, features_spec=None):
        super().__init__()
        self.log_dir = log_dir
        self.features_spec = features_spec
        self.written = False

    @warns_instead_of_failing("write the model's op graph")
    def on_train_begin(self, logs=None):
        # A resumed run calls `fit` up to twice; one graph is enough.
        if self.written or keras.backend.backend() != "tensorflow":
            return
        self.written = True
        write_graph(self.model, self.log_dir, self.features_spec)
