"""How exact is each layer? A table of three measurements per layer, over seeded random configs.

    python benchmarks/accuracy_report.py [--configs 20] [--backends numba,cupy]

* gradcheck: the worst relative error of the analytic gradient against central
  differences (float64, random upstream gradient), over every input and parameter;
* vs PyTorch: the worst relative difference of forward output, input gradient and
  parameter gradients from the same torch.nn layer in float64 (needs torch);
* vs numpy: the worst relative difference of each fast backend from the NumPy
  reference backend, in float32 (same layer, same input, same upstream gradient).

Relative differences are max|a - b| / max(max|b|, 1e-12) per tensor.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import minitorch_alexnet as mt
from minitorch_alexnet import nn


def _conv(rng):
    g = int(rng.choice([1, 1, 2]))
    c, o, k = g * int(rng.integers(1, 4)), g * int(rng.integers(1, 4)), int(rng.integers(1, 5))
    p, s = int(rng.integers(0, 3)), int(rng.integers(1, 4))
    hw = int(rng.integers(max(1, k - 2 * p), 9))
    return nn.Conv2d(c, o, k, s, p, groups=g), (int(rng.integers(1, 4)), c, hw, hw), "normal"


def _pool(rng):
    k = int(rng.integers(1, 5))
    p, s = int(rng.integers(0, k // 2 + 1)), int(rng.integers(1, 4))
    hw = int(rng.integers(max(1, k - 2 * p), 9))
    return nn.MaxPool2d(k, s, p), (int(rng.integers(1, 4)), int(rng.integers(1, 4)), hw, hw), "ties"


def _bn2d(rng):
    c = int(rng.integers(1, 5))
    shape = (int(rng.integers(2, 5)), c, int(rng.integers(1, 5)), int(rng.integers(1, 5)))
    return nn.BatchNorm2d(c).train(bool(rng.integers(0, 2))), shape, "normal"


def _bn1d(rng):
    c = int(rng.integers(1, 6))
    return nn.BatchNorm1d(c).train(bool(rng.integers(0, 2))), (int(rng.integers(2, 6)), c), "normal"


def _linear(rng):
    i, o = int(rng.integers(1, 8)), int(rng.integers(1, 6))
    return nn.Linear(i, o), (int(rng.integers(1, 5)), i), "normal"


def _lrn(rng):
    shape = (int(rng.integers(1, 3)), int(rng.integers(1, 7)), 3, 3)
    n = int(rng.integers(1, 6))
    return nn.LocalResponseNorm(n, float(rng.uniform(1e-3, 1)), 0.75, 2.0), shape, "normal"


def _relu(rng):
    return nn.ReLU(), (int(rng.integers(1, 4)), int(rng.integers(1, 5)), 3, 3), "kinkfree"


def _dropout(rng):
    return nn.Dropout(float(rng.uniform(0, 0.9))), (int(rng.integers(1, 4)), 6), "normal"


LAYERS = {
    "Conv2d": _conv,
    "MaxPool2d": _pool,
    "BatchNorm2d": _bn2d,
    "BatchNorm1d": _bn1d,
    "Linear": _linear,
    "LocalResponseNorm": _lrn,
    "ReLU": _relu,
    "Dropout": _dropout,
}


def _input(kind, shape, rng):
    if kind == "ties":  # distinct values far apart: no ties in max-pooling
        n = int(np.prod(shape))
        return (rng.permutation(n) * 1e-2).reshape(shape)
    x = rng.standard_normal(shape)
    if kind == "kinkfree":
        x = np.where(x >= 0, x + 1e-3, x - 1e-3)
    return x


def _rel(a, b) -> float:
    a, b = np.asarray(a, float), np.asarray(b, float)
    return 0.0 if a.size == 0 else float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-12))


def _run(layer, x, g, backend, dtype):
    """Forward and backward of a copy of ``layer`` on ``backend`` in ``dtype``: the output,
    the input gradient and each parameter gradient, as host arrays."""
    with mt.use_backend(backend):
        m = _clone(layer).to(backend)
        m.double() if dtype == "float64" else m.float()
        mt.manual_seed(5)  # the same dropout mask on the CPU backends
        y = m(mt.asarray(x, dtype))
        dx = m.backward(mt.asarray(g, dtype))
        return [mt.to_numpy(y), mt.to_numpy(dx)] + [mt.to_numpy(p.grad) for p in m.parameters()]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--configs", type=int, default=20)
    ap.add_argument("--backends", default=None, help="fast backends to hold against numpy")
    args = ap.parse_args(argv)
    fast = (args.backends or ",".join(b for b in mt.available_backends() if b != "numpy")).split(
        ","
    )
    try:
        import torch

        from minitorch_alexnet.models.torch_reference import build_torch_layer
    except ImportError:
        torch = None
    head = ["layer", "gradcheck worst rel err", "vs PyTorch (float64)"]
    head += [f"{b} vs numpy (float32)" for b in fast]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for name, config in LAYERS.items():
        rng = np.random.default_rng(0)
        worst_gc, worst_torch, worst_fast = 0.0, 0.0, dict.fromkeys(fast, 0.0)
        for _ in range(args.configs):
            layer, shape, kind = config(rng)
            x = _input(kind, shape, rng)
            result = mt.gradcheck(layer, x)
            worst_gc = max(worst_gc, max(t.max_rel_error for t in result.tensors))
            if not result.ok:
                print(result.report(), file=sys.stderr)
            g = rng.standard_normal(_clone(layer).double()(mt.asarray(x, "float64")).shape)
            if torch is not None and name != "Dropout":
                ours = _run(layer, x, g, "numpy", "float64")
                twin = build_torch_layer(_clone(layer).double())
                tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
                ty = twin(tx)
                ty.backward(torch.from_numpy(g))
                theirs = [ty.detach().numpy(), tx.grad.numpy()]
                theirs += [p.grad.numpy() for p in twin.parameters()]
                worst_torch = max([worst_torch] + [_rel(a, b) for a, b in zip(ours, theirs)])
            ref32 = _run(layer, x, g, "numpy", "float32")
            for b in fast:
                if name == "Dropout" and b == "cupy":
                    continue  # CuPy draws its masks on the device: they differ by design
                got = _run(layer, x, g, b, "float32")
                worst_fast[b] = max([worst_fast[b]] + [_rel(a, r) for a, r in zip(got, ref32)])
        vs_torch = "-" if torch is None or name == "Dropout" else f"{worst_torch:.1e}"
        cells = [name, f"{worst_gc:.1e}", vs_torch]
        cells += [f"{worst_fast[b]:.1e}" for b in fast]
        print("| " + " | ".join(cells) + " |", flush=True)
    return 0


def _clone(layer):
    import copy

    fresh = copy.deepcopy(layer)
    fresh.clear_cache()
    return fresh


if __name__ == "__main__":
    sys.exit(main())
