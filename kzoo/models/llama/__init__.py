from kzoo.models.llama.llama_backbone import LlamaBackbone
from kzoo.models.llama.llama_causal_lm import LlamaCausalLM
