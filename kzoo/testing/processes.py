"""Running the kzoo command line in a child process, and finding a process's children."""

import os
import sys


def kzoo_command(*args):
    """argv that runs the kzoo CLI with this interpreter.

    Example:
    >>> kzoo_command("train", "--help")[1:]
    ['-m', 'kzoo.cli', 'train', '--help']
    """
    return [sys.executable, "-m", "kzoo.cli", *args]


def child_pids(pid):
    """The ids of the processes whose parent is `pid` (Linux `/proc`)."""
    children = []
    for name in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{name}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
        except (FileNotFoundError, ProcessLookupError):  # It has just exited.
            continue
        # "pid (command) state ppid ...": the command may hold spaces and ")".
        if int(stat.rpartition(")")[2].split()[1]) == pid:
            children.append(int(name))
    return children
