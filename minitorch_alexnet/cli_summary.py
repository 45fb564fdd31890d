"""The ``summary`` subcommand: print a model's layer table (torchsummary's format).

    python -m minitorch_alexnet summary --model alexnet
    python -m minitorch_alexnet summary --model alexnet_cifar --flops --batch-size 128
    python -m minitorch_alexnet summary --model alexnet2012 --input 3,227,227 --backend numpy
    python -m minitorch_alexnet summary --model torchvision_alexnet    # torchvision's alexnet()

``add_parser(subparsers)`` registers the subcommand on an argparse parser and
``run(args)`` executes it (0 on success, 2 when the model cannot take the input).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

__all__ = ["add_parser", "main", "run"]

_MODEL_NAMES = ("alexnet", "alexnet_cifar", "alexnet2012", "torchvision_alexnet", "alexnet_mnist")


def _parse_input(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        dims = ()
    if len(dims) != 3 or min(dims) < 1:
        raise argparse.ArgumentTypeError(
            f"--input takes C,H,W (three positive integers, e.g. 3,227,227), got {text!r}"
        )
    return dims


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``summary`` subcommand to ``subparsers`` (from ``parser.add_subparsers()``).

    The new parser's defaults include ``func=run``.
    """
    p = subparsers.add_parser(
        "summary",
        help="print a model's layers, output shapes, parameters and memory (torchsummary format)",
        description=(
            "Print the layer table that torchsummary prints for the same PyTorch network: "
            "one row per layer in execution order with its output shape and parameter "
            "count, the totals and a memory estimate. --flops adds forward FLOPs."
        ),
    )
    p.add_argument(
        "--model", choices=_MODEL_NAMES, default="alexnet", help="which network (default: alexnet)"
    )
    p.add_argument(
        "--input",
        type=_parse_input,
        default=None,
        metavar="C,H,W",
        help="one sample's shape (default: the model's own: 3,227,227, 3,32,32, 3,224,224 ...)",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=-1,
        help="batch size shown in the shapes and memory estimate (default: -1, per sample)",
    )
    p.add_argument("--flops", action="store_true", help="add a FLOPs column and FLOP totals")
    p.add_argument(
        "--num-classes", type=int, default=None, help="classes of the last layer (model default)"
    )
    p.add_argument(
        "--backend",
        choices=("numpy", "numba", "cupy"),
        default=None,
        help="array backend for the forward pass (default: the active one, numba)",
    )
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Build the model, print its summary; return the exit status."""
    from . import backend as _backend
    from .models import build_model
    from .summary import summary

    try:
        B = _backend.get_backend(args.backend) if args.backend else _backend.get_backend()
    except _backend.BackendError as e:
        print(f"summary: {e}", file=sys.stderr)
        return 2
    with _backend.use_backend(B.name):
        try:
            model = build_model(args.model, args.num_classes)
            size = args.input if args.input is not None else model.input_size
            summary(model, size, args.batch_size, flops=args.flops)
        except ValueError as e:
            print(f"summary: {e}", file=sys.stderr)
            return 2
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the subcommand on its own: ``python -m minitorch_alexnet.cli_summary [options]``."""
    parser = argparse.ArgumentParser(prog="python -m minitorch_alexnet")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = parser.parse_args(["summary", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
