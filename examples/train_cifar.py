"""Train an AlexNet on CIFAR-10 with minitorch_alexnet: hand-written layers, no autograd.

Quick look on a laptop CPU (a few minutes on 2 cores, Numba backend)::

    python examples/train_cifar.py --epochs 2 --subset 2000 --test-subset 1000

The full recipe (30 epochs on all 50000 images; meant for a GPU with CuPy)::

    python examples/train_cifar.py

Recipe: SGD with Nesterov momentum 0.9, weight decay 5e-4, batch 128, a one-cycle
learning rate (20% warm-up to 0.1, then cosine annealing), random crops (4-pixel
zero padding) and horizontal flips, CIFAR-10 channel normalisation.

Written to ``--out`` (default ``runs/cifar``): ``metrics.json`` (one entry per
epoch), ``curves.png`` (loss and accuracy per epoch) and ``checkpoint.npz``
(after every epoch; ``--resume`` continues from it exactly).

The loop over batches (forward, loss, backward, step) is :func:`train_one_epoch`;
the loop over epochs (train, evaluate, log, checkpoint) is :func:`train`; the rest
is plumbing. See ``docs/training.md`` for every flag.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

try:
    import minitorch_alexnet  # noqa: F401
except ImportError:  # running from a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tqdm.auto import tqdm

from minitorch_alexnet import backend as B
from minitorch_alexnet import data, nn, optim
from minitorch_alexnet.checkpoint import (
    CheckpointError,
    atomic_write,
    load_checkpoint,
    save_checkpoint,
)

MODELS = ("alexnet_cifar", "alexnet", "alexnet2012", "tiny")
EXIT_BAD_INPUT = 2  # missing data, bad flags, a checkpoint that does not fit
EXIT_DIVERGED = 3  # NaN or infinite loss
EXIT_INTERRUPTED = 130  # Ctrl-C
LOG_EVERY = 20  # steps between progress-bar updates (the only times the loss is read)
# settings that must not change between a run and its --resume
RESUME_KEYS = (
    "model",
    "dataset",
    "subset",
    "test_subset",
    "epochs",
    "batch_size",
    "lr",
    "weight_decay",
    "label_smoothing",
    "momentum",
    "cycle_momentum",
    "seed",
    "augment",
)
# settings added in later versions: a checkpoint without them was written with these
RESUME_DEFAULTS = {"label_smoothing": 0.0}


class TrainingError(Exception):
    """A problem the user can fix (message printed without a traceback, exit code 2)."""


class Diverged(Exception):
    """The loss became NaN or infinite."""


# ---------------------------------------------------------------- command line
def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Train an AlexNet on CIFAR-10 (or synthetic data) with minitorch_alexnet.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--backend",
        choices=("numba", "numpy", "cupy"),
        default=None,
        help="array backend (default: cupy when a GPU is usable, else numba)",
    )
    p.add_argument(
        "--model",
        choices=MODELS,
        default="alexnet_cifar",
        help="network; 'alexnet' and 'alexnet2012' take 227x227 inputs, so images are "
        "upscaled (slow: for a GPU); 'tiny' is a small CNN for quick smoke runs",
    )
    p.add_argument("--epochs", type=int, default=30, help="epochs of the whole schedule")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1, help="peak (max) learning rate of OneCycle")
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument(
        "--label-smoothing",
        type=float,
        default=0.0,
        help="cross-entropy against (1 - s) one-hot + s / classes (PyTorch's label_smoothing)",
    )
    p.add_argument("--momentum", type=float, default=0.9, help="Nesterov momentum")
    p.add_argument(
        "--no-cycle-momentum",
        dest="cycle_momentum",
        action="store_false",
        help="keep --momentum fixed instead of OneCycle's 0.95-0.85-0.95 cycle (torch's default)",
    )
    p.add_argument(
        "--data-dir",
        default=None,
        help="folder with cifar-10-batches-py/ or the archive (default: "
        "$MINITORCH_ALEXNET_DATA or ~/.cache/minitorch_alexnet)",
    )
    p.add_argument(
        "--dataset",
        choices=("auto", "cifar10", "synthetic"),
        default="auto",
        help="auto: CIFAR-10 if present or downloadable, else synthetic data (with a warning)",
    )
    p.add_argument(
        "--no-download", action="store_true", help="never download CIFAR-10 (use what is there)"
    )
    p.add_argument("--subset", type=int, default=None, help="train on the first N images")
    p.add_argument("--test-subset", type=int, default=None, help="test on the first M images")
    p.add_argument("--no-augment", dest="augment", action="store_false", help="no crop/flip")
    p.add_argument("--out", default="runs/cifar", help="output folder")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint.npz")
    p.add_argument(
        "--stop-after",
        type=int,
        default=None,
        help="stop after this many epochs in this invocation (the schedule still spans "
        "--epochs); continue later with --resume",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--cuda-graph",
        action="store_true",
        help="cupy: record the training step once as a CUDA graph and replay it (faster)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    args = p.parse_args(argv)
    for flag in ("epochs", "batch_size"):
        if getattr(args, flag) <= 0:
            p.error(f"--{flag.replace('_', '-')} must be positive")
    for flag in ("subset", "test_subset", "stop_after"):
        if getattr(args, flag) is not None and getattr(args, flag) <= 0:
            p.error(f"--{flag.replace('_', '-')} must be positive")
    return args


# ---------------------------------------------------------------- set-up
def pick_backend(name: str | None) -> str:
    """The requested backend, or cupy when a GPU is usable, else numba."""
    if name is None:
        name = "cupy" if "cupy" in B.available_backends() else "numba"
    try:
        B.set_backend(name)
    except B.BackendError as e:
        raise TrainingError(str(e)) from None
    return name


def load_data(args: argparse.Namespace) -> data.DatasetSplits:
    """CIFAR-10 or synthetic data, as ``--dataset`` asks, cut to ``--subset``/``--test-subset``."""
    splits = None
    if args.dataset in ("auto", "cifar10"):
        try:
            splits = data.load_cifar10(
                args.data_dir, download=not args.no_download, progress=not args.no_progress
            )
        except data.DatasetNotFoundError as e:  # also DownloadError
            if args.dataset == "cifar10":
                raise TrainingError(
                    f"--dataset cifar10: {e}\n(or use --dataset synthetic for an offline run)"
                ) from None
            print(
                synthetic_banner(
                    f"CIFAR-10 is not available, so this run uses SYNTHETIC data. {e}"
                ),
                file=sys.stderr,
            )
        except data.CorruptDatasetError as e:
            raise TrainingError(str(e)) from None
    if splits is None:
        if args.dataset == "synthetic":
            print(synthetic_banner("--dataset synthetic: this run uses SYNTHETIC data."))
        n_train = args.subset or 10000
        n_test = args.test_subset or 2000
        splits = data.make_synthetic(n_train, n_test, seed=0)
    train, test = splits.train.subset(args.subset), splits.test.subset(args.test_subset)
    return data.DatasetSplits(train, test, splits.name, splits.source)


def synthetic_banner(reason: str) -> str:
    """A hard-to-miss notice that the numbers of this run are not CIFAR-10's."""
    line = "!" * 78
    return f"{line}\n!! {reason}\n!! These numbers are NOT CIFAR-10's.\n{line}"


