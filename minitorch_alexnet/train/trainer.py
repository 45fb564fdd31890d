"""A training run: its set-up, its files, and the loop over epochs.

:class:`TrainConfig` (:mod:`.config`) holds every setting; :func:`train` takes the
run's folder (:mod:`.rundir`: a new numbered one unless ``out`` names one, locked
while the run lasts), builds the backend, data, model and
optimiser, then for each epoch trains (:mod:`.loop`), evaluates, checks that the
weights and statistics are still finite, and rewrites ``metrics.json`` and
``checkpoint.npz``; at the end it draws ``curves.png``. Before the first epoch, a
resume restores a checkpoint and checks that it was written with the same settings.
:func:`run` is :func:`train` with the command line's messages and exit codes.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any

from tqdm.auto import tqdm

from .. import backend as B
from .. import data, nn, optim
from ..checkpoint import CheckpointError, SaveInterrupted, load_checkpoint, save_checkpoint
from ..distributed.training import Parallel, parallel_hooks
from ..models import INPUT_SIDES, build_model
from .config import RESUME_DEFAULTS, RESUME_KEYS, ConfigError, TrainConfig
from .loop import (
    Diverged,
    check_finite_state,
    evaluate,
    graphed,
    make_train_step,
    train_one_epoch,
)
from .rundir import (
    TrainingError,
    clear_run,
    plot_curves,
    run_folder,
    write_json_atomic,
)

__all__ = ["ConfigError", "TrainConfig", "TrainingError", "exit_code", "run", "train"]

EXIT_BAD_INPUT = 2  # missing data, bad flags, a folder in use or holding a run, a bad checkpoint
EXIT_DIVERGED = 3  # NaN or infinite loss, weight or statistic
EXIT_INTERRUPTED = 130  # Ctrl-C
EMA_EVERY = 5  # steps between updates of the weights' average (--ema)
LAGGING_STATISTICS = (
    "note: a test loss far above the training loss in the first epochs is expected: "
    "evaluation uses BatchNorm's running statistics, which trail the weights while the "
    "learning rate warms up; it falls as training settles (docs/training.md explains)"
)


# ---------------------------------------------------------------- set-up
def pick_backend(name: str | None) -> str:
    """Activate the requested backend, or cupy when a GPU is usable, else numba."""
    if name is None:
        name = "cupy" if "cupy" in B.available_backends() else "numba"
    try:
        B.set_backend(name)
    except B.BackendError as e:
        raise TrainingError(str(e)) from None
    return name


def synthetic_banner(reason: str) -> str:
    """A hard-to-miss notice that the numbers of this run are not CIFAR-10's."""
    line = "!" * 78
    return f"{line}\n!! {reason}\n!! These numbers are NOT CIFAR-10's.\n{line}"


def load_data(config: TrainConfig) -> data.DatasetSplits:
    """The data ``config.dataset`` names (auto: CIFAR-10, else synthetic), cut to the subsets."""
    splits = None
    if config.dataset not in ("auto", "cifar10", "synthetic"):  # MNIST, an image folder, ...
        kw = {"download": config.download, "progress": config.progress}
        try:
            side = INPUT_SIDES[config.model]
            splits = data.load_dataset(config.dataset, config.data_dir, image_size=side, **kw)
        except (data.DatasetError, ImportError) as e:  # ImportError: Pillow is missing
            raise TrainingError(f"--dataset {config.dataset}: {e}") from None
    elif config.dataset in ("auto", "cifar10"):
        try:
            splits = data.load_cifar10(
                config.data_dir, download=config.download, progress=config.progress
            )
        except data.DatasetNotFoundError as e:  # also DownloadError
            if config.dataset == "cifar10":
                raise TrainingError(
                    f"--dataset cifar10: {e}\n(or use --dataset synthetic for an offline run)"
                ) from None
            print(
                synthetic_banner(
                    f"CIFAR-10 is not available, so this run uses SYNTHETIC data. {e}"
                ),
                file=sys.stderr,
            )
        except data.DatasetError as e:  # damaged files, a full disk, a folder in the way
            raise TrainingError(str(e)) from None
    if splits is None:
        if config.dataset == "synthetic":
            print(synthetic_banner("--dataset synthetic: this run uses SYNTHETIC data."))
        n_train = config.subset or 10000
        n_test = config.test_subset or 2000
        splits = data.make_synthetic(n_train, n_test, seed=0)
    train_set, test_set = splits.train.subset(config.subset), splits.test.subset(config.test_subset)
    return data.DatasetSplits(train_set, test_set, splits.name, splits.source)


