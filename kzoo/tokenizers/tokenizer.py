"""The base of kzoo's in-graph tokenizers."""

import keras
import tensorflow as tf


class Tokenizer(keras.layers.Layer):
    """A non-trainable layer that maps strings to int32 ids and back in TensorFlow ops.

    Calling the layer is `tokenize`. Subclasses implement `tokenize`,
    `_detokenize` (on int32 ids), `save` and the sizes and special ids as
    properties; the inputs are strings, which Keras must not convert to backend
    tensors.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("trainable", False)
        super().__init__(**kwargs)
        # Strings are not backend tensors: keep Keras from converting the inputs.
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        self.built = True

    def tokenize(self, inputs):
        raise NotImplementedError

    def detokenize(self, ids):
        """Joins ids back into strings; see the subclass for what it drops.

        Args:
            ids: Integer ids: a 1-D sequence, or a dense or ragged batch.

        Returns:
            A scalar string tensor for 1-D `ids`, else a 1-D string tensor with one
            string per row.
        """
        if not isinstance(ids, tf.RaggedTensor):
            ids = tf.convert_to_tensor(ids)
        return self._detokenize(tf.cast(ids, tf.int32))

    def _detokenize(self, ids):
        raise NotImplementedError

    def _known(self, ids, *dropped):
        """The mask of the `ids` that `detokenize` joins: ids of the vocabulary
        but `dropped`. Ids outside it (a checkpoint's padded embedding rows, which
        a model may generate) are dropped, as no piece stands for them."""
        keep = (ids >= 0) & (ids < self.vocabulary_size)
        for token_id in dropped:
            if token_id is not None:
                keep &= ids != token_id
        return keep

    def call(self, inputs):
        return self.tokenize(inputs)

    def compute_output_spec(self, inputs):
        return keras.KerasTensor(tuple(inputs.shape) + (None,), dtype="int32")
