"""Record a training step once as a CUDA graph, then replay it with one launch per step.

Why: a training step of AlexNetCIFAR is about 150 kernel launches. At batch 128 the
GPU finishes many of them faster than Python can issue them, so the step is bound
by the host. A CUDA graph is the recorded list of those launches with all their
arguments; replaying it costs one launch, and the GPU runs the kernels back to back.

What a replay does, and what that demands of the step:

* Every kernel runs again with the **same arguments**: the same pointers and the
  same numbers. So the step must read its inputs from fixed buffers (we copy each
  batch into them), and every value that changes from step to step must live in
  device memory: the learning rate and momentum (``Optimizer.hyperparameters_on_device``)
  and the dropout generator's counter (``backend/cuda/random.py``). A number
  passed from Python would be frozen at its value during capture.
* Nothing runs on the host during a replay: no Python, no checks, no shape logic.
  The Python code ran once, while the graph was recorded; the arrays it left
  behind (parameter gradients, layer caches, the outputs) are the ones the replays
  write into.
* The step must not wait for the device (no ``float(loss)``) while it is recorded.
* The first step of SGD with momentum differs from later ones (it fills the
  buffer), so the graph is recorded after a few ordinary *warm-up* steps, which
  also compile every kernel.

Memory: the recorded kernels keep using the blocks they were given while recording.
Those come from a private memory pool that nothing else allocates from, so no other
array can ever be handed a block a replay writes into.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import cupy as cp


class GraphedStep:
    """Call ``fn`` eagerly ``warmup`` times, then record it as a CUDA graph and replay it.

    Args:
        fn: the step, ``fn(*inputs) -> output array or tuple of arrays``; it must
            not wait for the device and must keep every changing value on the device
            (see the module docstring).
        warmup: ordinary calls before recording (at least 1: SGD's first step differs).
        before: called before every step, eager or replayed, with no arguments;
            for example ``optimizer.write_hyperparameters``.

    Calling it: ``step(*inputs)`` with CuPy arrays. Once recorded, the inputs are
    copied into the graph's fixed buffers, the graph is launched, and the graph's
    own output arrays are returned: **the next call overwrites them**, so read or
    accumulate them before that (work queued on the device in between is ordered
    correctly; only Python references kept across calls see new values). Inputs of
    another shape or dtype than the recorded ones (a last, smaller batch) run
    eagerly instead.
    """

    def __init__(
        self, fn: Callable[..., Any], warmup: int = 2, before: Callable[[], None] | None = None
    ):
        if warmup < 1:
            raise ValueError(f"GraphedStep: warmup must be at least 1, got {warmup}")
        self.fn = fn
        self.warmup = int(warmup)
        self.before = before
        self.calls = 0
        self.graph: Any = None
        self.replays = 0
        self._signature: tuple | None = None
        self._static_inputs: tuple = ()
        self._outputs: Any = None
        self._pool = cp.cuda.MemoryPool()  # the graph's own blocks (see the module docstring)
        # graphs cannot be recorded on the legacy default stream; this stream is
        # "blocking", so it stays ordered with work queued on the default stream
        self._stream = cp.cuda.Stream(non_blocking=False)

    @staticmethod
    def _signature_of(inputs: Sequence[Any]) -> tuple:
        return tuple((tuple(a.shape), a.dtype.str) for a in inputs)

    def __call__(self, *inputs: Any) -> Any:
        for a in inputs:
            if not isinstance(a, cp.ndarray):
                raise TypeError(
                    f"GraphedStep: inputs must be CuPy arrays, got {type(a).__name__}; "
                    "move them to the GPU first (asarray on the cupy backend)"
                )
        if self.before is not None:
            self.before()
        self.calls += 1
        if self.graph is None and self.calls <= self.warmup:
            return self.fn(*inputs)
        if self.graph is None:
            return self._record_and_run(inputs)
        if self._signature_of(inputs) != self._signature:
            return self.fn(*inputs)  # not the recorded shapes: an ordinary step
        for static, a in zip(self._static_inputs, inputs):
            static[...] = a  # device-to-device copy, queued like any kernel
        self.graph.launch(self._stream)
        self.replays += 1
        return self._outputs

    def _record_and_run(self, inputs: Sequence[Any]) -> Any:
        """Record ``fn`` on the fixed input buffers, then launch it once for ``inputs``."""
        with cp.cuda.using_allocator(self._pool.malloc):
            self._static_inputs = tuple(a.copy() for a in inputs)
            self._signature = self._signature_of(inputs)
            stream = self._stream
            cp.cuda.Device().synchronize()  # all earlier work done before recording
            with stream:
                stream.begin_capture()
                try:
                    outputs = self.fn(*self._static_inputs)
                except BaseException:
                    try:
                        stream.end_capture()  # leave capture mode; the recording is void
                    except Exception:
                        pass
                    raise
                graph = stream.end_capture()
        self._outputs = outputs
        self.graph = graph
        # the warm-up steps left their buffers cached in the default pool; the graph
        # has its own now, so hand those back (else GPU memory holds both)
        cp.get_default_memory_pool().free_all_blocks()
        # recording ran nothing: this launch is the real step for these inputs
        self.graph.launch(stream)
        self.replays += 1
        return outputs
