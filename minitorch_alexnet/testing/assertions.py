"""The assertions a grading test calls, with failure messages a student can act on.

* :func:`assert_gradcheck`: the layer's backward against central finite differences;
* :func:`assert_matches_reference`: forward output, input gradient, parameter
  gradients and buffers against a reference layer with the same parameters.

Both name the tensor, the index, the two values, the layer's configuration and the
input shapes; a layer may be given as itself, or as a class or function that builds
one (:func:`~minitorch_alexnet.gradcheck.build_layer`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .. import backend as _backend
from ..gradcheck import GradcheckResult, LayerBuildError, TensorCheck, build_layer, gradcheck

__all__ = ["ReferenceCheck", "assert_gradcheck", "assert_matches_reference"]


def _layer(layer_or_factory: Any, who: str, copy: bool = False) -> Any:
    """:func:`~minitorch_alexnet.gradcheck.build_layer`, with a factory that raised
    reported as a failed assertion (the student's constructor is at fault) and
    anything else that is not a layer as a TypeError (the test is)."""
    __tracebackhide__ = True  # pytest: show the test's line, not this helper's
    try:
        return build_layer(layer_or_factory, copy=copy)
    except LayerBuildError as e:
        if e.__cause__ is not None:
            raise AssertionError(f"{who}: {e}") from e.__cause__
        raise LayerBuildError(f"{who}: {e}") from None


def _describe(layer: Any) -> str:
    name = layer._name() if hasattr(layer, "_name") else type(layer).__name__
    if getattr(layer, "training", True) is False:
        name += " [eval mode]"
    return name


def _context(layer: Any, inputs: Sequence[Any], config: Any) -> list[str]:
    shapes = ", ".join(str(tuple(_backend.to_numpy(a).shape)) for a in inputs)
    lines = [f"  layer:        {_describe(layer)}", f"  input shapes: {shapes}"]
    if config is not None:
        lines.append(f"  config:       {config!r}")
    return lines


def _hint(t: TensorCheck, atol: float) -> str:
    """A sentence about the worst element that often points at the bug."""
    num, ana = t.numeric, t.analytic
    if abs(num) > atol and abs(ana) <= atol:
        return (
            f"{t.name}: the analytic gradient is 0 where the numeric one is {num:+.3e}; "
            "is a term (or a whole .grad accumulation) missing?"
        )
    if abs(num) <= atol < abs(ana):
        return (
            f"{t.name}: the numeric gradient is 0 there but backward gives {ana:+.3e}; "
            "the gradient reaches an element that does not affect the output."
        )
    if abs(num) > atol:
        ratio = ana / num
        if abs(ratio + 1) < 1e-3:
            return f"{t.name}: analytic = -numeric there: a sign is flipped."
        for r, what in ((ratio, f"{round(ratio)} times"), (1 / ratio, f"1/{round(1 / ratio)} of")):
            if 2 <= abs(r) <= 10000 and abs(r - round(r)) < 1e-3 * abs(r):
                return (
                    f"{t.name}: the analytic gradient is {what} the numeric one there: a "
                    "missing or extra constant factor (a 1/N of a mean, a window size, ...)?"
                )
        return f"{t.name}: analytic / numeric = {ratio:.4g} there."
    return ""


def assert_gradcheck(
    layer_or_factory: Any,
    *inputs: Any,
    eps: float = 1e-6,
    atol: float = 1e-5,
    rtol: float = 1e-3,
    seed: int = 0,
    check_params: bool = True,
    upstream: Any = None,
    config: Any = None,
) -> GradcheckResult:
    """Assert that a layer's backward agrees with central finite differences.

    Args:
        layer_or_factory: a layer, or a class or function that builds one with no
            arguments. It is deep-copied and run in float64; the original is untouched.
        *inputs: the forward pass's arguments (float arrays are checked; integer
            arrays such as class targets are passed through).
        eps, atol, rtol, seed, check_params, upstream: as in
            :func:`minitorch_alexnet.gradcheck`.
        config: anything describing the configuration under test (a
            :class:`ConvConfig`, a dict, ...); its repr goes into the failure message.

    Returns:
        The :class:`~minitorch_alexnet.gradcheck.GradcheckResult` when every tensor passes.

    Raises:
        AssertionError: a gradient is wrong, or forward/backward raised. The message
            has the layer, its input shapes, ``config``, and for each failing tensor
            the worst index with its numeric and analytic values.
    """
    # pytest leaves frames with this local out of a failure's traceback: the student
    # sees the line of their test that failed and the message, not this function
    __tracebackhide__ = True
    layer = _layer(layer_or_factory, "assert_gradcheck")
    try:
        result = gradcheck(
            layer,
            *inputs,
            eps=eps,
            atol=atol,
            rtol=rtol,
            seed=seed,
            check_params=check_params,
            upstream=upstream,
        )
    except Exception as e:
        lines = [f"gradcheck could not run {type(layer).__name__}: {type(e).__name__}: {e}"]
        raise AssertionError("\n".join(lines + _context(layer, inputs, config))) from e
    if result.ok:
        return result
    bad = [t for t in result.tensors if not t.ok]
    lines = [
        f"gradcheck failed for {type(layer).__name__}: wrong gradient for "
        + ", ".join(t.name for t in bad),
        *_context(layer, inputs, config),
    ]
    for t in bad:
        where = "" if t.worst_index is None else f"{t.name}{list(t.worst_index)}"
        lines.append(
            f"  {t.name}: worst at {where}: numeric {t.numeric:+.6e} vs analytic "
            f"{t.analytic:+.6e} ({t.n_bad} of {math.prod(t.shape)} elements out of tolerance)"
        )
    hints = [h for h in (_hint(t, atol) for t in bad) if h]
    lines += ["", result.report()]
    if hints:
        lines += ["", "Hints:", *(f"  {h}" for h in hints)]
    raise AssertionError("\n".join(lines))


# ---------------------------------------------------------------- against a reference
@dataclass
class ReferenceCheck:
    """One tensor compared between a student's layer and the reference layer."""

    name: str
    shape: tuple[int, ...]
    max_abs_error: float
    worst_index: tuple[int, ...] | None
    student: float
    reference: float
    ok: bool
    n_bad: int = 0
    note: str = ""

    def line(self) -> str:
        status = "ok  " if self.ok else "FAIL"
        if self.note:
            return f"  {status} {self.name:<22} shape {str(self.shape):<16} {self.note}"
        where = "" if self.worst_index is None else f" at {list(self.worst_index)}"
        text = (
            f"  {status} {self.name:<22} shape {str(self.shape):<16} max abs err "
            f"{self.max_abs_error:.3e}{where}: student {self.student:+.8e} vs reference "
            f"{self.reference:+.8e}"
        )
        if self.n_bad:
            text += f"  ({self.n_bad} of {math.prod(self.shape)} elements differ)"
        return text


