"""The `kzoo` command line: one command per step of the workflow.

    kzoo train CONFIG [--run-dir DIR] [--set key.sub=value ...]
    kzoo train --resume RUN_DIR
    kzoo sweep CONFIG --grid KEY=V1,V2 [--grid KEY=V1,V2 ...] [--set KEY=VALUE ...]
               [--out DIR]
    kzoo evaluate RUN_DIR [--data PATH] [--json]
    kzoo generate RUN_DIR_OR_SAVEDMODEL --prompt TEXT [--max-new-tokens N]
                  [--strategy greedy|sample|beam] [--temperature T] [--top-k K]
                  [--top-p P] [--seed S]
    kzoo export RUN_DIR [--out saved_models] [--name NAME] [--version N]
    kzoo check-serving saved_models/NAME/VERSION [--json]
    kzoo tensorboard RUN_DIR [--host 127.0.0.1] [--port 6006]

Errors in the user's input (config keys, files, names, numbers) print one line
naming the problem and exit with status 2, what the machine got wrong (a full disk)
one line and status 1; arguments are checked before TensorFlow starts, nothing is
imported before it is needed, and TensorFlow's C++ start-up lines are hidden.
`export` and `check-serving` run on Keras' TensorFlow backend whatever
KERAS_BACKEND says.
"""

import argparse
import json
import math
import os
import re
import signal
import sys
import tempfile

from kzoo.version import __version__


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (argparse prints the usage first)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser():
    parser = _Parser(
        prog="kzoo",
        description=(
            "kzoo: train, evaluate, generate with and export Transformer language "
            "models (Keras 3 / TensorFlow)."
        ),
    )
    parser.add_argument("--version", action="version", version=f"kzoo {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    train = commands.add_parser("train", help="train a recipe into a run directory")
    train.add_argument("config", nargs="?",
                       help="recipe YAML, e.g. recipes/gpt_tiny.yaml")
    train.add_argument("--run-dir", help="output directory (default: runs/<recipe name>); "
                       "an unfinished run there is resumed from its last checkpoint")
    train.add_argument("--resume", metavar="RUN_DIR",
                       help="continue an interrupted run with its saved recipe")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a recipe key, e.g. --set train.steps=100")

    sweep = commands.add_parser(
        "sweep", help="train every combination of grid values, compared in "
                      "TensorBoard's HPARAMS tab")
    sweep.add_argument("config", help="recipe YAML, e.g. recipes/gpt_tiny.yaml")
    sweep.add_argument("--grid", action="append", default=[], metavar="KEY=V1,V2",
                       help="values of a recipe key to try, e.g. --grid "
                            "train.learning_rate=0.001,0.003 (repeat for more keys)")
    sweep.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                       help="override a recipe key in every trial")
    sweep.add_argument("--out", metavar="DIR",
                       help="sweep directory, one run directory per trial (default: "
                            "runs/<recipe name>-sweep); re-running the same sweep "
                            "skips finished trials and resumes an unfinished one")

    evaluate = commands.add_parser("evaluate", help="held-out loss and perplexity")
    evaluate.add_argument("run_dir")
    evaluate.add_argument("--data", nargs="+", help="text files/globs (default: the run's validation text)")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")

    generate = commands.add_parser("generate", help="continue a prompt")
    generate.add_argument("model", help="a run directory or an exported SavedModel")
    generate.add_argument("--prompt", required=True, action="append",
                          help="prompt text (repeat for a batch)")
    generate.add_argument("--max-new-tokens", type=int,
                          help=f"default: {DEFAULT_NEW_TOKENS}, or the model's limit if "
                               "lower")
    generate.add_argument("--strategy", choices=("greedy", "sample", "beam"), default="greedy")
    generate.add_argument("--temperature", type=float, default=1.0)
    generate.add_argument("--top-k", type=int, default=0)
    generate.add_argument("--top-p", type=float, default=1.0)
    generate.add_argument("--num-beams", type=int,
                          help="beam search: beams (default 4; an export's are fixed)")
    generate.add_argument("--seed", type=int, default=0)

    export = commands.add_parser("export", help="export a run as a TF Serving SavedModel")
    export.add_argument("run_dir")
    export.add_argument("--out", default="saved_models")
    export.add_argument("--name")
    export.add_argument("--version", type=int)
    export.add_argument("--xla", action="store_true", help="jit_compile the signatures")
    export.add_argument("--overwrite", action="store_true")

    board = commands.add_parser(
        "tensorboard", help="serve a run's TensorBoard (on 127.0.0.1 unless --host)")
    board.add_argument("run_dir", help="a run directory (or any event directory)")
    board.add_argument("--host", default="127.0.0.1",
                       help="address to bind; 0.0.0.0 exposes it to the network")
    board.add_argument("--port", type=int, default=6006)

    check = commands.add_parser("check-serving", help="check an export as TF Serving loads it")
    check.add_argument("export_dir")
    check.add_argument("--json", action="store_true")
    return parser


