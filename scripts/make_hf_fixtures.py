"""Writes tests/fixtures/hf/: tiny random Hugging Face checkpoints and their outputs.

Run with a Python that has `torch` and `transformers` (kzoo itself never needs them):

    python scripts/make_hf_fixtures.py [--out tests/fixtures/hf]

Each fixture is a directory written by `save_pretrained(safe_serialization=True)`
(`config.json`, `model.safetensors` or shards plus `model.safetensors.index.json`)
and `reference.npz`: the inputs (fixed ids, attention masks with padding) and the
float32 outputs `transformers` computes for them, plus greedy generations of
`NEW_TOKENS` tokens (end token disabled) for GPT-2 and T5.
`tests/models/test_hf_checkpoints.py` loads each into kzoo and compares.

Weights are random with fixed seeds, larger than the libraries' default
initialisation (and with random norm scales and biases), so that a wrong mapping
changes the outputs and greedy decoding has clear margins between tokens.
"""

import argparse
import json
import os
import shutil

import numpy as np
import torch
import transformers

NEW_TOKENS = 32


def randomize(model, seed, std=0.15):
    """Every parameter random: norm scales around 1, everything else normal(std)."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            is_norm_scale = ("ln" in name or "norm" in name.lower()) and name.endswith("weight")
            parameter.copy_(1.0 + 0.1 * noise if is_norm_scale else std * noise)
    model.eval()
    return model


def no_end_token(model):
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = 0
    return model


def min_margin(logits):
    top = np.sort(logits, axis=-1)[..., -2:]
    return float((top[..., 1] - top[..., 0]).min())


def save(model, directory, arrays, **save_kwargs):
    if os.path.exists(directory):
        shutil.rmtree(directory)
    model.save_pretrained(directory, safe_serialization=True, **save_kwargs)
    np.savez(os.path.join(directory, "reference.npz"), **arrays)
    files = sorted(os.listdir(directory))
    size = sum(os.path.getsize(os.path.join(directory, f)) for f in files)
    print(f"{directory}: {files} {size / 1024:.0f} KiB")


def ids(rng, vocabulary_size, shape, low=3):
    return rng.integers(low, vocabulary_size, size=shape).astype("int64")


def gpt2_case(config, seed, model_class=transformers.GPT2LMHeadModel):
    """A decoder-only causal LM (GPT-2; Llama, Mistral, Qwen2 with `model_class`)."""
    model = randomize(model_class(config), seed)
    rng = np.random.default_rng(seed)
    token_ids = ids(rng, config.vocab_size, (2, 10))
    mask = np.ones_like(token_ids)
    mask[1, 7:] = 0
    arrays = {"token_ids": token_ids, "padding_mask": mask}
    with torch.no_grad():
        logits = model(
            input_ids=torch.tensor(token_ids), attention_mask=torch.tensor(mask)
        ).logits.numpy()
    arrays["logits"] = logits.astype("float32")
    no_end_token(model)
    margins = []
    for i, length in enumerate((5, 8)):
        prompt = ids(rng, config.vocab_size, (1, length))
        with torch.no_grad():
            out = model.generate(
                torch.tensor(prompt),
                max_new_tokens=NEW_TOKENS,
                do_sample=False,
                output_scores=True,
                return_dict_in_generate=True,
            )
        arrays[f"prompt_{i}"] = prompt[0]
        arrays[f"generated_{i}"] = out.sequences[0, length:].numpy()
        margins.append(min_margin(torch.stack(out.scores).numpy()))
    print(config.model_type, "greedy margin", min(margins))
    return model, arrays


def bert_case(model, seed):
    config = model.config
    rng = np.random.default_rng(seed)
    token_ids = ids(rng, config.vocab_size, (2, 12))
    segment_ids = np.zeros_like(token_ids)
    segment_ids[:, 6:] = 1
    mask = np.ones_like(token_ids)
    mask[1, 9:] = 0
    arrays = {"token_ids": token_ids, "segment_ids": segment_ids, "padding_mask": mask}
    inputs = dict(
        input_ids=torch.tensor(token_ids),
        token_type_ids=torch.tensor(segment_ids),
        attention_mask=torch.tensor(mask),
        output_hidden_states=True,
    )
    with torch.no_grad():
        out = model(**inputs)
    if isinstance(model, transformers.BertForPreTraining):
        arrays["mlm_logits"] = out.prediction_logits.numpy()
        arrays["nsp_logits"] = out.seq_relationship_logits.numpy()
        arrays["sequence_output"] = out.hidden_states[-1].numpy()
    else:
        arrays["sequence_output"] = out.last_hidden_state.numpy()
        arrays["pooled_output"] = out.pooler_output.numpy()
    return model, arrays


def t5_case(config, seed, tie_word_embeddings):
    # transformers 5 always ties T5's embeddings when building from a config
    # (`tie_word_embeddings` there only says whether to rescale the decoder
    # output); an untied head, as T5 v1.1's released checkpoints have, is set here.
    config.tie_word_embeddings = tie_word_embeddings
    model = randomize(transformers.T5ForConditionalGeneration(config), seed)
    with torch.no_grad():  # one input embedding, as in every released T5
        model.encoder.embed_tokens.weight.copy_(model.shared.weight)
        model.decoder.embed_tokens.weight.copy_(model.shared.weight)
    rng = np.random.default_rng(seed)
    source = ids(rng, config.vocab_size, (2, 9))
    source_mask = np.ones_like(source)
    source_mask[1, 6:] = 0
    target = ids(rng, config.vocab_size, (2, 7))
    target[:, 0] = config.decoder_start_token_id
    target_mask = np.ones_like(target)
    target_mask[1, 5:] = 0
    arrays = {
        "encoder_token_ids": source,
        "encoder_padding_mask": source_mask,
        "decoder_token_ids": target,
        "decoder_padding_mask": target_mask,
    }
    with torch.no_grad():
        out = model(
            input_ids=torch.tensor(source),
            attention_mask=torch.tensor(source_mask),
            decoder_input_ids=torch.tensor(target),
            decoder_attention_mask=torch.tensor(target_mask),
        )
    arrays["logits"] = out.logits.numpy()
    arrays["encoder_sequence_output"] = out.encoder_last_hidden_state.numpy()
    no_end_token(model)
    with torch.no_grad():
        generated = model.generate(
            input_ids=torch.tensor(source),
            attention_mask=torch.tensor(source_mask),
            max_new_tokens=NEW_TOKENS,
            do_sample=False,
            output_scores=True,
            return_dict_in_generate=True,
        )
    # Without the start token the decoder begins with.
    arrays["generated"] = generated.sequences[:, 1:].numpy()
    print("t5 greedy margin", min_margin(torch.stack(generated.scores).numpy()))
    return model, arrays


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.path.join("tests", "fixtures", "hf"))
    out = parser.parse_args().out
    torch.manual_seed(0)
    eager = {"attn_implementation": "eager"}

    gpt2 = transformers.GPT2Config(
        vocab_size=128,
        n_positions=64,
        n_embd=32,
        n_layer=2,
        n_head=4,
        bos_token_id=1,
        eos_token_id=2,
        **eager,
    )
    model, arrays = gpt2_case(gpt2, seed=1)
    save(model, os.path.join(out, "gpt2"), arrays)
    # The same weights in two shards: a loader must follow the index.
    save(model, os.path.join(out, "gpt2_sharded"), arrays, max_shard_size="60KB")
    # bfloat16 on disk; the reference is float32 arithmetic on the rounded weights.
    model = model.to(torch.bfloat16).to(torch.float32)
    bf16_arrays = {"token_ids": arrays["token_ids"], "padding_mask": arrays["padding_mask"]}
    with torch.no_grad():
        bf16_arrays["logits"] = model(
            input_ids=torch.tensor(arrays["token_ids"]),
            attention_mask=torch.tensor(arrays["padding_mask"]),
        ).logits.numpy()
    save(model.to(torch.bfloat16), os.path.join(out, "gpt2_bf16"), bf16_arrays)

    # Odd shapes: 3 heads of 12, an intermediate width that is not 4x, exact gelu,
    # an untied output head and an odd vocabulary.
    odd = transformers.GPT2Config(
        vocab_size=131,
        n_positions=48,
        n_embd=36,
        n_layer=2,
        n_head=3,
        n_inner=50,
        activation_function="gelu",
        tie_word_embeddings=False,
        bos_token_id=1,
        eos_token_id=2,
        **eager,
    )
    model, arrays = gpt2_case(odd, seed=2)
    save(model, os.path.join(out, "gpt2_odd"), arrays)

    # The modern decoders: grouped-query attention (4 query heads on 2 key/value
    # heads), Llama-3 rope scaling and an untied head; Mistral's sliding window;
    # Qwen2's q/k/v biases and a tied head.
    decoder = dict(
        vocab_size=128,
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        bos_token_id=1,
        eos_token_id=2,
        **eager,
    )
    llama3_scaling = {
        "rope_type": "llama3",
        "factor": 8.0,
        "low_freq_factor": 1.0,
        "high_freq_factor": 4.0,
        "original_max_position_embeddings": 16,
    }
    cases = {
        "llama": (
            transformers.LlamaForCausalLM,
            transformers.LlamaConfig(
                rope_theta=500000.0,
                rope_scaling=llama3_scaling,
                tie_word_embeddings=False,
                **decoder,
            ),
        ),
        "mistral": (
            transformers.MistralForCausalLM,
            transformers.MistralConfig(sliding_window=4, tie_word_embeddings=False, **decoder),
        ),
        "qwen2": (
            transformers.Qwen2ForCausalLM,
            transformers.Qwen2Config(tie_word_embeddings=True, **decoder),
        ),
    }
    for seed, (name, (model_class, config)) in enumerate(cases.items(), start=10):
        model, arrays = gpt2_case(config, seed=seed, model_class=model_class)
        save(model, os.path.join(out, name), arrays)

    bert = transformers.BertConfig(
        vocab_size=120,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=64,
        type_vocab_size=2,
        **eager,
    )
    model = randomize(transformers.BertForPreTraining(bert), seed=3)
    model, arrays = bert_case(model, seed=3)
    save(model, os.path.join(out, "bert"), arrays)

    bert_base = transformers.BertConfig(
        vocab_size=99,
        hidden_size=24,
        num_hidden_layers=2,
        num_attention_heads=3,
        intermediate_size=40,
        max_position_embeddings=32,
        type_vocab_size=3,
        **eager,
    )
    model = randomize(transformers.BertModel(bert_base), seed=4)
    model, arrays = bert_case(model, seed=4)
    save(model, os.path.join(out, "bert_base_only"), arrays)

    t5_v1_0 = transformers.T5Config(
        vocab_size=100,
        d_model=32,
        d_kv=8,
        d_ff=48,
        num_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=20,
        feed_forward_proj="relu",
        tie_word_embeddings=True,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
        **eager,
    )
    model, arrays = t5_case(t5_v1_0, seed=5, tie_word_embeddings=True)
    save(model, os.path.join(out, "t5_v1_0"), arrays)

    # T5 v1.1: gated-gelu, untied head, num_heads * d_kv (36) != d_model (32).
    t5_v1_1 = transformers.T5Config(
        vocab_size=110,
        d_model=32,
        d_kv=12,
        d_ff=40,
        num_layers=2,
        num_heads=3,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=20,
        feed_forward_proj="gated-gelu",
        tie_word_embeddings=False,
        decoder_start_token_id=0,
        pad_token_id=0,
        eos_token_id=1,
        **eager,
    )
    model, arrays = t5_case(t5_v1_1, seed=6, tie_word_embeddings=False)
    save(model, os.path.join(out, "t5_v1_1"), arrays)
    print(json.dumps({"transformers": transformers.__version__, "torch": torch.__version__}))


if __name__ == "__main__":
    main()
