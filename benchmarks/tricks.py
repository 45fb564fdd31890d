"""What each training trick is worth: 30-epoch CIFAR-10 runs over seeds, ours and PyTorch's.

    python benchmarks/tricks.py run --data-dir DIR --results R.jsonl \
        --tricks baseline ls0.2 --seeds 0 1 2 [--parallel 3] [--torch]
    python benchmarks/tricks.py table R.jsonl

Each run is ``minitorch_alexnet.train.train`` (or, with ``--torch``, the PyTorch
twin ``benchmarks/train_torch_reference.py``) with the baseline recipe plus one
trick of ``TRICKS`` (the baseline is ``BASE``, the recipe before the tricks), on
the GPU with the CUDA graph. Every run keeps an EMA of the
weights (``ema=0.999``: it does not change the training), so that one run gives
four final test accuracies: the trained weights (``plain``), with test-time flips
(``tta``), their average (``ema``) and both (``ema_tta``); the EMA and TTA rows of
the table come from the baseline's runs. Each finished run appends one JSON line
to the results file, so a run cut short loses only the runs in flight.

``--parallel K`` runs K at a time (on one GPU: for the accuracy table only; time
the recipes one at a time). ``--tricks final`` combines the tricks named by
``--final`` (default: every trick whose mean ``plain`` accuracy in the results file
beats the baseline's by more than 0.1 point, the rule of ``pick_final``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TRACKED_EMA = 0.999  # every run keeps this average, to measure --ema for free
# the baseline: the recipe of the earlier rounds (train's defaults add reflect 2 and TTA),
# and the twin's defaults
BASE: dict[str, Any] = {"crop_padding": 4, "padding_mode": "zeros", "tta": False}
TRICKS: dict[str, dict[str, Any]] = {
    "baseline": {},
    "ls0.2": {"label_smoothing": 0.2},
    "reflect2": {"crop_padding": 2, "padding_mode": "reflect"},
    "alternate": {"flip": "alternate"},
    "nodecay_norm_bias": {"norm_bias_weight_decay": 0.0},
    "norm_bias_2x": {"norm_bias_weight_decay": 0.0, "norm_bias_lr_scale": 2.0},
    "batch256": {"batch_size": 256, "lr": 0.2},
}
# measured on every run's final weights, so from the baseline's runs: the accuracy key of each
FREE = {"tta": ({"tta": True}, "tta"), "ema": ({"ema": TRACKED_EMA}, "ema")}
MIN_GAIN = 0.001  # a trick joins the final set when it adds more than 0.1 point


def pick_final(results: list[dict[str, Any]], impl: str = "minitorch") -> list[str]:
    """The tricks whose mean accuracy beats the baseline's by more than MIN_GAIN: a
    training trick by its runs' ``plain`` accuracy, TTA and EMA by the baseline runs'
    ``tta`` and ``ema`` accuracies."""
    runs = by_key(results, impl)
    if not runs.get("baseline"):
        raise SystemExit("pick_final: the results hold no baseline run")

    def mean(tag: str, key: str = "plain") -> float:
        return statistics.fmean(r[key] for r in runs[tag])

    base = mean("baseline")
    chosen = [t for t in TRICKS if t in runs and t != "baseline" and mean(t) > base + MIN_GAIN]
    return chosen + [t for t, (_, key) in FREE.items() if mean("baseline", key) > base + MIN_GAIN]


def settings_of(names: list[str]) -> dict[str, Any]:
    """The tricks ``names`` merged (a later one wins where two set the same field)."""
    merged: dict[str, Any] = dict(BASE)
    for name in names:
        merged.update(TRICKS[name] if name in TRICKS else FREE[name][0])
    return merged


def by_key(results: list[dict[str, Any]], impl: str) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for r in results:
        if r.get("impl") == impl:
            out.setdefault(r["tag"], []).append(r)
    return out


def read_results(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ---------------------------------------------------------------- one run
def run_ours(
    tag: str, settings: dict[str, Any], seed: int, data_dir: str, results: Path, **smoke: Any
) -> None:
    """One training run of ours; appends its four final accuracies to ``results``.
    ``smoke``: other TrainConfig fields (``epochs``, ``subset``, ``backend``) for a quick try."""
    from minitorch_alexnet import data
    from minitorch_alexnet.checkpoint import load_checkpoint
    from minitorch_alexnet.models import build_model
    from minitorch_alexnet.optim.swa_utils import AveragedModel
    from minitorch_alexnet.train import TrainConfig, evaluate, train

    with tempfile.TemporaryDirectory() as out:
        fields = {
            "ema": TRACKED_EMA,
            "dataset": "cifar10",
            "data_dir": data_dir,
            "download": False,
            "backend": "cupy",
            "cuda_graph": True,
            "progress": False,
            **settings,
            **smoke,
        }
        config = TrainConfig(**fields, seed=seed, out=Path(out) / "run")
        start = time.perf_counter()
        history = train(config)
        seconds = time.perf_counter() - start
        model = build_model(config.model, num_classes=10)
        meta = load_checkpoint(Path(out) / "run" / "checkpoint.npz", model, restore_rng=False)
    averaged = AveragedModel(model)  # only to hold the saved average
    averaged.load_state_dict(meta["extra"]["ema"])
    test = data.load_cifar10(data_dir, download=False).test.subset(config.test_subset)
    loader = data.DataLoader(test, batch_size=256)
    result = {"impl": "minitorch", "tag": tag, "seed": seed, "seconds": seconds}
    result["epoch_seconds"] = sum(h["seconds"] for h in history)
    for key, net, tta in (
        ("plain", model, False),
        ("tta", model, True),
        ("ema", averaged, False),
        ("ema_tta", averaged, True),
    ):
        result[key] = evaluate(net, loader, tta=tta)[1]
    with open(results, "a") as f:
        f.write(json.dumps(result) + "\n")
    print(json.dumps(result), flush=True)


def torch_command(tag: str, settings: dict[str, Any], seed: int, data_dir: str, results: Path):
    """The PyTorch twin's command line for the same run."""
    cmd = [sys.executable, str(HERE / "train_torch_reference.py"), "--data-dir", data_dir]
    for key, value in {"ema": TRACKED_EMA, **settings}.items():
        flag = f"--{key.replace('_', '-')}"
        if isinstance(value, bool):  # a switch: named when on
            cmd += [flag] if value else []
        else:
            cmd += [flag, str(value)]
    return cmd + ["--seed", str(seed), "--json", str(results), "--tag", tag]


