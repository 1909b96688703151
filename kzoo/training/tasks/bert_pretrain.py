"""BERT runs: the shared part (WordPiece, encoder, `train.init_from`) and pretraining.

Fine-tuning tasks (classification, tagging, QA) are in `bert_finetuning_tasks`.
A fine-tuning recipe with `train.init_from: RUN_DIR` copies that run's vocabulary
and starts from its encoder weights; the encoder's shape keys of `model` are then
taken from that run (`BertTask.derived_config`: written so in the new run's
config.yaml).
"""

import keras

from kzoo.data import builtin_tasks, text_files
from kzoo.data.bad_records import BadRecords
from kzoo.data.bert_pretraining import (
    bert_pretraining_dataset,
    pretraining_examples,
    read_documents,
)
from kzoo.tokenizers import load_tokenizer, train_wordpiece
from kzoo.tokenizers.wordpiece_trainer import VOCAB_FILENAME
from kzoo.training.read_only_config import updated
from kzoo.training.run_directory import RunDirectory
from kzoo.training.tasks.base import DataPlan, Task
from kzoo.training.tasks.schema import BUILTIN

# `model` keys that describe the encoder (taken from `train.init_from`).
ENCODER_KEYS = (
    "num_layers",
    "num_heads",
    "hidden_dim",
    "intermediate_dim",
    "max_sequence_length",
    "num_segments",
)


def steps_in(count, batch_size, key):
    steps = count // batch_size
    if steps < 1:
        raise ValueError(
            f"{key}: {count} examples make no full batch of "
            f"data.batch_size={batch_size}; give more data or lower it"
        )
    return steps


class BertTask(Task):
    """What every BERT run shares: the tokenizer and the encoder."""

    INIT_FROM_KEYS = ENCODER_KEYS

    def make_tokenizer(self, run_dir):
        init_from = self.config["train"]["init_from"]
        if init_from:
            run = RunDirectory(run_dir)
            run.copy_tokenizer_from(init_from)
            return run.tokenizer()
        settings = self.config["tokenizer"]
        train_wordpiece(
            output_dir=run_dir,
            vocab_size=settings["vocab_size"],
            texts=self.tokenizer_texts(),
            files_key="data.train",
            lowercase=settings["lowercase"],
        )
        return load_tokenizer(run_dir)

    def tokenizer_texts(self):
        """The training text the vocabulary is learned from."""
        raise NotImplementedError

    def build_backbone(self, tokenizer, dtype=None):
        from kzoo.models import BertBackbone

        model = self.model_settings()
        init_from = self.config["train"]["init_from"]
        if not init_from:
            return BertBackbone(
                vocabulary_size=int(tokenizer.vocabulary_size),
                dtype=dtype,
                dropout=model["dropout"],
                **{k: model[k] for k in ENCODER_KEYS},
            )
        return self.pretrained_backbone(BertBackbone, dtype, "sequence_length")

    def size_table(self):
        from kzoo.models.bert import BERT_SIZES

        return BERT_SIZES

    def resolve_init_from(self):
        init_from = self.config["train"]["init_from"]
        if init_from is None:
            return
        if RunDirectory(init_from).tokenizer_kind() != "wordpiece":
            raise FileNotFoundError(
                f"train.init_from: {init_from} is not a BERT run directory (no "
                f"{VOCAB_FILENAME}); give the --run-dir of a bert pretraining run"
            )


