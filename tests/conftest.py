"""Fixtures shared by every test; helper functions live in kzoo/testing."""

import os

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# `make test` runs two xdist workers on two cores: one thread per op each (and in
# the processes they start), not two workers each spinning a two-thread pool.
os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false")


@pytest.fixture(scope="session")
def tiny_overrides():
    from kzoo.testing import TINY_OVERRIDES

    return list(TINY_OVERRIDES)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A trained tiny GPT run directory, shared by a test module."""
    from kzoo.testing import load_tiny_recipe
    from kzoo.training.trainer import train

    run_dir = str(tmp_path_factory.mktemp("run") / "gpt_tiny")
    config = load_tiny_recipe()
    summary = train(config, run_dir, verbose=0)
    return run_dir, config, summary


def pytest_collection_modifyitems(config, items):
    """Longest work first, so the two xdist workers of `make test` finish together:
    the grouped tests (`xdist_group`: one worker trains a shared run for them), then
    the slow ones (the JAX suites, recipe resumes), then the many short tests that
    fill the gaps. Within each kind the collection order is kept."""

    def weight(item):
        if item.get_closest_marker("xdist_group"):
            return 0
        return 1 if item.get_closest_marker("slow") else 2

    items.sort(key=weight)