# ---------------------------------------------------------------- many runs
def run_all(args: argparse.Namespace) -> int:
    results = Path(args.results)
    jobs = []
    for tag in args.tricks:
        names = [tag]
        if tag == "final":
            names = args.final if args.final is not None else pick_final(read_results(results))
        settings = settings_of(names)
        if tag == "final":
            print(f"final set: {' + '.join(names) or '(none: the baseline)'} -> {settings}")
        for seed in args.seeds:
            if args.torch:
                cmd = torch_command(tag, settings, seed, args.data_dir, results)
            else:
                one = json.dumps(
                    {"tag": tag, "settings": settings, "seed": seed, "smoke": args.smoke or {}}
                )
                cmd = [sys.executable, __file__, "one", one, args.data_dir, str(results)]
            jobs.append((f"{'torch ' if args.torch else ''}{tag} seed {seed}", cmd))
    jobs.sort(key=lambda job: int(job[0].split(" seed ")[1]))  # every trick its first seed first
    running: list[tuple[str, subprocess.Popen, float]] = []
    failed = 0
    while jobs or running:
        while jobs and len(running) < args.parallel:
            name, cmd = jobs.pop(0)
            log = open(Path(args.logs) / (name.replace(" ", "_") + ".log"), "w")  # noqa: SIM115
            running.append((name, subprocess.Popen(cmd, stdout=log, stderr=log), time.time()))
            print(f"started {name}", flush=True)
        time.sleep(1)
        for item in list(running):
            name, proc, t0 = item
            if proc.poll() is not None:
                running.remove(item)
                failed += proc.returncode != 0
                print(f"ended {name}: exit {proc.returncode}, {time.time() - t0:.0f} s", flush=True)
    return 1 if failed else 0


def table(path: Path) -> str:
    """A markdown table: per implementation and trick, each accuracy's mean and range
    over the seeds that measured it (``n=`` where fewer than the row's seeds did). No
    times: runs sharing a card take longer; time a recipe alone."""
    rows = [
        "| implementation | run | seeds | plain | + flip TTA | EMA | EMA + TTA |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    results = read_results(path)
    for impl in ("minitorch", "pytorch"):
        runs = by_key(results, impl)
        for tag in sorted(runs, key=lambda t: list(TRICKS).index(t) if t in TRICKS else 99):
            rs = sorted(runs[tag], key=lambda r: r["seed"])
            cells = []
            for key in ("plain", "tta", "ema", "ema_tta"):
                vals = [100 * r[key] for r in rs if key in r]
                cell = (
                    f"{statistics.fmean(vals):.2f} ({min(vals):.2f}-{max(vals):.2f})"
                    if vals
                    else ""
                )
                cells.append(cell + (f" n={len(vals)}" if vals and len(vals) < len(rs) else ""))
            seeds = ",".join(str(r["seed"]) for r in rs)
            rows.append(f"| {impl} | {tag} | {seeds} | {' | '.join(cells)} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="train over tricks and seeds, appending to --results")
    r.add_argument("--data-dir", required=True)
    r.add_argument("--results", required=True)
    r.add_argument("--tricks", nargs="+", choices=(*TRICKS, "final"), default=["baseline"])
    r.add_argument("--final", nargs="*", choices=(*TRICKS, *FREE), default=None)
    r.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    r.add_argument("--parallel", type=int, default=1)
    r.add_argument("--torch", action="store_true", help="the PyTorch twin instead of ours")
    r.add_argument("--logs", default=".", help="folder for each run's log")
    r.add_argument("--smoke", type=json.loads, default=None, help=argparse.SUPPRESS)
    t = sub.add_parser("table", help="the results as a markdown table")
    t.add_argument("results")
    o = sub.add_parser("one", help=argparse.SUPPRESS)
    o.add_argument("spec")
    o.add_argument("data_dir")
    o.add_argument("results")
    args = p.parse_args(argv)
    if args.command == "table":
        print(table(Path(args.results)))
        return 0
    if args.command == "one":
        spec = json.loads(args.spec)
        run_ours(
            spec["tag"], spec["settings"], spec["seed"], args.data_dir, Path(args.results),
            **spec["smoke"],
        )  # fmt: skip
        return 0
    return run_all(args)


if __name__ == "__main__":
    sys.exit(main())
