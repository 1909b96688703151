"""Hugging Face GPT-2 checkpoints (`model_type: gpt2`) into `GPTCausalLM`, and back.

GPT-2 stores its projections as `Conv1D` weights `(in, out)`, the layout of a
Keras kernel, and the query/key/value projections as one `c_attn` tensor.
Checkpoints saved from `GPT2Model` have no `transformer.` prefix; those from
`GPT2LMHeadModel` do. The head is tied to `wte` unless `tie_word_embeddings` is
false (then `lm_head.weight`).
"""

import numpy as np

from kzoo.models.gpt.gpt_backbone import GPTBackbone
from kzoo.models.gpt.gpt_causal_lm import GPTCausalLM
from kzoo.models.hf_weight_map import HFTensor, export_tensors, layer_norm, load_tensors, same

MODEL_TYPE = "gpt2"
# `activation_function` values and the kzoo activation that computes the same.
ACTIVATIONS = {
    "gelu_new": "gelu_approximate",
    "gelu_pytorch_tanh": "gelu_approximate",
    "gelu": "gelu",
    "relu": "relu",
}
# Buffers older checkpoints carry (causal masks), not weights.
_BUFFER_SUFFIXES = (".attn.bias", ".attn.masked_bias")


def _check(hf_config, key, valid, default):
    value = hf_config.get(key, default)
    if value != valid:
        raise ValueError(f"config.json: {key}={value!r} is not supported for gpt2; use {valid!r}")


def backbone_config_from_hf(hf_config, vocabulary_size=None):
    """`GPTBackbone` keyword arguments for a GPT-2 `config.json` dict.

    Args:
        hf_config: The parsed `config.json`.
        vocabulary_size: The checkpoint's embedding rows, when known (it wins
            over `vocab_size`: padded vocabularies).
    """
    activation = hf_config.get("activation_function", "gelu_new")
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"config.json: activation_function={activation!r} is not supported; "
            f"use one of {sorted(ACTIVATIONS)}"
        )
    _check(hf_config, "scale_attn_weights", True, True)
    _check(hf_config, "scale_attn_by_inverse_layer_idx", False, False)
    _check(hf_config, "add_cross_attention", False, False)
    hidden_dim = hf_config["n_embd"]
    return {
        "vocabulary_size": vocabulary_size or hf_config["vocab_size"],
        "num_layers": hf_config["n_layer"],
        "num_heads": hf_config["n_head"],
        "hidden_dim": hidden_dim,
        "intermediate_dim": hf_config.get("n_inner") or 4 * hidden_dim,
        "dropout": hf_config.get("resid_pdrop", 0.1),
        "max_sequence_length": hf_config.get("n_positions", 1024),
        "layer_norm_epsilon": hf_config.get("layer_norm_epsilon", 1e-5),
        "activation": ACTIVATIONS[activation],
        "tie_embedding_weights": hf_config.get("tie_word_embeddings", True) is not False,
    }


def _prefix(checkpoint):
    return "transformer." if "transformer.wte.weight" in checkpoint else ""


def build_model(checkpoint, dtype=None):
    """A `GPTCausalLM` shaped as the checkpoint (weights not loaded yet)."""
    rows = checkpoint.shape(f"{_prefix(checkpoint)}wte.weight")[0]
    backbone = GPTBackbone(**backbone_config_from_hf(checkpoint.config, rows), dtype=dtype)
    return GPTCausalLM(backbone, end_token_id=checkpoint.config.get("eos_token_id"))


def _backbone(model):
    return model if isinstance(model, GPTBackbone) else model.backbone


def tensor_map(model, prefix="transformer."):
    """The `HFTensor`s of a `GPTCausalLM` (or `GPTBackbone`)."""
    backbone = _backbone(model)
    tensors = [
        same(f"{prefix}wte.weight", backbone.token_embedding.embeddings),
        same(f"{prefix}wpe.weight", backbone.position_embedding.position_embeddings),
    ]
    for i, block in enumerate(backbone.transformer_layers):
        p = f"{prefix}h.{i}."
        attention = block.self_attention
        qkv = (attention.query_dense, attention.key_dense, attention.value_dense)
        tensors += [
            *layer_norm(f"{p}ln_1", block.self_attention_norm),
            HFTensor(
                f"{p}attn.c_attn.weight",
                tuple(d.kernel for d in qkv),
                to_kzoo=lambda a: np.split(a, 3, axis=1),
                to_hf=lambda arrays: np.concatenate(arrays, axis=1),
            ),
            HFTensor(
                f"{p}attn.c_attn.bias",
                tuple(d.bias for d in qkv),
                to_kzoo=lambda a: np.split(a, 3),
                to_hf=np.concatenate,
            ),
            same(f"{p}attn.c_proj.weight", attention.output_dense.kernel),
            same(f"{p}attn.c_proj.bias", attention.output_dense.bias),
            *layer_norm(f"{p}ln_2", block.feedforward_norm),
            same(f"{p}mlp.c_fc.weight", block.feedforward.intermediate_dense.kernel),
            same(f"{p}mlp.c_fc.bias", block.feedforward.intermediate_dense.bias),
            same(f"{p}mlp.c_proj.weight", block.feedforward.output_dense.kernel),
            same(f"{p}mlp.c_proj.bias", block.feedforward.output_dense.bias),
        ]
    tensors += layer_norm(f"{prefix}ln_f", backbone.layer_norm)
    if not backbone.tie_embedding_weights:
        head = backbone.token_embedding.reverse_embeddings
        tensors.append(
            HFTensor(
                "lm_head.weight", (head,), to_kzoo=lambda a: [a.T], to_hf=lambda arrays: arrays[0].T
            )
        )
    return tensors


def load_hf_weights(model, checkpoint):
    """Fills a `GPTCausalLM` (or `GPTBackbone`) from an open `SafetensorsCheckpoint`.

    Returns:
        A `kzoo.models.hf_weight_map.HFLoadReport`.
    """
    checkpoint.mark_used(*(n for n in checkpoint.names if n.endswith(_BUFFER_SUFFIXES)))
    if _backbone(model).tie_embedding_weights:
        checkpoint.mark_used("lm_head.weight")  # a tied copy, where saved
    return load_tensors(checkpoint, tensor_map(model, _prefix(checkpoint)), MODEL_TYPE)


def hf_config_from(model):
    """The `config.json` dict of a `GPTCausalLM` (or `GPTBackbone`) for `transformers`."""
    backbone = _backbone(model)
    activation = {v: k for k, v in reversed(ACTIVATIONS.items())}[backbone.activation]
    end = getattr(model, "end_token_id", None)
    return {
        "model_type": MODEL_TYPE,
        "architectures": ["GPT2LMHeadModel"],
        "vocab_size": backbone.vocabulary_size,
        "n_embd": backbone.hidden_dim,
        "n_layer": backbone.num_layers,
        "n_head": backbone.num_heads,
        "n_inner": backbone.intermediate_dim,
        "n_positions": backbone.max_sequence_length,
        "layer_norm_epsilon": backbone.layer_norm_epsilon,
        "activation_function": activation,
        "resid_pdrop": backbone.dropout,
        "embd_pdrop": backbone.dropout,
        "attn_pdrop": backbone.dropout,
        "tie_word_embeddings": bool(backbone.tie_embedding_weights),
        "bos_token_id": end,
        "eos_token_id": end,
    }


def hf_tensors_from(model):
    """Yields `(name, float32 array)` of a `GPT2LMHeadModel` checkpoint."""
    return export_tensors(tensor_map(model))
