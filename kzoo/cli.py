"""The `kzoo` command line: one command per step of the workflow.

    kzoo train CONFIG [--run-dir DIR] [--set key.sub=value ...]
    kzoo train --resume RUN_DIR
    kzoo sweep CONFIG --grid KEY=V1,V2 [--grid KEY=V1,V2 ...] [--set KEY=VALUE ...]
               [--out DIR]
    kzoo evaluate RUN_DIR [--data PATH] [--json]
    kzoo evaluate RUN_DIR_OR_SAVEDMODEL --tasks FILE.jsonl|builtin:NAME [...]
                  [--shots K [K ...]] [--seed S] [--batch-size N] [--json]
    kzoo generate RUN_DIR_OR_SAVEDMODEL --prompt TEXT [--max-new-tokens N]
                  [--strategy greedy|sample|beam] [--temperature T] [--top-k K]
                  [--top-p P] [--seed S] [--no-xla]
    kzoo import SOURCE --run-dir DIR
    kzoo quantize RUN_DIR --mode int8|int4 [--calibration FILES] --run-dir NEW_RUN_DIR
    kzoo export RUN_DIR [--out saved_models] [--name NAME] [--version N]
    kzoo export RUN_DIR --format huggingface --out DIR
    kzoo export RUN_DIR --format litert --out DIR [--quantize dynamic_int8]
    kzoo export RUN_DIR --lora-only --out DIR
    kzoo check-serving saved_models/NAME/VERSION [--json]
    kzoo tensorboard RUN_DIR [--host 127.0.0.1] [--port 6006]

Errors in the user's input (config keys, files, names, numbers) print one line
naming the problem and exit with status 2, what the machine got wrong (a full disk)
one line and status 1; arguments are checked before TensorFlow starts, nothing is
imported before it is needed, and TensorFlow's C++ start-up lines are hidden
(`kzoo --verbose COMMAND` or `kzoo COMMAND --verbose` shows them).
`export` and `check-serving` run on Keras' TensorFlow backend whatever
KERAS_BACKEND says.
"""

import argparse
import json
import os
import signal
import sys

from kzoo.commands.directories import check_input_directory, check_output_directory
from kzoo.commands.few_shot import run_few_shot
from kzoo.commands.generate import run_generate
from kzoo.commands.startup import quiet_tensorflow, start_tensorflow
from kzoo.commands.tensorboard import run_tensorboard
from kzoo.export.serving_generate import DEFAULT_NEW_TOKENS
from kzoo.training.run_directory import RunDirectory
from kzoo.version import __version__


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (argparse prints the usage first)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


VERBOSE_HELP = "show TensorFlow's C++ start-up log (hidden by default)"