def parameter_groups(model: nn.Module, config: TrainConfig) -> list[dict[str, Any]]:
    """The optimiser's parameter groups: one, or two when the BatchNorm weights and
    biases and every bias get their own learning rate or weight decay.

    The second group (``norm_bias_lr_scale``, ``norm_bias_weight_decay``) holds each
    parameter that only scales or shifts: BatchNorm's ``weight`` and ``bias`` and the
    ``bias`` of every layer; the first holds the rest (the convolution and linear weights).
    """
    params = list(model.named_parameters())
    wd = config.norm_bias_weight_decay
    if config.norm_bias_lr_scale == 1.0 and (wd is None or wd == config.weight_decay):
        return [{"params": [p for _, p in params]}]
    norm_layers = (nn.BatchNorm1d, nn.BatchNorm2d, nn.SyncBatchNorm)
    norms = [m for m in model.modules() if isinstance(m, norm_layers)]
    in_norms = {id(p) for m in norms for p in m.parameters()}
    is_scaled = {name: id(p) in in_norms or name.endswith("bias") for name, p in params}
    scaled = [p for name, p in params if is_scaled[name]]
    rest = [p for name, p in params if not is_scaled[name]]
    return [
        {"params": rest},
        {
            "params": scaled,
            "lr": config.lr * config.norm_bias_lr_scale,
            "weight_decay": config.weight_decay if wd is None else wd,
        },
    ]


def make_optimizer(
    model: nn.Module, config: TrainConfig, steps_per_epoch: int
) -> tuple[optim.SGD, optim.OneCycleLR]:
    """SGD with Nesterov momentum and weight decay, and a one-cycle schedule over all steps
    (its peak: ``lr``, and ``lr * norm_bias_lr_scale`` for a second parameter group)."""
    groups = parameter_groups(model, config)
    optimizer = optim.SGD(
        groups,
        lr=config.lr,
        momentum=config.momentum,
        nesterov=True,
        weight_decay=config.weight_decay,
    )
    scheduler = optim.OneCycleLR(
        optimizer,
        max_lr=[g["lr"] for g in optimizer.param_groups],
        total_steps=config.epochs * steps_per_epoch,
        pct_start=0.2,
        # PyTorch's default: momentum cycles 0.95 -> 0.85 -> 0.95 against the rate,
        # overriding config.momentum; cycle_momentum=False keeps it fixed
        cycle_momentum=config.cycle_momentum,
    )
    return optimizer, scheduler


def make_average(model: nn.Module, config: TrainConfig) -> optim.swa_utils.AveragedModel | None:
    """``--ema``: an exponential moving average of the weights, updated every
    ``EMA_EVERY`` steps with decay ``ema ** EMA_EVERY`` (so ``ema`` is the decay per
    step); None without ``--ema``. BatchNorm's statistics are copied from the training
    model at each update, not averaged (``use_buffers=False``, PyTorch's default): an
    average keeps an early spike of a running variance for many epochs."""
    if not config.ema:
        return None
    decay = optim.swa_utils.get_ema_multi_avg_fn(config.ema**EMA_EVERY)
    return optim.swa_utils.AveragedModel(model, multi_avg_fn=decay, use_buffers=False)


def check_batch_statistics(model: nn.Module, config: TrainConfig, n_train: int) -> None:
    """Refuse training batches of one image when the model has BatchNorm1d.

    BatchNorm1d estimates a variance per feature from the batch, which one image
    cannot give. A last batch smaller than the others is dropped (``drop_last``), so
    the smallest batch is ``batch_size``, or all the training images if fewer.
    """
    if min(config.batch_size, n_train) > 1:
        return
    if not any(isinstance(m, nn.BatchNorm1d) for m in model.modules()):
        return
    fix = "--batch-size 2 or more" if config.batch_size == 1 else "at least 2 training images"
    raise TrainingError(
        f"{config.model} cannot train on batches of 1 image: its BatchNorm1d layers estimate "
        f"a variance from each batch, which takes at least 2 images; use {fix}"
    )


