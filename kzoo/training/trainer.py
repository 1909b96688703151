"""`kzoo train`: tokenizer, tf.data, model, `model.fit` with TensorBoard, saved run."""

import math
import os
import shutil
import time
import warnings

import keras
import tensorflow as tf

from kzoo.data.causal_lm import causal_lm_dataset, count_tokens
from kzoo.tokenizers import load_tokenizer, train_sentencepiece
from kzoo.training import callbacks as kzoo_callbacks
from kzoo.training import families, run_files
from kzoo.training.config import write_yaml_atomic
from kzoo.training.corpus_source import resolve_corpus

# Not decayed: biases, normalization scales/offsets (GPT-2 / nanoGPT practice).
NO_WEIGHT_DECAY = ["bias", "gamma", "beta", "scale"]


def learning_rate_schedule(train_config, total_steps):
    """Linear warmup to `learning_rate`, then cosine decay to `min_learning_rate`
    at `total_steps` (or constant, for `decay: constant`)."""
    peak = train_config["learning_rate"]
    warmup = min(train_config["warmup_steps"], max(total_steps - 1, 0))
    floor = peak if train_config["decay"] == "constant" else train_config["min_learning_rate"]
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0 if warmup else peak,
        decay_steps=max(total_steps - warmup, 1),
        alpha=min(floor / peak, 1.0),
        warmup_target=peak if warmup else None,
        warmup_steps=warmup,
    )


def make_optimizer(train_config, total_steps):
    optimizer = keras.optimizers.AdamW(
        learning_rate=learning_rate_schedule(train_config, total_steps),
        weight_decay=train_config["weight_decay"],
        beta_1=train_config["beta_1"],
        beta_2=train_config["beta_2"],
        clipnorm=train_config["clipnorm"],
    )
    optimizer.exclude_from_weight_decay(var_names=NO_WEIGHT_DECAY)
    return optimizer


def _parallel_calls(data_config):
    return data_config["num_parallel_calls"] or tf.data.AUTOTUNE


def count_batches(config, tokenizer, documents):
    """Full batches in `documents` (`{"files"|"texts": ...}`), as the pipeline packs them."""
    data = config["data"]
    tokens = count_tokens(tokenizer, **documents, num_parallel_calls=_parallel_calls(data))
    return (tokens - 1) // data["sequence_length"] // data["batch_size"]


def make_datasets(config, tokenizer, source):
    """Train (shuffled) and validation (in order) datasets, both repeated.

    Keras 3.15 returns wrong final metrics from `evaluate` when this pipeline runs
    out of data mid-loop (the per-batch logs are right, the returned ones are not),
    so both datasets repeat and are read for an explicit number of steps:
    `(train, validation, validation_steps)`.
    """
    data = config["data"]
    common = dict(
        tokenizer=tokenizer,
        sequence_length=data["sequence_length"],
        batch_size=data["batch_size"],
        num_parallel_calls=_parallel_calls(data),
        repeat=True,
    )
    train = causal_lm_dataset(
        **common, **source.train, shuffle=True, seed=data["seed"],
        shuffle_buffer_size=data["shuffle_buffer"],
    )
    if not source.validation:
        return train, None, None
    batches = count_batches(config, tokenizer, source.validation)
    if batches < 1:
        raise ValueError(
            "data.validation: the validation text makes no full batch of "
            f"data.batch_size={data['batch_size']} x data.sequence_length="
            f"{data['sequence_length']}; give more text or lower data.batch_size"
        )
    steps = min(batches, config["train"]["validation_steps"] or batches)
    validation = causal_lm_dataset(**common, **source.validation, shuffle=False)
    return train, validation, steps


def plan_steps(config, tokenizer, source):
    """`(total_steps, steps_per_epoch, epochs)` from `train.steps` or `train.epochs`."""
    train, data = config["train"], config["data"]
    if train["steps"] is not None:
        per_epoch = min(train["steps_per_epoch"] or 500, train["steps"])
        return train["steps"], per_epoch, math.ceil(train["steps"] / per_epoch)
    per_epoch = count_batches(config, tokenizer, source.train)
    if per_epoch < 1:
        raise ValueError(
            f"data.train: the training text makes no full batch of data.batch_size="
            f"{data['batch_size']} x data.sequence_length={data['sequence_length']}"
        )
    return per_epoch * train["epochs"], per_epoch, train["epochs"]


