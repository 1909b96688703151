"""Recipe configs: YAML with sections `model`, `tokenizer`, `data`, `train`, `export`.

Every key is declared in a schema with its type, default and valid range, so an
unknown key, a wrong type or an out-of-range value is an error naming the key. The
`model` section's keys depend on `model.family` (see `kzoo.training.tasks.registry`).
Overrides use dotted keys: `apply_overrides(config, ["train.steps=100"])`; values are
parsed as YAML scalars (`5` is an int, `true` a bool, `[a, b]` a list).
"""

import copy
import dataclasses
import re

import yaml

from kzoo import staged_files

SECTIONS = ("model", "tokenizer", "data", "train", "monitor", "export")
_NUMBER = (int, float)


class ConfigError(ValueError):
    """A config problem; the message names the key and the value."""


class _Loader(yaml.SafeLoader):
    """YAML's safe loader, reading `1e-4` as the float it means (YAML 1.1 wants
    `1.0e-4` and would read a string)."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_yaml(stream):
    """`yaml.safe_load`, with `1e-4` a float.

    Example:
    >>> load_yaml("learning_rate: 1e-4")
    {'learning_rate': 0.0001}
    """
    loader = _Loader(stream)  # A SafeLoader: tags that build objects are refused.
    try:
        return loader.get_single_data()
    finally:
        loader.dispose()


@dataclasses.dataclass(frozen=True)
class Field:
    """One config key: accepted types, default, and an optional constraint.

    `check(value)` returns an error phrase ("must be > 0") or None; `choices`
    restricts to a set. `required` fields have no default. `path` fields hold file
    paths or globs (a string or a list of them; `builtin` is not a path), which
    `kzoo.training.recipe.resolve_paths` makes absolute. A field with a `schema`
    (a dict of Fields) takes a mapping, validated and completed like a section
    (`train.lora: {rank: 8}`; `--set train.lora.rank=8`).
    """

    types: tuple
    default: object = None
    check: object = None
    choices: tuple = None
    nullable: bool = False
    required: bool = False
    path: bool = False
    doc: str = ""
    schema: dict = None


def positive(value):
    return None if value > 0 else "must be > 0"


def non_negative(value):
    return None if value >= 0 else "must be >= 0"


def fraction(value):
    return None if 0 <= value < 1 else "must be in [0, 1)"


def in_range(low, high):
    def check(value):
        return None if low <= value <= high else f"must be in [{low}, {high}]"

    return check


def _type_ok(value, types):
    if isinstance(value, bool):
        return bool in types
    if float in types and isinstance(value, int):
        return True
    if list in types and isinstance(value, (list, tuple)):
        return True
    return isinstance(value, types)


def _type_name(types):
    return " or ".join(t.__name__ for t in types)


def _mapping(value, where, of=""):
    """`value`, which YAML must have given as a mapping (`{}` for None: an empty
    file or section); ConfigError naming `where` otherwise."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping{of}, got {type(value).__name__}")
    return value


def validate_section(section, values, schema):
    """Returns `values` completed with defaults; raises ConfigError on a bad key."""
    values = _mapping(values, section)
    unknown = sorted(set(values) - set(schema))
    if unknown:
        raise ConfigError(
            f"{section}.{unknown[0]}: unknown key; valid keys: {', '.join(sorted(schema))}"
        )
    result = {}
    for key, field in schema.items():
        name = f"{section}.{key}"
        if key not in values:
            if field.required:
                raise ConfigError(f"{name}: required key is missing")
            result[key] = copy.deepcopy(field.default)
            continue
        value = values[key]
        if value is None:
            if not field.nullable:
                raise ConfigError(f"{name}: must not be null")
            result[key] = None
            continue
        if field.schema is not None:
            result[key] = validate_section(name, value, field.schema)
            continue
        if not _type_ok(value, field.types):
            raise ConfigError(
                f"{name}: expected {_type_name(field.types)}, got {type(value).__name__} {value!r}"
            )
        if field.choices is not None and value not in field.choices:
            raise ConfigError(f"{name}: must be one of {list(field.choices)}, got {value!r}")
        if field.check is not None:
            problem = field.check(value)
            if problem:
                raise ConfigError(f"{name}: {problem}, got {value!r}")
        result[key] = list(value) if isinstance(value, tuple) else value
    return result


def parse_override(text):
    """`"train.steps=100"` -> `(["train", "steps"], 100)`; a key of a mapping-valued
    key has three parts (`"train.lora.rank=8"`)."""
    if "=" not in text:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. train.steps=100")
    key, raw = text.split("=", 1)
    parts = key.strip().split(".")
    if len(parts) not in (2, 3) or not all(parts):
        raise ConfigError(f"--set {text!r}: key must be SECTION.KEY, e.g. train.steps")
    try:
        value = load_yaml(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return parts, value


def apply_overrides(raw_config, overrides):
    """Applies `--set` overrides to a raw (unvalidated) config dict."""
    config = copy.deepcopy(raw_config)
    for text in overrides or ():
        (section, key, *sub), value = parse_override(text)
        if section not in SECTIONS:
            raise ConfigError(
                f"--set {text!r}: unknown section {section!r}; valid: {list(SECTIONS)}"
            )
        if config.get(section) is None:
            config[section] = {}
        if sub:
            if not isinstance(config[section].get(key), dict):
                config[section][key] = {}
            config[section][key][sub[0]] = value
        else:
            config[section][key] = value
    return config


def blame(error, overrides, source):
    """`error` (a ConfigError whose message starts with `section.key:`) attributed
    to the `--set` override that gave that key, else to `source` (the recipe).

    Example:
    >>> print(blame(ConfigError("train.stepz: unknown key"), ["train.stepz=5"], "r.yaml"))
    --set 'train.stepz=5': unknown key
    >>> print(blame(ConfigError("train.stepz: unknown key"), [], "r.yaml"))
    r.yaml: train.stepz: unknown key
    """
    key, separator, problem = str(error).partition(": ")
    for text in overrides or ():
        if separator and text.partition("=")[0].strip() == key:
            return ConfigError(f"--set {text!r}: {problem}")
    return ConfigError(f"{source}: {error}")


def read_yaml(path):
    """Reads a config file with the safe loader; errors name the file and line."""
    try:
        with open(path, encoding="utf-8") as f:
            raw = load_yaml(f)
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        raise ConfigError(f"{where}: invalid YAML: {getattr(error, 'problem', error)}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 ({error.reason} at byte {error.start})") from None
    raw = _mapping(raw, path, " of sections")
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"{path}: unknown section {unknown[0]!r}; valid: {list(SECTIONS)}")
    return raw


def write_yaml_atomic(config, path):
    """Writes `config` to `path` as YAML, atomically (`kzoo.staged_files.atomic_write`)."""

    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            yaml.safe_dump(config, f, sort_keys=False)

    staged_files.atomic_write(path, write)
