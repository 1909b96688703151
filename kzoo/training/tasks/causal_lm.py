"""GPT, Llama and LSTM language models: packed text in, next-token loss, bits per
word out."""

import math

import keras
import tensorflow as tf

from kzoo.data import text_files
from kzoo.data.causal_lm import causal_lm_dataset
from kzoo.tokenizers import load_tokenizer, train_sentencepiece
from kzoo.training.run_directory import RunDirectory
from kzoo.training.tasks.base import DataPlan, Task
from kzoo.training.tasks.text_sources import resolve_corpus

# The GPT shapes a `train.init_from` run fixes.
GPT_SHAPE_KEYS = (
    "num_layers",
    "num_heads",
    "hidden_dim",
    "intermediate_dim",
    "max_sequence_length",
)
# Llama's: GPT's and every other backbone argument (an imported Mistral or Qwen2
# keeps its window, biases and rotary scaling).
LLAMA_SHAPE_KEYS = GPT_SHAPE_KEYS + (
    "num_key_value_heads",
    "head_dim",
    "rope_theta",
    "rope_scaling",
    "layer_norm_epsilon",
    "tie_embedding_weights",
    "attention_bias",
    "attention_output_bias",
    "feedforward_bias",
    "sliding_window",
)
# `model.family` -> (backbone, task model) class names in `kzoo.models`, and the
# shape keys a `train.init_from` run fixes; the LSTM is built on its own.
DECODERS = {
    "gpt": ("GPTBackbone", "GPTCausalLM", GPT_SHAPE_KEYS),
    "llama": ("LlamaBackbone", "LlamaCausalLM", LLAMA_SHAPE_KEYS),
}


def parallel_calls(data_config):
    return data_config["num_parallel_calls"] or tf.data.AUTOTUNE


