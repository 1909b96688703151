"""BERT fine-tuning runs: sequence classification, token tagging, extractive QA.

Each reads the user's files (`kzoo.data.labelled_files`: TSV/CSV/JSONL, CoNLL,
SQuAD JSON Lines) or a generated built-in task (`data.train: builtin`), and adds
its task metrics to the epoch logs (so TensorBoard shows them) and to
`kzoo evaluate --json`: accuracy and macro-F1; entity-level F1; exact match and F1.
"""

import keras
import numpy as np

from kzoo.data import builtin_tasks, labelled_files, qa_answers, qa_windows
from kzoo.data.bad_records import BadRecords
from kzoo.data.bert_finetuning import classification_dataset, tagging_batches, tagging_dataset
from kzoo.data.text_files import resolve_files, split_examples
from kzoo.metrics import task_metrics
from kzoo.training.callbacks import EpochMetrics
from kzoo.training.read_only_config import updated
from kzoo.training.tasks.base import DataPlan
from kzoo.training.tasks.bert_pretrain import BertTask, steps_in
from kzoo.training.tasks.schema import BUILTIN


class _FineTuneTask(BertTask):
    """Reads examples, splits validation, builds the task model on the encoder."""

    builtin = None  # examples(num, seed) of the built-in task

    def __init__(self, config):
        super().__init__(config)
        self.bad_records = {}  # config key -> BadRecords of its files

    def read_file(self, path, key, bad_records):
        raise NotImplementedError

    def read(self, patterns, key):
        """Examples of every file of `patterns`; bad records go to
        `self.bad_records[key]` (`data.on_bad_record`)."""
        records = BadRecords.from_config(self.config["data"], key)
        self.bad_records[key] = records
        examples = []
        for path in resolve_files(patterns, key):
            for example in self.read_file(path, key, records):
                examples.append({**example, "path": path})
        return examples

    def builtin_examples(self, count, seed):
        return [{**e, "path": "builtin"} for e in self.builtin(count, seed)]

    def resolve_data(self):
        self.resolve_init_from()
        data = self.config["data"]
        self.bad_records = {}
        if data["train"] == BUILTIN:
            seed = data["seed"]
            self.train_examples = self.builtin_examples(data["builtin_train_examples"], 2 * seed)
            self.validation_examples = self.builtin_examples(
                data["builtin_validation_examples"], 2 * seed + 1
            )
            return
        self.train_examples = self.read(data["train"], "data.train")
        if data["validation"] is not None:
            self.validation_examples = self.read(data["validation"], "data.validation")
        else:
            self.train_examples, self.validation_examples = split_examples(
                self.train_examples, data["validation_fraction"]
            )

    def evaluation_examples(self, data):
        if data:
            return self.read(data, "--data")
        self.resolve_data()
        if not self.validation_examples:
            raise ValueError("the run has no validation data; pass --data")
        return self.validation_examples

    def make_data(self, tokenizer):
        data = self.config["data"]
        batch = data["batch_size"]
        train = self.dataset(tokenizer, self.train_examples, shuffle=True, repeat=True)
        per_epoch = steps_in(len(train[1]), batch, "data.train")
        validation = None
        if self.validation_examples:
            validation = self.dataset(tokenizer, self.validation_examples)[0]
        return DataPlan(
            train[0],
            validation,
            None,
            per_epoch,
            batch * self.preprocessor(tokenizer).sequence_length,
            bad_records=self.bad_records,
        )

    def dataset(self, tokenizer, examples, shuffle=False, repeat=False):
        """`(dataset, rows)`: the rows count the training units (windows for QA)."""
        raise NotImplementedError

    def scores(self, model, tokenizer, examples):
        """Task metrics of `model` on `examples` (a dict of floats)."""
        raise NotImplementedError

    def callbacks(self, run_dir, model, plan):
        if not self.validation_examples:
            return []
        tokenizer = model.tokenizer
        return [
            EpochMetrics(
                lambda m: self.scores(m, tokenizer, self.validation_examples), prefix="val_"
            )
        ]

    def evaluate(self, run_dir, model, tokenizer, data=None, batch_size=None):
        if batch_size:
            self.config = updated(self.config, data={"batch_size": batch_size})
        examples = self.evaluation_examples(data)
        return {**self.scores(model, tokenizer, examples), "examples": len(examples)}


