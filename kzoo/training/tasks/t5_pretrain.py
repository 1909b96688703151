"""T5 pretraining: span corruption on plain text (`model.family: t5`, `model.task:
pretrain`).

The text is tokenized into one stream, cut into blocks of the length that
`span_corruption_lengths` gives for `data.max_source_length` inputs, and each
block is corrupted afresh every epoch: 15% of its tokens (`data.noise_density`)
in spans of mean length 3 (`data.mean_noise_span_length`) become sentinels in
the input and are spelled out in the target. The built-in text is the English
side of the built-in translation pair plus its Toy translations, so a fine-tuning
run (`train.init_from`) finds both languages in the vocabulary.
"""

from kzoo.data import builtin_translation, text_files
from kzoo.data.seq2seq_pipeline import batch_seq2seq
from kzoo.data.span_corruption import span_corruption_dataset, span_corruption_lengths, token_blocks
from kzoo.data.text_files import count_tokens, document_dataset, token_stream
from kzoo.training.read_only_config import updated
from kzoo.training.tasks.base import DataPlan
from kzoo.training.tasks.schema import BUILTIN
from kzoo.training.tasks.seq2seq import EncoderDecoderTask
from kzoo.training.tasks.text_sources import CorpusSource, resolve_corpus


def builtin_documents(count, seed):
    """English documents of the built-in pair, each followed by its Toy translation."""
    documents = []
    for document in builtin_translation.pretraining_texts(count, seed=seed):
        lines = document.split("\n")
        documents += [document, "\n".join(builtin_translation.translate(s) for s in lines)]
    return documents


class T5PretrainTask(EncoderDecoderTask):
    """Span-corruption pretraining of a `T5Backbone`."""

    def resolve_data(self):
        data = self.config["data"]
        if data["train"] == BUILTIN:
            seed = data["seed"]
            self.source = CorpusSource(
                {"texts": builtin_documents(data["builtin_train_documents"], 2 * seed)},
                {"texts": builtin_documents(data["builtin_validation_documents"], 2 * seed + 1)},
            )
        else:
            self.source = resolve_corpus(data)
        self.lengths()
        return self.source

    def lengths(self, preprocessor=None):
        """`(tokens per block, target length)` for the lengths of `preprocessor`
        (default: the recipe's, before there is a tokenizer); checks the target fits."""
        data = self.config["data"]
        sources, decoder = data["max_source_length"], data["max_target_length"]
        if preprocessor is not None:
            sources, decoder = preprocessor.max_source_length, preprocessor.max_target_length
        tokens, targets = span_corruption_lengths(
            sources, data["noise_density"], data["mean_noise_span_length"]
        )
        if targets + 1 > decoder:
            raise ValueError(
                f"data.max_target_length: {decoder} is too short for the span-corruption "
                f"targets of data.max_source_length={sources} ({targets} tokens + the "
                f"start token); set it to at least {targets + 1}"
            )
        return tokens, targets

    def num_sentinels(self):
        return self.config["data"]["num_sentinels"]

    def tokenizer_corpus(self):
        return self.source.tokenizer_documents()

    def count_batches(self, preprocessor, documents, key):
        data = self.config["data"]
        tokens_per_block, _ = self.lengths(preprocessor)
        batches = (
            count_tokens(preprocessor.tokenizer, **documents)
            // tokens_per_block
            // data["batch_size"]
        )
        if batches < 1:
            raise ValueError(
                f"{key}: the text makes no full batch of data.batch_size="
                f"{data['batch_size']} blocks of {tokens_per_block} tokens"
            )
        return batches

    def dataset(self, preprocessor, documents, seed, shuffle):
        """Span-corrupted blocks, tokenized, ended and batched as `preprocessor`
        (the model's) says."""
        data = self.config["data"]
        tokenizer, end_id = preprocessor.tokenizer, preprocessor.end_token_id
        tokens_per_block, _ = self.lengths(preprocessor)
        stream = token_stream(document_dataset(**documents), tokenizer, end_token_id=end_id)
        blocks = token_blocks(stream, tokens_per_block).repeat()
        if shuffle:
            blocks = blocks.shuffle(data["shuffle_buffer"], seed=seed)
        examples = span_corruption_dataset(
            blocks,
            tokenizer.sentinel_ids,
            end_id,
            data["noise_density"],
            data["mean_noise_span_length"],
            seed=seed,
        )
        return batch_seq2seq(
            examples,
            data["batch_size"],
            start_id=preprocessor.start_token_id,
            max_source_length=preprocessor.max_source_length,
            max_target_length=preprocessor.max_target_length,
            drop_remainder=True,
        )

    def make_data(self, tokenizer):
        data, seed = self.config["data"], self.config["data"]["seed"]
        preprocessor = self.preprocessor(tokenizer)
        per_epoch = self.count_batches(preprocessor, self.source.train, "data.train")
        validation = steps = None
        if self.source.validation:
            steps = self.count_batches(preprocessor, self.source.validation, "data.validation")
            steps = min(steps, self.config["train"]["validation_steps"] or steps)
            validation = self.dataset(preprocessor, self.source.validation, seed + 1, False)
        lengths = preprocessor.max_source_length + preprocessor.max_target_length
        return DataPlan(
            self.dataset(preprocessor, self.source.train, seed, True),
            validation,
            steps,
            per_epoch,
            data["batch_size"] * lengths,
            bad_records=self.source.bad_records,
        )

    def evaluate(self, run_dir, model, tokenizer, data=None, batch_size=None):
        """Span-corruption loss and target-token accuracy on `data` (text files)
        or the validation text (the same corruption as during training)."""
        if batch_size:
            self.config = updated(self.config, data={"batch_size": batch_size})
        if data:
            documents = {"files": text_files.resolve_text_files(data, "--data")}
        else:
            documents = self.resolve_data().validation
            if not documents:
                raise ValueError(f"{run_dir}: the run has no validation text; pass --data")
        preprocessor = self.model_preprocessor(model, tokenizer)
        steps = self.count_batches(preprocessor, documents, data or "validation")
        seed = self.config["data"]["seed"] + 1
        model.compile(**self.compile_args())
        result = model.evaluate(
            self.dataset(preprocessor, documents, seed, False),
            steps=steps,
            verbose=0,
            return_dict=True,
        )
        return {
            "loss": float(result["loss"]),
            "accuracy": float(result["accuracy"]),
            "blocks": steps * self.config["data"]["batch_size"],
        }
