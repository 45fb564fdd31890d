"""The assignment kit: what a grading test calls to check a layer written by a student.

Three kinds of tools:

* **Test arrays** (plain functions, no Hypothesis needed): :func:`normal`,
  :func:`tie_free` (distinct values, none near 0: no ties for max-pooling and no
  input on a kink such as ReLU's) and :func:`away_from_zero`.
* **Hypothesis strategies** for layer configurations and inputs:
  :func:`conv_configs`, :func:`pool_configs`, :func:`batch_shapes`, :func:`seeds`,
  :func:`tie_free_arrays`, :func:`normal_arrays`, and :func:`layer_cases`, which
  generates complete checks (a layer and its inputs) for every built-in layer.
  Hypothesis is a test-time dependency: it is imported when a strategy is first
  built, and a missing Hypothesis raises an ``ImportError`` that says how to install it.
* **Assertions** with failure messages a student can act on:
  :func:`assert_gradcheck` (backward against finite differences) and
  :func:`assert_matches_reference` (forward output, input gradient, parameter
  gradients and buffers against a reference layer with the same parameters).
  Both name the tensor, the index, the two values, the layer's configuration and
  the input shapes.

A grading test, for example::

    from hypothesis import given
    from minitorch_alexnet import nn
    from minitorch_alexnet.testing import assert_matches_reference, batch_shapes, normal, seeds

    from student_batchnorm import BatchNorm2d

    @given(shape=batch_shapes(4, min_batch=2), seed=seeds())
    def test_matches_reference(shape, seed):
        C = shape[1]
        assert_matches_reference(BatchNorm2d(C), nn.BatchNorm2d(C), normal(seed, shape))
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import backend as _backend
from .gradcheck import GradcheckResult, TensorCheck, gradcheck

if TYPE_CHECKING:  # pragma: no cover - annotations only
    import numpy
    from hypothesis.strategies import SearchStrategy

__all__ = [
    "BUILTIN_LAYERS",
    "INSTALL_HINT",
    "ConvConfig",
    "LayerCase",
    "ReferenceCheck",
    "assert_gradcheck",
    "assert_matches_reference",
    "away_from_zero",
    "batch_shapes",
    "conv_configs",
    "layer_cases",
    "normal",
    "normal_arrays",
    "pool_configs",
    "seeds",
    "tie_free",
    "tie_free_arrays",
]

INSTALL_HINT = 'pip install "minitorch-alexnet[test]"'

#: The layers :func:`layer_cases` (and ``python -m minitorch_alexnet gradcheck``) know.
BUILTIN_LAYERS = (
    "Conv2d",
    "MaxPool2d",
    "ReLU",
    "BatchNorm2d",
    "BatchNorm1d",
    "Linear",
    "Flatten",
    "Dropout",
    "LocalResponseNorm",
    "CrossEntropyLoss",
)


def _hypothesis() -> tuple[Any, Any]:
    """``(hypothesis, hypothesis.strategies)``, or an ImportError that says what to install."""
    try:
        import hypothesis
        from hypothesis import strategies
    except ImportError as e:
        raise ImportError(
            "minitorch_alexnet.testing's strategies need Hypothesis, which is not importable "
            f"({e}). Install the test extra: {INSTALL_HINT}"
        ) from None
    return hypothesis, strategies


# ---------------------------------------------------------------- test arrays
def normal(seed: int, shape: Sequence[int], dtype: str = "float64") -> numpy.ndarray:
    """Standard normal samples of ``shape`` from ``seed`` (a host NumPy array)."""
    np = _backend.host_xp()
    return np.random.default_rng(seed).standard_normal(tuple(shape)).astype(dtype)


def tie_free(seed: int, shape: Sequence[int], gap: float = 1e-2) -> numpy.ndarray:
    """Distinct values of ``shape``, any two at least ``gap`` apart and none closer than
    ``gap / 2`` to zero, in a random order (float64).

    With a finite-difference step far below ``gap`` (gradcheck's 1e-6 against 1e-2),
    a nudge never changes which element wins a max-pooling window, and never moves an
    input across a kink at 0 (ReLU, LeakyReLU). The values are ``(k + 1/2) * gap`` for
    the integers ``k`` in ``[-n/2, n/2)``, so they lie within ``n * gap / 2`` of zero.
    """
    np = _backend.host_xp()
    n = math.prod(shape)
    k = np.random.default_rng(seed).permutation(n) - n // 2
    return ((k + 0.5) * gap).reshape(tuple(shape)).astype("float64")


def away_from_zero(seed: int, shape: Sequence[int], margin: float = 1e-3) -> numpy.ndarray:
    """Normal samples pushed at least ``margin`` away from 0 (ReLU's kink), float64."""
    np = _backend.host_xp()
    x = normal(seed, shape)
    return np.where(x >= 0, x + margin, x - margin)


# ---------------------------------------------------------------- configurations
@dataclass(frozen=True)
class ConvConfig:
    """One convolution or pooling configuration and the input it runs on.

    Attributes:
        N, C, H, W: the input's shape (N, C, H, W).
        O: output channels (equal to C for pooling).
        kh, kw: kernel size; sh, sw: stride; ph, pw: padding.
        groups: convolution groups (C and O are multiples of it).
        bias: whether the convolution has a bias.
    """

    N: int
    C: int
    O: int
    H: int
    W: int
    kh: int
    kw: int
    sh: int
    sw: int
    ph: int
    pw: int
    groups: int = 1
    bias: bool = True

    @property
    def kernel(self) -> tuple[int, int]:
        return (self.kh, self.kw)

    @property
    def stride(self) -> tuple[int, int]:
        return (self.sh, self.sw)

    @property
    def padding(self) -> tuple[int, int]:
        return (self.ph, self.pw)

    @property
    def window(self) -> tuple[int, int, int, int, int, int]:
        """``(kh, kw, sh, sw, ph, pw)``: the arguments of the im2col and pooling kernels."""
        return (self.kh, self.kw, self.sh, self.sw, self.ph, self.pw)

    @property
    def x_shape(self) -> tuple[int, int, int, int]:
        """The input's shape (N, C, H, W)."""
        return (self.N, self.C, self.H, self.W)

    @property
    def out_hw(self) -> tuple[int, int]:
        """(Ho, Wo) = floor((H + 2P - K) / S) + 1 for each side."""
        return (
            (self.H + 2 * self.ph - self.kh) // self.sh + 1,
            (self.W + 2 * self.pw - self.kw) // self.sw + 1,
        )

    def conv2d(self) -> Any:
        """A :class:`~minitorch_alexnet.nn.Conv2d` (C -> O) with this configuration."""
        from . import nn

        return nn.Conv2d(
            self.C, self.O, self.kernel, self.stride, self.padding, self.groups, self.bias
        )

    def maxpool2d(self) -> Any:
        """A :class:`~minitorch_alexnet.nn.MaxPool2d` with this window."""
        from . import nn

        return nn.MaxPool2d(self.kernel, self.stride, self.padding)


def seeds() -> SearchStrategy[int]:
    """Seeds for :func:`normal` and :func:`tie_free`: integers in ``[0, 2**32)``."""
    _, st = _hypothesis()
    return st.integers(0, 2**32 - 1)


def conv_configs(
    max_hw: int = 9,
    max_k: int = 4,
    max_channels: int = 3,
    max_batch: int = 3,
    max_stride: int = 3,
    max_padding: int = 2,
    groups: Sequence[int] = (1, 1, 2),
) -> SearchStrategy[ConvConfig]:
    """Convolution configurations whose kernel fits the padded input.

    Channels are ``groups * k`` for ``k`` in ``[1, max_channels]``; the input side
    is at least ``kernel - 2 * padding`` so at least one output position exists.
    """
    _, st = _hypothesis()

    @st.composite
    def build(draw: Any) -> ConvConfig:
        g = draw(st.sampled_from(list(groups)))
        C = g * draw(st.integers(1, max_channels))
        O = g * draw(st.integers(1, max_channels))
        kh, kw = draw(st.integers(1, max_k)), draw(st.integers(1, max_k))
        ph, pw = draw(st.integers(0, max_padding)), draw(st.integers(0, max_padding))
        H = draw(st.integers(max(1, kh - 2 * ph), max(max_hw, kh - 2 * ph)))
        W = draw(st.integers(max(1, kw - 2 * pw), max(max_hw, kw - 2 * pw)))
        return ConvConfig(
            N=draw(st.integers(1, max_batch)),
            C=C,
            O=O,
            H=H,
            W=W,
            kh=kh,
            kw=kw,
            sh=draw(st.integers(1, max_stride)),
            sw=draw(st.integers(1, max_stride)),
            ph=ph,
            pw=pw,
            groups=g,
            bias=draw(st.booleans()),
        )

    return build()


def pool_configs(
    max_hw: int = 9,
    max_k: int = 4,
    max_channels: int = 3,
    max_batch: int = 3,
    max_stride: int = 3,
) -> SearchStrategy[ConvConfig]:
    """Pooling windows, overlapping ones (kernel > stride) included; padding <= kernel / 2."""
    _, st = _hypothesis()

    @st.composite
    def build(draw: Any) -> ConvConfig:
        kh, kw = draw(st.integers(1, max_k)), draw(st.integers(1, max_k))
        ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
        H = draw(st.integers(max(1, kh - 2 * ph), max(max_hw, kh - 2 * ph)))
        W = draw(st.integers(max(1, kw - 2 * pw), max(max_hw, kw - 2 * pw)))
        C = draw(st.integers(1, max_channels))
        return ConvConfig(
            N=draw(st.integers(1, max_batch)),
            C=C,
            O=C,
            H=H,
            W=W,
            kh=kh,
            kw=kw,
            sh=draw(st.integers(1, max_stride)),
            sw=draw(st.integers(1, max_stride)),
            ph=ph,
            pw=pw,
            groups=1,
            bias=False,
        )

    return build()


def batch_shapes(
    ndim: int,
    min_batch: int = 1,
    max_batch: int = 3,
    max_channels: int = 4,
    max_side: int = 5,
    max_elements: int = 300,
    channels: int | None = None,
) -> SearchStrategy[tuple[int, ...]]:
    """Small ``(N, C, ...)`` shapes with ``ndim`` dimensions and at most ``max_elements``.

    ``channels`` fixes C (for a layer built for a given channel count); ``min_batch=2``
    suits layers that need more than one example (BatchNorm in training mode).
    """
    if ndim < 1:
        raise ValueError(f"batch_shapes: ndim must be >= 1, got {ndim}")
    _, st = _hypothesis()

    @st.composite
    def build(draw: Any) -> tuple[int, ...]:
        shape = [draw(st.integers(min_batch, max(min_batch, max_batch)))]
        if ndim >= 2:
            shape.append(channels if channels is not None else draw(st.integers(1, max_channels)))
        budget = max(1, max_elements // math.prod(shape))
        for _ in range(ndim - 2):  # keep the total small without rejecting draws
            side = draw(st.integers(1, max(1, min(max_side, budget))))
            budget = max(1, budget // side)
            shape.append(side)
        return tuple(shape)

    return build()


def tie_free_arrays(shape: Sequence[int], gap: float = 1e-2) -> SearchStrategy[numpy.ndarray]:
    """Arrays of :func:`tie_free` values of a fixed ``shape`` (one per seed)."""
    shape = tuple(shape)
    return seeds().map(lambda s: tie_free(s, shape, gap))


def normal_arrays(
    shape: Sequence[int], scale: float = 1.0, shift: float = 0.0
) -> SearchStrategy[numpy.ndarray]:
    """Arrays ``scale * N(0, 1) + shift`` of a fixed ``shape`` (one per seed), float64."""
    shape = tuple(shape)
    return seeds().map(lambda s: normal(s, shape) * scale + shift)


# ---------------------------------------------------------------- generated checks
@dataclass(frozen=True)
class LayerCase:
    """One generated check: a layer, how to build it, and the inputs to run it on.

    Attributes:
        layer: a description, e.g. ``"Conv2d(2, 4, kernel_size=(3, 3), stride=(1, 1))"``
            plus ``" [eval]"`` for a layer checked in evaluation mode.
        make: builds the layer (with its parameters already set, deterministically).
        inputs: the forward pass's arguments, host NumPy arrays.
    """

    layer: str
    make: Callable[[], Any] = field(repr=False, compare=False)
    inputs: tuple[Any, ...] = field(repr=False, compare=False)

    @property
    def shapes(self) -> list[tuple[int, ...]]:
        """The inputs' shapes."""
        return [tuple(a.shape) for a in self.inputs]

    def __repr__(self) -> str:  # what Hypothesis prints for a falsifying example
        shapes = ", ".join(str(s) for s in self.shapes)
        return f"LayerCase({self.layer}, inputs {shapes})"


def _set_parameters(module: Any, seed: int, bn_style: bool = False) -> None:
    """Overwrite a module's parameters (and BatchNorm's running statistics) from ``seed``.

    Values follow PyTorch's default initialisation ranges, but come from a private
    generator, so building a case never touches the project's random state and
    rebuilding it gives the same numbers.
    """
    np = _backend.host_xp()
    rng = np.random.default_rng(seed)
    for name, p in module.named_parameters():
        shape = tuple(p.data.shape)
        if bn_style:  # gamma near 1, beta around 0
            values = (
                rng.uniform(0.5, 1.5, shape) if name == "weight" else rng.standard_normal(shape)
            )
        else:
            fan_in = math.prod(module.weight.shape[1:]) if hasattr(module, "weight") else 1
            bound = 1.0 / math.sqrt(max(1, fan_in))
            values = rng.uniform(-bound, bound, shape)
        p.data = _backend.asarray(values, p.data.dtype)
    if bn_style and getattr(module, "track_running_stats", False):
        C = module.num_features
        module.running_mean[...] = _backend.asarray(rng.standard_normal(C), "float32")
        module.running_var[...] = _backend.asarray(rng.uniform(0.5, 2.0, C), "float32")


def _case(build: Callable[[], Any], inputs: tuple[Any, ...], note: str = "") -> LayerCase:
    def make() -> Any:
        # constructors draw initial weights from the project's generator: leave it as it was
        state = _backend.get_rng_state()
        try:
            return build()
        finally:
            _backend.set_rng_state(state)

    layer = make()
    name = layer._name() if hasattr(layer, "_name") else type(layer).__name__
    return LayerCase(name + note, make, inputs)


def layer_cases(name: str) -> SearchStrategy[LayerCase]:
    """Generated checks for the built-in layer called ``name`` (one of :data:`BUILTIN_LAYERS`).

    Each case holds a small configuration and inputs chosen so that a correct
    backward passes gradcheck: tie-free inputs for max-pooling, inputs away from 0
    for ReLU, random gamma, beta and running statistics for BatchNorm (checked in
    training and in evaluation mode), integer targets for the loss.
    """
    from . import nn

    _, st = _hypothesis()
    key = {n.lower(): n for n in BUILTIN_LAYERS}.get(name.lower())
    if key is None:
        raise ValueError(
            f"no generated cases for {name!r}; built-in layers: {', '.join(BUILTIN_LAYERS)}"
        )

    @st.composite
    def conv2d(draw: Any) -> LayerCase:
        cfg = draw(conv_configs(max_hw=6, max_k=3, max_channels=2))
        seed = draw(seeds())

        def build() -> Any:
            layer = cfg.conv2d()
            _set_parameters(layer, seed)
            return layer

        return _case(build, (normal(seed, cfg.x_shape),))

    @st.composite
    def maxpool2d(draw: Any) -> LayerCase:
        cfg = draw(pool_configs(max_hw=6))
        return _case(cfg.maxpool2d, (tie_free(draw(seeds()), cfg.x_shape),))

    small = 120  # elements per input: gradcheck perturbs each one, twice

    @st.composite
    def relu(draw: Any) -> LayerCase:
        shape = draw(batch_shapes(4, max_elements=small))
        return _case(nn.ReLU, (away_from_zero(draw(seeds()), shape),))

    def batchnorm(cls: Any, ndims: Sequence[int]) -> Any:
        @st.composite
        def build_case(draw: Any) -> LayerCase:
            ndim = draw(st.sampled_from(list(ndims)))
            shape = draw(batch_shapes(ndim, min_batch=2, max_elements=small))
            seed, train = draw(seeds()), draw(st.booleans())

            def build() -> Any:
                layer = cls(shape[1]).train(train)
                _set_parameters(layer, seed, bn_style=True)
                return layer

            return _case(build, (normal(seed, shape),), "" if train else " [eval]")

        return build_case()

    @st.composite
    def linear(draw: Any) -> LayerCase:
        n, fin, fout = draw(st.integers(1, 4)), draw(st.integers(1, 6)), draw(st.integers(1, 5))
        bias, seed = draw(st.booleans()), draw(seeds())

        def build() -> Any:
            layer = nn.Linear(fin, fout, bias=bias)
            _set_parameters(layer, seed)
            return layer

        return _case(build, (normal(seed, (n, fin)),))

    @st.composite
    def flatten(draw: Any) -> LayerCase:
        shape = draw(batch_shapes(4, max_elements=small))
        return _case(nn.Flatten, (normal(draw(seeds()), shape),))

    @st.composite
    def dropout(draw: Any) -> LayerCase:
        p = draw(st.sampled_from([0.0, 0.1, 0.5, 0.9]))
        shape = draw(batch_shapes(3, max_elements=small))
        return _case(lambda: nn.Dropout(p), (normal(draw(seeds()), shape),))

    @st.composite
    def lrn(draw: Any) -> LayerCase:
        size = draw(st.integers(1, 6))
        alpha = draw(st.sampled_from([1e-4, 1e-2, 0.5, 1.0]))
        beta = draw(st.sampled_from([0.25, 0.75, 1.5]))
        k = draw(st.sampled_from([0.5, 1.0, 2.0]))
        shape = draw(batch_shapes(4, max_elements=small))
        x = normal(draw(seeds()), shape) * 2
        return _case(lambda: nn.LocalResponseNorm(size, alpha, beta, k), (x,))

    @st.composite
    def cross_entropy(draw: Any) -> LayerCase:
        n, k = draw(st.integers(1, 5)), draw(st.integers(2, 6))
        smoothing, seed = draw(st.sampled_from([0.0, 0.1])), draw(seeds())
        z = normal(seed, (n, k)) * 3
        t = _backend.host_xp().random.default_rng(seed).integers(0, k, n).astype("int64")
        return _case(lambda: nn.CrossEntropyLoss(label_smoothing=smoothing), (z, t))

    strategies = {
        "Conv2d": conv2d,
        "MaxPool2d": maxpool2d,
        "ReLU": relu,
        "BatchNorm2d": lambda: batchnorm(nn.BatchNorm2d, (4,)),
        "BatchNorm1d": lambda: batchnorm(nn.BatchNorm1d, (2, 3)),
        "Linear": linear,
        "Flatten": flatten,
        "Dropout": dropout,
        "LocalResponseNorm": lrn,
        "CrossEntropyLoss": cross_entropy,
    }
    return strategies[key]()


# ---------------------------------------------------------------- assertions
def _build(layer_or_factory: Any, who: str) -> Any:
    """The layer itself, or what a factory (a class or a function) builds."""
    if hasattr(layer_or_factory, "backward") and not isinstance(layer_or_factory, type):
        return layer_or_factory
    if callable(layer_or_factory):
        try:
            built = layer_or_factory()
        except Exception as e:
            raise AssertionError(
                f"{who}: building the layer with {_qualname(layer_or_factory)}() raised "
                f"{type(e).__name__}: {e}"
            ) from e
        if hasattr(built, "backward"):
            return built
    raise TypeError(
        f"{who} needs a layer (an object with __call__ and backward) or a function or class "
        f"that builds one with no arguments; got {type(layer_or_factory).__name__}"
    )


def _qualname(obj: Any) -> str:
    return getattr(obj, "__qualname__", type(obj).__name__)


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
    layer = _build(layer_or_factory, "assert_gradcheck")
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


def _prepare(layer: Any) -> Any:
    layer = copy.deepcopy(layer)
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
    np = _backend.host_xp()
    stu = _prepare(_build(student, "assert_matches_reference (student)"))
    ref = _prepare(_build(reference, "assert_matches_reference (reference)"))
    sname = type(stu).__name__
    context = _context(ref, inputs, config)

    def fail(lines: list[str], cause: BaseException | None = None) -> None:
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
