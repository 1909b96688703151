"""Encoder-decoder runs: translation (`model.family: seq2seq`, Transformer or LSTM)
and T5 text-to-text fine-tuning (`model.family: t5`, `model.task: finetune`).

Both read (source, target) pairs (`kzoo.training.tasks.text_sources`), train a shared
SentencePiece vocabulary on both sides (or copy the `train.init_from` run's),
batch them by length (`kzoo.data.seq2seq_pipeline`), and train `Seq2SeqLM` with
teacher forcing and label smoothing. Every epoch the first `data.eval_examples`
validation pairs are decoded greedily: BLEU, ROUGE and exact match go to the
epoch logs (TensorBoard) and a table of samples to TensorBoard text.
`kzoo evaluate` reports the same metrics with beam search and greedy decoding.
"""

import contextlib

import keras

from kzoo.data import builtin_translation, seq2seq_pipeline
from kzoo.metrics import text_metrics
from kzoo.tokenizers import TOKENIZER_FILENAME, load_tokenizer, train_sentencepiece
from kzoo.training.callbacks import GenerationMetrics
from kzoo.training.losses import SparseCrossentropyWithSmoothing
from kzoo.training.read_only_config import updated
from kzoo.training.run_directory import RunDirectory
from kzoo.training.tasks import text_sources
from kzoo.training.tasks.base import DataPlan, Task

# `model` keys that describe a T5 network (taken from `train.init_from`).
T5_KEYS = (
    "num_layers",
    "num_heads",
    "hidden_dim",
    "intermediate_dim",
    "key_value_dim",
    "activation",
    "use_gated_activation",
    "tie_embedding_weights",
    "max_sequence_length",
)


def decode_all(
    model,
    sources,
    max_new_tokens,
    strategy="greedy",
    num_beams=4,
    batch_size=64,
    jit_compile="auto",
):
    """`model.generate` over `sources` in batches; a list of strings."""
    outputs = []
    for start in range(0, len(sources), batch_size):
        outputs += model.generate(
            sources[start : start + batch_size],
            max_new_tokens=max_new_tokens,
            strategy=strategy,
            num_beams=num_beams,
            jit_compile=jit_compile,
        )
    return outputs