# ---------------------------------------------------------------- bookkeeping
def settings_of(config: TrainConfig, dataset_name: str) -> dict[str, Any]:
    """The settings a resume must match (``RESUME_KEYS``), with the dataset actually used
    (and a BatchNorm-and-bias weight decay equal to ``weight_decay`` recorded as None:
    the same run)."""
    settings = {k: getattr(config, k) for k in RESUME_KEYS}
    settings["dataset"] = dataset_name
    if settings["norm_bias_weight_decay"] == config.weight_decay:
        settings["norm_bias_weight_decay"] = None
    return settings


def flag_for(key: str, value: Any) -> str:
    """The command-line flag that sets ``key`` to ``value`` ('' where none does)."""
    name = "--" + key.replace("_", "-")
    if isinstance(value, bool):
        return name if value else {"augment": "--no-augment"}.get(key, f"--no-{name[2:]}")
    return "" if value is None or key == "dataset" else f"{name} {value}"


def resume_from(
    path: Path,
    model: nn.Module,
    optimizer: optim.SGD,
    scheduler: optim.OneCycleLR,
    settings: dict[str, Any],
    averaged: optim.swa_utils.AveragedModel | None = None,
) -> tuple[int, list[dict[str, float]]]:
    """Restore a run from ``path`` (and ``averaged``, the weights' average, from its
    ``ema`` entry); returns (completed epochs, metrics history).

    Raises :class:`TrainingError` if the file is unusable or was written with other
    ``settings`` (each difference is listed as ``key: saved -> now``).
    """

    def same_settings(meta: dict[str, Any]) -> None:  # runs before anything is loaded
        extra = meta.get("extra")
        saved = extra.get("config") if isinstance(extra, dict) else None
        if not isinstance(saved, dict):
            raise TrainingError(
                f"--resume: {path} holds no run settings (it was not written by a training "
                "run, or was edited); start a new run with another --out"
            )
        was = {k: saved.get(k, RESUME_DEFAULTS.get(k)) for k in RESUME_KEYS}
        changed = [k for k in RESUME_KEYS if was[k] != settings[k]]
        if changed:
            diff = "; ".join(f"{k}: {was[k]!r} -> {settings[k]!r}" for k in changed)
            flags = " ".join(filter(None, (flag_for(k, was[k]) for k in changed)))
            raise TrainingError(
                f"--resume: {path} was written with other settings ({diff}). Resume with "
                f"the same flags{f' ({flags})' if flags else ''}, or choose another --out "
                "for a new run."
            )

    try:
        meta = load_checkpoint(path, model, optimizer, scheduler, check=same_settings)
    except CheckpointError as e:
        raise TrainingError(f"--resume: {e}") from None
    if averaged is not None:
        try:
            averaged.load_state_dict(meta["extra"]["ema"])
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError) as e:
            raise TrainingError(f"--resume: {path} holds no usable --ema average ({e})") from None
    try:
        check_finite_state(model, optimizer, f"before {path} was saved")
    except Diverged as e:
        raise TrainingError(
            f"--resume: {e}, so it cannot be continued; start a new run (a lower --lr helps)"
        ) from None
    return int(meta["epoch"]), list(meta["extra"].get("history", []))


# ---------------------------------------------------------------- the whole run
def train(config: TrainConfig) -> list[dict[str, float]]:
    """Train, evaluate after every epoch, and keep the run's folder up to date.

    The folder is ``config.out``, or a new numbered one under ``runs/cifar`` (with
    ``resume``: the latest); it is locked while the run lasts, and one that already
    holds a run is refused unless ``resume`` or ``overwrite`` says what to do with
    it. After each epoch ``checkpoint.npz`` (atomic) and ``metrics.json`` are
    rewritten; at the end ``curves.png`` is drawn (if matplotlib is installed).

    Returns the metrics history: one dict per completed epoch (resumed ones
    included) with ``epoch`` (1-based), ``train_loss``, ``train_acc``, ``test_loss``,
    ``test_acc``, ``seconds`` and ``images_per_second``.

    Raises :class:`TrainingError` for problems the user can fix, :class:`Diverged`
    for a NaN or infinite loss, weight or statistic, ``KeyboardInterrupt`` for
    Ctrl-C; after the last two it has said on stderr which checkpoint is kept.
    """
    par = parallel_hooks(config, TrainingError, exit_code)  # one process, or a rank of several
    with par.run_folder(run_folder, config) as out:
        return train_in(out, config, par)


