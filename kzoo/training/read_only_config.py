"""A validated config is read-only: what a task derives, it returns as a new config.

`kzoo.training.recipe.validate` returns `freeze(config)`: every mapping a
`ReadOnlyDict`, every list a `ReadOnlyList`. Both are the built-in types underneath
(`isinstance(config, dict)`, JSON, `==` and `{**config}` work as before), but writing
into them raises `TypeError`. A new config is made with `updated`; `thaw` gives a
mutable deep copy. `yaml.safe_dump` writes them as plain mappings and lists.

Example:
>>> config = freeze({"data": {"batch_size": 8, "train": ["a.txt"]}})
>>> config["data"]["batch_size"] = 16
Traceback (most recent call last):
...
TypeError: a validated config is read-only; derive a new one with kzoo.training.read_only_config.updated(config, section={key: value})
>>> updated(config, data={"batch_size": 16})["data"]
{'batch_size': 16, 'train': ['a.txt']}
>>> config["data"]["batch_size"]
8
"""

import yaml

_READ_ONLY = (
    "a validated config is read-only; derive a new one with "
    "kzoo.training.read_only_config.updated(config, section={key: value})"
)


def _refuse(self, *args, **kwargs):
    raise TypeError(_READ_ONLY)


class _ReadOnly:
    """What the read-only types share: a copy is the value itself (nothing can
    change either), and a pickle re-freezes the plain value."""

    __slots__ = ()

    def __copy__(self):
        return self

    def __deepcopy__(self, memo):
        return self

    def __reduce__(self):
        return freeze, (thaw(self),)


class ReadOnlyDict(_ReadOnly, dict):
    """A `dict` that refuses every write (`TypeError`); copying gives itself."""

    __slots__ = ()
    __setitem__ = __delitem__ = __ior__ = _refuse
    clear = pop = popitem = setdefault = update = _refuse


class ReadOnlyList(_ReadOnly, list):
    """A `list` that refuses every write (`TypeError`); copying gives itself."""

    __slots__ = ()
    __setitem__ = __delitem__ = __iadd__ = __imul__ = _refuse
    append = extend = insert = pop = remove = clear = sort = reverse = _refuse


def freeze(value):
    """`value` with every dict and list (tuples too) made read-only, recursively."""
    if isinstance(value, dict):
        return ReadOnlyDict({key: freeze(item) for key, item in value.items()})
    if isinstance(value, (list, tuple)):
        return ReadOnlyList(freeze(item) for item in value)
    return value


def thaw(value):
    """A mutable deep copy of `value` (plain dicts and lists)."""
    if isinstance(value, dict):
        return {key: thaw(item) for key, item in value.items()}
    if isinstance(value, list):
        return [thaw(item) for item in value]
    return value


def updated(config, **sections):
    """A new read-only config: `config` with `sections` (`{section: {key: value}}`)
    replacing those keys; the other keys and sections are kept."""
    return freeze({**config, **{name: {**config[name], **keys} for name, keys in sections.items()}})


yaml.SafeDumper.add_representer(ReadOnlyDict, yaml.SafeDumper.represent_dict)
yaml.SafeDumper.add_representer(ReadOnlyList, yaml.SafeDumper.represent_list)