class EncoderDecoderTask(Task):
    """What every encoder-decoder run shares: the vocabulary, the model, the loss."""

    generates_from_prompts = False
    INIT_FROM_KEYS = T5_KEYS  # only T5 fine-tuning starts from a run

    def num_sentinels(self):
        return 0

    def tokenizer_corpus(self):
        """A context manager giving the `{"texts": [...]}` or `{"files": [...]}` the
        vocabulary is learned from (files may be temporary copies without their
        skipped bad lines)."""
        raise NotImplementedError

    def make_tokenizer(self, run_dir):
        init_from = self.config["train"]["init_from"]
        if init_from:
            run = RunDirectory(run_dir)
            run.copy_tokenizer_from(init_from)
            return run.tokenizer()
        settings = self.config["tokenizer"]
        kind = settings["kind"]
        with self.tokenizer_corpus() as corpus:
            train_sentencepiece(
                output_dir=run_dir,
                vocab_size=None if kind == "char" else settings["vocab_size"],
                model_type=kind,
                **corpus,
                files_key="data.train",
                seed=self.config["data"]["seed"],
                num_sentinels=self.num_sentinels(),
            )
        return load_tokenizer(run_dir)

    def size_table(self):
        """T5's sizes, or the seq2seq Transformer's (the LSTM has none)."""
        from kzoo.models import SEQ2SEQ_SIZES, T5_SIZES

        model = self.config["model"]
        if model["family"] == "t5":
            return T5_SIZES
        return None if model["architecture"] == "lstm" else SEQ2SEQ_SIZES

    def build_backbone(self, tokenizer, dtype=None):
        from kzoo.models import LSTMSeq2SeqBackbone, Seq2SeqBackbone, T5Backbone

        model = self.model_settings()
        vocabulary_size = int(tokenizer.vocabulary_size)
        if model["family"] == "t5":
            if self.config["train"]["init_from"]:
                return self.pretrained_backbone(T5Backbone, dtype)
            return T5Backbone(
                vocabulary_size=vocabulary_size,
                dropout=model["dropout"],
                dtype=dtype,
                **{k: model[k] for k in T5_KEYS},
            )
        common = dict(
            vocabulary_size=vocabulary_size,
            num_layers=model["num_layers"],
            hidden_dim=model["hidden_dim"],
            dropout=model["dropout"],
            max_sequence_length=model["max_sequence_length"],
            dtype=dtype,
        )
        if model["architecture"] == "lstm":
            return LSTMSeq2SeqBackbone(
                embedding_dim=model["embedding_dim"], bidirectional=model["bidirectional"], **common
            )
        return Seq2SeqBackbone(
            num_heads=model["num_heads"],
            intermediate_dim=model["intermediate_dim"],
            norm_first=model["norm_first"],
            **common,
        )

    def make_preprocessor(self, tokenizer):
        from kzoo.preprocessing import Seq2SeqPreprocessor

        data = self.config["data"]
        return Seq2SeqPreprocessor(
            tokenizer,
            data["max_source_length"],
            data["max_target_length"],
            task_prefix=data.get("task_prefix"),
        )

    def build_model(self, tokenizer, dtype=None):
        from kzoo.models import Seq2SeqLM

        return Seq2SeqLM(
            self.build_backbone(tokenizer, dtype), preprocessor=self.preprocessor(tokenizer)
        )

    def compile_args(self):
        return {
            # Mean over real target tokens (Keras' default divides by every
            # position, padding included): nats per token, whatever the padding.
            "loss": SparseCrossentropyWithSmoothing(
                self.config["model"]["label_smoothing"], reduction="mean_with_sample_weight"
            ),
            "weighted_metrics": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        }

    def batches(self, preprocessor, pairs, shuffle=False, repeat=False):
        """Teacher-forcing batches of `pairs`, tokenized and cut to the lengths of
        `preprocessor` (the model's)."""
        data = self.config["data"]
        return seq2seq_pipeline.seq2seq_dataset(
            pairs,
            **preprocessor.batching_settings(),
            batch_size=data["batch_size"],
            bucket_boundaries=data["bucket_boundaries"],
            shuffle=shuffle,
            seed=data["seed"],
            shuffle_buffer_size=data["shuffle_buffer"],
            repeat=repeat,
        )

    def kept_batches(self, preprocessor, pairs, key):
        """Batches of the pairs that fit the length limits of `preprocessor` (at
        least one)."""
        data = self.config["data"]
        settings = preprocessor.batching_settings()
        sources, targets = settings["max_source_length"], settings["max_target_length"]
        kept, total = seq2seq_pipeline.count_kept_pairs(
            pairs, settings["tokenizer"], sources, targets, end_id=settings["end_id"]
        )
        if kept < data["batch_size"]:
            raise ValueError(
                f"{key}: {kept} of {total} pairs fit data.max_source_length={sources} "
                f"and data.max_target_length={targets} tokens: no full batch of data.batch_size="
                f"{data['batch_size']}; raise the limits or give more data"
            )
        if kept < total:
            print(
                f"{key}: {total - kept} of {total} pairs are longer than the length "
                "limits and are skipped"
            )
        return kept // data["batch_size"]

    def loss_and_accuracy(self, model, tokenizer, pairs, batch_size=None):
        """Teacher-forced loss and token accuracy over `pairs`."""
        if batch_size:
            self.config = updated(self.config, data={"batch_size": batch_size})
        preprocessor = self.model_preprocessor(model, tokenizer)
        steps = self.kept_batches(preprocessor, pairs, "validation")
        model.compile(**self.compile_args())
        result = model.evaluate(
            self.batches(preprocessor, pairs, repeat=True), steps=steps, verbose=0, return_dict=True
        )
        return {"loss": float(result["loss"]), "accuracy": float(result["accuracy"])}


