"""Model families assembled from `kzoo.layers` (`keras.ops` only; no TensorFlow)."""

from kzoo.models.gpt import GPTBackbone, GPTCausalLM
from kzoo.models.lstm import LSTMLanguageModel

__all__ = ["GPTBackbone", "GPTCausalLM", "LSTMLanguageModel"]