def _compare(name: str, student: Any, reference: Any, atol: float, rtol: float) -> ReferenceCheck:
    np = _backend.host_xp()
    s = np.asarray(_backend.to_numpy(student), dtype="float64")
    r = np.asarray(_backend.to_numpy(reference), dtype="float64")
    if s.shape != r.shape:
        note = f"the student's has shape {s.shape}"
        return ReferenceCheck(
            name, tuple(r.shape), math.inf, None, math.nan, math.nan, False, 0, note
        )
    if r.size == 0:
        return ReferenceCheck(name, tuple(r.shape), 0.0, None, 0.0, 0.0, True)
    with np.errstate(invalid="ignore"):
        err = np.abs(s - r)
        bad = ~(err <= atol + rtol * np.abs(r))  # NaN counts as bad
    flat = int(np.argmax(np.where(bad, np.nan_to_num(err, nan=np.inf), -1.0)))
    if not bad.any():
        flat = int(np.argmax(err))
    index = tuple(int(i) for i in np.unravel_index(flat, r.shape))
    return ReferenceCheck(
        name=name,
        shape=tuple(r.shape),
        max_abs_error=float(np.nan_to_num(err, nan=np.inf).max()),
        worst_index=index,
        student=float(s.reshape(-1)[flat]),
        reference=float(r.reshape(-1)[flat]),
        ok=not bool(bad.any()),
        n_bad=int(bad.sum()),
    )


def _prepare(layer_or_factory: Any, who: str) -> Any:
    """A private float64 copy of the layer, with no cache."""
    layer = _layer(layer_or_factory, who, copy=True)
    if hasattr(layer, "double"):
        layer.double()
    if hasattr(layer, "clear_cache"):
        layer.clear_cache()
    return layer


def _device_args(inputs: Sequence[Any]) -> list[Any]:
    """Private float64 copies of the float inputs on the active backend; the rest as they are."""
    xp = _backend.get_backend().xp
    return [
        xp.array(_backend.asarray(a, "float64"))
        if _backend.to_numpy(a).dtype.kind == "f"
        else _backend.asarray(a)
        for a in inputs
    ]


