"""Winograd against im2col + SGEMM and cuDNN, on the 5x5 and 3x3 layers (GPU, float32).

    PYTHONPATH=. python benchmarks/winograd_gpu.py [--kernel 3|5] [--repeats 15] [--calls 5]
                                                   [--breakdown]

The layers: 5x5 with padding 2 by F(2x2, 5x5): AlexNetCIFAR conv1 (3 -> 64, 32x32)
and conv2 (64 -> 192, 15x15) at batch 128 and 512, AlexNet conv2 (96 -> 256, 27x27)
at batch 128; 3x3 with padding 1 by F(4x4, 3x3): AlexNetCIFAR conv3-5 (192 -> 384,
384 -> 256, 256 -> 256 on 7x7) at batch 128 and 512, AlexNet conv3-5 (256 -> 384,
384 -> 384, 384 -> 256 on 13x13) at batch 128. For each it times

* forward: our im2col path (im2col, one SGEMM, cnhw_to_nchw with the bias: what
  Conv2d.forward does), ``winograd_cuda.winograd_conv2d``, and cuDNN
  (``torch.nn.functional.conv2d``);
* input gradient dX alone (Conv2d.backward also computes dW, so it is not timed
  whole): W^T @ dY + col2im, ``winograd_cuda.winograd_conv2d_input_grad``, and
  cuDNN (``torch.nn.grad.conv2d_input``).

Times are CUDA-event milliseconds per call: the median of ``--repeats`` samples of
``--calls`` calls each, after warm-up, the methods alternating sample by sample.
PyTorch runs with TF32 off and ``cudnn.benchmark`` on, when it is importable.
The error columns are max |a - b| / max |b| of Winograd against im2col in float32,
and of each against im2col in float64. ``--breakdown`` also times the four steps
of the Winograd forward on their own: filter transform, input transform, the
batched product, output transform.
"""

from __future__ import annotations

import argparse
import statistics
from collections.abc import Callable

import numpy as np

import minitorch_alexnet as mt

# (name, batch, C, O, H = W, kernel size K); stride 1, padding K // 2
CASES = [
    ("AlexNetCIFAR conv1", 128, 3, 64, 32, 5),
    ("AlexNetCIFAR conv1", 512, 3, 64, 32, 5),
    ("AlexNetCIFAR conv2", 128, 64, 192, 15, 5),
    ("AlexNetCIFAR conv2", 512, 64, 192, 15, 5),
    ("AlexNet conv2", 128, 96, 256, 27, 5),
    ("AlexNetCIFAR conv3", 128, 192, 384, 7, 3),
    ("AlexNetCIFAR conv4", 128, 384, 256, 7, 3),
    ("AlexNetCIFAR conv5", 128, 256, 256, 7, 3),
    ("AlexNetCIFAR conv3", 512, 192, 384, 7, 3),
    ("AlexNetCIFAR conv4", 512, 384, 256, 7, 3),
    ("AlexNetCIFAR conv5", 512, 256, 256, 7, 3),
    ("AlexNet conv3", 128, 256, 384, 13, 3),
    ("AlexNet conv4", 128, 384, 384, 13, 3),
    ("AlexNet conv5", 128, 384, 256, 13, 3),
]