def train_in(out: Path, config: TrainConfig, par: Parallel) -> list[dict[str, float]]:
    """:func:`train` in the folder ``out``, which the caller has chosen, locked and checked."""
    t_start = time.perf_counter()
    backend = pick_backend(config.backend)
    B.manual_seed(config.seed)
    splits = par.load_data(load_data, config)  # under mpiexec: rank 0 first, then the others
    ckpt_path = out / "checkpoint.npz"

    c = splits.train.images.shape[1]
    channels = {"in_channels": c} if c != 3 else {}  # 1 for MNIST
    model = par.prepare(build_model(config.model, num_classes=len(splits.classes), **channels))
    mean, std = data.normalization(splits)
    check_batch_statistics(model, config, len(splits.train))
    criterion = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    try:
        train_loader = data.DataLoader(
            splits.train,
            **par.loader_args(splits.train, config),  # batch size and order (of this rank)
            drop_last=len(splits.train) > config.batch_size,  # no tiny last batch for BatchNorm
            augment=config.augment,
            padding=config.crop_padding,
            padding_mode=config.padding_mode,
            flip=config.flip,
            seed=config.seed,
            mean=mean,
            std=std,
        )
    except ValueError as e:  # e.g. a reflect padding as wide as the images
        raise TrainingError(f"--crop-padding {config.crop_padding}: {e}") from None
    test_loader = data.DataLoader(splits.test, batch_size=2 * config.batch_size, mean=mean, std=std)
    optimizer, scheduler = make_optimizer(model, config, len(train_loader))
    averaged = make_average(model, config)  # what is evaluated and kept beside the weights
    settings = settings_of(config, splits.name)
    if config.cuda_graph and backend != "cupy":
        raise TrainingError(f"--cuda-graph needs --backend cupy (this run uses {backend})")

    start_epoch, history = 0, []
    if config.resume and ckpt_path.is_file():
        start_epoch, history = resume_from(
            ckpt_path, model, optimizer, scheduler, settings, averaged
        )
        print(f"resuming from {ckpt_path} after epoch {start_epoch}")
    elif config.resume:
        print(f"--resume: no checkpoint at {ckpt_path} yet; starting from scratch")
    if config.overwrite and par.writes:
        clear_run(out)  # the set-up worked: only now does the old run go
    n_params = sum(p.size for p in model.parameters())
    print(
        f"run folder {out} | dataset {splits.name} ({len(splits.train)} train / "
        f"{len(splits.test)} test, from {splits.source}) | backend {backend} | model "
        f"{config.model} ({n_params:,} parameters) | {config.epochs} epochs of "
        f"{len(train_loader)} steps, batch {config.batch_size}"
    )

    last_epoch = config.epochs
    if config.stop_after is not None:
        last_epoch = min(config.epochs, start_epoch + config.stop_after)
    # after any resume: a recorded graph keeps using the arrays it saw
    step = make_train_step(model, criterion, par.wrap(optimizer))
    if config.cuda_graph:
        step = graphed(step, optimizer)
    epoch = start_epoch
    saved = start_epoch  # the epoch checkpoint.npz holds
    try:
        for epoch in range(start_epoch, last_epoch):
            t0 = time.perf_counter()
            train_loader.set_epoch(epoch)  # the same batches as an uninterrupted run
            # GPU dropout masks: reproducible per epoch (a no-op on the CPU)
            B.seed_device_generator(config.seed * 100003 + epoch)
            desc = f"epoch {epoch + 1}/{config.epochs}"
            train_loss, train_acc, rate = par.end_epoch(
                model,
                *train_one_epoch(
                    model,
                    train_loader,
                    step,
                    scheduler,
                    desc,
                    config.progress,
                    averaged,
                    EMA_EVERY,
                    first_step=epoch * len(train_loader),
                ),
            )
            if averaged is not None:  # the statistics of now (after end_epoch: rank 0's)
                averaged.copy_buffers(model)
            tested = model if averaged is None else averaged
            test_loss, test_acc = evaluate(
                tested, test_loader, criterion, config.progress, tta=config.tta
            )
            if not math.isfinite(test_loss):
                raise Diverged(f"the test loss became {test_loss} after {desc}")
            # finite losses do not prove finite weights: a BatchNorm variance can overflow
            check_finite_state(model, optimizer, f"in {desc}")
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
            # only now, with the epoch's losses and state finite, is the checkpoint replaced
            if par.writes:  # one process, or rank 0 of several
                save_checkpoint(
                    ckpt_path,
                    model,
                    optimizer,
                    scheduler,
                    epoch=epoch + 1,
                    extra={
                        "config": settings,
                        "history": history,
                        "classes": list(splits.classes),
                        **({"ema": averaged.state_dict()} if averaged is not None else {}),
                    },
                )
            saved = epoch + 1
            if par.writes:
                write_json_atomic(out / "metrics.json", history)
            tqdm.write(
                f"{desc}: train loss {train_loss:.4f} acc {train_acc:.2%} | test loss "
                f"{test_loss:.4f} acc {test_acc:.2%} | {seconds:.1f} s | {rate:.0f} images/s"
            )
            if test_loss > 5 * max(train_loss, 1.0) and epoch == 0:
                tqdm.write(LAGGING_STATISTICS)
    except KeyboardInterrupt as e:
        saving = isinstance(e, SaveInterrupted)  # the save says what the file holds now
        if saving:
            saved = e.held_epoch or 0
        print(interrupted_message(epoch + 1, saving, ckpt_path, saved), file=sys.stderr)
        raise
    except Diverged as e:
        kept = f"the last good checkpoint (epoch {saved}) is kept at {ckpt_path}"
        print(
            f"\nstopping: {e}. Training diverged; try a lower --lr. "
            + (kept if saved else "No checkpoint was written."),
            file=sys.stderr,
        )
        raise

    if history and par.writes:
        title = f"{config.model} on {splits.name} ({backend})"
        if not plot_curves(out / "curves.png", history, title):
            print("note: matplotlib is not installed, so curves.png was not drawn")
    if splits.name == "synthetic":
        print(synthetic_banner("This run used SYNTHETIC data, not CIFAR-10."))
    if not history:
        print(f"nothing to do: {ckpt_path} already holds all {config.epochs} epochs")
        return history
    best = max(history, key=lambda h: h["test_acc"])
    print(
        f"done: dataset {splits.name} | backend {backend} | model {config.model} | "
        f"best test accuracy {best['test_acc']:.2%} (epoch {best['epoch']}) | "
        f"final test accuracy {history[-1]['test_acc']:.2%} after epoch {history[-1]['epoch']} | "
        f"total time {time.perf_counter() - t_start:.1f} s | in {out}"
    )
    return history


