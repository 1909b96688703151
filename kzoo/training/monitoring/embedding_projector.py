"""Token embeddings for TensorBoard's Projector, one row per vocabulary entry.

Keras 3's TensorBoard callback saves embeddings as `.weights.h5`, which the
Projector cannot read. `EmbeddingProjector` writes what it reads, into
`RUN/tensorboard/projector/`:

    checkpoint, embedding-N.*   a TF checkpoint of one float32 variable, the
                                token embedding matrix after epoch N (the newest
                                only)
    metadata.tsv                the token of each row (one column, no header)
    projector_config.pbtxt      ties the two together
    events.*                    a text summary naming the layer, which makes
                                the directory a TensorBoard run

The metadata and config are written once, each through a temporary file and a
rename; `tf.train.CheckpointManager` updates its `checkpoint` index file only
after the new checkpoint is complete. A crash at any point leaves files the
Projector can read.
"""

import os
import unicodedata

import keras
import numpy as np
import tensorflow as tf
from tensorboard.plugins import projector

from kzoo import staged_files
from kzoo.training.callbacks import warns_instead_of_failing

METADATA = "metadata.tsv"
CHECKPOINT_NAME = "embedding"
# The key of the variable in a `tf.train.Checkpoint(embedding=...)`.
TENSOR_NAME = "embedding/.ATTRIBUTES/VARIABLE_VALUE"


def token_embedding(model):
    """The token embedding layer of a kzoo model (its own or its backbone's)."""
    for owner in (model, getattr(model, "backbone", None)):
        layer = getattr(owner, "token_embedding", None)
        if isinstance(layer, keras.layers.Embedding):
            return layer
    raise ValueError(
        f"{type(model).__name__}: no token embedding found (expected a "
        "keras.layers.Embedding as `token_embedding` on the model or its `backbone`)"
    )


def metadata_label(token):
    """`token` as one readable line of `metadata.tsv`.

    Backslashes, tabs, line breaks and other control characters are escaped
    (`\\\\`, `\\t`, `\\n`, `\\x00`), so each token is one row of one column; a
    token that is empty or only whitespace (which the Projector would skip) is
    shown quoted.

    Example:
    >>> [metadata_label(t) for t in ["▁the", "\\n", "a\\tb", "\\\\", " ", "", "<0x0A>"]]
    ['▁the', '\\\\n', 'a\\\\tb', '\\\\\\\\', "' '", "''", '<0x0A>']
    """
    escapes = {"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"}
    characters = []
    for character in token:
        if character in escapes:
            characters.append(escapes[character])
        elif unicodedata.category(character) in ("Cc", "Zl", "Zp"):
            characters.append(
                f"\\x{ord(character):02x}" if ord(character) < 256 else f"\\u{ord(character):04x}"
            )
        else:
            characters.append(character)
    label = "".join(characters)
    return label if label.strip() else repr(token)


def metadata_rows(vocabulary, rows):
    """`rows` labels: the vocabulary's, then `<id N>` for ids beyond it."""
    labels = [metadata_label(token) for token in vocabulary[:rows]]
    return labels + [f"<id {i}>" for i in range(len(labels), rows)]


class EmbeddingProjector(keras.callbacks.Callback):
    """Writes the token embedding for TensorBoard's Projector every epoch.

    Args:
        log_dir: The projector's directory (e.g. `RUN/tensorboard/projector`).
        vocabulary: Token strings indexed by id (`tokenizer.get_vocabulary()`).

    Example:
    >>> import tempfile
    >>> from kzoo.models import LSTMLanguageModel
    >>> model = LSTMLanguageModel(vocabulary_size=4, embedding_dim=3, hidden_dim=5)
    >>> log_dir = tempfile.mkdtemp()
    >>> callback = EmbeddingProjector(log_dir, ["<pad>", "\\n", "a", "b"])
    >>> callback.set_model(model)
    >>> callback.on_epoch_end(0)
    >>> reader = tf.train.load_checkpoint(log_dir)
    >>> reader.get_tensor(TENSOR_NAME).shape
    (4, 3)
    >>> open(f"{log_dir}/metadata.tsv", encoding="utf-8").read().split("\\n")
    ['<pad>', '\\\\n', 'a', 'b', '']
    """

    def __init__(self, log_dir, vocabulary):
        super().__init__()
        self.log_dir = log_dir
        self.vocabulary = list(vocabulary)
        self.manager = None

    @warns_instead_of_failing("write the embedding projector")
    def on_epoch_end(self, epoch, logs=None):
        layer = token_embedding(self.model)
        matrix = np.asarray(keras.ops.convert_to_numpy(layer.embeddings), "float32")
        if self.manager is None:
            self._start(layer, matrix.shape[0])
        self.variable.assign(matrix)
        self.manager.save(checkpoint_number=epoch + 1)

    def _start(self, layer, rows):
        os.makedirs(self.log_dir, exist_ok=True)
        staged_files.write_text_atomic(
            os.path.join(self.log_dir, METADATA),
            "".join(f"{label}\n" for label in metadata_rows(self.vocabulary, rows)),
        )
        config = projector.ProjectorConfig()
        embedding = config.embeddings.add()
        embedding.tensor_name = TENSOR_NAME
        embedding.metadata_path = METADATA
        staged_files.write_text_atomic(
            os.path.join(self.log_dir, projector.metadata.PROJECTOR_FILENAME), str(config)
        )
        with tf.device("CPU:0"):
            self.variable = tf.Variable(
                tf.zeros((rows, layer.output_dim), tf.float32),
                trainable=False,
                name="token_embedding",
            )
        self.manager = tf.train.CheckpointManager(
            tf.train.Checkpoint(embedding=self.variable),
            self.log_dir,
            max_to_keep=1,
            checkpoint_name=CHECKPOINT_NAME,
        )
        writer = tf.summary.create_file_writer(self.log_dir)
        with writer.as_default(), tf.summary.record_if(True):
            tf.summary.text(
                "embedding",
                f"`{layer.embeddings.path}`: {rows} tokens x {layer.output_dim}, after each epoch",
                step=0,
            )
        writer.close()
