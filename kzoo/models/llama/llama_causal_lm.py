"""Llama causal language model: `GPTCausalLM`'s head, scoring and decoding on a
`LlamaBackbone`."""

import keras

from kzoo.models.gpt.gpt_causal_lm import GPTCausalLM
from kzoo.models.llama.llama_backbone import LlamaBackbone  # noqa: F401 (docstring example)


@keras.saving.register_keras_serializable(package="kzoo")
class LlamaCausalLM(GPTCausalLM):
    """Next-token prediction on a `LlamaBackbone`, with decoding.

    Everything but the backbone is `GPTCausalLM`'s: float32 logits from the
    token embedding used in reverse (tied) or from its separate
    `reverse_embeddings` (untied, Hugging Face's `lm_head`), `score`, and
    `generate` / `generate_ids` with a KV cache of the key/value heads (greedy,
    sampling with top-k / top-p, beam search). Its own class, so that a run, an
    import and an export name the family (`export/signatures.py` serves it with
    the causal LM signatures; `hf_checkpoints` maps it to the `llama` model
    types).

    Args:
        backbone: A `kzoo.models.LlamaBackbone`.
        tokenizer: Optional tokenizer (see `GPTCausalLM`).
        preprocessor: Optional `kzoo.preprocessing.CausalLMPreprocessor`.
        end_token_id: Token that ends a document (and generation).

    Example:
    >>> backbone = LlamaBackbone(vocabulary_size=50, num_layers=1, num_heads=4,
    ...                          num_key_value_heads=1, hidden_dim=16,
    ...                          intermediate_dim=32, max_sequence_length=16)
    >>> lm = LlamaCausalLM(backbone, end_token_id=1)
    >>> greedy = lm.generate([[1, 7, 9]], max_new_tokens=4)
    >>> greedy == lm.generate([[1, 7, 9]], max_new_tokens=4, use_cache=False)
    True
    """