class BertClassifyTask(_FineTuneTask):
    """Single-text or text-pair classification (`model.task: classify`)."""

    def read_file(self, path, key, bad_records):
        data = self.config["data"]
        return labelled_files.read_classification_file(
            path,
            text_column=data["text_column"],
            label_column=data["label_column"],
            text_pair_column=data["text_pair_column"],
            header=data["header"],
            file_format=data["format"],
            key=key,
            bad_records=bad_records,
        )

    def builtin(self, count, seed):
        if self.config["data"]["builtin_task"] == "next_sentence":
            return builtin_tasks.pair_classification_examples(count, seed)
        return builtin_tasks.classification_examples(count, seed)

    def tokenizer_texts(self):
        return [t for e in self.train_examples for t in (e["text"], e["text_pair"]) if t]

    def labels(self):
        return labelled_files.label_vocabulary(self.train_examples)

    def dataset(self, tokenizer, examples, shuffle=False, repeat=False, model=None):
        """`model`: a trained classifier, whose labels and preprocessor are used."""
        data = self.config["data"]
        labels = model.labels if model is not None else self.labels()
        preprocessor = self.model_preprocessor(model, tokenizer)
        # Each example names its own file ("path") in an unknown-label error.
        ids = labelled_files.labels_to_ids(examples, labels, None)
        dataset = classification_dataset(
            preprocessor,
            examples,
            ids,
            data["batch_size"],
            shuffle=shuffle,
            seed=data["seed"],
            repeat=repeat,
        )
        return dataset, examples

    def build_model(self, tokenizer, dtype=None):
        from kzoo.models import BertClassifier

        return BertClassifier(
            self.build_backbone(tokenizer, dtype),
            labels=self.labels(),
            dropout=self.config["model"]["classifier_dropout"],
            preprocessor=self.preprocessor(tokenizer),
        )

    def make_preprocessor(self, tokenizer):
        from kzoo.preprocessing import BertClassifierPreprocessor

        data = self.config["data"]
        # Trained on pairs: the built-in next-sentence task, or a pair column.
        if data["train"] == BUILTIN:
            pairs = data.get("builtin_task") == "next_sentence"
        else:
            pairs = data.get("text_pair_column") is not None
        return BertClassifierPreprocessor(tokenizer, data["sequence_length"], pairs=pairs)

    def scores(self, model, tokenizer, examples):
        dataset, _ = self.dataset(tokenizer, examples, model=model)
        truth, predicted = [], []
        for features, labels in dataset:
            logits = model(features, training=False)
            predicted += np.argmax(keras.ops.convert_to_numpy(logits), -1).tolist()
            truth += labels.numpy().tolist()
        truth, predicted = np.array(truth), np.array(predicted)
        return {
            "accuracy": float(np.mean(truth == predicted)),
            "macro_f1": task_metrics.macro_f1(truth, predicted, len(model.labels)),
        }


