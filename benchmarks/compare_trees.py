"""Two checkouts of the project, benchmarked alternately against PyTorch in one command.

    git worktree add ../before <commit>
    python benchmarks/compare_trees.py ../before . --rounds 3 -- --models alexnet_cifar:128 \
        --backends numba
    python benchmarks/compare_trees.py ../before . --rounds 2 -- --device gpu --cuda-graph

Each round runs ``benchmarks/bench.py`` (with the arguments after ``--``) once in each
tree, first, second, first, second..., each in a fresh process with that tree first
on ``sys.path``. A speed is only compared as a ratio to PyTorch measured in the same
process, so that the machine's drift between processes cancels; the table gives, per
model and row, the median over the rounds of that ratio for each tree (each itself a
median of ``--repeats`` runs), and the spread (min-max) beside it.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def run_bench(tree: Path, bench_args: list[str], out: Path) -> dict:
    """bench.py of ``tree`` on ``tree``'s package, results as bench.py's JSON report."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    cmd = [sys.executable, str(tree / "benchmarks" / "bench.py"), *bench_args, "--json", str(out)]
    subprocess.run(cmd, env=env, check=True, cwd=tree, stdout=sys.stderr)
    return json.loads(out.read_text())


def ratios(report: dict) -> dict[tuple[str, int, str, str], float]:
    """(model, batch, row, "train" or "eval") -> our images/s over PyTorch's."""
    found = {}
    for case in report["cases"]:
        res = case["results"]
        ref = res.get("pytorch")
        if ref is None:
            raise SystemExit("bench.py ran without PyTorch: no ratios to compare")
        for row, r in res.items():
            if row == "pytorch":
                continue
            for mode in ("train", "eval"):
                mine = r[mode]["images_per_second"]
                found[(case["model"], case["batch"], row, mode)] = (
                    mine / ref[mode]["images_per_second"]
                )
    return found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("first", type=Path, help="a checkout (e.g. the commit before a change)")
    p.add_argument("second", type=Path, help="another checkout (e.g. the change)")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--json", default=None, help="write every ratio here")
    argv = sys.argv[1:] if argv is None else argv
    ours, bench_args = (
        (argv[: argv.index("--")], argv[argv.index("--") + 1 :]) if "--" in argv else (argv, [])
    )
    args = p.parse_args(ours)  # bench.py's arguments follow "--"
    trees = {"first": args.first.resolve(), "second": args.second.resolve()}
    seen: dict[str, list[dict]] = {"first": [], "second": []}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for label, tree in trees.items():
                print(f"# round {r + 1}: {label} ({tree})", file=sys.stderr, flush=True)
                seen[label].append(ratios(run_bench(tree, bench_args, Path(tmp) / "r.json")))
    keys = sorted(set(seen["first"][0]) & set(seen["second"][0]))
    print(f"ratios to PyTorch, median over {args.rounds} rounds (min-max)")
    print(f"{'model':14} {'batch':>5} {'row':12} {'mode':5} {'first':>18} {'second':>18}")
    table = []
    for key in keys:
        cells = []
        for label in trees:
            values = [run[key] for run in seen[label]]
            cells.append(f"{statistics.median(values):.3f} ({min(values):.2f}-{max(values):.2f})")
        model, batch, row, mode = key
        print(f"{model:14} {batch:>5} {row:12} {mode:5} {cells[0]:>18} {cells[1]:>18}")
        table.append({"key": list(key), **{lab: [run[key] for run in seen[lab]] for lab in trees}})
    if args.json:
        report = {"trees": {k: str(v) for k, v in trees.items()}, "bench_args": bench_args}
        Path(args.json).write_text(json.dumps({**report, "ratios": table}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
