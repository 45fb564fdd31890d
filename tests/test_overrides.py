"""Every backend override keeps its promise: the reference's signature and its numbers.

The registry (``backend/dispatch.py``) lists, per backend, the functions that replace
a layer's reference function and what each promises: bit-identical results, or equal
to a rounding tolerance per dtype. Each *unit* below runs one layer step (a forward
and its backward, or a primitive such as im2col) on Hypothesis cases, once with the
references on NumPy and once with a backend's overrides on its own arrays, and
compares every output under the promise of the function that made it. A new
override without a unit here fails ``test_every_override_has_a_unit``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from strategies import ConvCase, conv_cases, normal, pool_cases, seeds

import minitorch_alexnet as mt
from minitorch_alexnet.backend import dispatch, half

# float16 runs in float32 inside the overrides (backend/half.py), rounded once at the end
dtypes = st.sampled_from(["float32", "float64", "float16"])
Outputs = dict[str, list[Any]]  # function name -> the arrays it returned


@dataclass(frozen=True)
class Unit:
    """One layer step: the overridable names it runs, its cases, and how to run a case.

    ``run(fn, dev, case)`` calls ``fn(name)`` for each function it needs, with inputs
    made by ``dev`` (host array -> the backend's array), and returns the outputs of
    each function by name.
    """

    names: tuple[str, ...]
    cases: st.SearchStrategy
    run: Callable[[Callable[[str], Callable], Callable[[Any], Any], Any], Outputs]


# dilation: (1, 1) runs the overrides' own kernels, the others their fallback to the
# reference; a case is kept only where the dilated window still fits the padded input
dilations = st.sampled_from([(1, 1), (1, 1), (2, 1), (1, 2), (2, 3)])


def _fits(c: ConvCase, d: tuple[int, int]) -> bool:
    return c.H + 2 * c.ph >= d[0] * (c.kh - 1) + 1 and c.W + 2 * c.pw >= d[1] * (c.kw - 1) + 1


def _conv(fn, dev, case) -> Outputs:
    c, seed, dtype, d = case
    x = dev(normal(seed, c.x_shape, dtype))
    w = dev(normal(seed + 1, (c.O, c.C // c.groups, c.kh, c.kw), dtype))
    b = dev(normal(seed + 2, (c.O,), dtype)) if c.bias else None
    y, ctx = fn("conv2d_forward")(x, w, b, c.stride, c.padding, c.groups, dilation=d)
    y_eval, none = fn("conv2d_forward")(x, w, b, c.stride, c.padding, c.groups, False, d)
    assert none is None
    dy = dev(normal(seed + 3, y.shape, dtype))
    dx, dw, db = fn("conv2d_backward")(dy, ctx, input_grad=True)
    _, ctx = fn("conv2d_forward")(x, w, b, c.stride, c.padding, c.groups, dilation=d)
    no_dx, dw2, db2 = fn("conv2d_backward")(dy, ctx, input_grad=False)
    assert no_dx is None and (db is None) == (db2 is None) == (not c.bias)
    outs = {"conv2d_forward": [y, y_eval], "conv2d_backward": [dx, dw, dw2]}
    outs["conv2d_backward"] += [db, db2] if c.bias else []
    return outs


# small convolutions, and 5x5 and 3x3 layers with 16 input channels (where the GPU
# backend switches to Winograd)
_winograd_sized = st.builds(
    lambda k, hw, N, O, pad: ConvCase(N=N, C=16, O=O, H=hw, W=hw, kh=k, kw=k, sh=1, sw=1,
                                      ph=pad, pw=pad),
    st.sampled_from([3, 5]), st.integers(5, 9), st.integers(1, 2), st.integers(1, 4),
    st.integers(0, 2),
)  # fmt: skip
CONV = Unit(
    ("conv2d_forward", "conv2d_backward"),
    st.tuples(st.one_of(conv_cases(), _winograd_sized), seeds, dtypes, dilations).filter(
        lambda t: _fits(t[0], t[3])
    ),
    _conv,
)


def _im2col(fn, dev, case) -> Outputs:
    c, seed, dtype, d = case
    window = (c.kernel, c.stride, c.padding, d)
    cols = fn("im2col")(dev(normal(seed, c.x_shape, dtype)), *window)
    g = dev(normal(seed + 1, cols.shape, dtype))
    return {"im2col": [cols], "col2im": [fn("col2im")(g, c.x_shape, *window)]}


IM2COL = Unit(
    ("im2col", "col2im"),
    st.tuples(conv_cases(), seeds, dtypes, dilations).filter(lambda t: _fits(t[0], t[3])),
    _im2col,
)


def _pool(fn, dev, case) -> Outputs:
    c, seed, dtype, ties, d, ceil_mode = case
    x = normal(seed, c.x_shape, dtype)
    if ties:  # many equal values, and -inf: windows of nothing but -inf and padding
        x = np.round(x)
        x[x < -0.5] = -np.inf
    x = dev(x)
    y, ctx = fn("maxpool2d_forward")(x, c.kernel, c.stride, c.padding, True, d, ceil_mode)
    y_eval, none = fn("maxpool2d_forward")(x, c.kernel, c.stride, c.padding, False, d, ceil_mode)
    assert none is None
    dx = fn("maxpool2d_backward")(dev(normal(seed + 1, y.shape, dtype)), ctx)
    return {"maxpool2d_forward": [y, y_eval], "maxpool2d_backward": [dx]}


POOL = Unit(
    ("maxpool2d_forward", "maxpool2d_backward"),
    st.tuples(pool_cases(), seeds, dtypes, st.booleans(), dilations, st.booleans()).filter(
        lambda t: _fits(t[0], t[4])
    ),
    _pool,
)


def _avgpool(fn, dev, case) -> Outputs:
    c, seed, dtype, ceil_mode, count_include_pad, divisor = case
    x, opts = dev(normal(seed, c.x_shape, dtype)), (ceil_mode, count_include_pad, divisor)
    y, ctx = fn("avgpool2d_forward")(x, c.kernel, c.stride, c.padding, *opts)
    y_eval, none = fn("avgpool2d_forward")(x, c.kernel, c.stride, c.padding, *opts, save=False)
    assert none is None
    dx = fn("avgpool2d_backward")(dev(normal(seed + 1, y.shape, dtype)), ctx)
    return {"avgpool2d_forward": [y, y_eval], "avgpool2d_backward": [dx]}


AVGPOOL = Unit(
    ("avgpool2d_forward", "avgpool2d_backward"),
    st.tuples(
        pool_cases(), seeds, dtypes, st.booleans(), st.booleans(), st.sampled_from([None, 3])
    ),
    _avgpool,
)

_adaptive_cases = st.tuples(
    st.tuples(st.integers(0, 2), st.integers(1, 3), st.integers(1, 9), st.integers(1, 9)),
    st.tuples(st.integers(1, 6), st.integers(1, 6)), seeds, dtypes,
)  # fmt: skip


def _adaptive(kind: str) -> Unit:
    def run(fn, dev, case) -> Outputs:
        shape, size, seed, dtype = case
        x = dev(normal(seed, shape, dtype))
        y, ctx = fn(f"adaptive_{kind}pool2d_forward")(x, size)
        y_eval, none = fn(f"adaptive_{kind}pool2d_forward")(x, size, save=False)
        assert none is None
        dy = dev(normal(seed + 1, (y[0] if kind == "max" else y).shape, dtype))
        dx = fn(f"adaptive_{kind}pool2d_backward")(dy, ctx)
        ys = [*y, *y_eval] if kind == "max" else [y, y_eval]
        return {f"adaptive_{kind}pool2d_forward": ys, f"adaptive_{kind}pool2d_backward": [dx]}

    names = (f"adaptive_{kind}pool2d_forward", f"adaptive_{kind}pool2d_backward")
    return Unit(names, _adaptive_cases, run)


ADAPTIVE_AVG, ADAPTIVE_MAX = _adaptive("avg"), _adaptive("max")

_bn_shapes = st.one_of(
    st.tuples(st.integers(2, 5), st.integers(1, 6)),  # BatchNorm1d: (N, C)
    st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(1, 5), st.integers(1, 5)),
).filter(lambda s: np.prod(s) // s[1] >= 2)


def _batchnorm(fn, dev, case) -> Outputs:
    shape, seed, dtype, affine, tracked, training = case
    C = shape[1]
    x = dev(normal(seed, shape, dtype) * 3 + 1)
    gamma = dev(normal(seed + 1, (C,), dtype)) if affine else None
    beta = dev(normal(seed + 2, (C,), dtype)) if affine else None
    mean = dev(normal(seed + 3, (C,), dtype)) if tracked else None
    var = dev(np.abs(normal(seed + 4, (C,), dtype)) + 0.5) if tracked else None
    batch_stats = training or not tracked
    y, ctx = fn("batchnorm_forward")(x, gamma, beta, mean, var, batch_stats, 0.1, 1e-5)
    dy = dev(normal(seed + 5, shape, dtype))
    dx, dgamma, dbeta = fn("batchnorm_backward")(dy, ctx)
    assert (dgamma is None) == (dbeta is None) == (not affine)
    running = [mean, var] if tracked else []  # updated in place in training
    grads = [dgamma, dbeta] if affine else []
    return {"batchnorm_forward": [y, *running], "batchnorm_backward": [dx, *grads]}


BATCHNORM = Unit(
    ("batchnorm_forward", "batchnorm_backward"),
    st.tuples(_bn_shapes, seeds, dtypes, st.booleans(), st.booleans(), st.booleans()),
    _batchnorm,
)


def _relu(fn, dev, case) -> Outputs:
    shape, seed, dtype = case
    x = normal(seed, shape, dtype)
    x.flat[0] = np.nan  # max(NaN, 0) is NaN, and NaN > 0 is False
    y, mask = fn("relu_forward")(dev(x))
    y_eval, none = fn("relu_forward")(dev(x), save=False)
    assert none is None and mask.dtype == np.bool_
    dx = fn("relu_backward")(dev(normal(seed + 1, shape, dtype)), mask)
    return {"relu_forward": [y, y_eval, mask], "relu_backward": [dx]}


RELU = Unit(
    ("relu_forward", "relu_backward"),
    st.tuples(st.lists(st.integers(1, 5), min_size=1, max_size=4).map(tuple), seeds, dtypes),
    _relu,
)


def _linear(fn, dev, case) -> Outputs:
    (N, fin, fout), seed, dtype, bias = case
    x, w = dev(normal(seed, (N, fin), dtype)), dev(normal(seed + 1, (fout, fin), dtype))
    b = dev(normal(seed + 2, (fout,), dtype)) if bias else None
    y, ctx = fn("linear_forward")(x, w, b)
    dx, dw, db = fn("linear_backward")(dev(normal(seed + 3, (N, fout), dtype)), ctx)
    assert (db is None) == (not bias)
    return {"linear_forward": [y], "linear_backward": [dx, dw] + ([db] if bias else [])}


LINEAR = Unit(
    ("linear_forward", "linear_backward"),
    st.tuples(st.tuples(*[st.integers(1, 9)] * 3), seeds, dtypes, st.booleans()),
    _linear,
)


def _sgd(fn, dev, case) -> Outputs:
    seed, dtype, momentum, nesterov, weight_decay, first = case
    p, g = dev(normal(seed, (7, 5), dtype)), dev(normal(seed + 1, (7, 5), dtype))
    buf = dev(normal(seed + 2, (7, 5), dtype)) if momentum else None
    nesterov = nesterov and momentum > 0
    fn("sgd_step")(p, g, buf, first, 0.1, momentum, 0.0, nesterov, weight_decay)
    return {"sgd_step": [p] + ([buf] if momentum else [])}


SGD = Unit(
    ("sgd_step",),
    st.tuples(
        seeds, dtypes, st.sampled_from([0.0, 0.9]), st.booleans(), st.sampled_from([0.0, 5e-4]),
        st.booleans(),
    ),
    _sgd,
)  # fmt: skip

UNITS = [CONV, IM2COL, POOL, BATCHNORM, RELU, LINEAR, SGD, AVGPOOL, ADAPTIVE_AVG, ADAPTIVE_MAX]
OVERRIDING = [  # the backends that override something, loaded where they can run
    pytest.param("numba", id="numba"),
    pytest.param("cupy", id="cupy", marks=[pytest.mark.gpu]),
]


def _backend_or_skip(name: str) -> mt.Backend:
    if name not in mt.available_backends():
        pytest.skip(f"backend {name!r} cannot run here")
    return mt.get_backend(name)


def _host(a: Any) -> Any:
    return None if a is None else mt.to_numpy(a)


def _compare(backend: str, unit: Unit, case: Any) -> None:
    """Run ``case`` by the references on NumPy and by ``backend``; hold each output to
    the promise of the function that made it."""
    with mt.use_backend("numpy"):
        want = unit.run(dispatch.reference, mt.asarray, case)
    overrides = mt.get_backend(backend).overrides
    with mt.use_backend(backend):
        got = unit.run(lambda n: overrides[n].fn if n in overrides else dispatch.reference(n),
                       mt.asarray, case)  # fmt: skip
    for name in unit.names:
        promise = overrides[name].promise if name in overrides else dispatch.EXACT
        assert len(got[name]) == len(want[name]), name
        for k, (g, w) in enumerate(zip(got[name], want[name])):
            g, w = _host(g), _host(w)
            assert g.shape == w.shape and g.dtype == w.dtype, (name, k, g.shape, w.shape)
            if w.dtype.kind not in "fc" or (promise.exact and w.dtype != np.float16):
                np.testing.assert_array_equal(g, w, err_msg=f"{backend} {name}, output {k}")
            else:  # float16: the reference rounds every step, the override once (half.py)
                rtol, atol = {**promise.tolerance, **half.TOLERANCE}[str(w.dtype)]
                scale = float(np.nanmax(np.abs(w[np.isfinite(w)]), initial=1.0))
                np.testing.assert_allclose(g, w, rtol=rtol, atol=atol * scale,
                                           err_msg=f"{backend} {name}, output {k}")  # fmt: skip


@pytest.mark.parametrize("unit", UNITS, ids=lambda u: u.names[0].removesuffix("_forward"))
@pytest.mark.parametrize("backend", OVERRIDING)
def test_override_gives_the_reference_numbers(backend, unit):
    B = _backend_or_skip(backend)
    if not any(n in B.overrides for n in unit.names):
        pytest.skip(f"{backend} overrides none of {unit.names}")

    @given(case=unit.cases)
    def check(case):
        _compare(backend, unit, case)

    check()


@pytest.mark.parametrize("backend", OVERRIDING)
def test_every_override_has_the_reference_signature(backend):
    B = _backend_or_skip(backend)
    assert B.overrides, f"{backend} registers no override"
    for name, override in B.overrides.items():
        want = inspect.signature(dispatch.reference(name))
        got = inspect.signature(override.fn)
        assert list(got.parameters) == list(want.parameters), (name, got, want)
        for p, q in zip(got.parameters.values(), want.parameters.values()):
            assert (p.kind, p.default) == (q.kind, q.default), (name, p, q)


@pytest.mark.parametrize("backend", OVERRIDING)
def test_every_override_has_a_unit_and_pairs_stay_together(backend):
    B = _backend_or_skip(backend)
    covered = {n for u in UNITS for n in u.names}
    assert set(B.overrides) <= covered, f"no unit runs {sorted(set(B.overrides) - covered)}"
    for unit in UNITS:  # a forward and its backward share a context: both or neither
        if "_forward" in unit.names[0]:
            overridden = [n in B.overrides for n in unit.names]
            assert all(overridden) or not any(overridden), (backend, unit.names)


def _empty_batch(**window) -> ConvCase:
    return ConvCase(N=0, H=5, W=5, sh=1, sw=1, ph=1, pw=1, **window)


# an empty batch (N = 0) through the units that take one (BatchNorm's layer answers an
# empty batch itself, without its functions); the second convolution is Winograd-sized
EMPTY_BATCH = [
    (CONV, (_empty_batch(C=4, O=2, kh=3, kw=3, groups=2), 0, "float32", (1, 1))),
    (CONV, (_empty_batch(C=16, O=2, kh=3, kw=3), 0, "float64", (1, 1))),
    (IM2COL, (_empty_batch(C=2, O=2, kh=2, kw=3), 0, "float32", (1, 1))),
    (POOL, (_empty_batch(C=2, O=2, kh=3, kw=3), 0, "float16", False, (1, 1), False)),
    (LINEAR, ((0, 3, 2), 0, "float32", True)),
]


@pytest.mark.parametrize("unit, case", EMPTY_BATCH, ids=lambda v: getattr(v, "names", [""])[0])
@pytest.mark.parametrize("backend", OVERRIDING)
def test_overrides_take_an_empty_batch(backend, unit, case):
    B = _backend_or_skip(backend)
    if not any(n in B.overrides for n in unit.names):
        pytest.skip(f"{backend} overrides none of {unit.names}")
    _compare(backend, unit, case)


def test_every_reference_has_a_unit():
    covered = {n for u in UNITS for n in u.names}
    assert set(dispatch.references()) == covered


def test_which_names_the_layer_file_on_numpy_and_the_backend_elsewhere():
    for name in dispatch.references():
        where = mt.backend.which(name, "numpy")
        assert where.path.startswith("minitorch_alexnet/nn/") or where.path.endswith("sgd.py")
        source = open(mt.backend._ROOT / where.path, encoding="utf-8").read().splitlines()
        assert source[where.line - 1].lstrip().startswith(f"def {name}("), (name, where)
    for backend in ("numba", "cupy"):
        if backend not in mt.available_backends():
            continue
        for name in mt.get_backend(backend).overrides:
            where = mt.backend.which(name, backend)
            assert where.path.startswith("minitorch_alexnet/backend/"), (backend, name, where)
    with mt.use_backend("numba"):  # the active backend by default
        assert mt.backend.which("conv2d_forward") == mt.backend.which("conv2d_forward", "numba")
        assert "backend/numba/conv.py" in str(mt.backend.which("conv2d_forward"))
    with pytest.raises(KeyError, match="not an overridable function"):
        mt.backend.which("conv2d")


def test_a_registered_override_runs_and_which_finds_it(monkeypatch):
    """A backend's override replaces the reference for that backend only."""
    from minitorch_alexnet.nn.activation import relu_forward

    calls = []

    def relu_forward_traced(x, save=True):
        calls.append(x.shape)
        return dispatch.reference("relu_forward")(x, save)

    monkeypatch.setitem(dispatch._overrides, "numpy", {})
    monkeypatch.setitem(dispatch._functions, "numpy", {})
    with mt.use_backend("numpy"):
        dispatch.register("numpy", "relu_forward", relu_forward_traced)
        y, _ = relu_forward(np.array([-1.0, 2.0]))
        assert calls == [(2,)] and y.tolist() == [0.0, 2.0]
        assert mt.backend.which("relu_forward").function.endswith("relu_forward_traced")
    with mt.use_backend("numba"):
        relu_forward(np.array([1.0]))
    assert calls == [(2,)]
    with pytest.raises(KeyError, match="not an overridable function"):
        dispatch.register("numpy", "relu_fwd", relu_forward_traced)


def _ast_signature(path, name):
    """(names, kinds, defaults) of top-level ``def name`` in ``path``, read without
    importing it (a backend's modules import their package: CuPy needs a GPU)."""
    import ast

    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            a = node.args
            kinds = ["POSITIONAL_ONLY"] * len(a.posonlyargs)
            kinds += ["POSITIONAL_OR_KEYWORD"] * len(a.args)
            kinds += ["KEYWORD_ONLY"] * len(a.kwonlyargs)
            names = [x.arg for x in a.posonlyargs + a.args + a.kwonlyargs]
            positional = a.posonlyargs + a.args
            defaults = [inspect.Parameter.empty] * (len(positional) - len(a.defaults))
            defaults += [ast.literal_eval(d) for d in a.defaults]
            defaults += [
                inspect.Parameter.empty if d is None else ast.literal_eval(d) for d in a.kw_defaults
            ]
            return names, kinds, defaults
    return None


@pytest.mark.parametrize("package", ["numba", "cuda"])
def test_every_override_has_the_reference_signature_read_from_its_source(package):
    """The same check as above from the source text, so that the CUDA overrides are
    checked on a machine without a GPU too."""
    import importlib
    from pathlib import Path

    pkg = importlib.import_module(f"minitorch_alexnet.backend.{package}")
    folder = Path(pkg.__file__).parent
    assert pkg.OVERRIDES
    for name, (module, _) in pkg.OVERRIDES.items():
        found = _ast_signature(folder / f"{module}.py", name)
        assert found is not None, f"backend/{package}/{module}.py defines no {name}"
        want = inspect.signature(dispatch.reference(name)).parameters.values()
        assert found == (
            [p.name for p in want],
            [p.kind.name for p in want],
            [p.default for p in want],
        ), f"backend/{package}/{module}.py::{name} differs from the reference's signature"