class CausalLMTask(Task):
    """Next-token prediction on packed blocks of text (`model.family` gpt, llama,
    lstm)."""

    reports_perplexity = True

    def resolve_data(self):
        self.source = resolve_corpus(self.config["data"])
        return self.source

    @property
    def INIT_FROM_KEYS(self):  # noqa: N802 (the `Task` attribute, per family here)
        """The `model` keys a `train.init_from` run fixes (continued pretraining)."""
        return DECODERS.get(self.config["model"]["family"], DECODERS["gpt"])[2]

    def make_tokenizer(self, run_dir):
        settings = self.config["tokenizer"]
        kind = settings["kind"]
        init_from = self.config["train"]["init_from"]
        if init_from:
            run = RunDirectory(run_dir)
            run.copy_tokenizer_from(init_from)
            return run.tokenizer()
        if kind == "byte_bpe":
            raise ValueError(
                "tokenizer.kind: byte_bpe (GPT-2's byte-level BPE) comes with a pretrained "
                "run; set train.init_from to a `kzoo import`ed GPT-2, or use bpe"
            )
        with self.source.tokenizer_documents() as documents:
            train_sentencepiece(
                output_dir=run_dir,
                vocab_size=None if kind == "char" else settings["vocab_size"],
                model_type=kind,
                **documents,
                files_key="data.train",
                seed=self.config["data"]["seed"],
            )
        return load_tokenizer(run_dir)

    def count_batches(self, tokenizer, documents):
        """Full batches in `documents` (`{"files"|"texts": ...}`, see
        `CorpusSource`), as packed."""
        data = self.config["data"]
        tokens = text_files.count_tokens(
            tokenizer, **documents, num_parallel_calls=parallel_calls(data)
        )
        return (tokens - 1) // self.preprocessor(tokenizer).sequence_length // data["batch_size"]

    def make_data(self, tokenizer):
        """Train (shuffled) and validation (in order) datasets, both repeated.

        Keras 3.15 returns wrong final metrics from `evaluate` when this pipeline
        runs out of data mid-loop (the per-batch logs are right, the returned ones
        are not), so both datasets repeat and are read for an explicit number of
        steps.
        """
        data, source = self.config["data"], self.source
        # The model's preprocessor fixes the tokenizer, block length and end id.
        settings = self.preprocessor(tokenizer).packing_settings()
        length = settings["sequence_length"]
        common = dict(
            **settings,
            batch_size=data["batch_size"],
            num_parallel_calls=parallel_calls(data),
            repeat=True,
        )
        per_epoch = None
        if self.config["train"]["steps"] is None:
            per_epoch = self.count_batches(tokenizer, source.train)
            if per_epoch < 1:
                raise ValueError(
                    f"data.train: the training text makes no full batch of "
                    f"data.batch_size={data['batch_size']} x data.sequence_length={length}"
                )
        train = causal_lm_dataset(
            **common,
            **source.train,
            shuffle=True,
            seed=data["seed"],
            shuffle_buffer_size=data["shuffle_buffer"],
        )
        validation = steps = None
        if source.validation:
            batches = self.count_batches(tokenizer, source.validation)
            if batches < 1:
                raise ValueError(
                    "data.validation: the validation text makes no full batch of "
                    f"data.batch_size={data['batch_size']} x data.sequence_length={length}; "
                    "give more text or lower data.batch_size"
                )
            steps = min(batches, self.config["train"]["validation_steps"] or batches)
            validation = causal_lm_dataset(**common, **source.validation, shuffle=False)
        return DataPlan(
            train,
            validation,
            steps,
            per_epoch,
            data["batch_size"] * length,
            bad_records=source.bad_records,
        )

    def make_preprocessor(self, tokenizer):
        from kzoo.preprocessing import CausalLMPreprocessor

        return CausalLMPreprocessor(tokenizer, self.config["data"]["sequence_length"])

    def build_model(self, tokenizer, dtype=None):
        """A `GPTCausalLM`, `LlamaCausalLM` or `LSTMLanguageModel` of the `model`
        section around `tokenizer` (its vocabulary and end id), with its
        preprocessor."""
        from kzoo import models

        model = self.config["model"]
        settings = {k: v for k, v in model.items() if k != "family"}
        vocabulary_size = int(tokenizer.vocabulary_size)
        if model["family"] in DECODERS:
            backbone_name, model_name, _ = DECODERS[model["family"]]
            backbone_class = getattr(models, backbone_name)
            if self.config["train"]["init_from"]:
                backbone = self.pretrained_backbone(backbone_class, dtype, "sequence_length")
            else:
                backbone = backbone_class(vocabulary_size=vocabulary_size, dtype=dtype, **settings)
            return getattr(models, model_name)(backbone, preprocessor=self.preprocessor(tokenizer))
        return models.LSTMLanguageModel(
            vocabulary_size=vocabulary_size,
            end_token_id=int(tokenizer.eos_id),
            preprocessor=self.preprocessor(tokenizer),
            dtype=dtype,
            **settings,
        )

    def evaluate(self, run_dir, model, tokenizer, data=None, batch_size=None):
        """Held-out loss, perplexity and (built-in corpus) bits per word.

        Returns `loss` (nats per token), `perplexity`, `bits_per_token`, `tokens`;
        on the built-in corpus also `bits_per_word` (total bits over the held-out
        documents per chain symbol), the source's `entropy_rate_bits`, and
        `ratio_to_entropy_rate`.
        """
        config = self.config
        if data:
            source, corpus = {"files": text_files.resolve_text_files(data, "--data")}, None
        else:
            resolved = resolve_corpus(config["data"])
            source, corpus = resolved.validation, resolved.builtin
            if not source:
                raise ValueError(f"{run_dir}: the run has no validation text; pass --data")
        # The model's own settings (a run's model.keras carries its preprocessor).
        settings = self.model_preprocessor(model, tokenizer).packing_settings()
        length = settings["sequence_length"]
        batch_size = batch_size or config["data"]["batch_size"]
        tokens = text_files.count_tokens(tokenizer, **source)
        # Full batches from a repeated dataset: see `make_data` for the Keras issue.
        steps = (tokens - 1) // length // batch_size
        if steps < 1:
            raise ValueError(
                f"{data or 'validation text'}: {tokens} tokens make no full batch of "
                f"{batch_size} x {length}; give more text"
            )
        dataset = causal_lm_dataset(
            **settings, batch_size=batch_size, shuffle=False, repeat=True, **source
        )
        model.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
        loss = float(model.evaluate(dataset, steps=steps, verbose=0, return_dict=True)["loss"])
        result = {
            "loss": loss,
            "perplexity": math.exp(min(loss, 50.0)),
            "bits_per_token": loss / math.log(2),
            "tokens": int(tokens),
            "tokens_evaluated": int(steps * batch_size * length),
        }
        if corpus is not None:
            symbols = corpus.num_symbols(source["texts"])
            result["bits_per_word"] = result["bits_per_token"] * tokens / symbols
            result["entropy_rate_bits"] = corpus.entropy_rate("bits")
            result["ratio_to_entropy_rate"] = result["bits_per_word"] / result["entropy_rate_bits"]
        return result
