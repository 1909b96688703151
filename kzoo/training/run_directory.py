"""The run directory: the one module that knows its file names.

    RUN/config.yaml        the resolved recipe (every default filled in); its paths
                           absolute, or relative to RUN for files inside it
    RUN/.lock              held while a `kzoo train` writes RUN (`run_lock`)
    RUN/tokenizer.model    the trained vocabulary: SentencePiece (with
                           RUN/sentencepiece.json for special tokens and the
                           prepend scheme of an imported Llama-2), or
    RUN/vocab.txt          WordPiece (with RUN/wordpiece.json), or
    RUN/vocab.json         byte-level BPE (with RUN/merges.txt, and
                           RUN/byte_pair.json for non-GPT-2 settings); the format and
                           names are `kzoo.tokenizers`', which reads and writes
                           them in the directory it is given
    RUN/model.keras        the trained model (tokenizer inside); written last
    RUN/checkpoints/       step checkpoints (`checkpoints`: step-NNNNNNNN/)
    RUN/tensorboard/       event files: the hparams of a sweep trial, and in
                           train/, validation/, samples/, attention/ and
                           projector/ (`monitoring.embedding_projector`'s files)
    RUN/summary.json       what the run did: steps, time, final losses; its
                           presence marks a finished run

`RunDirectory(path)` joins these names, reads and writes the files (atomically,
`kzoo.staged_files`), and is the only reader of `config.yaml` and loader of
`model.keras`: every other module asks it. Importing this module is cheap (no
TensorFlow); the methods that need Keras import it.
"""

import glob
import json
import os
import shutil

from kzoo import staged_files


def _inside(name):
    """A read-only property: the path of `name` in the run directory."""
    return property(lambda run: os.path.join(run.path, name), doc=f"`RUN/{name}`.")


