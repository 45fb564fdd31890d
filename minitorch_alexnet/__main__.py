"""Command line: ``python -m minitorch_alexnet COMMAND`` (also installed as ``minitorch-alexnet``).

Commands:
    summary     print a model's layer table (torchsummary's format), optionally with FLOPs
    gradcheck   run the property gradchecks on a built-in layer or on your own
    assignment  release, grade and self-check course assignments (new, check, release, grade)
    train       train a model (the flags of examples/train_cifar.py)
    predict     classify image files with a trained checkpoint
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def main(argv: Sequence[str] | None = None) -> int:
    from . import cli_gradcheck, cli_summary
    from .assignment import cli as cli_assignment
    from .train import cli as cli_train
    from .train import predict as cli_predict

    parser = argparse.ArgumentParser(
        prog="python -m minitorch_alexnet",
        description="minitorch_alexnet: AlexNet with hand-written forward and backward passes.",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    cli_summary.add_parser(commands)
    cli_gradcheck.add_parser(commands)
    cli_assignment.add_parser(commands)
    cli_train.add_parser(commands)
    cli_predict.add_parser(commands)
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
