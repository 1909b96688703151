"""How `kzoo train` spreads training over devices and hosts (`train.strategy`).

Stub: the default (single-device) strategy; issue 7 fills in mirrored,
multi_worker, tpu and data_parallel.
"""

import contextlib


class Placement:
    """Where a run trains: `scope()` wraps model building, compiling and restoring;
    `is_chief` tells whether this process writes the run directory."""

    is_chief = True

    def scope(self):
        return contextlib.nullcontext()


def placement_for(config):
    """The `Placement` of a validated recipe."""
    return Placement()
