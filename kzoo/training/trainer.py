"""`kzoo train`: tokenizer, tf.data, model, `model.fit` with TensorBoard, saved run."""

import math
import os
import shutil
import time
import warnings

import keras
import tensorflow as tf

from kzoo.training import callbacks as kzoo_callbacks
from kzoo.training import families, run_files
from kzoo.training.config import write_yaml_atomic
from kzoo.training.task import task_for

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


def plan_steps(config, steps_per_epoch):
    """`(total_steps, steps_per_epoch, epochs)` from `train.steps` or `train.epochs`
    (`steps_per_epoch`: batches in one pass over the training data)."""
    train = config["train"]
    if train["steps"] is not None:
        per_epoch = min(train["steps_per_epoch"] or 500, train["steps"])
        return train["steps"], per_epoch, math.ceil(train["steps"] / per_epoch)
    return steps_per_epoch * train["epochs"], steps_per_epoch, train["epochs"]


def train(config, run_dir, verbose="auto"):
    """Trains the recipe `config` (validated) into `run_dir`; returns the summary.

    Refuses a directory that already holds a run, so nothing is overwritten.
    """
    if os.path.exists(os.path.join(run_dir, run_files.CONFIG)):
        raise FileExistsError(
            f"{run_dir}: already holds a run ({run_files.CONFIG}); choose another "
            "--run-dir or delete it"
        )
    task = task_for(config)
    task.resolve_data()  # validates the files before any write
    created = not os.path.exists(run_dir)
    os.makedirs(run_dir, exist_ok=True)
    try:
        keras.utils.set_random_seed(config["train"]["seed"])
        tokenizer = task.make_tokenizer(run_dir)
        plan = task.make_data(tokenizer)
        total_steps, steps_per_epoch, epochs = plan_steps(config, plan.steps_per_epoch)
        precision = config["train"]["precision"]
        model = task.build_model(tokenizer,
                                 dtype=None if precision == "float32" else precision)
    except BaseException:
        # A failed set-up leaves nothing behind, so the same command can be retried.
        if created:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    # After the build: a task may fill model keys (named sizes, `train.init_from`).
    write_yaml_atomic(config, os.path.join(run_dir, run_files.CONFIG))

    train_config = config["train"]
    model.compile(
        optimizer=make_optimizer(train_config, total_steps),
        jit_compile=train_config["jit_compile"],
        **task.compile_args(),
    )
    board = os.path.join(run_dir, run_files.TENSORBOARD)
    budget = kzoo_callbacks.TimeBudget(train_config["max_minutes"] or math.inf)
    fit_callbacks = [
        kzoo_callbacks.StepLimit(total_steps),
        budget,
        keras.callbacks.TerminateOnNaN(),
        *task.callbacks(run_dir, model, plan),
        kzoo_callbacks.LanguageModelMetrics(plan.tokens_per_step,
                                            perplexity=task.reports_perplexity),
        *([kzoo_callbacks.TextSamples(
            os.path.join(board, "samples"),
            train_config["sample_prompts"],
            train_config["sample_max_new_tokens"],
        )] if task.generates_from_prompts else []),
        kzoo_callbacks.TensorBoard(board, update_freq=train_config["log_every"],
                                   write_graph=False),
        EpochCheckpoint(os.path.join(run_dir, run_files.CHECKPOINTS)),
    ]
    start = time.monotonic()
    with warnings.catch_warnings():
        # Stopping at train.steps / the time budget mid-epoch is intended.
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        # BERT tagging and QA heads do not use the pooler.
        warnings.filterwarnings("ignore", message="Gradients do not exist for variables "
                                                  r"\['pooled_dense")
        history = model.fit(
            plan.train,
            epochs=epochs,
            steps_per_epoch=steps_per_epoch,
            validation_data=plan.validation,
            validation_steps=plan.validation_steps,
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