def tiny_cnn(num_classes: int = 10, width: int = 16) -> nn.Module:
    """A small CNN for smoke runs: three conv blocks (32 -> 16 -> 8 -> 4), dropout, a linear."""
    layers: list[nn.Module] = []
    c_in = 3
    for c_out in (width, 2 * width, 4 * width):
        layers += [
            nn.Conv2d(c_in, c_out, 3, padding=1),
            nn.ReLU(),
            nn.BatchNorm2d(c_out),
            nn.MaxPool2d(2),
        ]
        c_in = c_out
    layers += [nn.Flatten(), nn.Dropout(0.2), nn.Linear(c_in * 4 * 4, num_classes)]
    return nn.Sequential(*layers)


def build_model(name: str, num_classes: int = 10) -> nn.Module:
    """The network called ``name`` (see ``MODELS``), with fresh weights from the host RNG."""
    if name == "tiny":
        return tiny_cnn(num_classes)
    from minitorch_alexnet import models  # imported lazily: only needed here

    return models.build_model(name, num_classes=num_classes)


def input_side(model: nn.Module) -> int:
    """The square input side the model is built for (32 unless it says otherwise)."""
    size = getattr(model, "input_size", None)
    return int(size[-1]) if size else 32


def resize_nearest(x: Any, side: int) -> Any:
    """Upscale ``(N, C, H, W)`` to ``(N, C, side, side)`` by nearest neighbour, on the device."""
    if x.shape[-1] == side and x.shape[-2] == side:
        return x
    xp = B.get_backend().xp
    rows = (xp.arange(side) * x.shape[-2]) // side
    cols = (xp.arange(side) * x.shape[-1]) // side
    return x[:, :, rows[:, None], cols[None, :]]


