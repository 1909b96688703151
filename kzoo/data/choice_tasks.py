"""Multiple-choice tasks for zero- and few-shot evaluation: JSON Lines files and the
built-in tasks.

The file format, one JSON object per line (blank lines are skipped)::

    {"context": "zo kufe", "choices": ["mosan to fuzi.", "fuzi to mosan."], "label": 0}
    {"context": "ta molan", "choices": ["teriv.", "ki."], "label": 1, "split": "train"}

- `context` (string, may be empty): the text the choices continue.
- `choices` (a list of at least 2 non-empty strings): each is scored as the
  continuation `" " + choice` of the context (lm-evaluation-harness's default
  target delimiter), so a choice starts without a space.
- `label` (integer): the index of the correct choice.
- `split` (optional): `"train"` lines are the pool few-shot examples are drawn
  from; the other lines (no `split`, `"validation"` or `"test"`) are evaluated.

Other keys (an `"id"`, say) are ignored. An error names the file, the line and the
key, and says what is valid.

Built-in tasks are named `builtin:NAME` (`kzoo.data.builtin_choice_tasks`, whose
`load_choice_task` takes a file or a built-in name): `grammar` (which continuation
is grammatical) and `completion` (which word completes the sentence).
"""

import dataclasses
import json
import os

SPLITS = ("train", "validation", "test")
BUILTIN_PREFIX = "builtin:"


@dataclasses.dataclass(frozen=True)
class ChoiceExample:
    """One multiple-choice question.

    Attributes:
        context: The text before the choices.
        choices: A tuple of the candidate continuations (without the leading space).
        label: The index of the correct choice.
        line: Where the example is in its file (1-based; None for generated ones).
    """

    context: str
    choices: tuple
    label: int
    line: int | None = None


@dataclasses.dataclass(frozen=True)
class ChoiceTask:
    """A named multiple-choice task: the evaluated examples and the few-shot pool.

    Attributes:
        name: The task's name (a file's name without `.jsonl`, or the built-in name).
        examples: The evaluated `ChoiceExample`s.
        train: The `ChoiceExample`s few-shot examples are drawn from (may be empty).
        source: Where it came from (a path, or `builtin:NAME`), for messages.
    """

    name: str
    examples: tuple
    train: tuple
    source: str


def read_choice_task(path):
    """Reads a multiple-choice task from a JSON Lines file (format: module docstring).

    Raises:
        FileNotFoundError: No such file.
        ValueError: `{path}:{line}: ...` naming the key and what is valid, or the
            file has no example to evaluate.

    Example:
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "animals.jsonl")
    >>> with open(path, "w") as f:
    ...     _ = f.write('{"context": "a cat", "choices": ["meows", "barks"], "label": 0}\\n')
    ...     _ = f.write('{"context": "x", "choices": ["a", "b"], "label": 2}\\n')
    >>> read_choice_task(path)
    Traceback (most recent call last):
    ...
    ValueError: ...animals.jsonl:2: "label": must be an integer in [0, 2) (an index into "choices"); got 2
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{path}: no such task file (give a .jsonl file or builtin:NAME)")
    examples, train = [], []
    with open(path, encoding="utf-8") as f:
        for number, text in enumerate(f, start=1):
            if not text.strip():
                continue
            example, split = _parse_line(text, f"{path}:{number}", number)
            (train if split == "train" else examples).append(example)
    if not examples:
        raise ValueError(
            f'{path}: no examples to evaluate (every line has "split": "train"; lines '
            'without "split", or with "validation" or "test", are evaluated)'
        )
    name = os.path.basename(path)
    name = name[: -len(".jsonl")] if name.endswith(".jsonl") else name
    return ChoiceTask(name, tuple(examples), tuple(train), path)


def format_choice_lines(examples, split=None):
    """The JSON Lines text of `examples` (`read_choice_task` reads it back).

    Example:
    >>> print(format_choice_lines([ChoiceExample("a", ("b", "c"), 1)], split="train"), end="")
    {"context": "a", "choices": ["b", "c"], "label": 1, "split": "train"}
    """
    lines = []
    for example in examples:
        row = {"context": example.context, "choices": list(example.choices)}
        row["label"] = example.label
        if split is not None:
            row["split"] = split
        lines.append(json.dumps(row, ensure_ascii=False) + "\n")
    return "".join(lines)


def _parse_line(text, where, number):
    try:
        row = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{where}: not valid JSON ({error.msg}, column {error.colno})") from None
    if not isinstance(row, dict):
        raise ValueError(f"{where}: expected a JSON object, got {type(row).__name__}")
    for key in ("context", "choices", "label"):
        if key not in row:
            raise ValueError(
                f'{where}: missing "{key}" (each line needs "context", "choices" and "label")'
            )
    context, choices, label = row["context"], row["choices"], row["label"]
    if not isinstance(context, str):
        raise ValueError(f'{where}: "context": must be a string; got {context!r}')
    if (
        not isinstance(choices, list)
        or len(choices) < 2
        or not all(isinstance(c, str) and c for c in choices)
    ):
        raise ValueError(
            f'{where}: "choices": must be a list of at least 2 non-empty strings; got {choices!r}'
        )
    if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < len(choices):
        raise ValueError(
            f'{where}: "label": must be an integer in [0, {len(choices)}) (an index into '
            f'"choices"); got {label!r}'
        )
    split = row.get("split")
    if split is not None and split not in SPLITS:
        raise ValueError(f'{where}: "split": must be one of {", ".join(SPLITS)}; got {split!r}')
    return ChoiceExample(context, tuple(choices), label, number), split
