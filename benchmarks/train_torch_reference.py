"""The recipe of ``minitorch-alexnet train`` in PyTorch: the yardstick for accuracy and time.

    python benchmarks/train_torch_reference.py --data-dir DIR [--epochs 30] [--device cuda]

Same network (AlexNetCIFAR's PyTorch twin), same data and augmentation (batches come
from minitorch_alexnet's own DataLoader — on the GPU they are handed to PyTorch through
DLPack without a copy), same optimiser and schedule: SGD with Nesterov momentum 0.9,
weight decay 5e-4, OneCycle to lr 0.1 with 20% warm-up (PyTorch's default momentum
cycling), batch 128, crop + flip. float32 with TF32 off and ``cudnn.benchmark`` on.
The tricks of ``train`` have the same flags and the same meaning here: the crop's
padding and flips (the DataLoader's), a second parameter group for BatchNorm weights
and biases, an EMA of the weights by ``torch.optim.swa_utils.AveragedModel`` (updated
every 5 steps with decay ``ema ** 5``, the statistics copied) and flip test-time
augmentation. The defaults are the recipe of the earlier rounds, not ``train``'s:
``train``'s defaults add ``--crop-padding 2 --padding-mode reflect --tta``.
It prints one line per epoch and a last line with the best and final test accuracy
and the total wall time; ``--json FILE`` appends the final accuracies of the trained
weights and of their average, each with and without test-time flips.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import minitorch_alexnet as mt
from minitorch_alexnet import data
from minitorch_alexnet.models.torch_reference import build_torch_model
from minitorch_alexnet.train.trainer import EMA_EVERY  # the same update interval


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data-dir", required=True, help="folder holding cifar-10-batches-py/")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--crop-padding", type=int, default=4)
    p.add_argument("--padding-mode", choices=("zeros", "reflect"), default="zeros")
    p.add_argument("--flip", choices=("random", "alternate"), default="random")
    p.add_argument("--norm-bias-lr-scale", type=float, default=1.0)
    p.add_argument("--norm-bias-weight-decay", type=float, default=None)
    p.add_argument("--ema", type=float, default=0.0, help="EMA decay per step (0: none)")
    p.add_argument("--tta", action="store_true", help="report test accuracy with flips")
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--json", default=None, help="append the final accuracies to this file")
    p.add_argument("--tag", default="", help="a name for this run in --json")
    return p.parse_args(argv)


def param_groups(model, args: argparse.Namespace) -> list[dict]:
    """One group, or the BatchNorm weights and all biases in a second (as ``train``)."""
    import torch

    wd = args.norm_bias_weight_decay
    if args.norm_bias_lr_scale == 1.0 and (wd is None or wd == args.weight_decay):
        return [{"params": list(model.parameters())}]
    norms = {
        id(p)
        for m in model.modules()
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)
        for p in m.parameters()
    }
    named = list(model.named_parameters())
    is_scaled = {n: id(p) in norms or n.endswith("bias") for n, p in named}
    scaled = [p for n, p in named if is_scaled[n]]
    rest = [p for n, p in named if not is_scaled[n]]
    lr2 = args.lr * args.norm_bias_lr_scale
    return [
        {"params": rest},
        {"params": scaled, "lr": lr2, "weight_decay": args.weight_decay if wd is None else wd},
    ]


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)

    import torch
    from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

    torch.manual_seed(args.seed)
    torch.backends.cudnn.benchmark = True
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    backend = "cupy" if args.device == "cuda" else "numpy"
    mt.set_backend(backend)
    mt.manual_seed(args.seed)
    splits = data.load_cifar10(args.data_dir, download=False)
    train_loader = data.DataLoader(
        splits.train,
        batch_size=args.batch_size,
        shuffle=True,
        drop_last=True,
        augment=True,
        padding=args.crop_padding,
        padding_mode=args.padding_mode,
        flip=args.flip,
        seed=args.seed,
    )
    test_loader = data.DataLoader(splits.test, batch_size=2 * args.batch_size)

    def to_torch(a):
        return torch.from_dlpack(a) if backend == "cupy" else torch.from_numpy(a)

    model = build_torch_model("alexnet_cifar", len(splits.classes)).to(args.device)
    groups = param_groups(model, args)
    opt = torch.optim.SGD(
        groups, lr=args.lr, momentum=0.9, nesterov=True, weight_decay=args.weight_decay
    )
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt,
        max_lr=[g.get("lr", args.lr) for g in groups],
        total_steps=args.epochs * len(train_loader),
        pct_start=0.2,
    )
    averaged = None
    if args.ema:
        decay = get_ema_multi_avg_fn(args.ema**EMA_EVERY)
        averaged = AveragedModel(model, multi_avg_fn=decay, use_buffers=False)
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)

    def accuracy(net, tta: bool) -> float:
        net.eval()
        correct = 0
        with torch.no_grad():
            for images, labels in test_loader:
                x = to_torch(images)
                logits = net(x)
                if tta:
                    logits = (logits + net(torch.flip(x, dims=[3]))) * 0.5
                correct += int((logits.argmax(1) == to_torch(labels)).sum())
        return correct / len(splits.test)

    best, acc, start = 0.0, 0.0, time.perf_counter()
    for epoch in range(args.epochs):
        t0 = time.perf_counter()
        model.train()
        train_loader.set_epoch(epoch)
        for k, (images, labels) in enumerate(train_loader, epoch * len(train_loader) + 1):
            loss = loss_fn(model(to_torch(images)), to_torch(labels))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            if averaged is not None and k % EMA_EVERY == 0:  # k counts the run's steps
                averaged.update_parameters(model)
        if averaged is not None:  # the statistics of now, as train does
            for b_avg, b in zip(averaged.module.buffers(), model.buffers(), strict=True):
                b_avg.copy_(b)
        acc = accuracy(model if averaged is None else averaged, args.tta)
        best = max(best, acc)
        print(
            f"epoch {epoch + 1}/{args.epochs}: train loss {loss.item():.4f} (last batch) | "
            f"test acc {acc:.2%} | {time.perf_counter() - t0:.1f} s",
            flush=True,
        )
    total = time.perf_counter() - start
    print(
        f"done: pytorch {torch.__version__} on {args.device} | best test accuracy {best:.2%} | "
        f"final {acc:.2%} | total time {total:.1f} s"
    )
    if args.json:
        result = {"impl": "pytorch", "tag": args.tag, "seed": args.seed, "seconds": total}
        result.update(plain=accuracy(model, False), tta=accuracy(model, True))
        if averaged is not None:
            result.update(ema=accuracy(averaged, False), ema_tta=accuracy(averaged, True))
        with open(args.json, "a") as f:
            f.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