# Messages TensorFlow's C++ libraries log while they load and look for devices, in
# absl's format ("I0000 00:00:1796620680.247408  4626 cudart_stub.cc:31] ...", with
# any continuation lines), and absl's notice before them. TF_CPP_MIN_LOG_LEVEL does
# not silence them.
_CPP_LOG_LINE = re.compile(
    r"[IWEF]\d{4} \d\d:\d\d:\d+\.\d+ +\d+ \S+:\d+\] "
    r"|WARNING: All log messages before absl::InitializeLog\(\) is called")
# What Python writes to stderr: a warning or a traceback ends a C++ message.
_PYTHON_LINE = re.compile(r"\S.*:\d+: \w*Warning: |Traceback \(most recent call last\)")


def without_cpp_log(lines):
    """`lines` less the C++ log messages (each with its continuation lines).

    Example:
    >>> without_cpp_log(["I0000 00:00:1796620680.247408  4626 guard.cc:227] Built for\\n",
    ...                  "To enable AVX2 FMA, rebuild\\n",
    ...                  "x.py:3: UserWarning: careful\\n", "  warn()\\n"])
    ['x.py:3: UserWarning: careful\\n', '  warn()\\n']
    """
    kept, in_message = [], False
    for line in lines:
        if _CPP_LOG_LINE.match(line):
            in_message = True
        elif in_message and _PYTHON_LINE.match(line):
            in_message = False
        if not in_message:
            kept.append(line)
    return kept


def _quiet_tensorflow():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def start_tensorflow():
    """Imports TensorFlow and Keras and finds the devices, with the C++ libraries'
    start-up log lines hidden (shown with TF_CPP_MIN_LOG_LEVEL=0 or 1): on a machine
    without a GPU they are 4-5 lines ("Could not find cuda drivers", "failed call to
    cuInit") before every command's output or error. Anything else written to
    stderr meanwhile (Python warnings, an import error) is passed on."""
    if "tensorflow" in sys.modules or os.environ.get("TF_CPP_MIN_LOG_LEVEL") in ("0", "1"):
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with tempfile.TemporaryFile() as captured:
            os.dup2(captured.fileno(), 2)
            try:
                import keras  # noqa: F401
                import tensorflow as tf

                tf.config.list_physical_devices()
            finally:
                sys.stderr.flush()
                os.dup2(saved, 2)
                captured.seek(0)
                lines = captured.read().decode("utf-8", "replace").splitlines(True)
                sys.stderr.write("".join(without_cpp_log(lines)))
    finally:
        os.close(saved)


def check_output_directory(path, option):
    """Refuses, before any work, an output directory that cannot be made: `path` is
    a file, or lies under one, or under a directory this user cannot write."""
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise NotADirectoryError(f"{option} {path}: is a file, not a directory")
        return
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise NotADirectoryError(f"{option} {path}: {parent} is a file, not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"{option} {path}: cannot create it, {parent} is not "
                              "writable")


