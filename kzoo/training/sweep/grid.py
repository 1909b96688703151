"""`kzoo sweep --grid KEY=V1,V2,...`: parsing the grid and naming its trials."""

import collections
import dataclasses
import hashlib
import itertools
import json
import re

from kzoo.training.config import SECTIONS, ConfigError, parse_override

MAX_NAME_LENGTH = 120


@dataclasses.dataclass(frozen=True)
class GridKey:
    """One `--grid KEY=V1,V2,...`: the key, its values as typed and as parsed.

    Example:
    >>> parse_grid(["model.hidden_dim=32,64"])
    [GridKey(key='model.hidden_dim', texts=('32', '64'), values=(32, 64))]
    """

    key: str
    texts: tuple
    values: tuple


def split_values(text):
    """Splits `V1,V2,...` at the commas outside brackets, braces and quotes.

    Example:
    >>> split_values("0.1,[a, b],'x,y', 3")
    ['0.1', '[a, b]', "'x,y'", ' 3']
    """
    items, depth, quote, start = [], 0, None, 0
    for i, char in enumerate(text):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"" and (depth or not text[start:i].strip()):
            quote = char  # YAML quotes a scalar only from its first character.
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth = max(depth - 1, 0)
        elif char == "," and not depth:
            items.append(text[start:i])
            start = i + 1
    items.append(text[start:])
    return [] if items == [""] else items


def parse_grid(texts, overrides=()):
    """`["train.learning_rate=0.001,0.003", ...]` -> `[GridKey]`; values are parsed
    as `--set` values are (YAML scalars)."""
    if not texts:
        raise ConfigError(
            "give at least one --grid KEY=V1,V2,..., e.g. --grid train.learning_rate=0.001,0.003"
        )
    set_keys = {text.split("=", 1)[0].strip() for text in overrides}
    grid = []
    for text in texts:
        where = f"--grid {text!r}"
        key, equals, raw = text.partition("=")
        key = key.strip()
        section, _, name = key.partition(".")
        if not equals:
            raise ConfigError(
                f"{where}: expected KEY=V1,V2,..., e.g. train.learning_rate=0.001,0.003"
            )
        if not section or not name or "." in name:
            raise ConfigError(f"{where}: key must be SECTION.KEY, e.g. train.learning_rate")
        if section not in SECTIONS:
            raise ConfigError(f"{where}: unknown section {section!r}; valid: {list(SECTIONS)}")
        if key in (g.key for g in grid):
            raise ConfigError(
                f"{where}: {key} is given by two --grid options; list its values in one"
            )
        if key in set_keys:
            raise ConfigError(f"{where}: {key} is also given with --set; give it in one place")
        items = [item.strip() for item in split_values(raw)]
        if not items:
            raise ConfigError(f"{where}: no values; expected {key}=V1,V2,...")
        values = []
        for position, item in enumerate(items, 1):
            if not item:
                raise ConfigError(
                    f'{where}: value {position} is empty (an empty string is written "")'
                )
            value = parse_override(f"{key}={item}")[1]
            if any(type(value) is type(v) and value == v for v in values):
                raise ConfigError(f"{where}: value {item!r} is given twice")
            values.append(value)
        grid.append(GridKey(key, tuple(items), tuple(values)))
    return grid


def trial_names(grid):
    """Directory names of the trials, in `itertools.product` order of the grid.

    `KEY=VALUE` pairs joined by commas (the key's last part unless two grid keys
    share it), characters outside `[A-Za-z0-9._+-]` replaced by `_`. A name that is
    too long or not unique (case-insensitively) gets a hash of its values.

    Example:
    >>> grid = parse_grid(["train.learning_rate=0.001,0.003", "model.hidden_dim=32"])
    >>> trial_names(grid)
    ['learning_rate=0.001,hidden_dim=32', 'learning_rate=0.003,hidden_dim=32']
    """
    last_parts = collections.Counter(g.key.split(".")[1] for g in grid)
    labels = [g.key.split(".")[1] if last_parts[g.key.split(".")[1]] == 1 else g.key for g in grid]
    combinations = list(itertools.product(*(g.texts for g in grid)))
    names = [
        ",".join(
            f"{label}={re.sub(r'[^A-Za-z0-9._+-]', '_', text)}"
            for label, text in zip(labels, texts)
        )
        for texts in combinations
    ]
    counts = collections.Counter(name.lower() for name in names)
    for index, (name, texts) in enumerate(zip(names, combinations)):
        if counts[name.lower()] > 1 or len(name) > MAX_NAME_LENGTH:
            digest = hashlib.sha1(json.dumps(texts).encode()).hexdigest()[:8]
            names[index] = f"{name[: MAX_NAME_LENGTH - 9]}-{digest}"
    return names
