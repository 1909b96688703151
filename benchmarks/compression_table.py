"""Compression, per family: size on disk, serving latency and quality of float32,
int8, int4, a distilled student, a 50%-sparse model, LoRA and full fine-tuning.

    TF_CPP_MIN_LOG_LEVEL=3 .venv/bin/python benchmarks/compression_table.py \
        [--work /tmp/ctab] [--families gpt bert t5] [--steps-scale 1.0] \
        [--litert auto|on|off] [--rounds 5] [--calls 2] [--out benchmarks/results/compression_table.md]

Every variant is made by the `kzoo` command line, as a user would (each command
is printed and listed under its family's table):

- float32: `kzoo train RECIPE --run-dir R --set ...` (for BERT and T5 a
  fine-tuning run from a pretraining run, `train.init_from`; it is also the full
  fine-tuning row);
- int8 / int4: `kzoo quantize R --mode int8|int4 --run-dir R_int8`;
- student: `kzoo train RECIPE --set train.distill_from=R` at half the width
  (hidden and feed-forward), `train.distill` alpha 0.5, temperature 2;
- 50% sparse: `--set 'train.prune={target_sparsity: 0.5, frequency: 20}'`
  (the causal LM trained from scratch like the base; BERT and T5 fine-tuned from
  the pretraining run like the base);
- LoRA and full fine-tuning: `train.init_from=PRETRAINED` with and without
  `--set 'train.lora={rank: 8}'` (the causal LM continues training its float32
  run on the same text; BERT and T5 fine-tune their pretraining run).

Quality is `kzoo evaluate RUN --json`: a causal LM's validation loss (nats per
character over the whole validation split) and perplexity, BERT's accuracy and
macro-F1, T5's BLEU (beam and greedy) and exact match on the held-out pairs.
Size is the bytes of `kzoo export RUN --out DIR --name N --version 1` (the
SavedModel directory), of the run's `model.keras`, and of the weights inside it
(`model.keras` of a trained run also holds the optimizer's moments). Latency is
`compression_latency.py` in a fresh process: every variant's SavedModel (no XLA)
side by side, in alternating rounds, batch 1 and 8. LiteRT columns come from
`kzoo export RUN --format litert --out DIR` where the command line has it
(`--litert auto`: only if `kzoo export --help` lists it), for the causal LM and
BERT.

The Markdown tables go to stdout and to `--out` (and the raw figures to the
same path with `.json`); ratios are against the family's float32 row.
"""

import argparse
import gzip
import json
import os
import shlex
import subprocess
import sys
import threading
import time
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.join(ROOT, "benchmarks")
KZOO = os.path.join(os.path.dirname(sys.executable), "kzoo")
SHAKESPEARE = "/work/shared/data/tinyshakespeare.txt"
FAMILIES = ("gpt", "bert", "t5")
# Monitors that cost time and change nothing in the model.
QUIET = [
    "monitor.graph=false",
    "monitor.projector=false",
    "monitor.attention_maps=false",
    "monitor.histograms=false",
]
DISTILL = ["train.distill.alpha=0.5", "train.distill.temperature=2.0"]
PRUNE = "train.prune={target_sparsity: 0.5, frequency: 20}"
LORA = "train.lora={rank: 8}"
# LiteRT exports made: LoRA, full fine-tuning and the sparse model have float32's
# graph and size (a pruned kernel's zeros are stored densely), so they are not.
LITERT_VARIANTS = ("float32", "int8", "int4", "student")
# Row order and labels.
VARIANTS = {
    "float32": "float32",
    "int8": "int8 (`kzoo quantize`)",
    "int4": "int4 (`kzoo quantize`)",
    "student": "distilled student, half width",
    "sparse": "50% sparse (`train.prune`)",
    "lora": "LoRA rank 8",
    "full_ft": "full fine-tuning",
}


