"""Finite-difference gradient checking: is a layer's hand-written backward right?

Method
------
For a module f, inputs x and a *random* upstream gradient g (same shape as the
output), define the scalar  L(x, theta) = sum(g * f(x; theta)).  The analytic
gradient is what ``f.backward(g)`` returns (for x) and accumulates into each
``Parameter.grad`` (for theta). The numeric gradient is the central difference

    dL/dv[i] ~ (L(v + eps*e_i) - L(v - eps*e_i)) / (2*eps)

for every element i of every input and parameter v, computed in float64.

Why a random g and not ``out.sum()``: with g = 1 everywhere, errors that sum to
zero over the output are invisible. BatchNorm's dx and softmax's gradient both
sum to zero along an axis, so a backward that forgets the mean terms would
pass a ``sum()`` check. A random g has no such blind spot.

Train-mode randomness is frozen: the generator is re-seeded before every
forward pass, so Dropout draws the same mask each time. BatchNorm in training
mode uses batch statistics, which the check differentiates through.
"""

from __future__ import annotations

import copy as _copy
import math
import reprlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from . import backend as _backend


@dataclass
class TensorCheck:
    """The comparison for one tensor (an input or a parameter)."""

    name: str
    shape: tuple[int, ...]
    max_abs_error: float
    max_rel_error: float
    worst_index: tuple[int, ...] | None
    numeric: float
    analytic: float
    ok: bool
    n_bad: int = 0

    def line(self) -> str:
        status = "ok  " if self.ok else "FAIL"
        where = "" if self.worst_index is None else f" at {self.name}{list(self.worst_index)}"
        return (
            f"  {status} {self.name:<18} shape {str(self.shape):<18} max abs err "
            f"{self.max_abs_error:.3e}  max rel err {self.max_rel_error:.3e}{where}: "
            f"numeric {self.numeric:+.8e} vs analytic {self.analytic:+.8e}"
            + (f"  ({self.n_bad} elements out of tolerance)" if self.n_bad else "")
        )


@dataclass
class GradcheckResult:
    """What :func:`gradcheck` found. ``bool(result)`` is ``result.ok``."""

    module: str
    tensors: list[TensorCheck] = field(default_factory=list)
    atol: float = 0.0
    rtol: float = 0.0
    eps: float = 0.0

    @property
    def ok(self) -> bool:
        return all(t.ok for t in self.tensors)

    def __bool__(self) -> bool:
        return self.ok

    def worst(self) -> TensorCheck | None:
        """The failing tensor with the largest error (or the largest overall when all pass)."""
        pool = [t for t in self.tensors if not t.ok] or self.tensors
        return max(pool, key=lambda t: t.max_abs_error, default=None)

    def report(self) -> str:
        head = "PASSED" if self.ok else "FAILED"
        lines = [
            f"gradcheck {head} for {self.module} "
            f"(|numeric - analytic| <= {self.atol:g} + {self.rtol:g} * |numeric|, eps={self.eps:g})"
        ]
        lines += [t.line() for t in self.tensors]
        if not self.ok:
            lines.append(
                "  A failing input means backward's returned gradient is wrong; a failing "
                "parameter means the gradient added to its .grad is wrong."
            )
        return "\n".join(lines)

    __str__ = report


class LayerBuildError(TypeError):
    """What :func:`build_layer` raises: not a layer, or building one failed (the
    constructor's own exception is the ``__cause__``)."""


def is_layer(obj: Any) -> bool:
    """Whether ``obj`` is a layer: not a class, and callable with a callable ``backward``."""
    return not isinstance(obj, type) and callable(obj) and callable(getattr(obj, "backward", None))