def build_parser():
    parser = _Parser(
        prog="kzoo",
        description=(
            "kzoo: train, evaluate, generate with and export Transformer language "
            "models (Keras 3 / TensorFlow)."
        ),
    )
    parser.add_argument("--version", action="version", version=f"kzoo {__version__}")
    parser.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = commands.add_parser("train", help="train a recipe into a run directory")
    train.add_argument("config", nargs="?", help="recipe YAML, e.g. recipes/gpt_tiny.yaml")
    train.add_argument(
        "--run-dir",
        help="output directory (default: runs/<recipe name>); "
        "an unfinished run there is resumed from its last checkpoint",
    )
    train.add_argument(
        "--resume", metavar="RUN_DIR", help="continue an interrupted run with its saved recipe"
    )
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe key, e.g. --set train.steps=100",
    )

    sweep = commands.add_parser(
        "sweep",
        help="train every combination of grid values, compared in TensorBoard's HPARAMS tab",
    )
    sweep.add_argument("config", help="recipe YAML, e.g. recipes/gpt_tiny.yaml")
    sweep.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="values of a recipe key to try, e.g. --grid "
        "train.learning_rate=0.001,0.003 (repeat for more keys)",
    )
    sweep.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a recipe key in every trial",
    )
    sweep.add_argument(
        "--out",
        metavar="DIR",
        help="sweep directory, one run directory per trial (default: "
        "runs/<recipe name>-sweep); re-running the same sweep "
        "skips finished trials and resumes an unfinished one",
    )

    evaluate = commands.add_parser(
        "evaluate", help="held-out loss and perplexity; few-shot multiple-choice accuracy"
    )
    evaluate.add_argument("run_dir", help="a run directory (or, with --tasks, a SavedModel)")
    evaluate.add_argument(
        "--data", nargs="+", help="text files/globs (default: the run's validation text)"
    )
    evaluate.add_argument(
        "--tasks",
        nargs="+",
        metavar="TASK",
        help="multiple-choice tasks of a causal LM: .jsonl files or builtin:grammar, "
        "builtin:completion (see README)",
    )
    evaluate.add_argument(
        "--shots", nargs="+", type=int, default=[0], metavar="K", help="--tasks: examples shown"
    )
    evaluate.add_argument("--seed", type=int, help="--tasks: draws the shots (default 1234)")
    evaluate.add_argument(
        "--batch-size", type=int, help="sequences per batch (default: the run's data.batch_size)"
    )
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")

    generate = commands.add_parser("generate", help="continue a prompt")
    generate.add_argument("model", help="a run directory or an exported SavedModel")
    generate.add_argument(
        "--prompt", required=True, action="append", help="prompt text (repeat for a batch)"
    )
    generate.add_argument(
        "--max-new-tokens",
        type=int,
        help=f"default: {DEFAULT_NEW_TOKENS}, or the model's limit if lower",
    )
    generate.add_argument("--strategy", choices=("greedy", "sample", "beam"), default="greedy")
    generate.add_argument("--temperature", type=float, default=1.0)
    generate.add_argument("--top-k", type=int, default=0)
    generate.add_argument("--top-p", type=float, default=1.0)
    generate.add_argument(
        "--num-beams", type=int, help="beam search: beams (default 4; an export's are fixed)"
    )
    generate.add_argument("--seed", type=int, default=0)
    generate.add_argument(
        "--no-xla",
        action="store_true",
        help="a run's model decodes compiled without XLA (an export runs as it was exported)",
    )

    imports = commands.add_parser(
        "import", help="a pretrained Hugging Face checkpoint or KerasHub preset directory as a run"
    )
    imports.add_argument("source", help="a local checkpoint directory (nothing is downloaded)")
    imports.add_argument("--run-dir", required=True, help="the new run directory")

    quantize = commands.add_parser(
        "quantize", help="a run's model quantized (Keras int8/int4) into a new run directory"
    )
    quantize.add_argument("run_dir")
    quantize.add_argument("--mode", required=True, choices=("int8", "int4"))
    quantize.add_argument(
        "--calibration",
        nargs="+",
        metavar="FILES",
        help="text files (paths or globs) to calibrate with: GPTQ instead of rounding "
        "(decoder-only models: gpt, llama)",
    )
    quantize.add_argument("--run-dir", dest="new_run_dir", required=True, help="the new run")

    export = commands.add_parser("export", help="export a run as a TF Serving SavedModel")
    export.add_argument("run_dir")
    export.add_argument(
        "--format",
        choices=("savedmodel", "huggingface", "litert"),
        default="savedmodel",
        help="savedmodel (TF Serving), huggingface (config.json, model.safetensors, "
        "tokenizer files) or litert (model.tflite for devices, litert.json)",
    )
    export.add_argument(
        "--quantize",
        choices=("dynamic_int8",),
        help="litert: the converter's dynamic-range int8 (a kzoo quantize int8 run gets it)",
    )
    export.add_argument(
        "--out", help="default saved_models (savedmodel); required for huggingface and litert"
    )
    export.add_argument("--name")
    export.add_argument("--version", type=int)
    export.add_argument("--xla", action="store_true", help="jit_compile the signatures")
    export.add_argument(
        "--lora-only",
        action="store_true",
        help="a train.lora run's adapters alone, into --out DIR (train.adapters_from reads them)",
    )
    export.add_argument("--overwrite", action="store_true")

    board = commands.add_parser(
        "tensorboard", help="serve a run's TensorBoard (on 127.0.0.1 unless --host)"
    )
    board.add_argument("run_dir", help="a run directory (or any event directory)")
    board.add_argument(
        "--host", default="127.0.0.1", help="address to bind; 0.0.0.0 exposes it to the network"
    )
    board.add_argument("--port", type=int, default=6006)

    check = commands.add_parser("check-serving", help="check an export as TF Serving loads it")
    check.add_argument("export_dir")
    check.add_argument("--json", action="store_true")
    for command in commands.choices.values():  # also after the subcommand
        command.add_argument(
            "--verbose", action="store_true", default=argparse.SUPPRESS, help=VERBOSE_HELP
        )
    return parser


