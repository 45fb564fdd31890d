"""Speed of minitorch_alexnet against PyTorch, measured side by side in one process.

    python benchmarks/bench.py                       # CPU: numpy, numba and PyTorch
    python benchmarks/bench.py --device gpu          # GPU: cupy and PyTorch + cuDNN
    python benchmarks/bench.py --device gpu --tf32   # both with TF32 matrix products
    python benchmarks/bench.py --per-layer --memory --json results.json

What is measured, for AlexNetCIFAR (batch 128 on the CPU; 128 and 512 on the GPU)
and the blog's AlexNet at 227x227 (batch 16 on the CPU, 128 on the GPU):

* training step: forward, cross-entropy, backward, SGD with momentum;
* eval: forward only, in evaluation mode, without caching for backward;
* with ``--per-layer``: each layer's forward and backward on its real input;
* with ``--memory``: peak memory of training steps (CPU: a fresh subprocess's peak
  resident memory above what it held with the model built, i.e. activations,
  gradients, optimizer state and temporaries; GPU: bytes held by CuPy's memory pool
  and by PyTorch's caching allocator after three steps).

Frameworks alternate run by run, with the same thread count, and each number is
the median of ``--repeats`` runs. Ratios are ours / PyTorch's images per second
(higher is better). PyTorch is only the yardstick here; nothing else needs it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

# as minitorch_alexnet does on import: no spinning OpenBLAS threads between products
# (must precede NumPy's import; it affects our products, not PyTorch's own BLAS)
os.environ.setdefault("OPENBLAS_THREAD_TIMEOUT", "4")

import numpy as np  # noqa: E402

CPU_CASES = [("alexnet_cifar", 128), ("alexnet", 16)]
GPU_CASES = [("alexnet_cifar", 128), ("alexnet_cifar", 512), ("alexnet", 128)]
INPUT = {"alexnet_cifar": (3, 32, 32), "alexnet": (3, 227, 227), "alexnet2012": (3, 227, 227)}
CLASSES = {"alexnet_cifar": 10, "alexnet": 1000, "alexnet2012": 1000}


# --------------------------------------------------------------------------- ours
class Ours:
    """One of our backends running one model."""

    def __init__(
        self, backend: str, model_name: str, batch: int, seed: int = 0, graph: bool = False
    ):
        import minitorch_alexnet as mt
        from minitorch_alexnet import nn, optim
        from minitorch_alexnet.models import build_model

        self.mt, self.nn, self.backend = mt, nn, backend
        self.name = backend + ("+graph" if graph else "")
        with mt.use_backend(backend):
            mt.manual_seed(seed)
            self.model = build_model(model_name, CLASSES[model_name]).to(backend)
            self.crit = nn.CrossEntropyLoss()
            self.opt = optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)
            rng = np.random.default_rng(seed)
            self.x = mt.asarray(rng.standard_normal((batch, *INPUT[model_name])), "float32")
            self.t = mt.asarray(rng.integers(0, CLASSES[model_name], batch), "int64")
        self._train, self._eval = self._train_fn, self._eval_fn
        if graph:  # each step recorded once as a CUDA graph, then replayed
            from minitorch_alexnet.backend.cuda.graph import GraphedStep

            with mt.use_backend(backend):
                self.opt.hyperparameters_on_device()
            self._train = GraphedStep(self._train_fn, before=self.opt.write_hyperparameters)
            self._eval = GraphedStep(self._eval_fn)

    def sync(self) -> None:
        self.mt.get_backend(self.backend).synchronize()

    def _train_fn(self, x, t):
        self.model.train()
        self.opt.zero_grad()
        loss = self.crit(self.model(x), t)
        self.model.backward(self.crit.backward(), input_grad=False)  # as PyTorch: x needs no grad
        self.opt.step()
        return loss

    def _eval_fn(self, x):
        with self.nn.no_grad():
            self.model.eval()
            return self.model(x)

    def train_step(self) -> None:
        with self.mt.use_backend(self.backend):
            return self._train(self.x, self.t)

    def eval_step(self) -> None:
        with self.mt.use_backend(self.backend):
            return self._eval(self.x)

    def layers(self) -> list[tuple[str, Callable, Callable]]:
        """(name, forward, backward) closures for each leaf layer on its real input."""
        mt = self.mt
        out = []
        with mt.use_backend(self.backend):
            self.model.train()
            leaves = [(n, m) for n, m in self.model.named_modules() if not m._modules]
            inputs = {}
            for name, m in leaves:  # record each leaf's input during one forward
                m.forward = _recording(m, name, inputs)
            self.model(self.x)
            for _, m in leaves:
                del m.forward
            xp = mt.get_backend(self.backend).xp
            for name, m in leaves:
                x = inputs[name]
                y = m(x)
                g = xp.ones_like(y) * 0.01

                def fwd(m=m, x=x):
                    with mt.use_backend(self.backend):
                        return m(x)

                def bwd(m=m, x=x, g=g):
                    with mt.use_backend(self.backend):
                        m(x)  # backward consumes the cache, so refill it (not timed below)
                        return m.backward(g)

                out.append((f"{name} {type(m).__name__}", fwd, bwd))
        return out


def _recording(module, name, store):
    original = type(module).forward

    def forward(x, *args):
        store[name] = x
        return original(module, x, *args)

    return forward


# --------------------------------------------------------------------------- PyTorch
class Torch:
    def __init__(self, model_name: str, batch: int, device: str, seed: int = 0):
        import torch

        from minitorch_alexnet.models.torch_reference import build_torch_model

        self.torch, self.device = torch, device
        self.name = "pytorch"
        torch.manual_seed(seed)
        self.model = build_torch_model(model_name, CLASSES[model_name]).to(device)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)
        rng = np.random.default_rng(seed)
        x = rng.standard_normal((batch, *INPUT[model_name])).astype("float32")
        self.x = torch.from_numpy(x).to(device)
        self.t = torch.from_numpy(rng.integers(0, CLASSES[model_name], batch)).to(device)

    def sync(self) -> None:
        if self.device == "cuda":
            self.torch.cuda.synchronize()

    def train_step(self):
        self.model.train()
        self.opt.zero_grad(set_to_none=True)
        loss = self.torch.nn.functional.cross_entropy(self.model(self.x), self.t)
        loss.backward()
        self.opt.step()
        return loss

    def eval_step(self):
        self.model.eval()
        with self.torch.no_grad():
            return self.model(self.x)

    def layers(self) -> list[tuple[str, Callable, Callable]]:
        torch = self.torch
        leaves = [(n, m) for n, m in self.model.named_modules() if not list(m.children())]
        inputs = {}
        hooks = [
            m.register_forward_pre_hook(lambda mod, args, n=n: inputs.__setitem__(n, args[0]))
            for n, m in leaves
        ]
        self.model.train()
        with torch.no_grad():
            self.model(self.x)
        for h in hooks:
            h.remove()
        out = []
        for name, m in leaves:
            x = inputs[name].detach().clone().requires_grad_(True)
            g = torch.ones_like(m(x)) * 0.01

            def fwd(m=m, x=x):
                with torch.no_grad():
                    return m(x)

            def bwd(m=m, x=x, g=g):
                y = m(x)
                y.backward(g)
                return x.grad

            out.append((f"{name} {type(m).__name__}", fwd, bwd))
        return out


# --------------------------------------------------------------------------- timing
def timed(fn: Callable, sync: Callable, n: int, gpu: bool) -> float:
    """Seconds per call of ``fn``, over ``n`` calls (CUDA events on the GPU)."""
    if gpu:
        import cupy as cp

        start, stop = cp.cuda.Event(), cp.cuda.Event()
        sync()
        start.record()
        for _ in range(n):
            fn()
        stop.record()
        stop.synchronize()
        sync()
        return cp.cuda.get_elapsed_time(start, stop) / 1000 / n
    sync()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    sync()
    return (time.perf_counter() - t0) / n


def bench_case(runners, batch: int, repeats: int, n: int, gpu: bool, warmup: int) -> dict:
    result = {}
    for kind in ("train", "eval"):
        samples = {r.name: [] for r in runners}
        for r in runners:
            for _ in range(warmup):
                getattr(r, f"{kind}_step")()
            r.sync()
        for _ in range(repeats):  # alternate frameworks run by run
            for r in runners:
                samples[r.name].append(timed(getattr(r, f"{kind}_step"), r.sync, n, gpu))
        for name, s in samples.items():
            sec = statistics.median(s)
            result.setdefault(name, {})[kind] = {
                "ms_per_step": sec * 1e3,
                "images_per_second": batch / sec,
            }
    return result


def bench_layers(runners, repeats: int, gpu: bool) -> dict:
    table = {}
    for r in runners:
        if r.name.endswith("+graph"):  # same layers as the plain row
            continue
        for name, fwd, bwd in r.layers():
            fwd(), bwd()  # warm-up / compile
            f = statistics.median(timed(fwd, r.sync, 1, gpu) for _ in range(repeats))
            # backward closure reruns forward to refill the cache: subtract it
            fb = statistics.median(timed(bwd, r.sync, 1, gpu) for _ in range(repeats))
            table.setdefault(name, {})[r.name] = {
                "forward_ms": f * 1e3,
                "backward_ms": max(fb - f, 0.0) * 1e3,
            }
    return table


# --------------------------------------------------------------------------- memory
def _memory_child(framework: str, model: str, batch: int, device: str) -> None:
    """Run in a subprocess: print peak memory (bytes) of three training steps."""
    import resource

    if device == "gpu":
        if framework == "pytorch":
            r = Torch(model, batch, "cuda")
            for _ in range(3):
                r.train_step()
            r.sync()
            print(r.torch.cuda.max_memory_reserved())
        else:
            import cupy as cp

            graph = framework.endswith("+graph")
            r = Ours("cupy", model, batch, graph=graph)
            for _ in range(4):  # with a graph: two warm-up steps, the recording, a replay
                r.train_step()
            r.sync()
            private = r._train._pool.total_bytes() if graph else 0  # the graph's own blocks
            print(cp.get_default_memory_pool().total_bytes() + private)
        return
    # warm up on a batch of 2 (compiles or loads the kernels, sets up thread pools),
    # then count what three full training steps add on top of the built model
    small = Torch(model, 2, "cpu") if framework == "pytorch" else Ours(framework, model, 2)
    small.train_step()
    del small
    r = Torch(model, batch, "cpu") if framework == "pytorch" else Ours(framework, model, batch)
    # The peak must be this process's own. getrusage's ru_maxrss is not: Linux carries it
    # over exec from the parent's forked copy, so a child of a parent holding 1 GB reports
    # at least 1 GB. /proc's VmHWM belongs to the process's own memory map, and writing 5
    # to clear_refs resets it to the current resident size.
    reset_peak = _reset_peak_rss()
    before = _proc_status_bytes("VmRSS")
    for _ in range(3):
        r.train_step()
    if reset_peak:
        peak = _proc_status_bytes("VmHWM")
    else:  # no /proc (macOS): the inherited-peak caveat above applies
        scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale
    print(max(peak - before, 0))


def _reset_peak_rss() -> bool:
    """Reset this process's peak resident size (VmHWM) to its current size, if possible."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _proc_status_bytes(field: str) -> int:
    """A memory field of /proc/self/status (VmRSS, VmHWM), in bytes; 0 without /proc."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024  # reported in kB
    except OSError:
        pass
    return 0


def measure_memory(frameworks, model, batch, device) -> dict:
    out = {}
    for fw in frameworks:
        cmd = [sys.executable, __file__, "--memory-child", fw, model, str(batch), device]
        res = subprocess.run(cmd, capture_output=True, text=True, env=os.environ.copy())
        if res.returncode != 0:
            out[fw] = None
            print(f"  memory run for {fw} failed:\n{res.stderr[-2000:]}", file=sys.stderr)
            continue
        out[fw] = int(res.stdout.strip().splitlines()[-1])
    return out


# --------------------------------------------------------------------------- main
def machine(gpu: bool) -> str:
    if gpu:
        import cupy as cp

        return cp.cuda.runtime.getDeviceProperties(0)["name"].decode()
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    p.add_argument("--models", default=None, help="e.g. alexnet_cifar:128,alexnet:16")
    p.add_argument("--backends", default=None, help="ours to run (default numpy,numba / cupy)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps", type=int, default=None, help="steps per timed run")
    p.add_argument("--threads", type=int, default=None, help="CPU threads for both sides")
    p.add_argument("--tf32", action="store_true", help="GPU: allow TF32 matrix products")
    p.add_argument(
        "--cuda-graph",
        action="store_true",
        help="GPU: also run ours with each step recorded as a CUDA graph (row cupy+graph)",
    )
    p.add_argument("--per-layer", action="store_true")
    p.add_argument("--memory", action="store_true")
    p.add_argument("--no-torch", action="store_true")
    p.add_argument("--json", default=None, help="write the results here")
    p.add_argument("--memory-child", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    gpu = args.device == "gpu"
    if args.tf32:
        os.environ["CUPY_TF32"] = "1"  # read when CuPy is imported
    if args.memory_child:
        fw, model, batch, device = args.memory_child
        _memory_child(fw, model, int(batch), device)
        return 0
    threads = args.threads or os.cpu_count()
    if not gpu:
        import numba

        numba.set_num_threads(threads)
        try:
            from threadpoolctl import threadpool_limits

            threadpool_limits(threads)
        except ImportError:
            pass
    torch = None
    if not args.no_torch:
        try:
            import torch
        except ImportError:
            print("PyTorch is not installed: measuring ours only.")
    if torch is not None:
        torch.set_num_threads(threads)
        if gpu:
            torch.backends.cudnn.benchmark = True
            torch.backends.cuda.matmul.allow_tf32 = args.tf32
            torch.backends.cudnn.allow_tf32 = args.tf32

    cases = CPU_CASES if not gpu else GPU_CASES
    if args.models:
        cases = [(m, int(b)) for m, b in (c.split(":") for c in args.models.split(","))]
    ours = (args.backends or ("cupy" if gpu else "numpy,numba")).split(",")
    report = {
        "device": machine(gpu),
        "threads": None if gpu else threads,
        "tf32": args.tf32 if gpu else None,
        "torch": None if torch is None else torch.__version__,
        "cases": [],
    }
    print(
        f"# {report['device']}"
        + ("" if gpu else f", {threads} threads")
        + (", TF32" if args.tf32 else "")
    )
    for model, batch in cases:
        runners = [Ours(b, model, batch) for b in ours]
        if gpu and args.cuda_graph:
            runners += [Ours(b, model, batch, graph=True) for b in ours if b == "cupy"]
        if torch is not None:
            runners.append(Torch(model, batch, "cuda" if gpu else "cpu"))
        n = args.steps or (20 if gpu else 1)
        res = bench_case(runners, batch, args.repeats, n, gpu, warmup=3 if gpu else 1)
        case = {"model": model, "batch": batch, "results": res}
        if args.per_layer:
            case["layers"] = bench_layers(runners, args.repeats, gpu)
        if args.memory:
            names = [r.name for r in runners]
            case["peak_memory_bytes"] = measure_memory(names, model, batch, args.device)
        report["cases"].append(case)
        print_case(case)
        del runners
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
        print(f"wrote {args.json}")
    return 0


def print_case(case: dict) -> None:
    res = case["results"]
    ref = res.get("pytorch")
    print(f"\n## {case['model']}, batch {case['batch']}")
    head = ("", "train img/s", "ms/step", "vs torch", "eval img/s", "vs torch")
    print("{:10} {:>12} {:>9} {:>9} {:>11} {:>9}".format(*head))
    for name, r in res.items():
        tr, ev = r["train"], r["eval"]
        rt = f"{tr['images_per_second'] / ref['train']['images_per_second']:.2f}x" if ref else "-"
        re_ = f"{ev['images_per_second'] / ref['eval']['images_per_second']:.2f}x" if ref else "-"
        print(
            f"{name:10} {tr['images_per_second']:12.1f} {tr['ms_per_step']:9.2f} {rt:>9} "
            f"{ev['images_per_second']:11.1f} {re_:>9}"
        )
    if "layers" in case:
        names = list(res)
        print("\nper layer, ms (forward / backward):")
        print(f"{'layer':32}" + "".join(f"{n:>20}" for n in names))
        for layer, by in case["layers"].items():
            cells = "".join(
                f"{by[n]['forward_ms']:9.2f} /{by[n]['backward_ms']:8.2f} " if n in by else " " * 20
                for n in names
            )
            print(f"{layer[:32]:32}{cells}")
    if "peak_memory_bytes" in case:
        mem = case["peak_memory_bytes"]
        ref_m = mem.get("pytorch")
        print("\npeak training memory:")
        for name, b in mem.items():
            if b is None:
                continue
            ratio = f" ({b / ref_m:.2f}x PyTorch)" if ref_m else ""
            print(f"  {name:10} {b / 2**20:9.1f} MiB{ratio}")


if __name__ == "__main__":
    sys.exit(main())