def build_layer(layer_or_factory: Any, *, name: str | None = None, copy: bool = False) -> Any:
    """The layer ``layer_or_factory`` is, or the one it builds: the one way this package
    turns "a layer, a class or a factory" into a layer (gradcheck, the assertions of
    :mod:`minitorch_alexnet.testing`, the ``gradcheck`` subcommand).

    Args:
        layer_or_factory: a layer (a Module, or any object with ``__call__`` and
            ``backward``), or a class or function that builds one with no arguments.
        name: what messages call it (default: its qualified name, or its repr).
        copy: return a deep copy of a given layer, so the caller may change it freely
            (a layer built here is new anyway).

    Building leaves the random-number generator as it was (constructors draw initial
    weights from it): a factory builds the same layer every time from the same state.

    Raises:
        LayerBuildError: ``layer_or_factory`` is neither a layer nor callable, it
            raised, or it returned something that is not a layer.
    """
    obj = layer_or_factory
    if is_layer(obj):
        return _copy.deepcopy(obj) if copy else obj
    name = name or getattr(obj, "__qualname__", None) or reprlib.repr(obj)
    if not callable(obj):
        raise LayerBuildError(
            f"{name} (a {type(obj).__name__}) is not a layer, class or function: expected a "
            "layer (a Module, or any object with __call__ and backward), or a class or "
            "function that builds one with no arguments"
        )
    state = _backend.get_rng_state()
    try:
        built = obj()
    except Exception as e:
        raise LayerBuildError(
            f"cannot build {name} with no arguments: {name}() raised {type(e).__name__}: {e}"
        ) from e
    except SystemExit as e:  # building a layer must not end the program
        raise LayerBuildError(
            f"cannot build {name} with no arguments: {name}() called sys.exit({e.code!r}); "
            "a layer's constructor should raise an exception instead"
        ) from e
    finally:
        _backend.set_rng_state(state)
    if not is_layer(built):
        raise LayerBuildError(
            f"{name}() gave a {type(built).__name__}, which has no forward (__call__) and backward"
        )
    return built


def gradcheck(
    module_or_fn: Any,
    *inputs: Any,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: int = 0,
    check_params: bool = True,
    upstream: Any = None,
) -> GradcheckResult:
    """Compare a module's backward pass with central finite differences, in float64.

    Args:
        module_or_fn: a Module (used as it is: train or eval mode), any object with
            ``__call__`` and ``backward``, or a function that builds one. It is
            deep-copied and cast to float64; the original is not touched.
        *inputs: the forward pass's arguments. Floating-point arrays are checked;
            integer arrays (class targets of a loss) are passed through unchanged.
        eps: the finite-difference step.
        atol, rtol: an element passes when |numeric - analytic| <= atol + rtol*|numeric|.
        seed: seeds the random upstream gradient and the generator re-seeded
            before every forward (so Dropout keeps one mask).
        check_params: also check every parameter's gradient.
        upstream: a fixed upstream gradient instead of a random one.

    Returns:
        A :class:`GradcheckResult`; ``result.ok`` tells, ``print(result)`` explains.

    Besides the values, it catches a backward that *assigns* ``p.grad`` instead of
    adding to it, one that modifies its ``grad_out`` argument, and NaN or infinite
    gradients. The caller's random-number state is restored afterwards.
    """
    _check_settings(eps, atol, rtol)
    rng_state = _backend.get_rng_state()
    try:
        return _gradcheck(module_or_fn, inputs, eps, atol, rtol, seed, check_params, upstream)
    finally:
        _backend.set_rng_state(rng_state)


def _check_settings(eps: float, atol: float, rtol: float) -> None:
    """eps finite and > 0 (0 divides by zero, NaN compares false); tolerances finite and
    >= 0 (a negative one fails everything, an infinite one passes anything)."""
    if not (math.isfinite(eps) and eps > 0):
        raise ValueError(f"gradcheck: eps must be a finite number > 0, got {eps!r}")
    for what, tol in (("atol", atol), ("rtol", rtol)):
        if not (math.isfinite(tol) and tol >= 0):
            raise ValueError(
                f"gradcheck: {what} must be a finite number >= 0, got {tol!r} (an infinite "
                "tolerance would pass any gradient, a negative one fail every gradient)"
            )


