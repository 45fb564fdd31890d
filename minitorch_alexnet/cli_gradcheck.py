"""The ``gradcheck`` subcommand: property-based gradient checks of a layer from the shell.

    python -m minitorch_alexnet gradcheck Conv2d
    python -m minitorch_alexnet gradcheck BatchNorm2d --backend numpy --examples 50
    python -m minitorch_alexnet gradcheck my_layers:LeakyReLU
    python -m minitorch_alexnet gradcheck my_layers:make_pool --input-shape 2,3,6,6

NAME is a built-in layer (``Conv2d``, ``MaxPool2d``, ``ReLU``, ``BatchNorm2d``,
``BatchNorm1d``, ``Linear``, ``Flatten``, ``Dropout``, ``LocalResponseNorm``,
``CrossEntropyLoss``), checked over generated configurations, or
``package.module:Name``: a class built with no arguments, or a function that
returns a layer. The current folder is importable, so a file ``my_layers.py``
next to you is ``my_layers:Name``.

Inputs for an imported layer: ``--input-shape`` fixes the shape (the values still
vary); otherwise small 4-D ``(N, C, H, W)`` shapes are generated, or ``(N, F)`` when
the layer has ``in_features``, with C set from the layer's ``in_channels`` or
``num_features`` when it has one. Shapes the layer's forward rejects with a
``ValueError`` or ``TypeError`` are skipped. Input values are distinct and away
from 0, so max-pooling has no ties and no input sits on a kink such as ReLU's.

Hypothesis generates the cases; on a failure it shrinks the case to a small one
and the report shows that case. Exit status: 0 when every case passes, 1 when
one fails (with the report), 2 for bad usage (unknown name, import error, no
usable input shape, an ``--eps`` that is not a finite number > 0 or a tolerance
that is not a finite number >= 0). A layer that calls ``sys.exit`` in forward or
backward fails its case with a message naming it; one that does so while being
imported or built is bad usage.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from . import backend as _backend
from . import testing
from .gradcheck import GradcheckResult, LayerBuildError, build_layer, gradcheck

__all__ = ["add_parser", "main", "run"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad usage: reported as one line, exit status 2."""


def _parse_shape(text: str) -> tuple[int, ...]:
    try:
        dims = tuple(int(v) for v in text.replace("x", ",").split(","))
    except ValueError:
        dims = ()
    if not dims or min(dims) < 1:
        raise argparse.ArgumentTypeError(
            f"--input-shape takes positive integers separated by commas (e.g. 2,3,8,8), "
            f"got {text!r}"
        )
    return dims


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return n


def _number(text: str, what: str, *, positive: bool) -> float:
    try:
        x = float(text)
    except ValueError:
        x = math.nan
    if not math.isfinite(x) or x < 0 or (positive and x == 0):
        raise argparse.ArgumentTypeError(
            f"expected a finite number {'> 0' if positive else '>= 0'} ({what}), got {text!r}"
        )
    return x


def _step(text: str) -> float:
    return _number(text, "the finite-difference step, e.g. 1e-6", positive=True)


def _tolerance(text: str) -> float:
    return _number(text, "a tolerance; 0 demands exact agreement", positive=False)


def _exit_message(e: SystemExit) -> str:
    return f"called sys.exit({e.code!r})"


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``gradcheck`` subcommand to ``subparsers`` (from ``parser.add_subparsers()``).

    The new parser's defaults include ``func=run``.
    """
    p = subparsers.add_parser(
        "gradcheck",
        help="check a layer's backward against finite differences over generated cases",
        description=(
            "Check a layer's hand-written backward pass against central finite differences "
            "(float64, a random upstream gradient) over configurations and inputs generated "
            "by Hypothesis, and print a per-tensor report. Exit status 0: all cases pass; "
            "1: a case fails (the report shows the smallest failing case Hypothesis found); "
            "2: bad usage."
        ),
    )
    p.add_argument(
        "name",
        metavar="NAME_OR_IMPORT_PATH",
        help=(
            f"a built-in layer ({', '.join(testing.BUILTIN_LAYERS)}) or package.module:Name "
            "(a class built with no arguments, or a function returning a layer)"
        ),
    )
    p.add_argument(
        "--backend",
        choices=("numpy", "numba", "cupy"),
        default=None,
        help="array backend to run on (default: the active one, numba)",
    )
    p.add_argument(
        "--examples", type=_positive, default=20, help="generated cases to check (default: 20)"
    )
    p.add_argument(
        "--input-shape",
        type=_parse_shape,
        default=None,
        metavar="N,C,H,W",
        help="for an imported layer: check inputs of this shape only",
    )
    p.add_argument(
        "--seed",
        type=int,
        default=None,
        help="seed Hypothesis's search (default: a fixed search, the same cases every run)",
    )
    p.add_argument("--eps", type=_step, default=1e-6, help="finite-difference step, > 0 (1e-6)")
    p.add_argument("--atol", type=_tolerance, default=1e-5, help="absolute tolerance (1e-5)")
    p.add_argument("--rtol", type=_tolerance, default=1e-3, help="relative tolerance (1e-3)")
    p.add_argument(
        "-v", "--verbose", action="store_true", help="print the full report of every case"
    )
    p.set_defaults(func=run)
    return p


# ---------------------------------------------------------------- what to check
@dataclass
class _Target:
    title: str  # what the header calls it
    cases: Any  # a Hypothesis strategy of LayerCase
    notes: list[str] = field(default_factory=list)


def _import_object(path: str) -> Any:
    """``package.module:Name`` (``Name`` may be dotted) -> the object."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise UsageError(f"expected package.module:Name, got {path!r}")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())  # a file next to the user is importable
    try:
        obj: Any = importlib.import_module(module_name)
    except Exception as e:  # ImportError, or an error raised while importing
        raise UsageError(f"cannot import {module_name!r}: {type(e).__name__}: {e}") from None
    except SystemExit as e:  # the module ends the program when imported
        raise UsageError(
            f"cannot import {module_name!r}: importing it {_exit_message(e)}; "
            "guard its script part with `if __name__ == '__main__':`"
        ) from None
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise UsageError(f"module {module_name!r} has no attribute {attr!r}") from None
    return obj


