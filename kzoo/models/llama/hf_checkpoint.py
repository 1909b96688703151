"""Hugging Face Llama, Mistral and Qwen2 checkpoints into `LlamaCausalLM`, and back.

The three `model_type`s share one layout (`model.embed_tokens`,
`model.layers.{i}.self_attn.{q,k,v,o}_proj`, `mlp.{gate,up,down}_proj`,
`input_layernorm`, `post_attention_layernorm`, `model.norm`, `lm_head`), with
`torch.nn.Linear` weights `(out, in)` transposed into Keras kernels. They differ in
config keys: Qwen2 has q/k/v biases (no output bias), Mistral and Qwen2 a sliding
window, Llama-3 a `rope_scaling`. Rotary needs no permutation: kzoo rotates
halves, as `transformers` does.
"""

from kzoo.models.hf_weight_map import dense, export_tensors, load_tensors, same, transposed
from kzoo.models.llama.llama_backbone import LlamaBackbone
from kzoo.models.llama.llama_causal_lm import LlamaCausalLM

MODEL_TYPES = ("llama", "mistral", "qwen2")
MODEL_TYPE = "llama"
_ARCHITECTURES = {
    "llama": "LlamaForCausalLM",
    "mistral": "MistralForCausalLM",
    "qwen2": "Qwen2ForCausalLM",
}


def _sliding_window(hf_config):
    """The window a Mistral/Qwen2 config turns on, else None."""
    window = hf_config.get("sliding_window")
    if hf_config.get("model_type") != "qwen2":
        return window
    # Qwen2 slides the window over the layers from `max_window_layers` on.
    layers = hf_config["num_hidden_layers"]
    first = hf_config.get("max_window_layers", layers)
    if not hf_config.get("use_sliding_window") or first >= layers:
        return None
    if first > 0:
        raise ValueError(
            f"config.json: max_window_layers {first} of {layers} layers: a sliding window "
            "over some layers only is not supported (kzoo slides it over all or none)"
        )
    return window


def backbone_config_from_hf(hf_config, vocabulary_size=None):
    """`LlamaBackbone` keyword arguments for a Llama/Mistral/Qwen2 `config.json` dict.

    Args:
        hf_config: The parsed `config.json`.
        vocabulary_size: The checkpoint's embedding rows, when known.
    """
    activation = hf_config.get("hidden_act", "silu")
    if activation != "silu":
        raise ValueError(f"config.json: hidden_act={activation!r} is not supported; use 'silu'")
    model_type = hf_config.get("model_type", MODEL_TYPE)
    attention_bias = bool(hf_config.get("attention_bias", model_type == "qwen2"))
    heads = hf_config["num_attention_heads"]
    return {
        "vocabulary_size": vocabulary_size or hf_config["vocab_size"],
        "num_layers": hf_config["num_hidden_layers"],
        "num_heads": heads,
        "num_key_value_heads": hf_config.get("num_key_value_heads") or heads,
        "hidden_dim": hf_config["hidden_size"],
        "intermediate_dim": hf_config["intermediate_size"],
        "head_dim": hf_config.get("head_dim") or hf_config["hidden_size"] // heads,
        "rope_theta": float(_rope(hf_config).get("rope_theta", 10000.0)),
        "rope_scaling": _rope_scaling(hf_config),
        "layer_norm_epsilon": hf_config.get("rms_norm_eps", 1e-6),
        "dropout": float(hf_config.get("attention_dropout", 0.0)),
        "max_sequence_length": hf_config.get("max_position_embeddings", 2048),
        "tie_embedding_weights": bool(hf_config.get("tie_word_embeddings", False)),
        "attention_bias": attention_bias,
        "attention_output_bias": False if model_type == "qwen2" else attention_bias,
        "feedforward_bias": bool(hf_config.get("mlp_bias", False)),
        "sliding_window": _sliding_window(hf_config),
    }


def _rope(hf_config):
    """The rotary settings: `transformers` 5 writes `rope_parameters` (theta
    inside), earlier versions `rope_theta` and `rope_scaling`."""
    parameters = dict(hf_config.get("rope_parameters") or hf_config.get("rope_scaling") or {})
    parameters.setdefault("rope_theta", hf_config.get("rope_theta", 10000.0))
    return parameters


def _rope_scaling(hf_config):
    scaling = {k: v for k, v in _rope(hf_config).items() if k != "rope_theta"}
    kind = scaling.get("rope_type", scaling.get("type"))
    if kind in (None, "default"):
        return None
    if kind == "yarn":
        original = hf_config.get("max_position_embeddings")
        scaling.setdefault("original_max_position_embeddings", original)
    return scaling