class BertPretrainTask(BertTask):
    """Masked-LM + next-sentence prediction on documents (`model.task: pretrain`)."""

    def resolve_data(self):
        data = self.config["data"]
        self.bad_records = {}
        if data["train"] == BUILTIN:
            seed = data["seed"]
            self.train_documents = builtin_tasks.pretraining_documents(
                data["builtin_train_documents"], seed=2 * seed
            )
            self.validation_documents = builtin_tasks.pretraining_documents(
                data["builtin_validation_documents"], seed=2 * seed + 1
            )
            return
        self.train_documents = self._read_documents(data["train"], "data.train")
        if data["validation"] is not None:
            self.validation_documents = self._read_documents(data["validation"], "data.validation")
        else:
            self.train_documents, self.validation_documents = text_files.split_examples(
                self.train_documents, data["validation_fraction"]
            )
        if not self.train_documents:
            raise ValueError(f"data.train: {data['train']!r} holds no text")

    def _read_documents(self, patterns, key):
        """Documents of the files of `key`; bad lines go to `self.bad_records[key]`."""
        records = BadRecords.from_config(self.config["data"], key)
        self.bad_records[key] = records
        files = text_files.resolve_text_files(patterns, key, validate=False)
        return read_documents(files, records)

    def tokenizer_texts(self):
        return [sentence for doc in self.train_documents for sentence in doc]

    def _examples(self, preprocessor, documents, seed):
        """Sentence pairs packed to the length of `preprocessor` (the model's)."""
        data = self.config["data"]
        return pretraining_examples(
            preprocessor.tokenizer,
            documents,
            preprocessor.sequence_length,
            seed,
            random_next_probability=data["nsp_random_probability"],
            short_sequence_probability=data["short_sequence_probability"],
        )

    def _dataset(self, examples, preprocessor, seed, shuffle):
        """Batches masked at the rates of `preprocessor` (the model's)."""
        return bert_pretraining_dataset(
            examples,
            preprocessor.tokenizer,
            self.config["data"]["batch_size"],
            seed=seed,
            shuffle=shuffle,
            repeat=True,
            same_masks_every_pass=not shuffle,
            **preprocessor.masking_settings(),
        )

    def make_data(self, tokenizer):
        data = self.config["data"]
        seed, batch = data["seed"], data["batch_size"]
        preprocessor = self.preprocessor(tokenizer)
        train = self._examples(preprocessor, self.train_documents, seed)
        per_epoch = steps_in(len(train["nsp_labels"]), batch, "data.train")
        validation, steps = None, None
        if self.validation_documents:
            examples = self._examples(preprocessor, self.validation_documents, seed + 1)
            steps = steps_in(len(examples["nsp_labels"]), batch, "data.validation")
            steps = min(steps, self.config["train"]["validation_steps"] or steps)
            validation = self._dataset(examples, preprocessor, seed + 1, shuffle=False)
        return DataPlan(
            self._dataset(train, preprocessor, seed, shuffle=True),
            validation,
            steps,
            per_epoch,
            batch * preprocessor.sequence_length,
            bad_records=self.bad_records,
        )

    def make_preprocessor(self, tokenizer):
        from kzoo.preprocessing import BertMaskedLMPreprocessor

        data = self.config["data"]
        return BertMaskedLMPreprocessor(
            tokenizer,
            data["sequence_length"],
            mask_selection_rate=data["mlm_selection_rate"],
            mask_token_rate=data["mlm_mask_token_rate"],
            random_token_rate=data["mlm_random_token_rate"],
        )

    def build_model(self, tokenizer, dtype=None):
        from kzoo.models import BertPretrainer

        return BertPretrainer(
            self.build_backbone(tokenizer, dtype), preprocessor=self.preprocessor(tokenizer)
        )

    def compile_args(self):
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        return {
            "loss": {"mlm": loss, "nsp": loss},
            "weighted_metrics": {
                "mlm": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                "nsp": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
            },
        }

    def evaluate(self, run_dir, model, tokenizer, data=None, batch_size=None):
        """MLM and NSP accuracy and losses on `data` (text files) or the validation text."""
        settings = self.config["data"]
        if data:
            documents = read_documents(text_files.resolve_text_files(data, "--data"))
        else:
            self.resolve_data()
            documents = self.validation_documents
        if not documents:
            raise ValueError(f"{run_dir}: the run has no validation text; pass --data")
        preprocessor = self.model_preprocessor(model, tokenizer)
        examples = self._examples(preprocessor, documents, settings["seed"] + 1)
        batch_size = batch_size or settings["batch_size"]
        self.config = updated(self.config, data={"batch_size": batch_size})
        steps = steps_in(len(examples["nsp_labels"]), batch_size, data or "validation")
        dataset = self._dataset(examples, preprocessor, settings["seed"] + 1, shuffle=False)
        model.compile(**self.compile_args())
        result = model.evaluate(dataset, steps=steps, verbose=0, return_dict=True)
        return {
            "loss": float(result["loss"]),
            "mlm_loss": float(result["mlm_loss"]),
            "nsp_loss": float(result["nsp_loss"]),
            "mlm_accuracy": float(result["mlm_accuracy"]),
            "nsp_accuracy": float(result["nsp_accuracy"]),
            "pairs": int(steps * batch_size),
        }