def _custom_target(path: str, input_shape: tuple[int, ...] | None) -> _Target:
    _, st = testing._hypothesis()
    # a fresh layer for each case (a copy of a given layer), built the same way each time
    make = functools.partial(build_layer, _import_object(path), name=path, copy=True)
    try:
        probe = make()
    except LayerBuildError as e:
        raise UsageError(str(e)) from None
    name = probe._name() if hasattr(probe, "_name") else type(probe).__name__
    notes = []
    if input_shape is not None:
        shapes = st.just(tuple(input_shape))
        notes.append(f"inputs of shape {tuple(input_shape)}")
    elif isinstance(getattr(probe, "in_features", None), int):
        shapes = testing.batch_shapes(2, min_batch=2, channels=probe.in_features)
        notes.append(f"inputs (N, {probe.in_features}) generated")
    else:
        channels = next(
            (
                getattr(probe, a)
                for a in ("in_channels", "num_features")
                if isinstance(getattr(probe, a, None), int)
            ),
            None,
        )
        shapes = testing.batch_shapes(4, min_batch=2, max_side=6, channels=channels)
        notes.append(
            "inputs (N, C, H, W) generated" + (f" with C = {channels}" if channels else "")
        )

    @st.composite
    def cases(draw: Any) -> testing.LayerCase:
        shape = draw(shapes)
        x = testing.tie_free(draw(testing.seeds()), shape)
        return testing.LayerCase(name, make, (x,))

    return _Target(name, cases(), notes)


def _target(args: argparse.Namespace) -> _Target:
    builtin = {n.lower(): n for n in testing.BUILTIN_LAYERS}.get(args.name.lower())
    if builtin is not None and ":" not in args.name:
        if args.input_shape is not None:
            raise UsageError(
                f"--input-shape is for imported layers; {builtin}'s shapes are generated"
            )
        return _Target(builtin, testing.layer_cases(builtin), ["configurations generated"])
    if ":" not in args.name:
        raise UsageError(
            f"unknown layer {args.name!r}: use one of {', '.join(testing.BUILTIN_LAYERS)}, "
            "or package.module:Name for your own"
        )
    return _custom_target(args.name, args.input_shape)


# ---------------------------------------------------------------- running the cases
@dataclass
class _Outcome:
    case: testing.LayerCase
    result: GradcheckResult | None = None
    error: str | None = None  # an exception from forward or backward

    @property
    def ok(self) -> bool:
        return self.error is None and self.result is not None and self.result.ok


class _CaseFailed(Exception):
    pass


def _check(case: testing.LayerCase, args: argparse.Namespace) -> _Outcome:
    try:
        result = gradcheck(
            case.make, *case.inputs, eps=args.eps, atol=args.atol, rtol=args.rtol, seed=0
        )
    except Exception as e:
        return _Outcome(case, error=f"{type(e).__name__}: {e}")
    except SystemExit as e:  # a layer must raise, not end the program: report it
        return _Outcome(
            case,
            error=f"SystemExit: {case.layer} {_exit_message(e)} (a layer should raise an "
            "exception instead of ending the program)",
        )
    return _Outcome(case, result)


def _accepts(case: testing.LayerCase) -> str | None:
    """None when the layer's forward takes the case's inputs; else why not."""
    try:
        layer = case.make()
        if hasattr(layer, "double"):
            layer.double()
        layer(*(_backend.asarray(a, "float64") for a in case.inputs))
    except (ValueError, TypeError) as e:
        return f"{type(e).__name__}: {e}"
    except (Exception, SystemExit):
        return None  # not a shape problem: let the check report it
    return None


