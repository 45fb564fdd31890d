"""The training recipe of examples/train_cifar.py, in PyTorch: the yardstick for accuracy and time.

    python benchmarks/train_torch_reference.py --data-dir DIR [--epochs 30] [--device cuda]

Same network (AlexNetCIFAR's PyTorch twin), same data and augmentation (batches come
from minitorch_alexnet's own DataLoader — on the GPU they are handed to PyTorch through
DLPack without a copy), same optimiser and schedule: SGD with Nesterov momentum 0.9,
weight decay 5e-4, OneCycle to lr 0.1 with 20% warm-up (PyTorch's default momentum
cycling), batch 128, crop + flip. float32 with TF32 off and ``cudnn.benchmark`` on.
It prints one line per epoch and a last line with the best and final test accuracy
and the total wall time, to compare with ``train_cifar.py`` on the same machine.
"""

from __future__ import annotations

import argparse
import sys
import time

import minitorch_alexnet as mt
from minitorch_alexnet import data
from minitorch_alexnet.models.torch_reference import build_torch_model


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--data-dir", required=True, help="folder holding cifar-10-batches-py/")
    p.add_argument("--epochs", type=int, default=30)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=0.1)
    p.add_argument("--weight-decay", type=float, default=5e-4)
    p.add_argument("--label-smoothing", type=float, default=0.0)
    p.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    import torch

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
        seed=args.seed,
    )
    test_loader = data.DataLoader(splits.test, batch_size=2 * args.batch_size)

    def to_torch(a):
        return torch.from_dlpack(a) if backend == "cupy" else torch.from_numpy(a)

    model = build_torch_model("alexnet_cifar", len(splits.classes)).to(args.device)
    opt = torch.optim.SGD(
        model.parameters(),
        lr=args.lr,
        momentum=0.9,
        nesterov=True,
        weight_decay=args.weight_decay,
    )
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=args.lr, total_steps=args.epochs * len(train_loader), pct_start=0.2
    )
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
    best, acc, start = 0.0, 0.0, time.perf_counter()
    for epoch in range(args.epochs):
        t0 = time.perf_counter()
        model.train()
        train_loader.set_epoch(epoch)
        for images, labels in train_loader:
            loss = loss_fn(model(to_torch(images)), to_torch(labels))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for images, labels in test_loader:
                pred = model(to_torch(images)).argmax(1)
                correct += int((pred == to_torch(labels)).sum())
        acc = correct / len(splits.test)
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
    return 0


if __name__ == "__main__":
    sys.exit(main())
