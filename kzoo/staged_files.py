"""Temporary files and directories that are renamed into place, with the umask's mode.

`tempfile.mkstemp` and `tempfile.mkdtemp` create 0600 files and 0700 directories
whatever the umask: right for private scratch space, wrong for a file staged
there and then renamed onto a run's `config.yaml`, `tokenizer.model` or a
checkpoint, which should get the mode `open` and `os.makedirs` give (0644 and 0755
under the usual umask 022, 0600 and 0700 under 077). These do the same as
`tempfile`'s, then set that mode.
"""

import os
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