class RunDirectory:
    """A training run's directory (which need not exist yet).

    Args:
        path: The directory.

    Example:
    >>> import tempfile
    >>> run = RunDirectory(tempfile.mkdtemp())
    >>> run.has_config(), run.is_finished()
    (False, False)
    >>> _ = run.write_summary({"steps": 3})
    >>> run.is_finished(), run.summary()["steps"]
    (True, 3)
    >>> os.path.relpath(run.tensorboard_dir("samples"), run.path)
    'tensorboard/samples'
    """

    CONFIG = "config.yaml"
    LOCK = ".lock"
    MODEL = "model.keras"
    ADAPTERS = "lora_adapters"  # A train.lora run's adapters (kzoo.training.lora).
    SUMMARY = "summary.json"
    FEW_SHOT = "few_shot.json"  # `kzoo evaluate --tasks`: the latest result per task and shots.
    CHECKPOINTS = "checkpoints"
    TENSORBOARD = "tensorboard"
    # The TensorBoard runs under RUN/tensorboard/.
    BOARDS = ("train", "validation", "samples", "attention", "projector")

    def __init__(self, path):
        self.path = os.fspath(path)

    def __repr__(self):
        return f"RunDirectory({self.path!r})"

    # === Paths ===

    config_path = _inside(CONFIG)
    lock_path = _inside(LOCK)
    model_path = _inside(MODEL)
    adapters_dir = _inside(ADAPTERS)  # `kzoo export --lora-only` copies it.
    summary_path = _inside(SUMMARY)
    few_shot_path = _inside(FEW_SHOT)
    checkpoints_dir = _inside(CHECKPOINTS)

    def tensorboard_dir(self, board=None):
        """`RUN/tensorboard`, or its sub-folder `board` (one of `BOARDS`)."""
        if board is None:
            return os.path.join(self.path, self.TENSORBOARD)
        if board not in self.BOARDS:
            raise ValueError(f"tensorboard_dir: {board!r} is not one of {list(self.BOARDS)}")
        return os.path.join(self.path, self.TENSORBOARD, board)

    # === State ===

    def has_config(self):
        """Whether training started here (`config.yaml` is written before step 1)."""
        return os.path.isfile(self.config_path)

    def has_model(self):
        return os.path.isfile(self.model_path)

    def is_finished(self):
        """Whether training finished here (`summary.json` is written last)."""
        return os.path.isfile(self.summary_path)

    def tokenizer_kind(self):
        """`"byte_pair"` (`vocab.json`), `"sentencepiece"` (`tokenizer.model`),
        `"wordpiece"` (`vocab.txt`) or None."""
        for kind, names in _tokenizer_files().items():
            if os.path.isfile(os.path.join(self.path, names[0])):
                return kind
        return None

    # === Config ===

    def write_config(self, config):
        """Writes `config` as `config.yaml`, atomically. Its paths are stored
        absolute, except those inside the run, stored relative to it: the run works
        from any working directory, and moves with data kept inside it."""
        from kzoo.training.config import write_yaml_atomic
        from kzoo.training.recipe import map_paths

        run = os.path.abspath(self.path)

        def stored(path):
            path = os.path.abspath(os.path.expanduser(path))
            return os.path.relpath(path, run) if os.path.commonpath([run, path]) == run else path

        write_yaml_atomic(map_paths(config, stored), self.config_path)

    def config(self):
        """The (unvalidated) config of `config.yaml`, its relative paths resolved
        against the run (a relative path that matches nothing there but matches
        from the working directory is taken from there: runs written before kzoo
        stored paths absolute).

        Raises:
            FileNotFoundError: No `config.yaml`: not a run directory.
            ConfigError: Not a YAML mapping of recipe sections.
        """
        from kzoo.training.config import read_yaml
        from kzoo.training.recipe import map_paths

        if not self.has_config():
            raise FileNotFoundError(f"{self.path}: not a kzoo run directory (no {self.CONFIG})")

        def resolve(path):
            path = os.path.expanduser(path)
            if os.path.isabs(path):
                return os.path.normpath(path)
            inside = os.path.abspath(os.path.join(self.path, path))
            if glob.glob(inside) or not glob.glob(path):
                return inside
            # Runs written before paths were stored absolute kept them as typed,
            # relative to the working directory that started the run.
            return os.path.abspath(path)

        return map_paths(read_yaml(self.config_path), resolve)

    # === Summary ===

    def write_summary(self, summary):
        """Writes `summary.json` (sorted keys), atomically: the run is finished."""
        return staged_files.write_json_atomic(self.summary_path, summary)

    def summary(self):
        """The finished run's `summary.json`, a dict."""
        with open(self.summary_path, encoding="utf-8") as f:
            return json.load(f)

    # === Few-shot results ===

    def few_shot_results(self):
        """`few_shot.json`: `{"TASK/Kshot": result}`, `{}` before any."""
        if not os.path.isfile(self.few_shot_path):
            return {}
        with open(self.few_shot_path, encoding="utf-8") as f:
            return json.load(f)

    def write_few_shot_results(self, results):
        """Adds `results` (dicts with `task` and `shots`) to `few_shot.json`,
        replacing earlier results of the same task and shots, atomically."""
        merged = self.few_shot_results()
        merged.update({f"{r['task']}/{r['shots']}shot": r for r in results})
        return staged_files.write_json_atomic(self.few_shot_path, merged)

    # === Model and tokenizer ===

    def save_model(self, model):
        """Saves `model` as `model.keras`, atomically."""
        return staged_files.atomic_write(self.model_path, model.save)

    def load_model(self):
        """Loads `model.keras` with `safe_mode` (no code is deserialized).

        A model written before preprocessors were saved with the model gets the
        one its `config.yaml` describes (`kzoo.training.tasks.legacy`).

        Raises:
            FileNotFoundError: No model; the message says whether to train or to
                resume (an interrupted run) and how.
            ValueError: An old model whose preprocessor cannot be rebuilt (the
                message says how to re-train).
        """
        import keras

        import kzoo.models  # noqa: F401  (registers the model classes)
        import kzoo.preprocessing  # noqa: F401  (registers the preprocessor layers)
        import kzoo.tokenizers  # noqa: F401  (registers the tokenizer layer)
        from kzoo.training.tasks.legacy import attach_preprocessor

        if not self.has_model():
            raise FileNotFoundError(self._no_model_message())
        model = keras.saving.load_model(self.model_path, safe_mode=True, compile=False)
        return attach_preprocessor(model, self)  # a model.keras of before preprocessors

    def tokenizer(self, model=None):
        """The run's tokenizer: the one inside `model` if it has one, else the one
        trained into the run (`kzoo.tokenizers.load_tokenizer`)."""
        attached = getattr(model, "tokenizer", None)
        if attached is not None:
            return attached
        from kzoo.tokenizers import load_tokenizer

        return load_tokenizer(self.path)

    def copy_tokenizer_from(self, other):
        """Copies the tokenizer files of the run `other` (a `RunDirectory` or a
        path) into this one (`train.init_from`).

        Raises:
            FileNotFoundError: `other` holds no tokenizer.
        """
        other = other if isinstance(other, RunDirectory) else RunDirectory(other)
        kind = other.tokenizer_kind()
        if kind is None:
            raise FileNotFoundError(f"{other.path}: holds no trained tokenizer")
        os.makedirs(self.path, exist_ok=True)
        for name in _tokenizer_files()[kind]:
            source = os.path.join(other.path, name)
            if os.path.isfile(source):
                shutil.copyfile(source, os.path.join(self.path, name))

    def copy_resume_files(self, to):
        """Copies what resuming reads into the directory `to`: the top-level files
        but `model.keras`, and the newest checkpoint (a worker's scratch copy,
        `kzoo.training.distribute.worker_directory`)."""
        from kzoo.training import checkpoints

        if not os.path.isdir(self.path):
            return
        for name in os.listdir(self.path):
            path = os.path.join(self.path, name)
            if os.path.isfile(path) and name != self.MODEL:
                shutil.copy2(path, to)
        last = checkpoints.latest(self.checkpoints_dir)
        if last is not None:
            shutil.copytree(last, os.path.join(to, self.CHECKPOINTS, os.path.basename(last)))

    def _no_model_message(self):
        """Why there is no `model.keras`, and what to do: an unfinished run
        (interrupted at its latest checkpoint) is resumed, anything else trained."""
        from kzoo.training import checkpoints

        if not self.has_config():
            return (
                f"{self.path}: no trained model ({self.MODEL}); train one with "
                "`kzoo train RECIPE --run-dir DIR`"
            )
        last = checkpoints.latest(self.checkpoints_dir)
        if last is None:
            where = "before its first checkpoint"
        else:
            state = checkpoints.read_state(last)
            total = state.get("total_steps")
            where = f"at step {state['step']}" + (f" of {total}" if total else "")
        return (
            f"{self.path}: training was interrupted {where} (no {self.MODEL} "
            f"yet); finish it with `kzoo train --resume {self.path}`"
        )


def _tokenizer_files():
    """`{kind: (file names, the first always present)}` of the tokenizers a run holds."""
    from kzoo.tokenizers import TOKENIZER_FILENAME
    from kzoo.tokenizers.byte_pair_tokenizer import MERGES_TXT, SETTINGS_JSON, VOCAB_JSON
    from kzoo.tokenizers.sentencepiece_tokenizer import SETTINGS_JSON as SENTENCEPIECE_JSON
    from kzoo.tokenizers.wordpiece_trainer import SETTINGS_FILENAME, VOCAB_FILENAME

    # In `load_tokenizer`'s order: a `vocab.json`, then a `vocab.txt` is read first.
    return {
        "byte_pair": (VOCAB_JSON, MERGES_TXT, SETTINGS_JSON),
        "wordpiece": (VOCAB_FILENAME, SETTINGS_FILENAME),
        "sentencepiece": (TOKENIZER_FILENAME, SENTENCEPIECE_JSON),
    }