def train_tokenizer(config, source, run_dir):
    settings = config["tokenizer"]
    kind = settings["kind"]
    train_sentencepiece(
        output_dir=run_dir,
        vocab_size=None if kind == "char" else settings["vocab_size"],
        model_type=kind,
        files=source.train.get("files"),
        texts=source.train.get("texts"),
        files_key="data.train",
        seed=config["data"]["seed"],
    )
    return load_tokenizer(run_dir)


def train(config, run_dir, verbose="auto"):
    """Trains the recipe `config` (validated) into `run_dir`; returns the summary.

    Refuses a directory that already holds a run, so nothing is overwritten.
    """
    if os.path.exists(os.path.join(run_dir, run_files.CONFIG)):
        raise FileExistsError(
            f"{run_dir}: already holds a run ({run_files.CONFIG}); choose another "
            "--run-dir or delete it"
        )
    source = resolve_corpus(config["data"])  # validates the files before any write
    created = not os.path.exists(run_dir)
    os.makedirs(run_dir, exist_ok=True)
    try:
        keras.utils.set_random_seed(config["train"]["seed"])
        tokenizer = train_tokenizer(config, source, run_dir)
        total_steps, steps_per_epoch, epochs = plan_steps(config, tokenizer, source)
        train_data, validation_data, validation_steps = make_datasets(
            config, tokenizer, source
        )
    except BaseException:
        # A failed set-up leaves nothing behind, so the same command can be retried.
        if created:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    write_yaml_atomic(config, os.path.join(run_dir, run_files.CONFIG))

    train_config = config["train"]
    precision = train_config["precision"]
    model = families.build_model(
        config["model"], tokenizer, dtype=None if precision == "float32" else precision
    )
    model.compile(
        optimizer=make_optimizer(train_config, total_steps),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy(name="accuracy")],
        jit_compile=train_config["jit_compile"],
    )
    board = os.path.join(run_dir, run_files.TENSORBOARD)
    tokens_per_step = config["data"]["batch_size"] * config["data"]["sequence_length"]
    budget = kzoo_callbacks.TimeBudget(train_config["max_minutes"] or math.inf)
    fit_callbacks = [
        kzoo_callbacks.StepLimit(total_steps),
        budget,
        keras.callbacks.TerminateOnNaN(),
        kzoo_callbacks.LanguageModelMetrics(tokens_per_step),
        kzoo_callbacks.TextSamples(
            os.path.join(board, "samples"),
            train_config["sample_prompts"],
            train_config["sample_max_new_tokens"],
        ),
        kzoo_callbacks.TensorBoard(board, update_freq=train_config["log_every"],
                                   write_graph=False),
        EpochCheckpoint(os.path.join(run_dir, run_files.CHECKPOINTS)),
    ]
    start = time.monotonic()
    with warnings.catch_warnings():
        # Stopping at train.steps / the time budget mid-epoch is intended.
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        history = model.fit(
            train_data,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            validation_data=validation_data,
            validation_steps=validation_steps,
            callbacks=fit_callbacks,
            shuffle=False,  # the pipeline shuffles, with its own seed
            verbose=verbose,
        )
    seconds = time.monotonic() - start
    run_files.save_atomically(model.save, os.path.join(run_dir, run_files.MODEL))
    summary = {
        "steps": int(fit_callbacks[0].taken),
        "planned_steps": total_steps,
        "stopped_by_time_budget": budget.stopped_early,
        "train_seconds": round(seconds, 2),
        "parameters": families.count_parameters(model),
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
    }
    run_files.write_json(summary, os.path.join(run_dir, run_files.SUMMARY))
    return summary


class EpochCheckpoint(keras.callbacks.Callback):
    """Writes `last.weights.h5` at the end of every epoch (atomically)."""

    def __init__(self, directory):
        super().__init__()
        self.directory = directory

    def on_epoch_end(self, epoch, logs=None):
        os.makedirs(self.directory, exist_ok=True)
        path = os.path.join(self.directory, "last.weights.h5")
        run_files.save_atomically(self.model.save_weights, path)