def _search(target: _Target, args: argparse.Namespace, custom: bool) -> tuple[list, Any]:
    """Run the property; return (every outcome, the final failing outcome or None)."""
    testing._hypothesis()  # a clear ImportError when Hypothesis is missing
    from hypothesis import HealthCheck, Phase, Verbosity, given, reject, settings
    from hypothesis import seed as hypothesis_seed
    from hypothesis.errors import Unsatisfiable

    outcomes: list[_Outcome] = []
    rejections: list[str] = []

    @settings(
        max_examples=args.examples,
        deadline=None,
        database=None,
        derandomize=args.seed is None,
        verbosity=Verbosity.quiet,
        suppress_health_check=list(HealthCheck),
        print_blob=False,
        # no "explain" phase: it reruns the failing case many times to annotate a
        # traceback that is not shown here
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
    )
    @given(case=target.cases)
    def prop(case: testing.LayerCase) -> None:
        if custom:
            why = _accepts(case)
            if why is not None:
                rejections.append(why)
                reject()
        outcome = _check(case, args)
        outcomes.append(outcome)
        if not outcome.ok:
            raise _CaseFailed()

    if args.seed is not None:
        prop = hypothesis_seed(args.seed)(prop)
    try:
        prop()
    except _CaseFailed:
        # Hypothesis replays the smallest failing case last
        return outcomes, next(o for o in reversed(outcomes) if not o.ok)
    except Unsatisfiable:
        last = rejections[-1] if rejections else "no case could be generated"
        raise UsageError(
            f"{target.title} rejected every generated input ({last}); "
            "give a shape it accepts with --input-shape"
        ) from None
    return outcomes, None


# ---------------------------------------------------------------- the report
def _summary(outcomes: list[_Outcome]) -> list[str]:
    """One row per tensor name: in how many cases, the worst errors, and where."""
    worst: dict[str, tuple[int, float, float, _Outcome]] = {}
    for o in outcomes:
        if o.result is None:
            continue
        for t in o.result.tensors:
            n, abs_err, rel_err, where = worst.get(t.name, (0, -1.0, -1.0, o))
            if t.max_abs_error > abs_err:
                abs_err, where = t.max_abs_error, o
            worst[t.name] = (n + 1, abs_err, max(rel_err, t.max_rel_error), where)
    if not worst:
        return []
    lines = [f"  {'tensor':<12} {'cases':>5}  {'max abs err':>11}  {'max rel err':>11}  worst case"]
    for name, (n, abs_err, rel_err, o) in worst.items():
        shapes = ", ".join(str(s) for s in o.case.shapes)
        lines.append(
            f"  {name:<12} {n:>5}  {abs_err:>11.3e}  {rel_err:>11.3e}  {o.case.layer} on {shapes}"
        )
    return lines


def run(args: argparse.Namespace) -> int:
    """Run the checks and print the report; return the exit status (0, 1 or 2)."""
    try:
        B = _backend.get_backend(args.backend) if args.backend else _backend.get_backend()
    except _backend.BackendError as e:
        print(f"gradcheck: {e}", file=sys.stderr)
        return EXIT_USAGE
    with _backend.use_backend(B.name):
        try:
            target = _target(args)
            custom = ":" in args.name
            print(
                f"gradcheck {target.title} on the {B.name!r} backend: up to {args.examples} "
                f"cases, {'; '.join(target.notes)}"
            )
            print(
                f"  passes when |numeric - analytic| <= {args.atol:g} + {args.rtol:g} * |numeric| "
                f"(central differences, eps={args.eps:g}, float64)"
            )
            outcomes, failure = _search(target, args, custom)
        except (UsageError, ImportError) as e:
            print(f"gradcheck: {e}", file=sys.stderr)
            return EXIT_USAGE
    if args.verbose:
        for i, o in enumerate(outcomes, 1):
            shapes = ", ".join(str(s) for s in o.case.shapes)
            print(f"case {i}: {o.case.layer} on {shapes}")
            print(o.result.report() if o.result is not None else f"  error: {o.error}")
    if failure is None:
        print(*_summary(outcomes), sep="\n")
        print(f"PASSED: every gradient matched its finite differences in {len(outcomes)} cases.")
        return EXIT_OK
    passed = [o for o in outcomes if o.ok]
    if passed:
        print("Cases that passed:")
        print(*_summary(passed), sep="\n")
    shapes = ", ".join(str(s) for s in failure.case.shapes)
    print("FAILED. The smallest failing case Hypothesis found:")
    print(f"  layer:  {failure.case.layer}")
    print(f"  inputs: {shapes}")
    if failure.error is not None:
        print(f"  forward or backward raised {failure.error}")
    else:
        print(failure.result.report())
        hints = [testing._hint(t, args.atol) for t in failure.result.tensors if not t.ok]
        for h in filter(None, hints):
            print(f"  hint: {h}")
    return EXIT_FAILED


def main(argv: Sequence[str] | None = None) -> int:
    """Run the subcommand on its own: ``python -m minitorch_alexnet.cli_gradcheck NAME [...]``."""
    parser = argparse.ArgumentParser(prog="python -m minitorch_alexnet")
    sub = parser.add_subparsers(dest="command", required=True)
    add_parser(sub)
    args = parser.parse_args(["gradcheck", *(sys.argv[1:] if argv is None else argv)])
    return args.func(args)


if __name__ == "__main__":
    raise SystemExit(main())
