"""`kzoo train`: tokenizer, tf.data, model, `model.fit` with TensorBoard, saved run."""

import math
import os
import shutil
import time
import warnings
import zlib

import keras
import tensorflow as tf

from kzoo.training import callbacks as kzoo_callbacks
from kzoo.training import checkpoints, distillation, distribute, lora, pruning, resume
from kzoo.training.config import ConfigError
from kzoo.training.monitoring import monitors
from kzoo.training.optimizer import make_optimizer
from kzoo.training.read_only_config import updated
from kzoo.training.recipe import validate
from kzoo.training.run_directory import RunDirectory
from kzoo.training.run_lock import RunLock
from kzoo.training.tasks.registry import task_for


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

    A directory holding a finished run is refused, so nothing is overwritten. A
    directory holding an unfinished run (killed or interrupted) is resumed from its
    last checkpoint, step-exactly (`kzoo.training.resume`); its saved config is
    used, and `config` must agree with it.

    `train.strategy` spreads the run over devices or hosts
    (`kzoo.training.distribute`); on a cluster only the chief writes `run_dir`,
    the other workers write into a temporary directory, deleted at the end.

    The writer holds the lock of `run_dir` (`kzoo.training.run_lock`) throughout.

    Raises:
        TrainingInterrupted: SIGTERM or SIGINT arrived; a checkpoint was written.
        RunDirectoryInUse: Another process is training into `run_dir`.
    """
    if RunDirectory(run_dir).has_config():
        config = resumable_config(config, run_dir)
    # First: a multi-worker strategy configures TensorFlow before it runs anything.
    placement = distribute.placement_for(config)
    if not placement.is_chief:
        with distribute.worker_directory(run_dir) as scratch:
            return _train(config, scratch, placement, verbose)
    with RunLock(run_dir, "kzoo train") as lock:
        # Again under the lock: another run may have started or finished it meanwhile.
        if RunDirectory(run_dir).has_config():
            config = resumable_config(config, run_dir)
        return _train(config, run_dir, placement, verbose, created=lock.created_directory)


def _train(config, run_dir, placement, verbose, created=False):
    """Trains into `run_dir`; `created`: whether this run created it (removed again if
    the set-up fails)."""
    run = RunDirectory(run_dir)
    resuming = run.has_config()
    task = task_for(config)
    task.resolve_data()  # validates the files before any write
    checkpoint_dir = run.checkpoints_dir
    # Before the chief writes anything, so no worker sees a half-made run.
    placement.agree("the step to start from", _start_step(checkpoint_dir) if resuming else -1)
    os.makedirs(run_dir, exist_ok=True)
    try:
        keras.utils.set_random_seed(config["train"]["seed"])
        if config["train"]["deterministic"]:
            tf.config.experimental.enable_op_determinism()
        teacher_run = config["train"]["distill_from"]
        teacher_dir = RunDirectory(teacher_run) if teacher_run else None
        if resuming:
            tokenizer = run.tokenizer()
        elif teacher_run and not config["train"]["init_from"]:
            distillation.check_teacher(config, teacher_dir)
            run.copy_tokenizer_from(teacher_dir)  # A student speaks its teacher's tokens.
            tokenizer = run.tokenizer()
        else:
            tokenizer = task.make_tokenizer(run_dir)
        placement.agree("the tokenizer's vocabulary (CRC-32)", _vocabulary_crc(tokenizer))
        plan = task.make_data(tokenizer)
        total_steps, steps_per_epoch, epochs = plan_steps(config, plan.steps_per_epoch)
        warmup = config["train"]["warmup_steps"]
        if not resuming and warmup >= total_steps > 1:
            print(
                f"Note: train.warmup_steps {warmup} is not below the run's "
                f"{total_steps} steps (train.steps, or train.epochs); the learning "
                f"rate warms up over {total_steps - 1} steps instead"
            )
        precision = config["train"]["precision"]
        with placement.scope():
            model = task.build_model(tokenizer, dtype=None if precision == "float32" else precision)
            lora_settings = config["train"]["lora"]
            if lora_settings:
                lora.enable_lora(model, lora_settings)
                if config["train"]["adapters_from"]:
                    lora.load_adapters(model, config["train"]["adapters_from"], lora_settings)
            if teacher_run:
                teacher = distillation.load_teacher(config, teacher_dir, tokenizer)
                distillation.check_outputs(model, teacher, teacher_run)
        placement.check_model(model)
        parameters, trainable = lora.parameter_counts(model)
        if lora_settings:
            print(
                f"LoRA rank {lora_settings['rank']} on {'/'.join(lora_settings['targets'])}: "
                f"{trainable:,} of {parameters:,} parameters train ({trainable / parameters:.2%})"
            )
    except BaseException:
        # A failed set-up leaves nothing behind, so the same command can be retried.
        if created:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    # The config as built: what the task derived (named sizes, `train.init_from`'s
    # shapes) filled in; the run's config.yaml.
    config = task.derived_config(model)
    if not resuming:
        run.write_config(config)

    train_config = config["train"]
    checkpoints.remove_unfinished(checkpoint_dir)
    state = {"step": 0, "history": []}
    last = checkpoints.latest(checkpoint_dir)
    if teacher_run:
        distill = train_config["distill"]
        distillation.attach(model, teacher, distill["temperature"], distill["alpha"])
    pruner = None
    if train_config["prune"]:
        pruner = pruning.Pruner(
            model, train_config["prune"], total_steps, event_dir=run.tensorboard_dir("train")
        )
    with placement.scope():
        model.compile(
            optimizer=make_optimizer(train_config, total_steps),
            jit_compile=placement.jit_compile(train_config["jit_compile"]),
            **task.compile_args(),
        )
        if last is not None:
            state = checkpoints.restore(last, model, extra=pruner and pruner.checkpoint_variables)
            print(f"Resuming {run_dir} from step {state['step']} ({last})")
        elif not model.optimizer.built:
            # Built now rather than inside the first step: Keras would otherwise
            # trace the train step twice (once to build, once to run).
            model.optimizer.build(model.trainable_variables)
        resume.build_for_fit(model, plan.train)
    skipped = report_bad_records(
        plan.bad_records, run.tensorboard_dir("train"), write_summary=last is None
    )
    budget = kzoo_callbacks.TimeBudget(train_config["max_minutes"] or math.inf)
    step_limit = kzoo_callbacks.StepLimit(total_steps, taken=state["step"])
    signals = resume.SignalFlag()
    checkpointer = resume.StepCheckpoint(
        checkpoint_dir,
        run_dir,
        train_config["checkpoint_every"],
        steps_per_epoch,
        step_limit,
        signals,
        history=state["history"],
        state={"total_steps": total_steps, "steps_per_epoch": steps_per_epoch},
        extra_variables=pruner and pruner.checkpoint_variables,
    )
    if pruner is not None:
        pruner.step = state["step"]
    tensorboard = kzoo_callbacks.TensorBoard(
        run.tensorboard_dir(),
        update_freq=train_config["log_every"],
        write_graph=False,
        **monitors.tensorboard_options(config),
    )
    fit_callbacks = [
        step_limit,
        budget,
        keras.callbacks.TerminateOnNaN(),
        *([pruner] if pruner is not None else []),  # Before checkpoints: masked weights.
        *task.callbacks(run_dir, model, plan),
        *monitors.callbacks(config, run_dir, model, plan, tokenizer),
        kzoo_callbacks.LanguageModelMetrics(
            plan.tokens_per_step,
            perplexity=task.reports_perplexity,
            loss_name=distillation.TASK_LOSS if teacher_run else "loss",
        ),
        *(
            [
                kzoo_callbacks.TextSamples(
                    run.tensorboard_dir("samples"),
                    train_config["sample_prompts"],
                    train_config["sample_max_new_tokens"],
                )
            ]
            if task.generates_from_prompts
            else []
        ),
        tensorboard,
        checkpointer,
        kzoo_callbacks.ProgressBar(),  # Last, as Keras' own: it prints the epoch logs.
    ]
    start = time.monotonic()
    with warnings.catch_warnings(), signals:
        # Stopping at train.steps / the time budget mid-epoch is intended.
        warnings.filterwarnings("ignore", message="Your input ran out of data")
        # BERT tagging and QA heads do not use the pooler.
        warnings.filterwarnings(
            "ignore",
            message="Gradients do not exist for variables "
            r"\['pooled_dense",
        )
        phases = resume.fit_phases(state["step"], total_steps, steps_per_epoch, epochs)
        for index, phase in enumerate(phases):
            if budget.stopped_early or step_limit.taken >= total_steps:
                break
            if index:
                # A second iterator of the same dataset would reshuffle differently
                # (`reshuffle_each_iteration`); a rebuilt pipeline's first iterator
                # gives the uninterrupted run's stream.
                plan = task.make_data(tokenizer)
            try:
                with placement.scope():
                    model.fit(
                        placement.prepare(plan.train.skip(phase.skip_batches)),
                        initial_epoch=phase.initial_epoch,
                        epochs=phase.epochs,
                        steps_per_epoch=phase.steps_per_epoch,
                        validation_data=placement.prepare(plan.validation),
                        validation_steps=plan.validation_steps,
                        callbacks=fit_callbacks,
                        shuffle=False,  # the pipeline shuffles, with its own seed
                        verbose=verbose,
                    )
            except resume.TrainingInterrupted:
                for callback in fit_callbacks:  # Flush and close the event files.
                    callback.on_train_end()
                raise
    seconds = time.monotonic() - start
    run.save_model(model)  # A LoRA layer saves its kernel merged.
    if lora_settings:
        lora.save_adapters(
            model, run.adapters_dir, lora_settings, base=train_config["init_from"], replace=True
        )
    summary = {
        "steps": int(step_limit.taken),
        "planned_steps": total_steps,
        "resumed_from_step": state["step"] if last is not None else None,
        "skipped_records": skipped,
        "stopped_by_time_budget": budget.stopped_early,
        "train_seconds": round(seconds, 2),
        "strategy": placement.name,
        "replicas": placement.num_replicas,
        "parameters": parameters,
        "trainable_parameters": trainable,
        "history": _history_columns(checkpointer.history),
    }
    run.write_summary(summary)
    return summary


def _start_step(checkpoint_dir):
    last = checkpoints.latest(checkpoint_dir)
    return 0 if last is None else checkpoints.read_state(last)["step"]


def _vocabulary_crc(tokenizer):
    return zlib.crc32("\n".join(tokenizer.get_vocabulary()).encode("utf-8"))


def report_bad_records(bad_records, event_dir, write_summary=True):
    """Prints one line per data key with skipped records (`data.on_bad_record:
    skip`) and writes the counts as TensorBoard scalars `data/skipped_records/KEY`
    (step 0); returns `{key: count}`."""
    counts = {key: records.count for key, records in bad_records.items()}
    for records in bad_records.values():
        if records.count:
            print(records.summary())
    if counts and write_summary:
        writer = tf.summary.create_file_writer(event_dir)
        with writer.as_default(), tf.summary.record_if(True):
            for key, count in counts.items():
                tf.summary.scalar(f"data/skipped_records/{key}", count, step=0)
        writer.close()
    return counts


def resumable_config(config, run_dir):
    """The saved config of the unfinished run in `run_dir`, checked against `config`.

    Keys the user set (not None) must equal the saved ones, except those in
    `RESUME_MAY_CHANGE`; keys the task derived (`Task.derived_keys`: a named size's,
    the `train.init_from` run's shapes) are taken as saved.
    """
    run = RunDirectory(run_dir)
    if run.is_finished():
        raise FileExistsError(
            f"{run_dir}: already holds a finished run ({run.SUMMARY}); choose "
            "another --run-dir or delete it"
        )
    saved = validate(run.config())
    if config is None:
        return saved
    derived = task_for(config).derived_keys()
    for section, values in config.items():  # validated: every section is a dict
        for key, value in values.items():
            name = f"{section}.{key}"
            if value is None or name in RESUME_MAY_CHANGE or name in derived:
                continue
            if saved.get(section, {}).get(key) != value:
                raise ConfigError(
                    f"{name}: {value!r} differs from {saved.get(section, {}).get(key)!r} "
                    f"in the unfinished run {run.config_path}; resume with the same recipe "
                    "(kzoo train --resume RUN_DIR) or choose another --run-dir"
                )
    changes = {}
    for name in RESUME_MAY_CHANGE:
        section, key = name.split(".")
        changes.setdefault(section, {})[key] = config[section][key]
    return updated(saved, **changes)


# Keys a resumed run may change: the time budget of this attempt.
RESUME_MAY_CHANGE = ("train.max_minutes",)


def _history_columns(epoch_logs):
    """`[{name: value}]` per epoch -> `{name: [values]}` (as Keras' History)."""
    columns = {}
    for logs in epoch_logs:
        for key, value in logs.items():
            columns.setdefault(key, []).append(float(value))
    return columns