def make_optimizer(
    model: nn.Module, args: argparse.Namespace, steps_per_epoch: int
) -> tuple[optim.SGD, optim.OneCycleLR]:
    """SGD with Nesterov momentum and weight decay, and a one-cycle schedule over all steps."""
    optimizer = optim.SGD(
        model.parameters(),
        lr=args.lr,
        momentum=args.momentum,
        nesterov=True,
        weight_decay=args.weight_decay,
    )
    scheduler = optim.OneCycleLR(
        optimizer,
        max_lr=args.lr,
        total_steps=args.epochs * steps_per_epoch,
        pct_start=0.2,
        # PyTorch's default: momentum cycles 0.95 -> 0.85 -> 0.95 against the rate,
        # overriding --momentum; --no-cycle-momentum keeps it fixed
        cycle_momentum=args.cycle_momentum,
    )
    return optimizer, scheduler


# ---------------------------------------------------------------- running
class RunningMeter:
    """Sums of loss and correct predictions, kept on the device (read only when reported)."""

    def __init__(self) -> None:
        self.loss_sum: Any = 0.0
        self.correct: Any = 0
        self.count = 0

    def update(self, loss: Any, correct: Any, n: int) -> None:
        """Add a batch of ``n`` examples: its mean ``loss`` and number ``correct`` (arrays)."""
        self.loss_sum = self.loss_sum + loss * n  # stays a device array: no host sync
        self.correct = self.correct + correct
        self.count += n

    def read(self) -> tuple[float, float]:
        """(mean loss, accuracy) so far; this is the one place that waits for the device."""
        return float(self.loss_sum) / self.count, float(self.correct) / self.count


def count_correct(logits: Any, labels: Any) -> Any:
    """Rows of ``logits`` (N, K) whose largest value is at ``labels`` (N,): a 0-d array."""
    return (logits.argmax(axis=1) == labels).sum()


def make_train_step(model: nn.Module, criterion: nn.CrossEntropyLoss, optimizer: optim.SGD) -> Any:
    """The training step: ``step(images, labels) -> (loss, number correct)``, device arrays."""
    side = input_side(model)

    def train_step(images: Any, labels: Any) -> tuple[Any, Any]:
        logits = model(resize_nearest(images, side))  # forward
        loss = criterion(logits, labels)  # loss
        optimizer.zero_grad()
        # backward: fills every parameter's .grad (the images need no gradient of their own)
        model.backward(criterion.backward(), input_grad=False)
        optimizer.step()  # update the weights
        return loss, count_correct(logits, labels)

    return train_step


def graphed(step: Any, optimizer: optim.SGD) -> Any:
    """``step`` recorded once as a CUDA graph and replayed (``--cuda-graph``, cupy only).

    The optimiser then reads its learning rate and momentum from device memory,
    refreshed before every step; see ``minitorch_alexnet/backend/cuda/graph.py``.
    """
    from minitorch_alexnet.backend.cuda.graph import GraphedStep

    optimizer.hyperparameters_on_device()
    return GraphedStep(step, warmup=2, before=optimizer.write_hyperparameters)