def build_model(checkpoint, dtype=None):
    """A `LlamaCausalLM` shaped as the checkpoint (weights not loaded yet)."""
    rows = checkpoint.shape("model.embed_tokens.weight")[0]
    backbone = LlamaBackbone(**backbone_config_from_hf(checkpoint.config, rows), dtype=dtype)
    end = checkpoint.config.get("eos_token_id")
    end = end[0] if isinstance(end, list) else end
    return LlamaCausalLM(backbone, end_token_id=end)


def _backbone(model):
    return model if isinstance(model, LlamaBackbone) else model.backbone


def tensor_map(model):
    """The `HFTensor`s of a `LlamaCausalLM` (or `LlamaBackbone`)."""
    backbone = _backbone(model)
    tensors = [same("model.embed_tokens.weight", backbone.token_embedding.embeddings)]
    for i, block in enumerate(backbone.transformer_layers):
        p = f"model.layers.{i}."
        attention, feedforward = block.self_attention, block.feedforward
        qkv_bias = backbone.attention_bias
        output_bias = backbone.attention_output_bias
        output_bias = qkv_bias if output_bias is None else output_bias
        tensors += [
            same(f"{p}input_layernorm.weight", block.self_attention_norm.scale),
            *dense(f"{p}self_attn.q_proj", attention.query_dense, bias=qkv_bias),
            *dense(f"{p}self_attn.k_proj", attention.key_dense, bias=qkv_bias),
            *dense(f"{p}self_attn.v_proj", attention.value_dense, bias=qkv_bias),
            *dense(f"{p}self_attn.o_proj", attention.output_dense, bias=output_bias),
            same(f"{p}post_attention_layernorm.weight", block.feedforward_norm.scale),
            *dense(f"{p}mlp.gate_proj", feedforward.gate_dense, bias=backbone.feedforward_bias),
            *dense(
                f"{p}mlp.up_proj", feedforward.intermediate_dense, bias=backbone.feedforward_bias
            ),
            *dense(f"{p}mlp.down_proj", feedforward.output_dense, bias=backbone.feedforward_bias),
        ]
    tensors.append(same("model.norm.weight", backbone.layer_norm.scale))
    if not backbone.tie_embedding_weights:
        tensors.append(transposed("lm_head.weight", backbone.token_embedding.reverse_embeddings))
    return tensors


def load_hf_weights(model, checkpoint):
    """Fills a `LlamaCausalLM` (or `LlamaBackbone`) from an open `SafetensorsCheckpoint`.

    Returns:
        A `kzoo.models.hf_weight_map.HFLoadReport`.
    """
    checkpoint.mark_used(*(n for n in checkpoint.names if n.endswith("rotary_emb.inv_freq")))
    if _backbone(model).tie_embedding_weights:
        checkpoint.mark_used("lm_head.weight")  # a tied copy, where saved
    model_type = checkpoint.config.get("model_type", MODEL_TYPE)
    return load_tensors(checkpoint, tensor_map(model), model_type)


def hf_config_from(model, model_type=MODEL_TYPE):
    """The `config.json` dict of a `LlamaCausalLM` (or `LlamaBackbone`)."""
    backbone = _backbone(model)
    end = getattr(model, "end_token_id", None)
    config = {
        "model_type": model_type,
        "architectures": [_ARCHITECTURES[model_type]],
        "vocab_size": backbone.vocabulary_size,
        "hidden_size": backbone.hidden_dim,
        "intermediate_size": backbone.intermediate_dim,
        "num_hidden_layers": backbone.num_layers,
        "num_attention_heads": backbone.num_heads,
        "num_key_value_heads": backbone.num_key_value_heads,
        "head_dim": backbone.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": backbone.max_sequence_length,
        "rms_norm_eps": backbone.layer_norm_epsilon,
        "rope_theta": backbone.rope_theta,
        "rope_scaling": backbone.rope_scaling,
        "attention_bias": bool(backbone.attention_bias),
        "mlp_bias": bool(backbone.feedforward_bias),
        "tie_word_embeddings": bool(backbone.tie_embedding_weights),
        "sliding_window": backbone.sliding_window,
        "bos_token_id": end,
        "eos_token_id": end,
    }
    if backbone.attention_bias and backbone.attention_output_bias is False:
        config.update(model_type="qwen2", architectures=[_ARCHITECTURES["qwen2"]])
        config.update(use_sliding_window=backbone.sliding_window is not None, max_window_layers=0)
    elif backbone.sliding_window is not None:
        # Llama's config has no window: Mistral's (which has no biases) does.
        if backbone.attention_bias or backbone.feedforward_bias:
            raise ValueError(
                "a sliding-window model with biases has no Hugging Face form "
                "(Mistral has no biases; Qwen2 biases q/k/v only)"
            )
        config.update(model_type="mistral", architectures=[_ARCHITECTURES["mistral"]])
    return config


def hf_tensors_from(model):
    """Yields `(name, float32 array)` of a `LlamaForCausalLM`-layout checkpoint."""
    return export_tensors(tensor_map(model))