class Log:
    """Runs `kzoo` commands, prints and records each, and keeps their failures."""

    def __init__(self, work):
        self.work = work
        self.logs = os.path.join(work, "logs")
        os.makedirs(self.logs, exist_ok=True)
        self.commands = []  # (label, command line, seconds, status)
        self.count = 0
        self.lock = threading.Lock()

    def kzoo(self, label, *args):
        """Runs `kzoo *args`; returns (ok, stdout, error line)."""
        line = "kzoo " + shlex.join(args)
        with self.lock:
            print(f"$ {line}", flush=True)
            self.count += 1
            count = self.count
        log_path = os.path.join(self.logs, f"{count:02d}_{label}.log")
        start = time.perf_counter()
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        done = subprocess.run([KZOO, *args], capture_output=True, text=True, env=env, cwd=ROOT)
        seconds = time.perf_counter() - start
        with open(log_path, "w", encoding="utf-8") as f:
            f.write(f"$ {line}\n--- stdout\n{done.stdout}\n--- stderr\n{done.stderr}")
        error = None
        if done.returncode != 0:
            lines = [x for x in done.stderr.splitlines() if x.strip()]
            error = f"exit {done.returncode}: {lines[-1] if lines else '(no output)'}"
            print(f"  FAILED after {seconds:.0f} s: {line}\n  {error} ({log_path})", flush=True)
        else:
            print(f"  ok, {seconds:.0f} s: {label}", flush=True)
        self.commands.append((label, line, round(seconds, 1), error or "ok"))
        return done.returncode == 0, done.stdout, error


def finished(run_dir):
    return os.path.exists(os.path.join(run_dir, "model.keras"))


def directory_bytes(path):
    total = 0
    for folder, _, files in os.walk(path):
        total += sum(os.path.getsize(os.path.join(folder, f)) for f in files)
    return total


def keras_file_sizes(path):
    """`{model_keras, model_keras_gzip, weights}` bytes of a `model.keras`:
    the file, the file gzipped (-6), and its `layers/` weights alone (without the
    optimizer's variables that a trained run's file also holds)."""
    import h5py

    with open(path, "rb") as f:
        raw = f.read()
    sizes = {"model_keras": len(raw), "model_keras_gzip": len(gzip.compress(raw, 6))}
    with zipfile.ZipFile(path) as archive, archive.open("model.weights.h5") as weights:
        import io

        with h5py.File(io.BytesIO(weights.read()), "r") as h5:
            groups = {}

            def visit(name, item):
                if isinstance(item, h5py.Dataset):
                    top = name.split("/")[0]
                    groups[top] = groups.get(top, 0) + item.size * item.dtype.itemsize

            h5.visititems(visit)
    sizes["weights"] = groups.get("layers", 0)
    sizes["optimizer"] = groups.get("optimizer", 0)
    return sizes


