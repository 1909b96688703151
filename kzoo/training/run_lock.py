"""An exclusive lock on a run directory: one `kzoo train` writes it at a time.

`RunLock(run_dir)` holds an `fcntl.flock` on `RUN/.lock` for the whole run and
writes its holder in the file (command, pid, host, start time), so a second
writer is refused at once with a message naming the first. The operating system
releases a flock when its process ends, however it ends (SIGKILL, out of memory),
so a lock file left by a killed run is stale: the next run takes it over.

Only writers lock: on a cluster the chief holds the lock and the other workers
write scratch copies (`kzoo.training.distribute`); `kzoo evaluate` and
`kzoo export` read a run without locking (its files are replaced atomically, and
`model.keras` appears only when training has finished).
"""

import contextlib
import datetime
import fcntl
import json
import os
import socket

from kzoo.training.run_directory import RunDirectory


class RunDirectoryInUse(FileExistsError):
    """Another process holds the lock of a run directory (`kzoo` exit status 2)."""

    def __init__(self, run_dir, holder):
        self.run_dir = run_dir
        self.holder = holder
        if {"command", "pid", "host", "since"} <= set(holder):
            who = (
                f"{holder['command']} (pid {holder['pid']} on {holder['host']}, "
                f"since {holder['since']})"
            )
        else:  # The holder has not written its name yet.
            who = "another kzoo process"
        super().__init__(f"{run_dir}: in use by {who}; wait for it or choose another --run-dir")


class RunLock:
    """Context manager: holds the lock of `run_dir`, creating the directory if needed.

    On exit the lock file is removed, and so is the directory if this lock
    created it and nothing else was written into it.

    Args:
        run_dir: The run directory.
        command: What holds it, named to a refused second writer.

    Attributes:
        created_directory: Whether acquiring the lock created `run_dir`.

    Raises:
        RunDirectoryInUse: Another process holds the lock.
        FileExistsError: `run_dir`, or a folder above it, is a file.

    Example:
    >>> import tempfile
    >>> run_dir = os.path.join(tempfile.mkdtemp(), "run")
    >>> with RunLock(run_dir) as lock:
    ...     with RunLock(run_dir):
    ...         pass
    Traceback (most recent call last):
    ...
    kzoo.training.run_lock.RunDirectoryInUse: ...: in use by kzoo train (pid ...
    >>> os.path.exists(run_dir)  # Created by the lock, left empty: removed.
    False
    """

    def __init__(self, run_dir, command="kzoo train"):
        self.run_dir = run_dir
        self.command = command
        self.path = RunDirectory(run_dir).lock_path
        self.created_directory = False
        self._fd = None

    def __enter__(self):
        self.created_directory = not os.path.exists(self.run_dir)
        _make_directory(self.run_dir)
        try:
            self._fd = _acquire(self.path, self.run_dir)
            holder = {
                "command": self.command,
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "since": datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
            }
            os.ftruncate(self._fd, 0)
            os.pwrite(self._fd, (json.dumps(holder) + "\n").encode("utf-8"), 0)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        if self._fd is not None:
            with contextlib.suppress(OSError):
                # Unlinked while still held: a process that opened this file just
                # before sees it gone and tries again (`_acquire`).
                if os.stat(self.path).st_ino == os.fstat(self._fd).st_ino:
                    os.unlink(self.path)
            os.close(self._fd)  # Releases the flock.
            self._fd = None
        if self.created_directory:
            with contextlib.suppress(OSError):
                os.rmdir(self.run_dir)  # Only if empty.
        return False


def _make_directory(run_dir):
    try:
        os.makedirs(run_dir, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = run_dir  # The nearest existing path: a file.
        while blocker and not os.path.exists(blocker):
            blocker = os.path.dirname(blocker)
        what = "exists" if blocker == run_dir else f"{blocker} exists"
        raise FileExistsError(
            f"{run_dir}: {what} and is not a directory; choose another --run-dir"
        ) from None


def _acquire(path, run_dir):
    """Opens and flocks `path`; returns the descriptor, or raises RunDirectoryInUse."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_holder(fd)
            os.close(fd)
            raise RunDirectoryInUse(run_dir, holder) from None
        except BaseException:
            os.close(fd)
            raise
        try:
            same_file = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same_file = False
        if same_file:
            return fd
        os.close(fd)  # The previous holder removed it as we opened it: try again.


def _read_holder(fd):
    try:
        holder = json.loads(os.pread(fd, 4096, 0).decode("utf-8"))
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}
