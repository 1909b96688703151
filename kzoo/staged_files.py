"""Atomic writes: files and directories staged under a temporary name, then renamed
into place, with the umask's mode.

`atomic_write(path, write)` (and `write_bytes_atomic`, `write_text_atomic`,
`write_json_atomic`, `atomic_directory`) is how kzoo writes every file another
process may read: a run's config, model, summary, tokenizer and checkpoints,
export assets, generated data sets.

`tempfile.mkstemp` and `tempfile.mkdtemp` create 0600 files and 0700 directories
whatever the umask: right for private scratch space, wrong for a file staged
there and then renamed onto a run's `config.yaml`, `tokenizer.model` or a
checkpoint, which should get the mode `open` and `os.makedirs` give (0644 and 0755
under the usual umask 022, 0600 and 0700 under 077). These do the same as
`tempfile`'s, then set that mode.
"""

import json
import os
import shutil
import tempfile


def umask():
    """The process's umask, read without changing it where Linux shows it."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    # Elsewhere, reading means setting: briefly the strictest mask, so that a file
    # another thread creates meanwhile is not more open than intended.
    mask = os.umask(0o077)
    os.umask(mask)
    return mask


def mkstemp(**kwargs):
    """`tempfile.mkstemp(**kwargs)` -> `(fd, path)`; the file's mode is 0666 less the
    umask."""
    fd, path = tempfile.mkstemp(**kwargs)
    try:
        os.fchmod(fd, 0o666 & ~umask())
    except BaseException:
        os.close(fd)
        os.unlink(path)
        raise
    return fd, path


def mkdtemp(**kwargs):
    """`tempfile.mkdtemp(**kwargs)` -> path; the directory's mode is 0777 less the
    umask."""
    path = tempfile.mkdtemp(**kwargs)
    os.chmod(path, 0o777 & ~umask())
    return path


def atomic_write(path, write):
    """Writes a file all at once: `write(tmp)` fills a temporary sibling of `path`,
    which is flushed to disk and renamed onto `path`.

    Readers see the old file or the new one, never a part: if `write` raises (or
    the process dies), `path` is left as it was and the temporary file is removed
    (a killed process leaves a hidden `.tmp-*`, which nothing reads). The temporary
    file has `path`'s extension (Keras checks `.keras`), the umask's mode and a
    name starting with `.tmp-`; `path`'s directory is created if missing.

    Args:
        path: The file to write.
        write: A function of the temporary path; it writes the content there (the
            file exists, empty: open it with `"w"`/`"wb"`).

    Returns:
        `path`.

    Example:
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "notes.txt")
    >>> _ = write_text_atomic(path, "old")
    >>> def fail(tmp):
    ...     with open(tmp, "w") as f:
    ...         f.write("half")
    ...     raise OSError("disk full")
    >>> atomic_write(path, fail)
    Traceback (most recent call last):
    ...
    OSError: disk full
    >>> open(path).read(), os.listdir(os.path.dirname(path))
    ('old', ['notes.txt'])
    """
    directory, name = os.path.split(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = mkstemp(dir=directory, prefix=".tmp-", suffix="".join(name.partition(".")[1:]))
    os.close(fd)
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def write_bytes_atomic(path, data):
    """Writes `data` (`bytes`) to `path` atomically (`atomic_write`); returns `path`."""

    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(data)

    return atomic_write(path, write)


def write_text_atomic(path, text):
    """Writes `text` to `path` as UTF-8, atomically (`atomic_write`), line ends as
    given; returns `path`."""

    def write(tmp):
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)

    return atomic_write(path, write)


def write_json_atomic(path, data, sort_keys=True):
    """Writes `data` as indented JSON (and a final newline) to `path`, atomically
    (`atomic_write`); `sort_keys=False` keeps the dicts' order. Returns `path`.

    Example:
    >>> import tempfile
    >>> path = write_json_atomic(os.path.join(tempfile.mkdtemp(), "a.json"), {"b": 1, "a": 2})
    >>> print(open(path).read(), end="")
    {
      "a": 2,
      "b": 1
    }
    """

    def write(tmp):
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, indent=2, sort_keys=sort_keys)
            f.write("\n")

    return atomic_write(path, write)


def atomic_directory(path, fill, replace=False, mode=None):
    """Writes a directory all at once: `fill(tmp)` fills a temporary sibling of
    `path` (`.tmp-NAME-*`, with the umask's mode), which is renamed onto `path`.

    If `fill` raises, the temporary directory is removed and `path` is left as it
    was. With `replace`, an existing `path` is first renamed aside (`.old-*`) and
    deleted once the new one is in place; if that rename fails, the old one is
    put back. `fill` flushes the files it writes (`os.fsync`) where a crash must
    not lose them.

    Args:
        path: The directory to write; it may exist if empty, or with `replace`.
        fill: A function of the temporary directory's path.
        replace: Replace an existing `path` (and what it holds).
        mode: If given, every directory gets `mode` and every file `mode` less
            the execute bits (`0o755`: directories 0755, files 0644), whatever
            the umask: for readers running as another user (TF Serving).

    Returns:
        `path`.

    Raises:
        FileExistsError: `path` exists, is not empty and `replace` is False.

    Example:
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "1")
    >>> def fill(text):
    ...     return lambda tmp: open(os.path.join(tmp, "a.txt"), "w").write(text)
    >>> _ = atomic_directory(path, fill("old"))
    >>> atomic_directory(path, fill("new"))
    Traceback (most recent call last):
    ...
    FileExistsError: ... already exists and is not empty; ...
    >>> _ = atomic_directory(path, fill("new"), replace=True, mode=0o755)
    >>> open(os.path.join(path, "a.txt")).read(), oct(os.stat(path).st_mode & 0o777)
    ('new', '0o755')
    >>> os.listdir(os.path.dirname(path))
    ['1']
    """
    parent, name = os.path.split(os.path.abspath(path))
    os.makedirs(parent, exist_ok=True)
    tmp = mkdtemp(dir=parent, prefix=f".tmp-{name}-")
    try:
        fill(tmp)
        if mode is not None:
            _set_modes(tmp, mode)
        if os.path.exists(path) and os.listdir(path):
            if not replace:
                raise FileExistsError(
                    f"{path} already exists and is not empty; pass replace=True to replace it"
                )
            _replace_keeping_old(tmp, path)
        else:
            os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def _set_modes(directory, mode):
    """`directory` and the directories under it get `mode`, its files `mode`
    without the execute bits."""
    file_mode = mode & 0o666
    os.chmod(directory, mode)
    for root, dirs, files in os.walk(directory):
        for d in dirs:
            os.chmod(os.path.join(root, d), mode)
        for f in files:
            os.chmod(os.path.join(root, f), file_mode)


def _replace_keeping_old(tmp, path):
    """Renames `tmp` onto the existing directory `path`; the old `path` waits
    aside until then, and comes back if the rename fails."""
    trash = tempfile.mkdtemp(dir=os.path.dirname(path), prefix=".old-")
    old = os.path.join(trash, "old")
    os.rename(path, old)
    try:
        os.rename(tmp, path)
    except BaseException:
        os.rename(old, path)
        raise
    finally:
        shutil.rmtree(trash, ignore_errors=True)