def interrupted_message(epoch: int, saving: bool, ckpt_path: Path, saved: int) -> str:
    """What Ctrl-C leaves behind, as the checkpoint file has it (``saved``: its epoch)."""
    where = f"while saving epoch {epoch}" if saving else f"in epoch {epoch}"
    if not saved:
        return f"\ninterrupted {where}. No checkpoint was saved, so there is nothing to resume."
    return f"\ninterrupted {where}. {ckpt_path} holds epoch {saved}; continue with --resume."


def exit_code(error: BaseException) -> int:
    """The command line's exit status for ``error``: 2 for a problem the user can fix (a
    :class:`TrainingError`, an unusable out/data_dir), 3 diverged, 130 Ctrl-C, else 1."""
    if isinstance(error, TrainingError | OSError):
        return EXIT_BAD_INPUT
    if isinstance(error, Diverged):
        return EXIT_DIVERGED
    return EXIT_INTERRUPTED if isinstance(error, KeyboardInterrupt) else 1


def run(config: TrainConfig) -> int:
    """:func:`train` for the command line: errors as one line on stderr, and an exit code
    (:func:`exit_code`; 0 when done)."""
    try:
        train(config)
    except (TrainingError, OSError, Diverged, KeyboardInterrupt) as e:
        if isinstance(e, TrainingError):
            print(f"error: {e}", file=sys.stderr)
        elif isinstance(e, OSError):  # an unusable --out or --data-dir: no permission, a full disk
            where = f" ({e.filename})" if getattr(e, "filename", None) else ""
            print(
                f"error: {e.strerror or e}{where}; check that --out and --data-dir name folders "
                "you can write to",
                file=sys.stderr,
            )
        return exit_code(e)  # Diverged and Ctrl-C: train() has said what is kept
    return 0