def check_input_directory(path, what="run directory"):
    """`path` must be an existing directory."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such {what}")
    if not os.path.isdir(path):
        raise NotADirectoryError(f"{path}: is a file, not a {what}")


def _check_recipe(args):
    """What can be checked without TensorFlow: the recipe file (readable YAML) and
    the `--set` syntax and sections."""
    from kzoo.training.config import apply_overrides, read_yaml

    apply_overrides(read_yaml(args.config), args.set)


def run_train(args):
    if args.resume:
        if args.config or args.run_dir or args.set:
            raise ValueError("--resume RUN_DIR takes no CONFIG, --run-dir or --set: the "
                             "run continues with its saved config.yaml")
        if not os.path.isfile(os.path.join(args.resume, "config.yaml")):
            raise FileNotFoundError(f"--resume {args.resume}: no run there (no config.yaml)")
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
    print(f"\nTrained {trained} in {summary['train_seconds']:.0f} s"
          + (" (stopped by train.max_minutes)" if summary["stopped_by_time_budget"] else ""))
    print(f"Run directory: {run_dir}")
    print(f"TensorBoard:   tensorboard --logdir {os.path.join(run_dir, 'tensorboard')} --host 127.0.0.1")
    return 0


def run_sweep(args):
    from kzoo.training.sweep_grid import parse_grid

    _check_recipe(args)
    parse_grid(args.grid, args.set)
    if args.out:
        check_output_directory(args.out, "--out")
    start_tensorflow()
    from kzoo.training import sweep
    from kzoo.training.resume import TrainingInterrupted

    plan = sweep.plan_sweep(args.config, args.grid, args.set, args.out)
    print(f"Sweep of {len(plan.trials)} trials in {plan.out_dir}", flush=True)
    try:
        sweep.run_sweep(plan, verbose=1 if sys.stdout.isatty() else 2)
    except TrainingInterrupted as interrupted:
        print(f"\nkzoo sweep: {signal.Signals(interrupted.signum).name} received: "
              f"{interrupted.run_dir} checkpointed at step {interrupted.step}. Re-run "
              "the same kzoo sweep command to resume it", file=sys.stderr)
        return interrupted.exit_status
    print()
    print(sweep.format_table(plan))
    print(f"\nSweep file:  {os.path.join(plan.out_dir, sweep.SWEEP_FILE)}")
    print(f"TensorBoard: kzoo tensorboard {plan.out_dir}   (the HPARAMS tab compares "
          "the trials)")
    return 0


def run_evaluate(args):
    check_input_directory(args.run_dir)
    start_tensorflow()
    from kzoo.training.evaluate import evaluate_run

    result = evaluate_run(args.run_dir, data=args.data)
    if args.json:
        print(json.dumps(result, sort_keys=True))
    else:
        for key, value in result.items():
            print(f"{key:>24}: {value:.4f}" if isinstance(value, float) else f"{key:>24}: {value}")
    return 0


DEFAULT_NEW_TOKENS = 64


def _check_generation_options(args):
    """The `kzoo generate` numbers, checked alike for runs and exports."""
    if args.max_new_tokens is not None and args.max_new_tokens < 1:
        raise ValueError(f"--max-new-tokens: must be >= 1, got {args.max_new_tokens}")
    for option, value in (("--temperature", args.temperature), ("--top-p", args.top_p)):
        if not math.isfinite(value):
            raise ValueError(f"{option}: must be a finite number, got {value}")
    if args.strategy == "sample" and args.temperature <= 0:
        raise ValueError(f"--temperature: must be > 0 for --strategy sample, got "
                         f"{args.temperature}")
    if not 0 < args.top_p <= 1:
        raise ValueError(f"--top-p: must be in (0, 1], got {args.top_p}")
    if args.top_k < 0:
        raise ValueError(f"--top-k: must be >= 0 (0: no top-k filter), got {args.top_k}")
    if args.num_beams is not None and args.num_beams < 1:
        raise ValueError(f"--num-beams: must be >= 1, got {args.num_beams}")
    if not -2**31 <= args.seed < 2**31:
        raise ValueError(f"--seed: must fit in 32 bits, got {args.seed}")


def new_tokens(requested, limit, why):
    """`--max-new-tokens`: `requested` (None: the default) within `[1, limit]`
    (`limit` None: no limit), else a ValueError saying why the limit is `limit`.

    Example:
    >>> new_tokens(None, 63, "the model's max_sequence_length is 64")
    63
    >>> new_tokens(100, 63, "the model's max_sequence_length is 64")
    Traceback (most recent call last):
    ...
    ValueError: --max-new-tokens: must be in [1, 63] (the model's max_sequence_length is 64), got 100
    """
    if requested is None:
        return DEFAULT_NEW_TOKENS if limit is None else min(DEFAULT_NEW_TOKENS, limit)
    if limit is not None and requested > limit:
        raise ValueError(f"--max-new-tokens: must be in [1, {limit}] ({why}), got "
                         f"{requested}")
    return requested


def run_generate(args):
    _check_generation_options(args)
    check_input_directory(args.model, "run directory or SavedModel")
    start_tensorflow()
    if os.path.isfile(os.path.join(args.model, "saved_model.pb")):
        outputs, continues = _generate_from_export(args)
    else:
        outputs, continues = _generate_from_run(args)
    for prompt, output in zip(args.prompt, outputs):
        # A causal LM continues the prompt; an encoder-decoder answers it.
        print(prompt + output if continues else output)
    return 0


def _generate_from_export(args):
    from kzoo.export.serving_generate import ExportedGenerator

    generator = ExportedGenerator(args.model)
    # Checked here as for a run (the signature would clip it silently).
    max_new_tokens = new_tokens(args.max_new_tokens, generator.max_new_tokens,
                                "the export's cap, export.max_new_tokens")
    outputs = generator.generate(
        args.prompt, max_new_tokens=max_new_tokens, strategy=args.strategy,
        temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
        seed=args.seed, num_beams=args.num_beams,
    )
    return outputs, generator.continues_prompt


def _generate_from_run(args):
    from kzoo.models import Seq2SeqLM
    from kzoo.training.evaluate import load_run_model

    model = load_run_model(args.model)
    if not hasattr(model, "generate") and not hasattr(model, "generate_ids"):
        from kzoo.export.bert_signatures import MAIN_SIGNATURES

        served = MAIN_SIGNATURES.get(type(model).__name__)
        raise ValueError(
            f"{args.model}: holds a {type(model).__name__}, which does not generate "
            "text; kzoo evaluate scores it" + (
                f", and kzoo export makes a SavedModel whose {served!r} signature TF "
                "Serving serves" if served else ""))
    capacity = getattr(getattr(model, "backbone", None), "max_sequence_length", None)
    max_new_tokens = new_tokens(
        args.max_new_tokens, None if capacity is None else int(capacity) - 1,
        f"the model's max_sequence_length is {capacity}")
    if hasattr(model, "generate"):
        outputs = model.generate(
            args.prompt, max_new_tokens=max_new_tokens, strategy=args.strategy,
            temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
            seed=args.seed, num_beams=args.num_beams or 4,
        )
        return outputs, not isinstance(model, Seq2SeqLM)
    # The LSTM: token ids in and out, as its export generates.
    from kzoo.export.keras_reference import generate_texts
    from kzoo.tokenizers import load_tokenizer

    if args.strategy == "beam":
        raise ValueError(f"--strategy beam: a {type(model).__name__} decodes greedily or "
                         "by sampling")
    outputs = generate_texts(
        model, load_tokenizer(args.model), args.prompt, max_new_tokens,
        temperature=args.temperature if args.strategy == "sample" else 0.0,
        top_k=args.top_k, top_p=args.top_p, seed=args.seed)
    return outputs, True


def run_export(args):
    check_input_directory(args.run_dir)
    check_output_directory(args.out, "--out")
    from kzoo.export.names import validate_model_name, validate_version

    if args.name is not None:
        validate_model_name(args.name, key="--name")
    if args.version is not None:
        validate_version(args.version, key="--version")
    start_tensorflow()
    from kzoo.export import export_run

    path = export_run(args.run_dir, out_dir=args.out, name=args.name,
                      version=args.version, xla=args.xla or None, overwrite=args.overwrite)
    print(f"Exported {path}")
    return 0


def run_check_serving(args):
    check_input_directory(args.export_dir, "SavedModel version directory")
    if not os.path.isfile(os.path.join(args.export_dir, "saved_model.pb")):
        raise FileNotFoundError(f"{args.export_dir}: not a SavedModel (no saved_model.pb); "
                                "give an export's version directory, e.g. "
                                "saved_models/NAME/1")
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
    print(f"kzoo check-serving: {args.export_dir}: FAILED {', '.join(failed)} (details "
          "on stdout)", file=sys.stderr)
    return 1


def check_port_free(host, port):
    """Binds `host:port` once, as the server will, so that a bad `--host` or a port
    in use is one clear error rather than the server's traceback."""
    import socket

    if not 1 <= port <= 65535:
        raise ValueError(f"--port: must be in [1, 65535], got {port}")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as error:
        raise ValueError(f"--host {host}: not an address of this machine "
                         f"({error.strerror})") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(address)
        except OSError as error:
            raise ValueError(f"--port {port}: cannot listen on {host}:{port} "
                             f"({error.strerror}); choose another --port") from None


# `kzoo tensorboard` passes these on to its server, waits for it and exits with
# 128 + the signal's number: the server never outlives the command.
FORWARDED_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
SERVER_STOP_SECONDS = 10


def run_tensorboard(args):
    import subprocess
    import time

    logdir = os.path.join(args.run_dir, "tensorboard")
    if not os.path.isdir(logdir):
        logdir = args.run_dir
    if not os.path.isdir(logdir):
        raise FileNotFoundError(f"{args.run_dir}: no such run directory")
    check_port_free(args.host, args.port)
    print(f"TensorBoard: http://{args.host}:{args.port}/  (Ctrl-C stops it)", flush=True)
    # The server binds `--host` only: loopback unless the user asks otherwise. In
    # its own process group, so that Ctrl-C reaches it once, through us.
    server = subprocess.Popen(
        [sys.executable, "-m", "tensorboard.main", "--logdir", logdir,
         "--host", args.host, "--port", str(args.port), "--load_fast", "false"],
        process_group=0)
    received = []

    def forward(signum, frame):
        received.append(signum)
        if server.poll() is None:
            server.send_signal(signum)

    previous = {signum: signal.signal(signum, forward) for signum in FORWARDED_SIGNALS}
    try:
        deadline = None
        while True:
            try:
                status = server.wait(timeout=0.5)
                break
            except subprocess.TimeoutExpired:
                if received and deadline is None:
                    deadline = time.monotonic() + SERVER_STOP_SECONDS
                if deadline is not None and time.monotonic() > deadline:
                    server.kill()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if server.poll() is None:
            server.kill()
            server.wait()
    if received:
        name = signal.Signals(received[0]).name
        print(f"kzoo tensorboard: {name} received: TensorBoard stopped", file=sys.stderr)
        return 128 + received[0]
    return 128 - status if status < 0 else status


COMMANDS = {
    "train": run_train,
    "sweep": run_sweep,
    "evaluate": run_evaluate,
    "generate": run_generate,
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
        text = f"{' -> '.join(map(str, names))}: {error.strerror}" if names else \
            error.strerror
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
    _quiet_tensorflow()
    if not _backend_for(args.command):
        import subprocess

        return subprocess.call([sys.executable, "-m", "kzoo.cli", *argv],
                               env=dict(os.environ, KERAS_BACKEND="tensorflow"))
    from kzoo.training.config import ConfigError

    try:
        return COMMANDS[args.command](args)
    except (ConfigError, FileNotFoundError, FileExistsError, NotADirectoryError,
            IsADirectoryError, ValueError) as error:
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