def last_json(text):
    """The last line of `text` that is a JSON object (`kzoo evaluate --json`)."""
    for line in reversed(text.splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                continue
    return None


def sets(*overrides):
    return [a for o in overrides for a in ("--set", o)]


# --- Families -------------------------------------------------------------------------


def scaled(steps, scale):
    return max(4, int(round(steps * scale)))


def gpt_plan(work, scale, data):
    """A character-level GPT on tinyshakespeare (2 layers, width 128)."""
    steps, ft_steps = scaled(300, scale), scaled(100, scale)
    common = [f"data.train={data}", "model.num_layers=2", "train.sample_prompts=[]", *QUIET]
    width = ["model.hidden_dim=128", "model.intermediate_dim=512"]

    def run(steps_, *extra, width=width):
        warmup = max(1, min(100, steps_ // 5))
        return [
            f"train.steps={steps_}",
            f"train.steps_per_epoch={steps_}",
            f"train.warmup_steps={warmup}",
            *common,
            *width,
            *extra,
        ]

    recipe = "recipes/gpt_shakespeare_char.yaml"
    base = os.path.join(work, "gpt", "float32")
    student_width = ["model.hidden_dim=64", "model.intermediate_dim=256"]
    return {
        "recipe": recipe,
        "prerequisites": [],
        "base": base,
        "trains": {
            "float32": (recipe, base, run(steps)),
            "student": (
                recipe,
                os.path.join(work, "gpt", "student"),
                run(steps, f"train.distill_from={base}", *DISTILL, width=student_width),
            ),
            "sparse": (recipe, os.path.join(work, "gpt", "sparse"), run(steps, PRUNE)),
            "lora": (
                recipe,
                os.path.join(work, "gpt", "lora"),
                run(ft_steps, f"train.init_from={base}", LORA),
            ),
            "full_ft": (
                recipe,
                os.path.join(work, "gpt", "full_ft"),
                run(ft_steps, f"train.init_from={base}"),
            ),
        },
        "notes": {
            "float32": f"trained from scratch, {steps} steps",
            "student": f"from scratch, {steps} steps, teacher = float32",
            "sparse": f"from scratch like float32, {steps} steps",
            "lora": f"float32 run + {ft_steps} steps on the same text, adapters on query/value",
            "full_ft": f"float32 run + {ft_steps} steps on the same text",
        },
        "quality": [("loss", "val loss (nats/char)", -1), ("perplexity", "perplexity", -1)],
        "litert": True,
    }


def fine_tuning_trains(recipe, work, family, pretrained, common, student_width):
    """The trains of a family fine-tuned from `pretrained` (BERT, T5): float32, a
    student distilled from it with `student_width` overrides, the sparse and LoRA
    runs fine-tuned from the pretraining run like float32."""
    base = os.path.join(work, family, "float32")

    def from_pretrained(name, *settings):
        path = os.path.join(work, family, name)
        return (recipe, path, [f"train.init_from={pretrained}", *settings, *common])

    student = [f"train.distill_from={base}", *student_width, *DISTILL, *common]
    return {
        "float32": from_pretrained("float32"),
        "student": (recipe, os.path.join(work, family, "student"), student),
        "sparse": from_pretrained("sparse", PRUNE),
        "lora": from_pretrained("lora", LORA),
    }


def bert_plan(work, scale, data):
    """bert_tiny_pretrain, then bert_tiny_classify (acceptability) from it."""
    pretrain_steps = scaled(250, scale)
    epochs = max(1, int(round(8 * scale)))
    pretrained = os.path.join(work, "bert", "pretrain")
    recipe = "recipes/bert_tiny_classify.yaml"
    common = [f"train.epochs={epochs}", *QUIET]
    base = os.path.join(work, "bert", "float32")
    return {
        "recipe": recipe,
        "prerequisites": [
            (
                "recipes/bert_tiny_pretrain.yaml",
                pretrained,
                [
                    f"train.steps={pretrain_steps}",
                    f"train.steps_per_epoch={pretrain_steps}",
                    f"train.warmup_steps={max(1, pretrain_steps // 10)}",
                    *QUIET,
                ],
            )
        ],
        "base": base,
        "trains": fine_tuning_trains(
            recipe,
            work,
            "bert",
            pretrained,
            common,
            ["model.hidden_dim=32", "model.intermediate_dim=128"],
        ),
        "full_ft_is_base": True,
        "notes": {
            "float32": f"fine-tuned from a {pretrain_steps}-step bert_tiny_pretrain, {epochs} epochs",
            "student": "from scratch (no half-width pretrained encoder), teacher = float32",
            "sparse": "fine-tuned from the pretraining run like float32",
            "lora": "fine-tuned from the pretraining run, backbone frozen",
            "full_ft": "the float32 run",
        },
        "quality": [("accuracy", "accuracy", 1), ("macro_f1", "macro-F1", 1)],
        "litert": True,
    }


def t5_plan(work, scale, data):
    """t5_tiny_pretrain, then t5_tiny_finetune (translate/plural/subject) from it."""
    pretrain_steps, steps = scaled(150, scale), scaled(150, scale)
    pretrained = os.path.join(work, "t5", "pretrain")
    recipe = "recipes/t5_tiny_finetune.yaml"
    common = [
        f"train.steps={steps}",
        f"train.steps_per_epoch={steps}",
        f"train.warmup_steps={max(1, steps // 10)}",
        "data.builtin_validation_examples=100",
        "data.eval_examples=30",
        *QUIET,
    ]
    base = os.path.join(work, "t5", "float32")
    return {
        "recipe": recipe,
        "prerequisites": [
            (
                "recipes/t5_tiny_pretrain.yaml",
                pretrained,
                [
                    f"train.steps={pretrain_steps}",
                    f"train.steps_per_epoch={pretrain_steps}",
                    f"train.warmup_steps={max(1, pretrain_steps // 10)}",
                    "data.builtin_validation_documents=50",
                    *QUIET,
                ],
            )
        ],
        "base": base,
        "trains": fine_tuning_trains(
            recipe,
            work,
            "t5",
            pretrained,
            common,
            [
                # A named model.size replaces hidden_dim: drop it for the student.
                "model.size=null",
                "model.hidden_dim=64",
                "model.intermediate_dim=256",
            ],
        ),
        "full_ft_is_base": True,
        "notes": {
            "float32": f"fine-tuned from a {pretrain_steps}-step t5_tiny_pretrain, {steps} steps",
            "student": f"from scratch, {steps} steps, teacher = float32",
            "sparse": "fine-tuned from the pretraining run like float32",
            "lora": "fine-tuned from the pretraining run, backbone frozen",
            "full_ft": "the float32 run",
        },
        "quality": [
            ("loss", "val loss", -1),
            ("bleu", "BLEU (beam 4)", 1),
            ("greedy_bleu", "BLEU (greedy)", 1),
            ("exact_match", "exact match (beam)", 1),
        ],
        "litert": False,
    }


PLANS = {"gpt": gpt_plan, "bert": bert_plan, "t5": t5_plan}


# --- Running the commands ----------------------------------------------------------


def litert_available():
    """Whether `kzoo export --help` offers `--format litert`."""
    done = subprocess.run([KZOO, "export", "--help"], capture_output=True, text=True)
    return "litert" in done.stdout


class Jobs:
    """Commands with dependencies, run `workers` at a time (the critical path,
    training, first). A job whose dependency failed is not run: it fails with
    the dependency's name."""

    ORDER = ("train", "quantize", "export", "litert", "evaluate")

    def __init__(self, workers):
        self.workers = workers
        self.jobs = {}  # name -> (kind, deps, fn)
        self.status = {}  # name -> None (ok) or an error line

    def add(self, name, kind, deps, fn):
        self.jobs[name] = (kind, [d for d in deps if d], fn)
        return name

    def run(self):
        from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

        pending = dict(self.jobs)
        running = {}
        with ThreadPoolExecutor(self.workers) as pool:
            while pending or running:
                for name, (_kind, deps, fn) in sorted(
                    pending.items(), key=lambda item: self.ORDER.index(item[1][0])
                ):
                    if len(running) >= self.workers:
                        break
                    if any(d not in self.status for d in deps):
                        continue
                    del pending[name]
                    failed = [d for d in deps if self.status[d] is not None]
                    if failed:
                        self.status[name] = f"not run: {failed[0]} failed"
                        continue
                    running[pool.submit(fn)] = name
                if not running:
                    if pending and not any(
                        all(d in self.status for d in deps) for _, deps, _ in pending.values()
                    ):
                        for name in pending:
                            self.status[name] = "not run: an unknown dependency"
                        pending.clear()
                    continue
                done, _ = wait(list(running), return_when=FIRST_COMPLETED)
                for future in done:
                    name = running.pop(future)
                    try:
                        self.status[name] = future.result()
                    except Exception as error:  # A bug here, not in kzoo: say so.
                        self.status[name] = f"benchmark error: {type(error).__name__}: {error}"


class Family:
    """One family's rows and the jobs that fill them."""

    def __init__(self, name, args, log, jobs, litert):
        self.name, self.args, self.log, self.jobs = name, args, log, jobs
        self.plan = PLANS[name](args.work, args.steps_scale, args.data)
        self.rows = {key: {"commands": [], "error": None} for key in VARIANTS}
        for key, note in self.plan["notes"].items():
            self.rows[key]["note"] = note
        for mode in ("int8", "int4"):
            self.rows[mode]["note"] = "`kzoo quantize` of the float32 run"
        self.litert = litert and self.plan["litert"]
        self.exports = os.path.join(args.work, name, "exports")
        self.runs = {}
        self.last_output = {}

    def command(self, key, label, *argv, skip_if=None):
        """A job function running `kzoo *argv` into row `key`'s commands; with
        `--reuse`, skipped when `skip_if` (a path) exists."""

        def fn():
            line = "kzoo " + shlex.join(argv)
            for row_key in [key] if isinstance(key, str) else key:
                self.rows[row_key]["commands"].append(line)
            if self.args.reuse and skip_if and os.path.exists(skip_if):
                print(f"(reusing {skip_if})", flush=True)
                return None
            ok, out, error = self.log.kzoo(label, *argv)
            self.last_output[label] = out
            return None if ok else error

        return fn

    def add_jobs(self):
        plan, name = self.plan, self.name
        pre = None
        for recipe, run_dir, overrides in plan["prerequisites"]:
            pre = self.jobs.add(
                f"{name}:pretrain",
                "train",
                [],
                self.command(
                    ["float32", "sparse", "lora", "full_ft"],
                    f"{name}_pretrain",
                    "train", recipe, "--run-dir", run_dir, *sets(*overrides),
                    skip_if=os.path.join(run_dir, "model.keras"),
                ),
            )  # fmt: skip
        producers = {}
        for key, (recipe, run_dir, overrides) in plan["trains"].items():
            deps = [pre]
            if any(f"={plan['base']}" in o for o in overrides) and key != "float32":
                deps = [f"{name}:train:float32"]  # Distilled from / initialised by it.
            producers[key] = self.jobs.add(
                f"{name}:train:{key}",
                "train",
                deps,
                self.command(
                    key, f"{name}_{key}",
                    "train", recipe, "--run-dir", run_dir, *sets(*overrides),
                    skip_if=os.path.join(run_dir, "model.keras"),
                ),
            )  # fmt: skip
            self.runs[key] = run_dir
        for mode in ("int8", "int4"):
            target = plan["base"] + f"_{mode}"
            producers[mode] = self.jobs.add(
                f"{name}:quantize:{mode}",
                "quantize",
                [producers["float32"]],
                self.command(
                    mode, f"{name}_{mode}",
                    "quantize", plan["base"], "--mode", mode, "--run-dir", target,
                    skip_if=os.path.join(target, "model.keras"),
                ),
            )  # fmt: skip
            self.runs[mode] = target
        if plan.get("full_ft_is_base"):
            self.rows["full_ft"]["same_as_float32"] = True
        for key, run_dir in self.runs.items():
            export = os.path.join(self.exports, f"{name}_{key}", "1")
            self.jobs.add(
                f"{name}:evaluate:{key}",
                "evaluate",
                [producers[key]],
                self.command(key, f"{name}_{key}_evaluate", "evaluate", run_dir, "--json"),
            )
            self.jobs.add(
                f"{name}:export:{key}",
                "export",
                [producers[key]],
                self.command(
                    key, f"{name}_{key}_export",
                    "export", run_dir, "--out", self.exports, "--name", f"{name}_{key}",
                    "--version", "1",
                    skip_if=export,
                ),
            )  # fmt: skip
            if self.litert and key in LITERT_VARIANTS:
                target = os.path.join(self.exports, "litert", f"{name}_{key}")
                self.jobs.add(
                    f"{name}:litert:{key}",
                    "litert",
                    [producers[key]],
                    self.command(
                        key, f"{name}_{key}_litert",
                        "export", run_dir, "--format", "litert", "--out", target,
                        skip_if=target,
                    ),
                )  # fmt: skip

    def collect(self):
        """Fills the rows from the finished jobs' files and statuses."""
        status, name = self.jobs.status, self.name
        for key, run_dir in self.runs.items():
            row = self.rows[key]
            producer = "train" if key not in ("int8", "int4") else "quantize"
            error = status.get(f"{name}:{producer}:{key}")
            if error is None and key not in ("int8", "int4"):
                error = status.get(f"{name}:pretrain")
            if error is not None or not finished(run_dir):
                row["error"] = error or "no model.keras"
                continue
            with open(os.path.join(run_dir, "summary.json"), encoding="utf-8") as f:
                summary = json.load(f)
            row["parameters"] = summary.get("parameters")
            row["trainable_parameters"] = summary.get("trainable_parameters")
            row["sizes"] = keras_file_sizes(os.path.join(run_dir, "model.keras"))
            row["quantized"] = summary.get("mode")  # `kzoo quantize`'s summary.
            evaluate_error = status.get(f"{name}:evaluate:{key}")
            if evaluate_error is None:
                row["quality"] = last_json(self.last_output.get(f"{name}_{key}_evaluate", ""))
            else:
                row["evaluate_error"] = evaluate_error
            saved_model = os.path.join(self.exports, f"{name}_{key}", "1")
            export_error = status.get(f"{name}:export:{key}")
            if export_error is None and os.path.isdir(saved_model):
                row["saved_model"] = saved_model
                row["saved_model_bytes"] = directory_bytes(saved_model)
                row["variables_bytes"] = directory_bytes(os.path.join(saved_model, "variables"))
            else:
                row["export_error"] = export_error or "no SavedModel"
            if f"{name}:litert:{key}" in self.jobs.jobs:
                target = os.path.join(self.exports, "litert", f"{name}_{key}")
                litert_error = status.get(f"{name}:litert:{key}")
                if litert_error is None and os.path.isdir(target):
                    row["litert"] = target
                    tflite = os.path.join(target, "model.tflite")
                    row["tflite_bytes"] = os.path.getsize(tflite)
                    with open(os.path.join(target, "litert.json"), encoding="utf-8") as f:
                        row["litert_quantization"] = json.load(f).get("quantization")
                else:
                    row["litert_error"] = litert_error or "no export"
        if self.rows["full_ft"].get("same_as_float32"):
            base, full = self.rows["float32"], self.rows["full_ft"]
            for field in base:
                if field not in ("commands", "note"):
                    full[field] = base[field]
            full["commands"] = list(base["commands"])
            full["same_as_float32"] = True

    def measure_latency(self):
        """Every variant's SavedModel (and LiteRT model) side by side, in a fresh
        process, with nothing else of this benchmark running."""
        rows, work = self.rows, os.path.join(self.args.work, self.name)
        spec = {
            "family": self.name,
            "batches": [1, 8],
            "rounds": self.args.rounds,
            "calls": self.args.calls,
            "new_tokens": 32,
            "variants": {
                key: {"saved_model": row.get("saved_model"), "litert": row.get("litert")}
                for key, row in rows.items()
                if row.get("saved_model") and not row.get("same_as_float32")
            },
        }
        spec_path = os.path.join(work, "latency_spec.json")
        out_path = os.path.join(work, "latency.json")
        with open(spec_path, "w", encoding="utf-8") as f:
            json.dump(spec, f, indent=1)
        command = [
            sys.executable,
            os.path.join(HERE, "compression_latency.py"),
            spec_path,
            out_path,
        ]
        self.latency_command = shlex.join(
            [os.path.relpath(c, ROOT) if c.startswith(ROOT) else c for c in command]
        )
        print(f"$ {self.latency_command}", flush=True)
        began = time.perf_counter()
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
        self.latency_seconds = time.perf_counter() - began
        print(f"  latency: {self.latency_seconds:.0f} s (exit {done.returncode})", flush=True)
        latency = {"results": {}, "errors": {}}
        if done.returncode == 0:
            with open(out_path, encoding="utf-8") as f:
                latency = json.load(f)
        else:
            tail = [x for x in done.stderr.splitlines() if x.strip()][-1:]
            latency["errors"]["all"] = f"exit {done.returncode}: {tail}"
        for key, row in rows.items():
            source = "float32" if row.get("same_as_float32") else key
            row["latency"] = latency["results"].get(source, {})
        self.latency_errors = latency["errors"]

    def result(self):
        return {
            "family": self.name,
            "plan_doc": PLANS[self.name].__doc__,
            "litert": self.plan["litert"],
            "quality_keys": self.plan["quality"],
            "rows": self.rows,
            "latency_errors": self.latency_errors,
            "latency_command": self.latency_command,
            "latency_seconds": round(self.latency_seconds, 1),
        }


# --- The table -------------------------------------------------------------------------


def kb(n):
    return f"{n / 1024:,.0f} KiB" if n < 10 * 1024 * 1024 else f"{n / 2**20:,.1f} MiB"


def ratio(value, base):
    if value is None or not base:
        return ""
    return f" ({value / base:.2f}x)"


def latency_cell(row, base_row, runtime, batch):
    entry = row.get("latency", {}).get(runtime, {}).get(str(batch))
    if not entry:
        return "n/a"
    base = base_row.get("latency", {}).get(runtime, {}).get(str(batch))
    cell = f"{entry['p50_ms']:.1f} / {entry['p99_ms']:.1f}"
    if base and row is not base_row:
        cell += f" ({entry['p50_ms'] / base['p50_ms']:.2f}x)"
    tokens = entry.get("generated_tokens")
    if tokens is not None:
        cell += f" [{sum(tokens) / len(tokens):.0f} tok]"
    return cell


def quality_cell(row, base_row, keys):
    quality = row.get("quality")
    if not quality:
        return row.get("evaluate_error", "n/a")
    base = base_row.get("quality") or {}
    parts = []
    for key, label, _ in keys:
        value = quality.get(key)
        if value is None:
            continue
        cell = f"{label} {value:.4g}"
        if key in base and row is not base_row and base[key]:
            delta = value - base[key]
            cell += f" ({delta:+.3g}, {100 * delta / abs(base[key]):+.1f}%)"
        parts.append(cell)
    return "; ".join(parts)


def escape(cells):
    return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"


def size_cell(row, base, field):
    value = row.get(field)
    if not value:
        return "n/a"
    return kb(value) + (ratio(value, base.get(field)) if row is not base else "")


def litert_cells(result, row, base, litert):
    if litert is None:
        return []
    if not result["litert"]:
        return ["n/a (no LiteRT form of this family)", "", ""]
    if row.get("tflite_bytes"):
        size = size_cell(row, base, "tflite_bytes")
        if row.get("litert_quantization"):
            size += f" ({row['litert_quantization']})"
        elif row.get("quantized") and row.get("litert_quantization", "") is None:
            size += " (`litert.json`: quantization null)"
        return [size, latency_cell(row, base, "litert", 1), latency_cell(row, base, "litert", 8)]
    if row.get("litert_error"):
        return [f"**failed**: {row['litert_error']}", "", ""]
    if isinstance(litert, str):
        return [litert, "", ""]
    return ["not exported: float32's graph and size", "", ""]  # LITERT_VARIANTS


def family_tables(result, litert):
    """(size and latency table, quality table) of one family."""
    rows, keys = result["rows"], result["quality_keys"]
    base = rows["float32"]
    speed = [
        "variant",
        "SavedModel: all / variables",
        "model.keras: file / weights / gzip",
        "SavedModel p50 / p99 ms, batch 1",
        "batch 8",
    ]
    if litert is not None:
        speed += ["LiteRT model.tflite", "LiteRT p50 / p99 ms, batch 1", "batch 8"]
    quality = ["variant", "parameters (trainable)", "quality (delta vs float32)", "how"]
    first = [escape(speed), "|" + "---|" * len(speed)]
    second = [escape(quality), "|" + "---|" * len(quality)]
    for key, label in VARIANTS.items():
        row = rows[key]
        if "sizes" not in row:
            error = row.get("error") or "not run"
            first.append(escape([label, f"**failed**: {error}"] + [""] * (len(speed) - 2)))
            second.append(escape([label, "**failed**", error, row.get("note", "")]))
            continue
        if row.get("saved_model_bytes"):
            saved = " / ".join(
                size_cell(row, base, f) for f in ("saved_model_bytes", "variables_bytes")
            )
        else:
            saved = f"**failed**: {row.get('export_error')}"
        sizes, base_sizes = row["sizes"], base.get("sizes", {})
        keras = " / ".join(
            size_cell(sizes, base_sizes if row is not base else sizes, f)
            for f in ("model_keras", "weights", "model_keras_gzip")
        )
        first.append(
            escape(
                [
                    label,
                    saved,
                    keras,
                    latency_cell(row, base, "saved_model", 1),
                    latency_cell(row, base, "saved_model", 8),
                    *litert_cells(result, row, base, litert),
                ]
            )
        )
        params, trainable = row.get("parameters"), row.get("trainable_parameters")
        param_cell = f"{params:,}" if params else "n/a"
        if trainable is not None and params:
            param_cell += f" ({trainable:,})"
        second.append(
            escape([label, param_cell, quality_cell(row, base, keys), row.get("note", "")])
        )
    return "\n".join(first), "\n".join(second)


def commands_list(result):
    lines = []
    for key, label in VARIANTS.items():
        row = result["rows"][key]
        commands = row["commands"]
        if row.get("same_as_float32"):
            lines.append(f"- {label}: the float32 run (its commands above)")
            continue
        lines.append(f"- {label}:")
        lines += [f"  - `{c}`" for c in commands]
    lines.append(f"- latency (all rows, one process): `{result['latency_command']}`")
    return "\n".join(lines)


def render(results, litert, args, seconds, build_seconds):
    out = [
        "Size: the exported SavedModel directory; `model.keras` as written by the "
        "run (file / its weights alone, without the optimizer state a trained run also "
        "stores / the file gzipped). Latency: p50 / p99 ms of the SavedModel's main "
        "signature (`kzoo export`, no XLA) in one process, variants interleaved, "
        f"{args.rounds} rounds x {args.calls} requests; [N tok]: new tokens per "
        "sequence (generation stops at the end token). LiteRT: `ai_edge_litert`'s "
        "interpreter with 2 threads through `kzoo.export.litert_driver`; a causal LM "
        "decodes one sequence at a time (`LiteRTGenerator`: prefill, then one decode "
        "call per token), so its batch 8 is 8 sequences in a row. Ratios and deltas "
        "are against float32."
    ]
    for result in results:
        out += ["", f"### {result['family']}: {result['plan_doc'].strip()}", ""]
        speed, quality = family_tables(result, litert)
        out += [speed, "", quality]
        if result["latency_errors"]:
            out += ["", "Latency errors: " + json.dumps(result["latency_errors"])]
        out += ["", "Commands:", "", commands_list(result)]
    out += [
        "",
        f"Total: {seconds:.0f} s ({build_seconds:.0f} s of kzoo commands, {args.jobs} at a "
        "time; then the latency processes, one family at a time).",
    ]
    return "\n".join(out)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--work", default="/tmp/kzoo-compression")
    parser.add_argument("--families", nargs="+", default=list(FAMILIES), choices=FAMILIES)
    parser.add_argument("--steps-scale", type=float, default=1.0, help="x every step count")
    parser.add_argument("--data", default=SHAKESPEARE, help="the causal LM's text")
    parser.add_argument("--litert", choices=("auto", "on", "off"), default="auto")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=2)
    parser.add_argument("--jobs", type=int, default=2, help="kzoo commands at a time")
    parser.add_argument("--reuse", action="store_true", help="keep finished runs and exports")
    parser.add_argument("--out", default=os.path.join(HERE, "results", "compression_table.md"))
    parser.add_argument(
        "--render", metavar="JSON", help="print the tables of an earlier run's .json again"
    )
    args = parser.parse_args(argv)
    if args.render:
        with open(args.render, encoding="utf-8") as f:
            saved = json.load(f)
        for key in ("rounds", "calls", "jobs"):
            setattr(args, key, saved["args"][key])
        print(
            render(
                saved["results"], saved["litert"], args, saved["seconds"], saved["build_seconds"]
            )
        )
        return 0
    start = time.perf_counter()
    log = Log(args.work)
    if args.litert == "off":
        litert = None
    elif args.litert == "on" or litert_available():
        litert = True
    else:
        litert = "n/a (not built)"
    jobs = Jobs(args.jobs)
    families = [Family(name, args, log, jobs, litert is True) for name in args.families]
    for family in families:
        family.add_jobs()
    jobs.run()
    build_seconds = time.perf_counter() - start
    results = []
    for family in families:
        family.collect()
        family.measure_latency()
        results.append(family.result())
    seconds = time.perf_counter() - start
    text = render(results, litert, args, seconds, build_seconds)
    print("\n" + text)
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        f.write(text + "\n")
    with open(os.path.splitext(args.out)[0] + ".json", "w", encoding="utf-8") as f:
        json.dump(
            {
                "results": results,
                "commands": log.commands,
                "seconds": round(seconds, 1),
                "build_seconds": round(build_seconds, 1),
                "litert": litert,
                "args": vars(args),
            },
            f,
            indent=1,
        )
    failed = [c for c in log.commands if c[3] not in ("ok", "reused")]
    if failed:
        print("\nFailed commands:")
        for label, line, _, error in failed:
            print(f"- {label}: `{line}`: {error}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
