"""Hypothesis strategies for layer configurations, inputs and complete checks.

Hypothesis is a test-time dependency: it is imported when a strategy is first
built, and a missing Hypothesis raises an ``ImportError`` that says how to install
it. Everything else in :mod:`minitorch_alexnet.testing` works without it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from .. import nn
from . import cases
from .arrays import normal, tie_free
from .cases import BUILTIN_LAYERS, ConvConfig, LayerCase

if TYPE_CHECKING:  # pragma: no cover - annotations only
    import numpy
    from hypothesis.strategies import SearchStrategy

__all__ = [
    "INSTALL_HINT",
    "batch_shapes",
    "conv_configs",
    "layer_cases",
    "normal_arrays",
    "pool_configs",
    "seeds",
    "tie_free_arrays",
]

INSTALL_HINT = 'pip install "minitorch-alexnet[test]"'


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


def layer_cases(name: str) -> SearchStrategy[LayerCase]:
    """Generated checks for the built-in layer called ``name`` (one of
    :data:`~minitorch_alexnet.testing.BUILTIN_LAYERS`, any letter case).

    Each case holds a small configuration and inputs chosen so that a correct
    backward passes gradcheck (the recipes are in :mod:`.cases`): tie-free inputs
    for max-pooling, inputs away from 0 for ReLU, random gamma, beta and running
    statistics for BatchNorm (checked in training and in evaluation mode), integer
    targets for the loss.
    """
    _, st = _hypothesis()
    key = {n.lower(): n for n in BUILTIN_LAYERS}.get(name.lower())
    if key is None:
        raise ValueError(
            f"no generated cases for {name!r}; built-in layers: {', '.join(BUILTIN_LAYERS)}"
        )
    small = 120  # elements per input: gradcheck perturbs each one, twice

    @st.composite
    def conv2d(draw: Any) -> LayerCase:
        cfg = draw(conv_configs(max_hw=6, max_k=3, max_channels=2))
        return cases.conv2d_case(cfg, draw(seeds()))

    @st.composite
    def maxpool2d(draw: Any) -> LayerCase:
        return cases.maxpool2d_case(draw(pool_configs(max_hw=6)), draw(seeds()))

    @st.composite
    def relu(draw: Any) -> LayerCase:
        return cases.relu_case(draw(batch_shapes(4, max_elements=small)), draw(seeds()))

    def batchnorm(cls: Any, ndims: Sequence[int]) -> Any:
        @st.composite
        def build_case(draw: Any) -> LayerCase:
            ndim = draw(st.sampled_from(list(ndims)))
            shape = draw(batch_shapes(ndim, min_batch=2, max_elements=small))
            seed, train = draw(seeds()), draw(st.booleans())
            return cases.batchnorm_case(cls, shape, seed, train)

        return build_case()

    @st.composite
    def linear(draw: Any) -> LayerCase:
        n, fin, fout = draw(st.integers(1, 4)), draw(st.integers(1, 6)), draw(st.integers(1, 5))
        bias, seed = draw(st.booleans()), draw(seeds())
        return cases.linear_case(n, fin, fout, bias, seed)

    @st.composite
    def flatten(draw: Any) -> LayerCase:
        return cases.flatten_case(draw(batch_shapes(4, max_elements=small)), draw(seeds()))

    @st.composite
    def dropout(draw: Any) -> LayerCase:
        p = draw(st.sampled_from([0.0, 0.1, 0.5, 0.9]))
        shape = draw(batch_shapes(3, max_elements=small))
        return cases.dropout_case(p, shape, draw(seeds()))

    @st.composite
    def lrn(draw: Any) -> LayerCase:
        size = draw(st.integers(1, 6))
        alpha = draw(st.sampled_from([1e-4, 1e-2, 0.5, 1.0]))
        beta = draw(st.sampled_from([0.25, 0.75, 1.5]))
        k = draw(st.sampled_from([0.5, 1.0, 2.0]))
        shape = draw(batch_shapes(4, max_elements=small))
        return cases.lrn_case(size, alpha, beta, k, shape, draw(seeds()))

    @st.composite
    def cross_entropy(draw: Any) -> LayerCase:
        n, k = draw(st.integers(1, 5)), draw(st.integers(2, 6))
        smoothing, seed = draw(st.sampled_from([0.0, 0.1])), draw(seeds())
        return cases.cross_entropy_case(n, k, smoothing, seed)

    @st.composite
    def avgpool2d(draw: Any) -> LayerCase:
        cfg = draw(pool_configs(max_hw=6))
        options = (draw(st.booleans()), draw(st.booleans()), draw(st.sampled_from([None, 2])))
        return cases.avgpool2d_case(cfg, options, draw(seeds()))

    def adaptive(cls: Any) -> Any:
        @st.composite
        def build_case(draw: Any) -> LayerCase:
            shape = draw(batch_shapes(4, max_elements=small, max_side=7))
            side = st.one_of(st.none(), st.integers(1, 4))
            size = draw(st.one_of(st.integers(1, 4), st.tuples(side, side)))
            return cases.adaptive_pool_case(cls, shape, size, draw(seeds()))

        return build_case()

    def softmax(cls: Any) -> Any:
        @st.composite
        def build_case(draw: Any) -> LayerCase:
            shape = draw(batch_shapes(draw(st.integers(1, 4)), max_elements=small))
            dim = draw(st.integers(-len(shape), len(shape) - 1))
            return cases.softmax_case(cls, shape, dim, draw(seeds()))

        return build_case()

    @st.composite
    def nll(draw: Any) -> LayerCase:
        n, k = draw(st.integers(1, 5)), draw(st.integers(2, 6))
        reduction = draw(st.sampled_from(["mean", "sum"]))
        return cases.nll_case(n, k, reduction, draw(seeds()))

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
        "AvgPool2d": avgpool2d,
        "AdaptiveAvgPool2d": lambda: adaptive(nn.AdaptiveAvgPool2d),
        "AdaptiveMaxPool2d": lambda: adaptive(nn.AdaptiveMaxPool2d),
        "Softmax": lambda: softmax(nn.Softmax),
        "LogSoftmax": lambda: softmax(nn.LogSoftmax),
        "NLLLoss": nll,
    }
    return strategies[key]()