def assert_matches_reference(
    student: Any,
    reference: Any,
    *inputs: Any,
    atol: float = 1e-7,
    rtol: float = 1e-6,
    seed: int = 0,
    upstream: Any = None,
    copy_state: bool = True,
    check_backward: bool = True,
    check_params: bool = True,
    check_buffers: bool = True,
    config: Any = None,
) -> list[ReferenceCheck]:
    """Assert that a student's layer computes what a reference layer computes.

    Both layers are deep-copied and run in float64 on the same inputs, in the
    reference's mode (train or eval), with the generator re-seeded before each
    forward (so Dropout draws the same mask). Compared, each element within
    ``atol + rtol * |reference|``:

    1. the forward output;
    2. the gradient backward returns for each float input, for one random upstream
       gradient (or ``upstream``);
    3. every parameter's accumulated ``.grad``, by name;
    4. every float buffer after the forward pass (BatchNorm's running statistics).

    Args:
        student, reference: layers, or classes/functions that build one with no arguments.
        *inputs: the forward pass's arguments (host or backend arrays).
        atol, rtol: the tolerance.
        seed: seeds the random upstream gradient and the generator before forward.
        upstream: a fixed upstream gradient (default: standard normal of the output's shape).
        copy_state: first copy the reference's parameters and buffers into the student
            (their names and shapes must agree), so both start from the same numbers.
        check_backward, check_params, check_buffers: which comparisons to make.
        config: anything describing the configuration; its repr goes into the message.

    Returns:
        The list of :class:`ReferenceCheck` (all passed).

    Raises:
        AssertionError: something differs or the student's layer raised. The message
            names each tensor with its worst index and both values, the reference's
            configuration, the input shapes and ``config``.
    """
    __tracebackhide__ = True  # as in assert_gradcheck: the failure shows the test's line
    np = _backend.host_xp()
    stu = _prepare(student, "assert_matches_reference (student)")
    ref = _prepare(reference, "assert_matches_reference (reference)")
    sname = type(stu).__name__
    context = _context(ref, inputs, config)

    def fail(lines: list[str], cause: BaseException | None = None) -> None:
        __tracebackhide__ = True
        raise AssertionError("\n".join(lines[:1] + context + lines[1:])) from cause

    if copy_state and hasattr(ref, "state_dict"):
        try:
            stu.load_state_dict(ref.state_dict())
        except Exception as e:
            fail(
                [
                    f"student {sname}'s parameters and buffers do not match the reference's "
                    f"({', '.join(ref.state_dict())}): {e}"
                ],
                e,
            )
    if hasattr(stu, "train"):
        stu.train(getattr(ref, "training", True))

    def run(what: str, fn: Callable[[], Any]) -> Any:
        __tracebackhide__ = True
        try:
            return fn()
        except Exception as e:
            fail([f"student {sname}.{what} raised {type(e).__name__}: {e}"], e)

    ref_args, stu_args = _device_args(inputs), _device_args(inputs)
    _backend.manual_seed(seed + 1)
    ref_out = ref(*ref_args)
    _backend.manual_seed(seed + 1)
    stu_out = run("forward", lambda: stu(*stu_args))
    checks = [_compare("output", stu_out, ref_out, atol, rtol)]
    if tuple(_backend.to_numpy(stu_out).shape) != tuple(_backend.to_numpy(ref_out).shape):
        fail(
            [
                f"student {sname}.forward returned shape "
                f"{tuple(_backend.to_numpy(stu_out).shape)}, the reference "
                f"{tuple(_backend.to_numpy(ref_out).shape)}"
            ]
        )

    if check_backward:
        if upstream is None:
            g_host = np.random.default_rng(seed).standard_normal(_backend.to_numpy(ref_out).shape)
        else:
            g_host = _backend.to_numpy(upstream)
        ref_dx = ref.backward(_backend.asarray(g_host, "float64"))
        stu_dx = run("backward", lambda: stu.backward(_backend.asarray(g_host, "float64")))
        floats = [i for i, a in enumerate(ref_args) if a.dtype.kind == "f"]
        ref_dxs = ref_dx if isinstance(ref_dx, (tuple, list)) else [ref_dx]
        stu_dxs = stu_dx if isinstance(stu_dx, (tuple, list)) else [stu_dx]
        for k, i in enumerate(floats[: len(ref_dxs)]):
            name = "input grad" if len(floats) == 1 else f"input[{i}] grad"
            if k >= len(stu_dxs) or stu_dxs[k] is None:
                fail([f"student {sname}.backward returned no gradient for {name}"])
            checks.append(_compare(name, stu_dxs[k], ref_dxs[k], atol, rtol))
        if check_params and hasattr(ref, "named_parameters"):
            stu_params = dict(stu.named_parameters()) if hasattr(stu, "named_parameters") else {}
            for name, p in ref.named_parameters():
                sp = stu_params.get(name)
                if sp is None or sp.grad is None:
                    why = (
                        f"the student's layer has no parameter {name!r}"
                        if sp is None
                        else "is None: backward never accumulated it (accumulate_grad)"
                    )
                    shape = tuple(p.data.shape)
                    checks.append(
                        ReferenceCheck(f"{name}.grad", shape, math.inf, None, 0, 0, False, 0, why)
                    )
                    continue
                checks.append(_compare(f"{name}.grad", sp.grad, p.grad, atol, rtol))

    if check_buffers and hasattr(ref, "named_buffers"):
        stu_buffers = dict(stu.named_buffers()) if hasattr(stu, "named_buffers") else {}
        for name, b in ref.named_buffers():
            if _backend.to_numpy(b).dtype.kind != "f":
                continue
            if name not in stu_buffers:
                fail([f"student {sname} has no buffer {name!r}"])
            checks.append(_compare(name, stu_buffers[name], b, atol, rtol))

    bad = [c for c in checks if not c.ok]
    if bad:
        lines = [
            f"student {sname} does not match the reference {type(ref).__name__}: "
            + ", ".join(c.name for c in bad)
            + f" (|student - reference| <= {atol:g} + {rtol:g} * |reference|)"
        ]
        lines += [c.line() for c in checks]
        fail(lines)
    return checks
