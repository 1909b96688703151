"""Hugging Face BERT checkpoints (`model_type: bert`) into `BertPretrainer`, and back.

Weights are `torch.nn.Linear` `(out, in)`, transposed into Keras kernels. A
checkpoint saved from `BertModel` has no `bert.` prefix and no heads; one from
`BertForPreTraining` has both heads (`cls.predictions.*`: masked LM, its decoder
tied to the word embeddings; `cls.seq_relationship.*`: next sentence), one from
`BertForMaskedLM` only the first and no pooler. Heads and the pooler a checkpoint
lacks start fresh, and the load report names them.
"""

from kzoo.models.bert.bert_backbone import BertBackbone
from kzoo.models.bert.bert_pretrainer import BertPretrainer
from kzoo.models.hf_weight_map import dense, export_tensors, layer_norm, load_tensors, same

MODEL_TYPE = "bert"
ACTIVATIONS = {"gelu": "gelu", "gelu_new": "gelu_approximate", "relu": "relu"}


def backbone_config_from_hf(hf_config, vocabulary_size=None):
    """`BertBackbone` keyword arguments for a BERT `config.json` dict.

    Args:
        hf_config: The parsed `config.json`.
        vocabulary_size: The checkpoint's embedding rows, when known.
    """
    activation = hf_config.get("hidden_act", "gelu")
    if activation not in ACTIVATIONS:
        raise ValueError(
            f"config.json: hidden_act={activation!r} is not supported; "
            f"use one of {sorted(ACTIVATIONS)}"
        )
    position = hf_config.get("position_embedding_type", "absolute")
    if position != "absolute":
        raise ValueError(
            f"config.json: position_embedding_type={position!r} is not supported; use 'absolute'"
        )
    return {
        "vocabulary_size": vocabulary_size or hf_config["vocab_size"],
        "num_layers": hf_config["num_hidden_layers"],
        "num_heads": hf_config["num_attention_heads"],
        "hidden_dim": hf_config["hidden_size"],
        "intermediate_dim": hf_config["intermediate_size"],
        "dropout": hf_config.get("hidden_dropout_prob", 0.1),
        "max_sequence_length": hf_config.get("max_position_embeddings", 512),
        "num_segments": hf_config.get("type_vocab_size", 2),
        "activation": ACTIVATIONS[activation],
        "layer_norm_epsilon": hf_config.get("layer_norm_eps", 1e-12),
    }


def _prefix(checkpoint):
    return "bert." if "bert.embeddings.word_embeddings.weight" in checkpoint else ""


def build_model(checkpoint, dtype=None):
    """A `BertPretrainer` shaped as the checkpoint (weights not loaded yet)."""
    rows = checkpoint.shape(f"{_prefix(checkpoint)}embeddings.word_embeddings.weight")[0]
    backbone = BertBackbone(**backbone_config_from_hf(checkpoint.config, rows), dtype=dtype)
    return BertPretrainer(backbone)


def _backbone(model):
    return model if isinstance(model, BertBackbone) else model.backbone


def tensor_map(model, prefix="bert."):
    """The `HFTensor`s of a `BertPretrainer` (heads included) or a `BertBackbone`."""
    backbone = _backbone(model)
    e = f"{prefix}embeddings."
    tensors = [
        same(f"{e}word_embeddings.weight", backbone.token_embedding.embeddings),
        same(f"{e}position_embeddings.weight", backbone.position_embedding.position_embeddings),
        same(f"{e}token_type_embeddings.weight", backbone.segment_embedding.embeddings),
        *layer_norm(f"{e}LayerNorm", backbone.embeddings_layer_norm),
    ]
    for i, block in enumerate(backbone.transformer_layers):
        p = f"{prefix}encoder.layer.{i}."
        attention = block.self_attention
        tensors += [
            *dense(f"{p}attention.self.query", attention.query_dense),
            *dense(f"{p}attention.self.key", attention.key_dense),
            *dense(f"{p}attention.self.value", attention.value_dense),
            *dense(f"{p}attention.output.dense", attention.output_dense),
            *layer_norm(f"{p}attention.output.LayerNorm", block.self_attention_norm),
            *dense(f"{p}intermediate.dense", block.feedforward.intermediate_dense),
            *dense(f"{p}output.dense", block.feedforward.output_dense),
            *layer_norm(f"{p}output.LayerNorm", block.feedforward_norm),
        ]
    tensors += dense(f"{prefix}pooler.dense", backbone.pooled_dense, group="pooler")
    if isinstance(model, BertPretrainer):
        mlm, t = model.mlm_head, "cls.predictions."
        tensors += [
            *dense(f"{t}transform.dense", mlm.dense, group="mlm head"),
            *layer_norm(f"{t}transform.LayerNorm", mlm.layer_norm, group="mlm head"),
            same(f"{t}bias", mlm.output_bias, group="mlm head"),
            *dense("cls.seq_relationship", model.nsp_head, group="nsp head"),
        ]
    return tensors


def load_hf_weights(model, checkpoint):
    """Fills a `BertPretrainer` (or `BertBackbone`) from an open `SafetensorsCheckpoint`.

    Returns:
        A `kzoo.models.hf_weight_map.HFLoadReport`; its `fresh` names the heads
        (and pooler) the checkpoint lacks.
    """
    # The MLM decoder is the word embedding (tied) and its bias `cls.predictions.bias`.
    checkpoint.mark_used("cls.predictions.decoder.weight", "cls.predictions.decoder.bias")
    checkpoint.mark_used(*(n for n in checkpoint.names if n.endswith("position_ids")))
    return load_tensors(checkpoint, tensor_map(model, _prefix(checkpoint)), MODEL_TYPE)


def hf_config_from(model):
    """The `config.json` dict of a `BertPretrainer` (or `BertBackbone`)."""
    backbone = _backbone(model)
    activation = {v: k for k, v in ACTIVATIONS.items()}[backbone.activation]
    pretrainer = isinstance(model, BertPretrainer)
    return {
        "model_type": MODEL_TYPE,
        "architectures": ["BertForPreTraining" if pretrainer else "BertModel"],
        "vocab_size": backbone.vocabulary_size,
        "hidden_size": backbone.hidden_dim,
        "num_hidden_layers": backbone.num_layers,
        "num_attention_heads": backbone.num_heads,
        "intermediate_size": backbone.intermediate_dim,
        "hidden_act": activation,
        "hidden_dropout_prob": backbone.dropout,
        "attention_probs_dropout_prob": backbone.dropout,
        "max_position_embeddings": backbone.max_sequence_length,
        "type_vocab_size": backbone.num_segments,
        "layer_norm_eps": backbone.layer_norm_epsilon,
        "position_embedding_type": "absolute",
        "pad_token_id": 0,
    }


def hf_tensors_from(model):
    """Yields `(name, float32 array)`: a `BertForPreTraining` checkpoint for a
    `BertPretrainer`, a `BertModel` one (no prefix) for a `BertBackbone`."""
    prefix = "bert." if isinstance(model, BertPretrainer) else ""
    return export_tensors(tensor_map(model, prefix))
