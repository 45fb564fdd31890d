"""The ``assignment`` subcommand: release, grade, check, new, autograder.

    python -m minitorch_alexnet assignment new Conv2d conv/           # start a folder
    python -m minitorch_alexnet assignment check conv/                # the self-check
    python -m minitorch_alexnet assignment release conv/ handout/ --autograder autograder.zip
    python -m minitorch_alexnet assignment grade conv/ submission.py --results results.json

Exit status: 0 on success (``grade``: whatever the score), 1 when ``check`` fails,
2 for bad usage (no manifest, an OUT that is not empty, an unknown layer).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["add_parser"]


def add_parser(commands: Any) -> None:
    p = commands.add_parser(
        "assignment",
        help="release, grade and self-check course assignments",
        description=__doc__.splitlines()[0],
    )
    sub = p.add_subparsers(dest="assignment_command", metavar="ACTION")
    r = sub.add_parser("release", help="write the handout: solutions stubbed, hidden tests out")
    r.add_argument("src", help="the assignment folder (with assignment.toml)")
    r.add_argument("out", help="the handout folder to write (must be empty)")
    r.add_argument("--force", action="store_true", help="replace a non-empty OUT")
    r.add_argument("--autograder", metavar="ZIP", help="also write Gradescope's autograder zip")
    r.add_argument("--library", action="store_true",
                   help="put the library's source in OUT/library, for pip install")  # fmt: skip
    g = sub.add_parser("grade", help="grade a submitted file; write Gradescope's results.json")
    g.add_argument("src", help="the assignment folder")
    g.add_argument("submission", help="the submitted file, or a folder holding it")
    g.add_argument("--results", metavar="PATH", help="write results.json here")
    g.add_argument("--tasks", nargs="+", metavar="TASK", help="grade only these tasks")
    g.add_argument("--quiet", action="store_true", help="print only the total")
    c = sub.add_parser("check", help="self-check: solution full, handout 0, planted bugs caught")
    c.add_argument("src", help="the assignment folder")
    c.add_argument("--jobs", type=int, default=None, help="gradings at once")
    n = sub.add_parser("new", help="start a folder from a library layer's reference functions")
    n.add_argument("layer", help="ReLU, Linear, BatchNorm2d, MaxPool2d or Conv2d")
    n.add_argument("dest", help="the folder to write (must be empty)")
    n.add_argument("--force", action="store_true", help="replace a non-empty DEST")
    a = sub.add_parser("autograder", help="write Gradescope's autograder zip for a folder")
    a.add_argument("src", help="the assignment folder")
    a.add_argument("zip", help="the zip to write")
    p.set_defaults(func=run, _parser=p)


def run(args: argparse.Namespace) -> int:
    from .handout import ReleaseError
    from .manifest import ManifestError

    action = args.assignment_command
    if action is None:
        args._parser.print_help()
        return 2
    try:
        if action == "release":
            from .handout import release

            out = release(args.src, args.out, force=args.force)
            print(f"wrote the handout {out}")
            if args.library:
                from .gradescope import write_library

                print(
                    f"wrote {write_library(out / 'library')}: "
                    'students run pip install "./library[test]"'
                )
            if args.autograder:
                from .gradescope import autograder_zip

                print(f"wrote {autograder_zip(args.src, args.autograder)}")
            return 0
        if action == "autograder":
            from .gradescope import autograder_zip

            print(f"wrote {autograder_zip(args.src, args.zip)}")
            return 0
        if action == "grade":
            from .grading import grade

            result = grade(args.src, args.submission, args.results, tasks=args.tasks)
            if args.quiet:
                print(f"{result.score:g} / {result.max_score:g}")
            else:
                print(result.summary())
            if args.results:
                print(f"wrote {args.results}")
            return 0
        if action == "check":
            from .checking import check

            report = check(args.src, jobs=args.jobs)
            print(report.text())
            return 0 if report.ok else 1
        if action == "new":
            from .scaffold import ScaffoldError, new

            try:
                dest = new(args.layer, args.dest, force=args.force)
            except ScaffoldError as e:
                print(f"error: {e}", file=sys.stderr)
                return 2
            print(f"wrote {dest}; next: python -m minitorch_alexnet assignment check {dest}")
            return 0
    except (ManifestError, ReleaseError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 2  # pragma: no cover - argparse knows the actions