def train_one_epoch(
    model: nn.Module,
    loader: data.DataLoader,
    step: Any,
    scheduler: optim.OneCycleLR,
    desc: str,
    progress: bool,
) -> tuple[float, float, float]:
    """One pass over the training data with ``step`` (from :func:`make_train_step`).

    Returns (mean loss, accuracy, images per second).
    """
    model.train()
    meter = RunningMeter()
    start = time.perf_counter()
    # disable=None: a bar only on a terminal, never in logs
    bar = tqdm(
        loader, desc=desc, leave=False, disable=None if progress else True, dynamic_ncols=True
    )
    for k, (images, labels) in enumerate(bar, 1):
        loss, correct = step(images, labels)  # forward, loss, backward, update
        scheduler.step()  # next learning rate (OneCycle steps per batch)
        meter.update(loss, correct, len(labels))
        if k % LOG_EVERY == 0 or k == len(loader):
            mean_loss, acc = meter.read()
            if not math.isfinite(mean_loss):
                raise Diverged(f"the training loss became {mean_loss} at step {k} of {desc}")
            rate = meter.count / (time.perf_counter() - start)
            bar.set_postfix(loss=f"{mean_loss:.3f}", acc=f"{acc:.1%}", img_s=f"{rate:.0f}")
    B.get_backend().synchronize()
    mean_loss, acc = meter.read()
    if not math.isfinite(mean_loss):
        raise Diverged(f"the training loss became {mean_loss} in {desc}")
    return mean_loss, acc, meter.count / (time.perf_counter() - start)


def evaluate(
    model: nn.Module, loader: data.DataLoader, criterion: nn.CrossEntropyLoss
) -> tuple[float, float]:
    """Mean loss and accuracy on ``loader``, in evaluation mode, keeping nothing for backward."""
    model.eval()
    meter = RunningMeter()
    side = input_side(model)
    with nn.no_grad():
        for images, labels in loader:
            logits = model(resize_nearest(images, side))
            meter.update(criterion(logits, labels), count_correct(logits, labels), len(labels))
    return meter.read()


# ---------------------------------------------------------------- outputs
def write_json_atomic(path: Path, obj: Any) -> None:
    atomic_write(path, lambda f: f.write(json.dumps(obj, indent=2) + "\n"), binary=False)