def _check_recipe(args):
    """What can be checked without TensorFlow: the recipe file (readable YAML) and
    the `--set` syntax and sections."""
    from kzoo.training.config import apply_overrides, read_yaml

    apply_overrides(read_yaml(args.config), args.set)


def run_train(args):
    if args.resume:
        if args.config or args.run_dir or args.set:
            raise ValueError(
                "--resume RUN_DIR takes no CONFIG, --run-dir or --set: the "
                "run continues with its saved config.yaml"
            )
        if not RunDirectory(args.resume).has_config():
            raise FileNotFoundError(
                f"--resume {args.resume}: no run there (no {RunDirectory.CONFIG})"
            )
        run_dir = args.resume
    elif args.config is None:
        raise ValueError("give a recipe (kzoo train CONFIG) or --resume RUN_DIR")
    else:
        _check_recipe(args)
        if args.run_dir:
            run_dir = args.run_dir
            check_output_directory(run_dir, "--run-dir")
        else:
            run_dir = os.path.join("runs", os.path.splitext(os.path.basename(args.config))[0])
            check_output_directory(run_dir, "run directory (default; see --run-dir)")
    start_tensorflow()
    from kzoo.training.recipe import load_recipe
    from kzoo.training.resume import TrainingInterrupted
    from kzoo.training.trainer import train

    config = None if args.resume else load_recipe(args.config, args.set)
    # The Keras progress bar on a terminal; one line per epoch in logs.
    try:
        summary = train(config, run_dir, verbose=1 if sys.stdout.isatty() else 2)
    except TrainingInterrupted as interrupted:
        print(f"\nkzoo train: {interrupted}", file=sys.stderr)
        return interrupted.exit_status
    steps, planned = summary["steps"], summary["planned_steps"]
    trained = f"{steps} of {planned} steps" if steps < planned else f"{steps} steps"
    if summary["resumed_from_step"]:
        trained += f" (resumed at step {summary['resumed_from_step']})"
    print(
        f"\nTrained {trained} in {summary['train_seconds']:.0f} s"
        + (" (stopped by train.max_minutes)" if summary["stopped_by_time_budget"] else "")
    )
    print(f"Run directory: {run_dir}")
    print(
        f"TensorBoard:   tensorboard --logdir {RunDirectory(run_dir).tensorboard_dir()} "
        "--host 127.0.0.1"
    )
    return 0


