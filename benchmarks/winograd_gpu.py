"""Winograd against im2col + SGEMM and cuDNN, on the 5x5 and 3x3 layers (GPU, float32).

    PYTHONPATH=. python benchmarks/winograd_gpu.py [--kernel 3|5] [--only TEXT]
                                                   [--repeats 15] [--calls 5] [--breakdown]

The layers: 5x5 with padding 2: AlexNetCIFAR conv1 (3 -> 64, 32x32) and conv2
(64 -> 192, 15x15) at batch 128 and 512, AlexNet conv2 (96 -> 256, 27x27) at batch
128, each by F(2x2, 5x5), F(3x3, 5x5) and F(4x4, 5x5); 3x3 with padding 1 by
F(4x4, 3x3): AlexNetCIFAR conv3-5 (192 -> 384, 384 -> 256, 256 -> 256 on 7x7) at batch
128 and 512, AlexNet conv3-5 (256 -> 384, 384 -> 384, 384 -> 256 on 13x13) at batch
128. For each it times

* forward: our im2col path (im2col, one SGEMM, cnhw_to_nchw with the bias: what
  ``backend/cuda/conv.py`` runs off Winograd), ``winograd.cuda.winograd_conv2d``, and cuDNN
  (``torch.nn.functional.conv2d``);
* input gradient dX alone: W^T @ dY + col2im, ``winograd.cuda.winograd_conv2d_input_grad``,
  and cuDNN (``torch.nn.grad.conv2d_input``);
* weight gradient dW alone: im2col + dY X_col^T (with the transposed dY, as
  ``backend/cuda/conv.py`` does), ``winograd.cuda.winograd_conv2d_weight_grad``, and cuDNN
  (``torch.nn.grad.conv2d_weight``).

Times are CUDA-event milliseconds per call: the median of ``--repeats`` samples of
``--calls`` calls each, after warm-up, the methods alternating sample by sample.
PyTorch runs with TF32 off and ``cudnn.benchmark`` on, when it is importable.
The errors are max |a - b| / max |b| of each method against im2col in float64.
``--breakdown`` also times the four steps of the forward by the GPU's choice of
variant (``winograd.cuda.CHOICE``): filter transform, input transform, the batched
product, output transform.
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
    a, b = (v.cpu().numpy() if hasattr(v, "cpu") else mt.to_numpy(v) for v in (a, b))
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(np.abs(a - b).max() / np.abs(b).max())


def bench_case(
    cp, torch, N: int, C: int, O: int, S: int, K: int, repeats: int, calls: int, breakdown: bool
) -> dict:
    from minitorch_alexnet.backend.cuda.conv import cnhw_to_nchw
    from minitorch_alexnet.backend.cuda.cublas import matmul as mm  # Conv2d's products
    from minitorch_alexnet.backend.cuda.im2col import col2im, im2col
    from minitorch_alexnet.backend.winograd import cuda as wc
    from minitorch_alexnet.backend.winograd import reference as wg

    P = K // 2
    window = ((K, K), (1, 1), (P, P))
    rng = np.random.default_rng(0)
    Ho = Wo = S + 2 * P - K + 1
    x = cp.asarray(np.maximum(rng.standard_normal((N, C, S, S)), 0), dtype=cp.float32)
    w = cp.asarray(rng.standard_normal((O, C, K, K)) / np.sqrt(C * K * K), dtype=cp.float32)
    b = cp.asarray(rng.standard_normal(O) * 0.1, dtype=cp.float32)
    dy = cp.asarray(rng.standard_normal((N, O, Ho, Wo)), dtype=cp.float32)

    def im2col_fwd(x=x, w=w, b=b):  # the GPU's conv2d_forward by im2col, one group
        cols = im2col(x, *window)  # (C*K*K, N*Ho*Wo)
        y = mm(w.reshape(O, -1), cols)  # (O, N*Ho*Wo)
        return cnhw_to_nchw(y.reshape(O, N, Ho, Wo), b)

    def im2col_dx(dy=dy, w=w, shape=x.shape):  # the dX half of conv2d_backward
        d = cp.ascontiguousarray(dy.transpose(1, 0, 2, 3)).reshape(O, -1)  # (O, N*Ho*Wo)
        return col2im(mm(w.reshape(O, -1).T, d), shape, *window)

    def im2col_dw(x=x, dy=dy):  # the dW half of conv2d_backward (columns recomputed)
        cols = im2col(x, *window)
        d = cp.ascontiguousarray(dy.transpose(1, 0, 2, 3)).reshape(O, -1)
        return mm(d, cols.T).reshape(O, C, K, K)

    variants = [wg.F2x2_5x5, wg.F3x3_5x5, wg.F4x4_5x5] if K == 5 else [wg.F4x4_3x3]
    methods = {
        ("forward", "im2col"): im2col_fwd,
        ("dX", "im2col"): im2col_dx,
        ("dW", "im2col"): im2col_dw,
    }
    for v in variants:
        methods[("forward", v.ident)] = lambda v=v: wc.winograd_conv2d(x, w, b, P, v)
        methods[("dX", v.ident)] = lambda v=v: wc.winograd_conv2d_input_grad(dy, w, P, (S, S), v)
        methods[("dW", v.ident)] = lambda v=v: wc.winograd_conv2d_weight_grad(x, dy, P, K, v)
    if breakdown:  # the four steps of the Winograd forward, on their own
        v = wc.CHOICE[K]
        U = wc.filter_transform(w, x.dtype, variant=v)
        V = wc.input_transform(x, P, P, v)
        M = mm(U, V)
        methods[("steps", "filter")] = lambda: wc.filter_transform(w, x.dtype, variant=v)
        methods[("steps", "input")] = lambda: wc.input_transform(x, P, P, v)
        methods[("steps", "gemm")] = lambda: mm(U, V)
        methods[("steps", "output")] = lambda: wc.output_transform(M, b, N, Ho, Wo, v)
    if torch is not None:
        xt, wt, bt, dyt = (torch.as_tensor(a, device="cuda") for a in (x, w, b, dy))
        methods[("forward", "cudnn")] = lambda: torch.nn.functional.conv2d(xt, wt, bt, padding=P)
        methods[("dX", "cudnn")] = lambda: torch.nn.grad.conv2d_input(xt.shape, wt, dyt, padding=P)
        methods[("dW", "cudnn")] = lambda: torch.nn.grad.conv2d_weight(xt, wt.shape, dyt, padding=P)

    # accuracy: every method against im2col in float64
    x64, w64, b64, dy64 = (a.astype(cp.float64) for a in (x, w, b, dy))
    exact = {
        "forward": im2col_fwd(x64, w64, b64),
        "dX": im2col_dx(dy64, w64),
        "dW": im2col_dw(x64, dy64),
    }
    errors = {key: rel_err(fn(), exact[key[0]]) for key, fn in methods.items() if key[0] in exact}
    del x64, w64, b64, dy64, exact

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
    ms = {key: statistics.median(t) for key, t in times.items()}
    return {"ms": ms, "errors": errors, "variants": [v.ident for v in variants]}


COLUMNS = ["im2col", "F2x2_5x5", "F3x3_5x5", "F4x4_5x5", "F4x4_3x3", "cudnn"]


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--repeats", type=int, default=15, help="timing samples per method")
    p.add_argument("--calls", type=int, default=5, help="calls per timing sample")
    p.add_argument("--kernel", type=int, choices=(3, 5), default=None, help="only this size")
    p.add_argument("--only", default=None, help="only layers whose name contains this")
    p.add_argument("--breakdown", action="store_true", help="time Winograd's four steps too")
    args = p.parse_args(argv)

    B = mt.set_backend("cupy")
    cp = B.xp
    torch = _torch()
    name = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)["name"].decode()
    print(f"GPU: {name}; float32; PyTorch: {torch.__version__ if torch else 'not importable'}")
    print("milliseconds per call (median of CUDA-event samples), and in brackets the error")
    print("against im2col in float64, max |a - b| / max |b|\n")

    header = f"{'layer':<20}{'N':>5} {'':8}|" + "".join(f"{c:>20}" for c in COLUMNS)
    print(header)
    print("-" * len(header))
    steps = []
    for layer, N, C, O, S, K in CASES:
        if args.kernel not in (None, K) or (args.only and args.only not in layer):
            continue
        r = bench_case(cp, torch, N, C, O, S, K, args.repeats, args.calls, args.breakdown)
        ms, err = r["ms"], r["errors"]
        for what in ("forward", "dX", "dW"):
            cells = "".join(
                f"{ms[(what, c)]:9.3f} ({err[(what, c)]:7.1e})" if (what, c) in ms else f"{'':20}"
                for c in COLUMNS
            )
            print(f"{layer:<20}{N:>5} {what:8}|{cells}", flush=True)
        if args.breakdown:
            steps.append(
                (layer, N, [ms[("steps", s)] for s in ("filter", "input", "gemm", "output")])
            )
    if steps:
        print("\nWinograd forward by the GPU's choice, step by step (ms per call):")
        print(f"{'layer':<20}{'N':>5} | {'filter':>8}{'input':>8}{'GEMM':>8}{'output':>8}")
        for layer, N, t in steps:
            print(f"{layer:<20}{N:>5} | " + "".join(f"{v:8.3f}" for v in t))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