def plot_curves(path: Path, history: list[dict[str, float]], title: str) -> bool:
    """Loss and accuracy against epoch, to ``path``; False (with a note) without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(10, 4))
    for key, label in (("train", "train"), ("test", "test")):
        ax_loss.plot(epochs, [h[f"{key}_loss"] for h in history], marker="o", label=label)
        ax_acc.plot(epochs, [100 * h[f"{key}_acc"] for h in history], marker="o", label=label)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def config_of(args: argparse.Namespace, dataset_name: str) -> dict[str, Any]:
    cfg = {k: getattr(args, k) for k in RESUME_KEYS}
    cfg["dataset"] = dataset_name
    return cfg


def resume_from(
    path: Path, model: nn.Module, optimizer: optim.SGD, scheduler: optim.OneCycleLR, config: dict
) -> tuple[int, list[dict]]:
    """Restore a run from ``path``; returns (completed epochs, metrics history)."""
    try:
        meta = load_checkpoint(path, model, optimizer, scheduler)
    except CheckpointError as e:
        raise TrainingError(f"--resume: {e}") from None
    saved = (meta.get("extra") or {}).get("config", {})
    diff = [
        f"{k}: {saved.get(k, RESUME_DEFAULTS.get(k))!r} -> {config[k]!r}"
        for k in RESUME_KEYS
        if saved.get(k, RESUME_DEFAULTS.get(k)) != config[k]
    ]
    if diff:
        raise TrainingError(
            f"--resume: {path} was written with other settings ({'; '.join(diff)}). "
            "Resume with the same flags, or choose another --out for a new run."
        )
    return int(meta["epoch"]), list(meta["extra"].get("history", []))


# ---------------------------------------------------------------- the whole run
def train(args: argparse.Namespace) -> int:
    t_start = time.perf_counter()
    backend = pick_backend(args.backend)
    B.manual_seed(args.seed)
    splits = load_data(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / "checkpoint.npz"

    model = build_model(args.model, num_classes=len(splits.classes))
    criterion = nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
    train_loader = data.DataLoader(
        splits.train,
        batch_size=args.batch_size,
        shuffle=True,
        drop_last=len(splits.train) > args.batch_size,  # no tiny last batch for BatchNorm
        augment=args.augment,
        seed=args.seed,
    )
    test_loader = data.DataLoader(splits.test, batch_size=2 * args.batch_size)
    optimizer, scheduler = make_optimizer(model, args, len(train_loader))
    config = config_of(args, splits.name)
    if args.cuda_graph and backend != "cupy":
        raise TrainingError(f"--cuda-graph needs --backend cupy (this run uses {backend})")

    start_epoch, history = 0, []
    if args.resume:
        if ckpt_path.is_file():
            start_epoch, history = resume_from(ckpt_path, model, optimizer, scheduler, config)
            print(f"resuming from {ckpt_path} after epoch {start_epoch}")
        else:
            print(f"--resume: no checkpoint at {ckpt_path} yet; starting from scratch")
    n_params = sum(p.size for p in model.parameters())
    print(
        f"dataset {splits.name} ({len(splits.train)} train / {len(splits.test)} test, "
        f"from {splits.source}) | backend {backend} | model {args.model} ({n_params:,} parameters) "
        f"| {args.epochs} epochs of {len(train_loader)} steps, batch {args.batch_size}"
    )

    last_epoch = args.epochs
    if args.stop_after is not None:
        last_epoch = min(args.epochs, start_epoch + args.stop_after)
    # after any resume: a recorded graph keeps using the arrays it saw
    step = make_train_step(model, criterion, optimizer)
    if args.cuda_graph:
        step = graphed(step, optimizer)
    epoch = start_epoch
    try:
        for epoch in range(start_epoch, last_epoch):
            t0 = time.perf_counter()
            train_loader.set_epoch(epoch)  # the same batches as an uninterrupted run
            # GPU dropout masks: reproducible per epoch (a no-op on the CPU)
            B.seed_device_generator(args.seed * 100003 + epoch)
            desc = f"epoch {epoch + 1}/{args.epochs}"
            train_loss, train_acc, rate = train_one_epoch(
                model, train_loader, step, scheduler, desc, not args.no_progress
            )
            test_loss, test_acc = evaluate(model, test_loader, criterion)
            if not math.isfinite(test_loss):
                raise Diverged(f"the test loss became {test_loss} after {desc}")
            seconds = time.perf_counter() - t0
            history.append(
                {
                    "epoch": epoch + 1,
                    "train_loss": train_loss,
                    "train_acc": train_acc,
                    "test_loss": test_loss,
                    "test_acc": test_acc,
                    "seconds": seconds,
                    "images_per_second": rate,
                }
            )
            save_checkpoint(
                ckpt_path,
                model,
                optimizer,
                scheduler,
                epoch=epoch + 1,
                extra={"config": config, "history": history},
            )
            write_json_atomic(out / "metrics.json", history)
            tqdm.write(
                f"{desc}: train loss {train_loss:.4f} acc {train_acc:.2%} | test loss "
                f"{test_loss:.4f} acc {test_acc:.2%} | {seconds:.1f} s | {rate:.0f} images/s"
            )
    except KeyboardInterrupt:
        done = len(history)
        print(
            f"\ninterrupted in epoch {epoch + 1}. "
            + (
                f"{ckpt_path} holds the last completed epoch ({done}); continue with --resume."
                if done
                else "No epoch was completed, so there is nothing to resume from."
            ),
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    except Diverged as e:
        kept = f"the last good checkpoint (epoch {len(history)}) is kept at {ckpt_path}"
        print(
            f"\nstopping: {e}. Training diverged; try a lower --lr. "
            + (kept if history else "No checkpoint was written."),
            file=sys.stderr,
        )
        return EXIT_DIVERGED

    if history:
        title = f"{args.model} on {splits.name} ({backend})"
        if not plot_curves(out / "curves.png", history, title):
            print("note: matplotlib is not installed, so curves.png was not drawn")
    total = time.perf_counter() - t_start
    if splits.name == "synthetic":
        print(synthetic_banner("This run used SYNTHETIC data, not CIFAR-10."))
    if not history:
        print(f"nothing to do: {ckpt_path} already holds all {args.epochs} epochs")
        return 0
    best = max(history, key=lambda h: h["test_acc"])
    print(
        f"done: dataset {splits.name} | backend {backend} | model {args.model} | "
        f"best test accuracy {best['test_acc']:.2%} (epoch {best['epoch']}) | "
        f"final test accuracy {history[-1]['test_acc']:.2%} after epoch {history[-1]['epoch']} | "
        f"total time {total:.1f} s"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return train(args)
    except TrainingError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as e:  # an unusable --out or --data-dir: a file, no permission, a full disk
        where = f" ({e.filename})" if getattr(e, "filename", None) else ""
        print(
            f"error: {e.strerror or e}{where}; check that --out and --data-dir name folders "
            "you can write to",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
