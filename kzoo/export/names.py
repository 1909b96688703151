"""Model names and versions of a TF Serving model directory, checked before writing.

TF Serving serves `BASE/NAME/VERSION/`: `NAME` becomes a directory and a URL path
segment (`/v1/models/NAME:predict`), `VERSION` a positive integer directory name.
Checking both up front keeps a bad value from escaping `out_dir` (`../evil`) or
producing a version TF Serving silently ignores (`0`, `v1`).
"""

import re

_NAME = re.compile(r"[A-Za-z0-9_.-]+")


def validate_model_name(name, key="export.name"):
    """Returns `name` if it is a safe model name, else raises `ValueError`.

    Args:
        name: Letters, digits, `_`, `.` and `-`; not `.` or `..`.
        key: The config key or flag quoted in the error.

    Example:
    >>> validate_model_name("gpt_tiny-v2.1")
    'gpt_tiny-v2.1'
    >>> validate_model_name("../evil")
    Traceback (most recent call last):
    ...
    ValueError: export.name: '../evil' is not a valid model name; use letters, digits, '_', '.' and '-' (not '.' or '..')
    """
    if not isinstance(name, str) or not _NAME.fullmatch(name) or name in (".", ".."):
        raise ValueError(
            f"{key}: {name!r} is not a valid model name; use letters, digits, "
            "'_', '.' and '-' (not '.' or '..')"
        )
    return name


def validate_version(version, key="export.version"):
    """Returns `version` if it is a positive int, else raises `ValueError`.

    Args:
        version: The version number (an `int`; `bool` is refused).
        key: The config key or flag quoted in the error.

    Example:
    >>> validate_version(3)
    3
    >>> validate_version(0)
    Traceback (most recent call last):
    ...
    ValueError: export.version: expected a positive int, got 0
    """
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"{key}: expected a positive int, got {version!r}")
    return version