class BertTagTask(_FineTuneTask):
    """BIO token tagging, first sub-word labelled (`model.task: tag`)."""

    def read_file(self, path, key, bad_records):
        return labelled_files.read_conll_file(path, key=key, bad_records=bad_records)

    def builtin(self, count, seed):
        return builtin_tasks.tagging_examples(count, seed)

    def tokenizer_texts(self):
        return [" ".join(e["tokens"]) for e in self.train_examples]

    def tags(self):
        return labelled_files.tag_vocabulary(self.train_examples)

    def _batches(self, preprocessor, examples, tags, **kwargs):
        data = self.config["data"]
        index = {tag: i for i, tag in enumerate(tags)}
        for example in examples:
            for tag in example["tags"]:
                if tag not in index:
                    raise ValueError(
                        f"{example['path']}:{example['line']}: unknown tag "
                        f"{tag!r}; the model knows {tags}"
                    )
        ids = [[index[t] for t in e["tags"]] for e in examples]
        return (preprocessor.word_inputs, examples, ids, data["batch_size"]), dict(
            seed=data["seed"], **kwargs
        )

    def dataset(self, tokenizer, examples, shuffle=False, repeat=False):
        args, kwargs = self._batches(
            self.preprocessor(tokenizer), examples, self.tags(), shuffle=shuffle, repeat=repeat
        )
        return tagging_dataset(*args, **kwargs), examples

    def build_model(self, tokenizer, dtype=None):
        from kzoo.models import BertTokenClassifier

        return BertTokenClassifier(
            self.build_backbone(tokenizer, dtype),
            labels=self.tags(),
            dropout=self.config["model"]["classifier_dropout"],
            preprocessor=self.preprocessor(tokenizer),
        )

    def make_preprocessor(self, tokenizer):
        from kzoo.preprocessing import BertTaggerPreprocessor

        return BertTaggerPreprocessor(tokenizer, self.config["data"]["sequence_length"])

    def compile_args(self):
        return {
            "loss": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            "weighted_metrics": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        }

    def scores(self, model, tokenizer, examples):
        args, kwargs = self._batches(
            self.model_preprocessor(model, tokenizer), examples, model.labels
        )
        predicted = []
        for features, _, _, first in tagging_batches(*args, **kwargs):
            logits = keras.ops.convert_to_numpy(model(features, training=False))
            best = np.argmax(logits, -1)
            # Words cut off by the length limit count as predicted "O".
            predicted += [
                [model.labels[best[row, p]] if p >= 0 else "O" for p in positions]
                for row, positions in enumerate(first.to_list())
            ]
        truth = [list(e["tags"]) for e in examples]
        words = sum(len(t) for t in truth)
        correct = sum(a == b for t, p in zip(truth, predicted) for a, b in zip(t, p))
        entities = task_metrics.entity_f1(truth, predicted)
        return {
            "accuracy": correct / max(words, 1),
            "entity_f1": entities["f1"],
            "entity_precision": entities["precision"],
            "entity_recall": entities["recall"],
        }


class BertQATask(_FineTuneTask):
    """Extractive question answering over context windows (`model.task: qa`)."""

    def read_file(self, path, key, bad_records):
        return labelled_files.read_squad_file(path, key=key, bad_records=bad_records)

    def builtin(self, count, seed):
        return builtin_tasks.qa_examples(count, seed)

    def tokenizer_texts(self):
        return [t for e in self.train_examples for t in (e["question"], e["context"])]

    def dataset(self, tokenizer, examples, shuffle=False, repeat=False):
        data = self.config["data"]
        features, labels = qa_windows.qa_training_windows(
            self.preprocessor(tokenizer).windows, examples
        )
        dataset = qa_windows.windows_dataset(
            features,
            labels,
            batch_size=data["batch_size"],
            shuffle=shuffle,
            seed=data["seed"],
            repeat=repeat,
        )
        return dataset, labels["start_logits"]

    def build_model(self, tokenizer, dtype=None):
        from kzoo.models import BertQuestionAnswerer

        return BertQuestionAnswerer(
            self.build_backbone(tokenizer, dtype), preprocessor=self.preprocessor(tokenizer)
        )

    def make_preprocessor(self, tokenizer):
        from kzoo.preprocessing import BertQuestionAnswererPreprocessor

        data = self.config["data"]
        return BertQuestionAnswererPreprocessor(
            tokenizer,
            data["sequence_length"],
            max_query_tokens=data["max_query_tokens"],
            doc_stride=data["doc_stride"],
            max_answer_tokens=data["max_answer_tokens"],
        )

    def compile_args(self):
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        return {
            "loss": {"start_logits": loss, "end_logits": loss},
            "loss_weights": {"start_logits": 0.5, "end_logits": 0.5},
            "metrics": {
                "start_logits": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
                "end_logits": [keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
            },
        }

    def scores(self, model, tokenizer, examples):
        preprocessor = self.model_preprocessor(model, tokenizer)
        answers = qa_answers.predict_answers(
            model,
            preprocessor.tokenizer,
            examples,
            max_answer_tokens=preprocessor.max_answer_tokens,
            batch_size=self.config["data"]["batch_size"],
            **preprocessor.window_settings(),
        )
        return qa_answers.qa_metrics(answers, examples)