def run_sweep(args):
    from kzoo.training.sweep.grid import parse_grid

    _check_recipe(args)
    parse_grid(args.grid, args.set)
    if args.out:
        check_output_directory(args.out, "--out")
    start_tensorflow()
    from kzoo.training.resume import TrainingInterrupted
    from kzoo.training.sweep import runner

    plan = runner.plan_sweep(args.config, args.grid, args.set, args.out)
    print(f"Sweep of {len(plan.trials)} trials in {plan.out_dir}", flush=True)
    try:
        runner.run_sweep(plan, verbose=1 if sys.stdout.isatty() else 2)
    except TrainingInterrupted as interrupted:
        print(
            f"\nkzoo sweep: {signal.Signals(interrupted.signum).name} received: "
            f"{interrupted.run_dir} checkpointed at step {interrupted.step}. Re-run "
            "the same kzoo sweep command to resume it",
            file=sys.stderr,
        )
        return interrupted.exit_status
    print()
    print(runner.format_table(plan))
    print(f"\nSweep file:  {os.path.join(plan.out_dir, runner.SWEEP_FILE)}")
    print(f"TensorBoard: kzoo tensorboard {plan.out_dir}   (the HPARAMS tab compares the trials)")
    return 0


def run_evaluate(args):
    if args.tasks:
        if args.data:
            raise ValueError("--data and --tasks: give one (held-out text, or tasks)")
        return run_few_shot(args)
    check_input_directory(args.run_dir)
    start_tensorflow()
    from kzoo.training.evaluate import evaluate_run

    result = evaluate_run(args.run_dir, data=args.data, batch_size=args.batch_size)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        for key, value in result.items():
            print(f"{key:>24}: {value:.4f}" if isinstance(value, float) else f"{key:>24}: {value}")
    return 0


def run_import(args):
    check_input_directory(args.source, "checkpoint directory")
    check_output_directory(args.run_dir, "--run-dir")
    start_tensorflow()
    from kzoo.training.checkpoint_import import import_checkpoint

    summary = import_checkpoint(args.source, args.run_dir)
    print(
        f"Imported {summary['model_type']} ({summary['parameters']:,} parameters, "
        f"{summary['format']}) into {args.run_dir} in {summary['seconds']} s"
    )
    if summary["fresh"]:
        print(f"Not in the checkpoint, started fresh: {', '.join(summary['fresh'])}")
    if summary["unused"]:
        print(f"Checkpoint tensors not used: {', '.join(summary['unused'])}")
    return 0


def run_quantize(args):
    check_input_directory(args.run_dir)
    check_output_directory(args.new_run_dir, "--run-dir")
    start_tensorflow()
    from kzoo.training.quantize import quantize_run

    summary = quantize_run(args.run_dir, args.new_run_dir, args.mode, args.calibration)
    sizes = summary["model_bytes"]
    print(
        f"Quantized {args.run_dir} to {args.mode} ({summary['method']}) into "
        f"{args.new_run_dir}: model.keras "
        f"{sizes['before']:,} -> {sizes['after']:,} bytes in {summary['seconds']} s"
    )
    return 0


def run_export(args):
    check_input_directory(args.run_dir)
    if args.quantize is not None and args.format != "litert":
        raise ValueError("--quantize: only with --format litert")
    if args.format == "huggingface":
        return _export_huggingface(args)
    if args.format == "litert":
        return _export_litert(args)
    if args.lora_only:
        return _export_adapters(args)
    args.out = args.out or "saved_models"
    check_output_directory(args.out, "--out")
    from kzoo.export.names import validate_model_name, validate_version

    if args.name is not None:
        validate_model_name(args.name, key="--name")
    if args.version is not None:
        validate_version(args.version, key="--version")
    start_tensorflow()
    from kzoo.export import export_run

    path = export_run(
        args.run_dir,
        out_dir=args.out,
        name=args.name,
        version=args.version,
        xla=args.xla or None,
        overwrite=args.overwrite,
    )
    print(f"Exported {path}")
    return 0


def _export_huggingface(args):
    if args.out is None:
        raise ValueError("--format huggingface: give the checkpoint directory with --out DIR")
    check_output_directory(args.out, "--out")
    start_tensorflow()
    from kzoo.export.huggingface import export_huggingface

    print(f"Exported {export_huggingface(args.run_dir, args.out, overwrite=args.overwrite)}")
    return 0


