"""Model families assembled from `kzoo.layers` (`keras.ops` only; no TensorFlow)."""

from kzoo.models.gpt import GPTBackbone, GPTCausalLM

__all__ = ["GPTBackbone", "GPTCausalLM"]
