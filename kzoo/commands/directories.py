"""Checks of the directories a `kzoo` command reads or writes, made before any work."""

import os


def check_output_directory(path, option):
    """Refuses, before any work, an output directory that cannot be made: `path` is
    a file, or lies under one, or under a directory this user cannot write."""
    if os.path.exists(path):
        if not os.path.isdir(path):
            raise NotADirectoryError(f"{option} {path}: is a file, not a directory")
        return
    parent = os.path.dirname(os.path.abspath(path))
    while not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if not os.path.isdir(parent):
        raise NotADirectoryError(f"{option} {path}: {parent} is a file, not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise PermissionError(f"{option} {path}: cannot create it, {parent} is not writable")


def check_input_directory(path, what="run directory"):
    """`path` must be an existing directory."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such {what}")
    if not os.path.isdir(path):
        raise NotADirectoryError(f"{path}: is a file, not a {what}")
