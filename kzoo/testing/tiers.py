"""The two tiers of the suite: `make test` (CI, within its time budget) and
`make test-full` (KZOO_FULL=1: every test, before a release or after a change
to what a skipped test covers)."""

import os

FULL = os.environ.get("KZOO_FULL") == "1"


def full_only(stand_in):
    """A pytest mark: the test runs under `make test-full` only; `stand_in` names the
    test that covers its subject in CI (shown as the skip reason)."""
    import pytest

    return pytest.mark.skipif(not FULL, reason=f"make test-full (KZOO_FULL=1); in CI: {stand_in}")
