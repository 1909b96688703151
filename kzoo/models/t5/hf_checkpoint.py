"""Hugging Face T5 checkpoints (`model_type: t5`) into `Seq2SeqLM` on `T5Backbone`, and back.

Weights are `torch.nn.Linear` `(out, in)` without biases, transposed into Keras
kernels. Each stack's relative position bias lives in its first block. T5 v1.0
(`feed_forward_proj: relu`) ties the head to `shared.weight` and scales the
decoder output by `d_model ** -0.5`, as `T5Backbone.logits` does when tied; v1.1
(`gated-gelu`, `tie_word_embeddings: false`) has its own `lm_head.weight` and no
scaling. Gated layers: `wi_0` is activated (kzoo's `gate_dense`), `wi_1` linear.
"""

import numpy as np

from kzoo.models.hf_weight_map import HFTensor, export_tensors, load_tensors, same, transposed
from kzoo.models.seq2seq.seq2seq_lm import Seq2SeqLM
from kzoo.models.t5.t5_backbone import T5Backbone

MODEL_TYPE = "t5"
# The activation part of `feed_forward_proj` (HF's `gated-gelu` is tanh gelu).
ACTIVATIONS = {"relu": "relu", "gelu": "gelu", "gelu_new": "gelu_approximate"}


def _feedforward(hf_config):
    projection = hf_config.get("feed_forward_proj", "relu")
    gated = projection.startswith("gated-")
    name = projection.removeprefix("gated-")
    if projection == "gated-gelu":
        name = "gelu_new"
    if name not in ACTIVATIONS:
        valid = sorted(ACTIVATIONS) + ["gated-gelu"] + [f"gated-{a}" for a in ACTIVATIONS]
        raise ValueError(
            f"config.json: feed_forward_proj={projection!r} is not supported; use one of {valid}"
        )
    return ACTIVATIONS[name], gated


def _tied(hf_config):
    tied = hf_config.get("tie_word_embeddings", True) is not False
    scaled = hf_config.get("scale_decoder_outputs", tied)
    if scaled != tied:
        raise ValueError(
            f"config.json: tie_word_embeddings={tied} with scale_decoder_outputs={scaled} is "
            "not supported; kzoo scales the decoder output exactly when the head is tied"
        )
    return tied


def backbone_config_from_hf(hf_config, vocabulary_size=None):
    """`T5Backbone` keyword arguments for a T5 `config.json` dict.

    Args:
        hf_config: The parsed `config.json`.
        vocabulary_size: The checkpoint's embedding rows, when known.
    """
    num_layers = hf_config["num_layers"]
    decoder_layers = hf_config.get("num_decoder_layers") or num_layers
    if decoder_layers != num_layers:
        raise ValueError(
            f"config.json: num_decoder_layers={decoder_layers} differs from num_layers="
            f"{num_layers}; T5Backbone has as many decoder as encoder layers"
        )
    activation, gated = _feedforward(hf_config)
    return {
        "vocabulary_size": vocabulary_size or hf_config["vocab_size"],
        "num_layers": num_layers,
        "num_heads": hf_config["num_heads"],
        "hidden_dim": hf_config["d_model"],
        "intermediate_dim": hf_config["d_ff"],
        "key_value_dim": hf_config["d_kv"],
        "dropout": hf_config.get("dropout_rate", 0.1),
        "activation": activation,
        "use_gated_activation": gated,
        "layer_norm_epsilon": hf_config.get("layer_norm_epsilon", 1e-6),
        "tie_embedding_weights": _tied(hf_config),
        "relative_attention_num_buckets": hf_config.get("relative_attention_num_buckets", 32),
        "relative_attention_max_distance": hf_config.get("relative_attention_max_distance", 128),
    }


def _embedding_name(checkpoint):
    for name in ("shared.weight", "encoder.embed_tokens.weight"):
        if name in checkpoint:
            return name
    return "shared.weight"


def build_model(checkpoint, dtype=None):
    """A `Seq2SeqLM` on a `T5Backbone` shaped as the checkpoint (weights not loaded)."""
    config = checkpoint.config
    rows = checkpoint.shape(_embedding_name(checkpoint))[0]
    backbone = T5Backbone(**backbone_config_from_hf(config, rows), dtype=dtype)
    return Seq2SeqLM(
        backbone,
        start_token_id=config.get("decoder_start_token_id", config.get("pad_token_id", 0)),
        end_token_id=config.get("eos_token_id", 1),
    )


def _backbone(model):
    return model if isinstance(model, T5Backbone) else model.backbone


def _attention(prefix, attention):
    return [
        transposed(f"{prefix}.{hf}.weight", getattr(attention, f"{kzoo}_dense").kernel)
        for hf, kzoo in (("q", "query"), ("k", "key"), ("v", "value"), ("o", "output"))
    ]


def _feedforward_tensors(prefix, feedforward):
    if feedforward.gated:
        inputs = [
            transposed(f"{prefix}.wi_0.weight", feedforward.gate_dense.kernel),
            transposed(f"{prefix}.wi_1.weight", feedforward.intermediate_dense.kernel),
        ]
    else:
        inputs = [transposed(f"{prefix}.wi.weight", feedforward.intermediate_dense.kernel)]
    return inputs + [transposed(f"{prefix}.wo.weight", feedforward.output_dense.kernel)]


