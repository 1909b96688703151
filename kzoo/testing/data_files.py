"""Files for the data readers' tests, and the errors reading them gives."""


def write_file(directory, name, content):
    """Writes `content` (`str`, as UTF-8, or `bytes`) to `directory/name`.

    Returns:
        The path, a `str`.

    Example:
    >>> import pathlib, tempfile
    >>> path = write_file(pathlib.Path(tempfile.mkdtemp()), "a.tsv", "x\\ty\\n")
    >>> open(path, "rb").read()
    b'x\\ty\\n'
    """
    path = directory / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8"))
    return str(path)


def error_of(function, *args, **kwargs):
    """The message of the `ValueError` that `function(*args, **kwargs)` raises.

    Example:
    >>> error_of(int, "x")
    "invalid literal for int() with base 10: 'x'"
    """
    try:
        function(*args, **kwargs)
    except ValueError as error:
        return str(error)
    raise AssertionError(f"{function.__name__}{args} raised no ValueError")