def _torch():
    """PyTorch on the GPU with TF32 off and cuDNN's autotuner on, or None."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    return torch


def timer(cp, torch, fn: Callable, calls: int, use_torch_events: bool) -> Callable[[], float]:
    """A function that times ``calls`` calls of ``fn`` and returns milliseconds per call."""

    def sample() -> float:
        if use_torch_events:
            start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
            for _ in range(calls):
                fn()
            stop.record()
            stop.synchronize()
            return start.elapsed_time(stop) / calls
        start, stop = cp.cuda.Event(), cp.cuda.Event()
        start.record()
        for _ in range(calls):
            fn()
        stop.record()
        stop.synchronize()
        return cp.cuda.get_elapsed_time(start, stop) / calls

    return sample


def rel_err(a, b) -> float:
    """max |a - b| / max |b|, in float64."""
    a, b = mt.to_numpy(a).astype(np.float64), mt.to_numpy(b).astype(np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


def bench_case(
    cp, torch, N: int, C: int, O: int, S: int, K: int, repeats: int, calls: int, breakdown: bool
) -> dict:
    from minitorch_alexnet.backend import kernels_cupy as kc
    from minitorch_alexnet.backend import winograd as wg
    from minitorch_alexnet.backend import winograd_cuda as wc

    P = K // 2
    # Conv2d's matrix product: kernels_cupy.matmul where the backend has one, else CuPy's @
    mm = getattr(kc, "matmul", None) or (lambda a, b: a @ b)
    rng = np.random.default_rng(0)
    Ho = Wo = S + 2 * P - K + 1
    x = cp.asarray(rng.standard_normal((N, C, S, S)), dtype=cp.float32)
    w = cp.asarray(rng.standard_normal((O, C, K, K)) / np.sqrt(C * K * K), dtype=cp.float32)
    b = cp.asarray(rng.standard_normal(O) * 0.1, dtype=cp.float32)
    dy = cp.asarray(rng.standard_normal((N, O, Ho, Wo)), dtype=cp.float32)

    def im2col_fwd(x=x, w=w, b=b):  # Conv2d.forward for one group
        cols = kc.im2col(x, K, K, 1, 1, P, P)  # (C*K*K, N*Ho*Wo)
        y = mm(w.reshape(O, -1), cols)  # (O, N*Ho*Wo)
        return kc.cnhw_to_nchw(y.reshape(O, N, Ho, Wo), b)

    def im2col_dx(dy=dy, w=w, shape=x.shape):  # the dX half of Conv2d.backward
        d = cp.ascontiguousarray(dy.transpose(1, 0, 2, 3)).reshape(O, -1)  # (O, N*Ho*Wo)
        return kc.col2im(mm(w.reshape(O, -1).T, d), shape, K, K, 1, 1, P, P)

    methods = {
        ("forward", "im2col"): im2col_fwd,
        ("forward", "winograd"): lambda: wc.winograd_conv2d(x, w, b, P),
        ("dX", "im2col"): im2col_dx,
        ("dX", "winograd"): lambda: wc.winograd_conv2d_input_grad(dy, w, P, (S, S)),
    }
    if breakdown:  # the four steps of the Winograd forward, on their own
        v = wg.VARIANTS[K]
        U = wc.filter_transform(w, x.dtype)
        V = wc.input_transform(x, P, P, v)
        M = mm(U, V)
        methods[("steps", "filter")] = lambda: wc.filter_transform(w, x.dtype)
        methods[("steps", "input")] = lambda: wc.input_transform(x, P, P, v)
        methods[("steps", "gemm")] = lambda: mm(U, V)
        methods[("steps", "output")] = lambda: wc.output_transform(M, b, N, Ho, Wo, v)
    if torch is not None:
        xt, wt, bt, dyt = (torch.as_tensor(a, device="cuda") for a in (x, w, b, dy))
        methods[("forward", "cudnn")] = lambda: torch.nn.functional.conv2d(xt, wt, bt, padding=P)
        methods[("dX", "cudnn")] = lambda: torch.nn.grad.conv2d_input(xt.shape, wt, dyt, padding=P)

    # accuracy: winograd against im2col (float32), and both against im2col in float64
    y32, yw = im2col_fwd(), wc.winograd_conv2d(x, w, b, P)
    dx32, dxw = im2col_dx(), wc.winograd_conv2d_input_grad(dy, w, P, (S, S))
    x64, w64, b64, dy64 = (a.astype(cp.float64) for a in (x, w, b, dy))
    y64, dx64 = im2col_fwd(x64, w64, b64), im2col_dx(dy64, w64)
    errors = {
        "fwd wino/im2col": rel_err(yw, y32),
        "dX wino/im2col": rel_err(dxw, dx32),
        "fwd wino/fp64": rel_err(yw, y64),
        "fwd im2col/fp64": rel_err(y32, y64),
        "dX wino/fp64": rel_err(dxw, dx64),
        "dX im2col/fp64": rel_err(dx32, dx64),
    }
    del x64, w64, b64, dy64, y64, dx64

    samplers = {
        key: timer(cp, torch, fn, calls, use_torch_events=key[1] == "cudnn")
        for key, fn in methods.items()
    }
    for fn in methods.values():  # warm-up: compiles kernels, tunes cuDNN, fills pools
        for _ in range(3):
            fn()
    cp.cuda.Device().synchronize()
    if torch is not None:
        torch.cuda.synchronize()
    times: dict = {key: [] for key in methods}
    for _ in range(repeats):
        for key, sample in samplers.items():
            times[key].append(sample())
    return {"ms": {key: statistics.median(t) for key, t in times.items()}, "errors": errors}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--repeats", type=int, default=15, help="timing samples per method")
    p.add_argument("--calls", type=int, default=5, help="calls per timing sample")
    p.add_argument("--kernel", type=int, choices=(3, 5), default=None, help="only this size")
    p.add_argument("--breakdown", action="store_true", help="time Winograd's four steps too")
    args = p.parse_args(argv)

    B = mt.set_backend("cupy")
    cp = B.xp
    torch = _torch()
    name = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)["name"].decode()
    print(f"GPU: {name}; float32; PyTorch: {torch.__version__ if torch else 'not importable'}")
    print("milliseconds per call (median of CUDA-event samples); speed-up = im2col / winograd\n")

    header = (
        f"{'layer':<20}{'N':>5} | {'fwd im2col':>10}{'wino':>8}{'cuDNN':>8}{'x':>6} | "
        f"{'dX im2col':>10}{'wino':>8}{'cuDNN':>8}{'x':>6} | "
        f"{'err fwd':>9}{'err dX':>9}"
    )
    print(header)
    print("-" * len(header))
    rows, steps = [], []
    for layer, N, C, O, S, K in CASES:
        if args.kernel not in (None, K):
            continue
        r = bench_case(cp, torch, N, C, O, S, K, args.repeats, args.calls, args.breakdown)
        ms, err = r["ms"], r["errors"]
        rows.append((layer, N, err))
        if args.breakdown:
            steps.append(
                (layer, N, [ms[("steps", s)] for s in ("filter", "input", "gemm", "output")])
            )

        def cell(key, ms=ms) -> str:
            return f"{ms[key]:8.3f}" if key in ms else f"{'-':>8}"

        print(
            f"{layer:<20}{N:>5} | {ms[('forward', 'im2col')]:10.3f}{cell(('forward', 'winograd'))}"
            f"{cell(('forward', 'cudnn'))}"
            f"{ms[('forward', 'im2col')] / ms[('forward', 'winograd')]:6.2f} | "
            f"{ms[('dX', 'im2col')]:10.3f}{cell(('dX', 'winograd'))}{cell(('dX', 'cudnn'))}"
            f"{ms[('dX', 'im2col')] / ms[('dX', 'winograd')]:6.2f} | "
            f"{err['fwd wino/im2col']:9.2e}{err['dX wino/im2col']:9.2e}",
            flush=True,
        )
    print("\nerrors against im2col in float64 (max |a - b| / max |b|):")
    print(
        f"{'layer':<20}{'N':>5} | {'fwd wino':>10}{'fwd im2col':>12} | "
        f"{'dX wino':>10}{'dX im2col':>12}"
    )
    for layer, N, err in rows:
        print(
            f"{layer:<20}{N:>5} | {err['fwd wino/fp64']:10.2e}{err['fwd im2col/fp64']:12.2e} | "
            f"{err['dX wino/fp64']:10.2e}{err['dX im2col/fp64']:12.2e}"
        )
    if steps:
        print("\nWinograd forward, step by step (ms per call):")
        print(f"{'layer':<20}{'N':>5} | {'filter':>8}{'input':>8}{'GEMM':>8}{'output':>8}")
        for layer, N, t in steps:
            print(f"{layer:<20}{N:>5} | " + "".join(f"{v:8.3f}" for v in t))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
