"""Session fixtures of the export tests: tiny runs and exports built once
(`kzoo/testing/tiny_runs.py`), and the kzoo command line."""

import os
import subprocess
import sys

import pytest

from kzoo.testing.serving_fuzz import TinyExport
from kzoo.testing.tiny_runs import build_export, build_run


@pytest.fixture(scope="session")
def make_run(tmp_path_factory):
    return lambda family: build_run(tmp_path_factory.mktemp(f"{family}_run"), family)


@pytest.fixture(scope="session")
def kzoo_cli():
    """Runs `python -m kzoo.cli ARGS`; returns the CompletedProcess."""

    def run(*args):
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        return subprocess.run(
            [sys.executable, "-m", "kzoo.cli", *args], capture_output=True, text=True, env=env
        )

    return run


@pytest.fixture(scope="session")
def tiny_export(tmp_path_factory):
    """`tiny_export(family)`: a `TinyExport` of `build_export(family)` without
    assets.extra, built and loaded once per session."""
    cache = {}

    def get(family):
        if family not in cache:
            path = build_export(str(tmp_path_factory.mktemp(family)), family, assets=False)
            cache[family] = TinyExport.load(family, path)
        return cache[family]

    return get