def tensor_map(model, embedding_name="shared.weight"):
    """The `HFTensor`s of a `Seq2SeqLM` on a `T5Backbone` (or the backbone)."""
    backbone = _backbone(model)
    tensors = [same(embedding_name, backbone.token_embedding.embeddings)]
    for stack, blocks, bias, norm in (
        (
            "encoder",
            backbone.encoder_transformer_layers,
            backbone.encoder_relative_position_bias,
            backbone.encoder_layer_norm,
        ),
        (
            "decoder",
            backbone.decoder_transformer_layers,
            backbone.decoder_relative_position_bias,
            backbone.decoder_layer_norm,
        ),
    ):
        tensors.append(
            same(
                f"{stack}.block.0.layer.0.SelfAttention.relative_attention_bias.weight",
                bias.embeddings,
            )
        )
        for i, block in enumerate(blocks):
            p = f"{stack}.block.{i}.layer."
            tensors += _attention(f"{p}0.SelfAttention", block.self_attention)
            tensors.append(same(f"{p}0.layer_norm.weight", block.self_attention_norm.scale))
            ffn = 1
            if stack == "decoder":
                tensors += _attention(f"{p}1.EncDecAttention", block.cross_attention_layer)
                tensors.append(same(f"{p}1.layer_norm.weight", block.cross_attention_norm.scale))
                ffn = 2
            tensors += _feedforward_tensors(f"{p}{ffn}.DenseReluDense", block.feedforward)
            tensors.append(same(f"{p}{ffn}.layer_norm.weight", block.feedforward_norm.scale))
        tensors.append(same(f"{stack}.final_layer_norm.weight", norm.scale))
    if not backbone.tie_embedding_weights:
        # Without its own `lm_head.weight` (transformers 5 ties it when saving
        # equal values) the head is the shared embedding, unscaled.
        tensors.append(
            HFTensor(
                "lm_head.weight",
                (backbone.token_embedding.reverse_embeddings,),
                to_kzoo=lambda a: [a.T],
                to_hf=lambda arrays: arrays[0].T,
                aliases=(embedding_name,),
            )
        )
    return tensors


def _check_copies(checkpoint, embedding, names):
    """Tied copies of the embedding a checkpoint may also hold must equal it."""
    for name in names:
        if name in checkpoint and name != _embedding_name(checkpoint):
            if not np.array_equal(checkpoint.get(name, embedding.shape), embedding):
                raise ValueError(
                    f"{checkpoint.file(name)}: tensor {name!r} differs from "
                    f"{_embedding_name(checkpoint)!r}; T5Backbone has one token embedding"
                )


def load_hf_weights(model, checkpoint):
    """Fills a `Seq2SeqLM` on a `T5Backbone` (or the backbone) from an open
    `SafetensorsCheckpoint`.

    Returns:
        A `kzoo.models.hf_weight_map.HFLoadReport`.
    """
    backbone = _backbone(model)
    report = load_tensors(checkpoint, tensor_map(model, _embedding_name(checkpoint)), MODEL_TYPE)
    embedding = np.asarray(backbone.token_embedding.embeddings.numpy(), "float32")
    copies = ["encoder.embed_tokens.weight", "decoder.embed_tokens.weight"]
    if backbone.tie_embedding_weights:
        copies.append("lm_head.weight")
    _check_copies(checkpoint, embedding, copies)
    report.unused = checkpoint.unused()
    return report


def hf_config_from(model):
    """The `config.json` dict of a `Seq2SeqLM` on a `T5Backbone` (or the backbone)."""
    backbone = _backbone(model)
    activation = {v: k for k, v in ACTIVATIONS.items()}[backbone.activation]
    if backbone.use_gated_activation:
        activation = "gated-gelu" if activation == "gelu_new" else f"gated-{activation}"
    elif activation == "gelu_new":
        raise ValueError("hf_config_from: T5 has no ungated tanh-gelu feed_forward_proj")
    return {
        "model_type": MODEL_TYPE,
        "architectures": ["T5ForConditionalGeneration"],
        "vocab_size": backbone.vocabulary_size,
        "d_model": backbone.hidden_dim,
        "d_kv": backbone.head_dim,
        "d_ff": backbone.intermediate_dim,
        "num_layers": backbone.num_layers,
        "num_decoder_layers": backbone.num_layers,
        "num_heads": backbone.num_heads,
        "relative_attention_num_buckets": backbone.relative_attention_num_buckets,
        "relative_attention_max_distance": backbone.relative_attention_max_distance,
        "dropout_rate": backbone.dropout,
        "layer_norm_epsilon": backbone.layer_norm_epsilon,
        "feed_forward_proj": activation,
        "tie_word_embeddings": bool(backbone.tie_embedding_weights),
        "is_encoder_decoder": True,
        "decoder_start_token_id": getattr(model, "start_token_id", 0),
        "pad_token_id": 0,
        "eos_token_id": getattr(model, "end_token_id", 1),
    }


def hf_tensors_from(model):
    """Yields `(name, float32 array)` of a `T5ForConditionalGeneration` checkpoint."""
    return export_tensors(tensor_map(model))