def _export_litert(args):
    if args.out is None:
        raise ValueError("--format litert: give the model's directory with --out DIR")
    check_output_directory(args.out, "--out")
    start_tensorflow()
    from kzoo.export.litert import export_litert

    path = export_litert(args.run_dir, args.out, overwrite=args.overwrite, quantize=args.quantize)
    print(f"Exported {path}")
    return 0


def _export_adapters(args):
    if args.out is None:
        raise ValueError("--lora-only: give the adapters' directory with --out DIR")
    check_output_directory(args.out, "--out")
    from kzoo.training.lora import export_adapters

    run = RunDirectory(args.run_dir)
    print(f"Exported {export_adapters(run, args.out, replace=args.overwrite)}")
    return 0


def run_check_serving(args):
    check_input_directory(args.export_dir, "SavedModel version directory")
    if not os.path.isfile(os.path.join(args.export_dir, "saved_model.pb")):
        raise FileNotFoundError(
            f"{args.export_dir}: not a SavedModel (no saved_model.pb); "
            "give an export's version directory, e.g. "
            "saved_models/NAME/1"
        )
    from kzoo.export.check_serving import check_serving

    report = check_serving(args.export_dir)
    if args.json:
        print(json.dumps(report, sort_keys=True))
    else:
        for name, check in report["checks"].items():
            status = "ok" if check.get("ok") else "FAILED"
            print(f"{status:>6}  {name}: {check.get('detail', '')}")
        print("serving check passed" if report["ok"] else "serving check FAILED")
    if report["ok"]:
        return 0
    failed = [name for name, check in report["checks"].items() if not check.get("ok")]
    print(
        f"kzoo check-serving: {args.export_dir}: FAILED {', '.join(failed)} (details on stdout)",
        file=sys.stderr,
    )
    return 1


COMMANDS = {
    "train": run_train,
    "sweep": run_sweep,
    "evaluate": run_evaluate,
    "generate": run_generate,
    "import": run_import,
    "quantize": run_quantize,
    "export": run_export,
    "check-serving": run_check_serving,
    "tensorboard": run_tensorboard,
}

# Commands that write or load TensorFlow SavedModels: they run on Keras' TensorFlow
# backend whatever KERAS_BACKEND says (a `.keras` file is backend-independent).
TENSORFLOW_COMMANDS = ("export", "check-serving")


def _backend_for(command):
    """For `TENSORFLOW_COMMANDS`, selects the TensorFlow backend before Keras is
    imported. Returns False when Keras was already imported with another backend
    (`main` called in a process that uses it): the command must run elsewhere."""
    if command not in TENSORFLOW_COMMANDS:
        return True
    if "keras" in sys.modules:
        import keras

        return keras.backend.backend() == "tensorflow"
    os.environ["KERAS_BACKEND"] = "tensorflow"
    return True


def error_line(error):
    """An exception as one line: an operating system error as `path: reason`."""
    if isinstance(error, OSError) and error.strerror:
        names = [n for n in (error.filename, error.filename2) if n is not None]
        text = f"{' -> '.join(map(str, names))}: {error.strerror}" if names else error.strerror
    else:
        text = str(error)
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    if args.verbose:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = os.environ.get("TF_CPP_MIN_LOG_LEVEL") or "0"
    quiet_tensorflow()
    if not _backend_for(args.command):
        import subprocess

        return subprocess.call(
            [sys.executable, "-m", "kzoo.cli", *argv],
            env=dict(os.environ, KERAS_BACKEND="tensorflow"),
        )
    from kzoo.training.config import ConfigError

    try:
        return COMMANDS[args.command](args)
    except (
        ConfigError,
        FileNotFoundError,
        FileExistsError,
        NotADirectoryError,
        IsADirectoryError,
        ValueError,
    ) as error:
        print(f"kzoo {args.command}: error: {error_line(error)}", file=sys.stderr)
        return 2
    except OSError as error:  # The machine's: a full disk, a permission, ...
        print(f"kzoo {args.command}: error: {error_line(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"kzoo {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
