"""Model families assembled from `kzoo.layers` (`keras.ops` only; no TensorFlow)."""