class Seq2SeqTask(EncoderDecoderTask):
    """Translation or text-to-text on (source, target) pairs."""

    def resolve_data(self):
        data = self.config["data"]
        builtin_translation.check_mixture(data["mixture"] if "mixture" in data else None)
        if self.config["train"]["init_from"]:
            init_from = self.config["train"]["init_from"]
            if RunDirectory(init_from).tokenizer_kind() != "sentencepiece":
                raise FileNotFoundError(
                    f"train.init_from: {init_from} is not a kzoo run directory (no "
                    f"{TOKENIZER_FILENAME}); give the --run-dir of a t5 pretraining run"
                )
        self.source = text_sources.resolve_pairs(self.config_data_with_defaults())
        return self.source

    def config_data_with_defaults(self):
        return {"mixture": None, **self.config["data"]}

    def tokenizer_corpus(self):
        pairs = self.source.train
        return contextlib.nullcontext(
            {"texts": [text for pair in pairs for text in (pair["source"], pair["target"])]}
        )

    def make_data(self, tokenizer):
        data, source = self.config["data"], self.source
        preprocessor = self.preprocessor(tokenizer)
        per_epoch = self.kept_batches(preprocessor, source.train, "data.train")
        if source.rates is None:
            train = self.batches(preprocessor, source.train, shuffle=True, repeat=True)
        else:
            tasks = [
                (
                    None,
                    seq2seq_pipeline.pair_dataset(pairs)
                    .repeat()
                    .shuffle(data["shuffle_buffer"], seed=data["seed"]),
                )
                for _, pairs in source.tasks
            ]
            mixed = text_sources.mixture_dataset(tasks, source.rates, seed=data["seed"])
            train = self.batches(preprocessor, mixed)
        validation = steps = None
        if source.validation:
            steps = self.kept_batches(preprocessor, source.validation, "data.validation")
            steps = min(steps, self.config["train"]["validation_steps"] or steps)
            validation = self.batches(preprocessor, source.validation, repeat=True)
        lengths = preprocessor.max_source_length + preprocessor.max_target_length
        tokens = data["batch_size"] * lengths
        return DataPlan(train, validation, steps, per_epoch, tokens, bad_records=source.bad_records)

    def max_new_tokens(self):
        return self.config["data"]["max_target_length"] - 1

    def scores(self, model, pairs, strategy="greedy"):
        """BLEU, ROUGE and exact match of `model` decoding `pairs`."""
        sources = [pair["source"] for pair in pairs]
        predictions = decode_all(
            model,
            sources,
            self.max_new_tokens(),
            strategy,
            num_beams=self.config["export"]["num_beams"],
        )
        return text_metrics.generation_metrics(predictions, [pair["target"] for pair in pairs])

    def callbacks(self, run_dir, model, plan):
        pairs = self.source.validation[: self.config["data"]["eval_examples"]]
        if not pairs:
            return []
        board = RunDirectory(run_dir).tensorboard_dir("samples")
        return [
            GenerationMetrics(
                board,
                pairs,
                # A monitor decodes a few rows per epoch: no XLA compile (see TextSamples).
                lambda m, sources: decode_all(m, sources, self.max_new_tokens(), jit_compile=False),
                text_metrics.generation_metrics,
            )
        ]

    def evaluate(self, run_dir, model, tokenizer, data=None, batch_size=None):
        """Loss, token accuracy, and BLEU / ROUGE / exact match with beam search
        (`bleu`, ...) and greedy decoding (`greedy_bleu`, ...)."""
        if data:
            pairs = text_sources.read_tables(self.config["data"], data, "--data")
            pairs = text_sources.with_prefix(pairs, self.config["data"]["task_prefix"])
        else:
            pairs = self.resolve_data().validation
            if not pairs:
                raise ValueError(f"{run_dir}: the run has no validation pairs; pass --data")
        result = self.loss_and_accuracy(model, tokenizer, pairs, batch_size)
        beam = self.scores(model, pairs, "beam")
        greedy = self.scores(model, pairs, "greedy")
        return {
            **result,
            **beam,
            **{f"greedy_{k}": v for k, v in greedy.items()},
            "num_beams": self.config["export"]["num_beams"],
            "examples": len(pairs),
        }
