"""The `kzoo` command line: one command per step of the workflow."""

import argparse
import sys

from kzoo.version import __version__


def build_parser():
    parser = argparse.ArgumentParser(
        prog="kzoo",
        description=(
            "kzoo: train, evaluate, generate with and export Transformer language "
            "models (Keras 3 / TensorFlow)."
        ),
    )
    parser.add_argument("--version", action="version", version=f"kzoo {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
