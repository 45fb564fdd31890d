"""Command line: ``python -m minitorch_alexnet COMMAND`` (also installed as ``minitorch-alexnet``).

Commands:
    summary     print a model's layer table (torchsummary's format), optionally with FLOPs
    gradcheck   run the property gradchecks on a built-in layer or on your own
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from . import cli_gradcheck, cli_summary

    parser = argparse.ArgumentParser(
        prog="python -m minitorch_alexnet",
        description="minitorch_alexnet: AlexNet with hand-written forward and backward passes.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    cli_summary.add_parser(commands)
    cli_gradcheck.add_parser(commands)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
