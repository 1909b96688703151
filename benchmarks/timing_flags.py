"""The command-line flags every timing benchmark has (imported by the scripts
beside it, as `nanogpt_reference` is)."""

import argparse


def timing_parser(description, cases_flag, cases, rounds, steps=None, dropout_of=None):
    """An `argparse` parser with a timing benchmark's common flags.

    Args:
        description: The benchmark's module docstring (shown as written).
        cases_flag: The flag choosing what to time (`--models`, `--cases`, ...).
        cases: What it may choose; all by default.
        rounds: The default of `--rounds` (timed rounds).
        steps: The default of `--steps` (per round); None: no `--steps`.
        dropout_of: Whose dropout rate `--dropout` sets (default 0); None: no
            `--dropout`.

    Example:
    >>> timing_parser("", "--models", ("gpt", "bert"), rounds=3).parse_args([])
    Namespace(models=['gpt', 'bert'], rounds=3)
    """
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(cases_flag, nargs="+", default=list(cases), choices=list(cases))
    parser.add_argument("--rounds", type=int, default=rounds)
    if steps is not None:
        parser.add_argument("--steps", type=int, default=steps)
    if dropout_of is not None:
        parser.add_argument(
            "--dropout",
            type=float,
            default=0.0,
            help=f"dropout rate of {dropout_of} (KerasHub's default is 0.1)",
        )
    return parser