def _gradcheck(
    module_or_fn: Any,
    inputs: tuple,
    eps: float,
    atol: float,
    rtol: float,
    seed: int,
    check_params: bool,
    upstream: Any,
) -> GradcheckResult:
    B = _backend.get_backend()
    xp = B.xp
    f = build_layer(module_or_fn, copy=True)
    if hasattr(f, "double"):
        f.double()
    if hasattr(f, "clear_cache"):
        f.clear_cache()
    args = [
        xp.array(_backend.asarray(a, "float64"))  # a private, contiguous copy to perturb
        if _backend.to_numpy(a).dtype.kind == "f"
        else _backend.asarray(a)
        for a in inputs
    ]
    float_args = [i for i, a in enumerate(args) if a.dtype.kind == "f"]
    params = list(f.named_parameters()) if check_params and hasattr(f, "named_parameters") else []

    def forward() -> Any:
        _backend.manual_seed(seed + 1)  # the same dropout mask on every call
        return f(*args)

    for _, p in params:  # contiguous, so that perturbing a flat view perturbs the parameter
        p.data = xp.ascontiguousarray(p.data)
    out = forward()
    if upstream is None:
        _backend.manual_seed(seed)
        g = _backend.asarray(_backend.host_rng().standard_normal(out.shape), "float64")
    else:
        g = _backend.asarray(upstream, "float64")

    def loss() -> float:
        return float(xp.sum(g * forward()))

    # analytic gradients. Each p.grad starts as a random array R, so a backward that
    # assigns instead of accumulating shows up: what it added is p.grad - R.
    _backend.manual_seed(seed + 2)
    before = {
        name: _backend.asarray(_backend.host_rng().standard_normal(p.shape), "float64")
        for name, p in params
    }
    for name, p in params:
        p.grad = before[name].copy()
    forward()
    g_sent = g.copy()
    dx = f.backward(g_sent)
    if not bool(xp.array_equal(g_sent, g)):
        raise ValueError(
            f"gradcheck: {_describe(f)}.backward modified its grad_out argument in place; "
            "compute into a new array instead (the caller may still need grad_out)"
        )
    dxs = list(dx) if isinstance(dx, (tuple, list)) else [dx]
    if len(dxs) != len(float_args):
        raise ValueError(
            f"gradcheck: backward returned {len(dxs)} gradient(s) for {len(float_args)} "
            "floating-point input(s); return one gradient per input (a tuple for several)"
        )
    analytic: list[tuple[str, Any, Any]] = []
    names = ["input"] if len(float_args) == 1 else [f"input[{i}]" for i in float_args]
    for name, i, d in zip(names, float_args, dxs):
        analytic.append((name, args[i], d))
    for name, p in params:
        added = p.grad - before[name]  # zero when backward forgot this parameter
        analytic.append((name, p.data, added))

    result = GradcheckResult(module=_describe(f), atol=atol, rtol=rtol, eps=eps)
    for name, v, a in analytic:
        if a is None or tuple(a.shape) != tuple(v.shape):
            raise ValueError(
                f"gradcheck: backward returned a gradient of shape "
                f"{None if a is None else tuple(a.shape)} for {name} of shape {tuple(v.shape)}"
            )
        num = _numeric(v, loss, eps)
        result.tensors.append(
            _compare(name, _backend.to_numpy(num), _backend.to_numpy(a), atol, rtol)
        )
    return result


def _numeric(v: Any, loss: Callable[[], float], eps: float) -> Any:
    """Central differences of ``loss`` for every element of ``v`` (perturbed in place)."""
    xp = _backend.get_backend().xp
    grad = xp.zeros(v.shape, dtype="float64")
    flat, gflat = v.reshape(-1), grad.reshape(-1)  # views: v is contiguous
    for i in range(flat.size):
        old = float(flat[i])
        flat[i] = old + eps
        up = loss()
        flat[i] = old - eps
        down = loss()
        flat[i] = old
        gflat[i] = (up - down) / (2 * eps)
    return grad


def _compare(name: str, num: Any, ana: Any, atol: float, rtol: float) -> TensorCheck:
    np = _backend.host_xp()  # num and ana are host arrays
    err = abs(num - ana)
    # written so that a NaN anywhere (numeric or analytic) counts as a failure
    bad = ~(err <= atol + rtol * abs(num)) | ~np.isfinite(ana) | ~np.isfinite(num)
    if num.size == 0:
        return TensorCheck(name, tuple(num.shape), 0.0, 0.0, None, 0.0, 0.0, True)
    # relative to the larger magnitude, floored at atol so that round-off on a true
    # zero does not read as "100% off"
    rel = err / np.maximum(np.maximum(abs(num), abs(ana)), max(atol, 1e-300))
    # where to point: the worst failing element, else the largest absolute error
    flat = int((err * bad).argmax()) if bad.any() else int(err.argmax())
    index = tuple(int(i) for i in _unravel(flat, num.shape))
    return TensorCheck(
        name=name,
        shape=tuple(num.shape),
        max_abs_error=float(err.max()),
        max_rel_error=float(rel.max()),
        worst_index=index,
        numeric=float(num.reshape(-1)[flat]),
        analytic=float(ana.reshape(-1)[flat]),
        ok=not bool(bad.any()),
        n_bad=int(bad.sum()),
    )


def _unravel(flat: int, shape: Sequence[int]) -> list[int]:
    index = []
    for s in reversed(shape):
        index.append(flat % s)
        flat //= s
    return list(reversed(index))


def _describe(f: Any) -> str:
    if hasattr(f, "_name"):
        return f._name()
    return type(f).__name__
