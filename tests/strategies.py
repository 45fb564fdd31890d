"""Hypothesis strategies for layer configurations and test arrays (one place for all tests)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import assume
from hypothesis import strategies as st


@dataclass(frozen=True)
class ConvCase:
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
    groups: int
    bias: bool

    @property
    def kernel(self) -> tuple[int, int]:
        return (self.kh, self.kw)

    @property
    def window(self) -> tuple[int, int, int, int, int, int]:
        return (self.kh, self.kw, self.sh, self.sw, self.ph, self.pw)

    @property
    def x_shape(self) -> tuple[int, int, int, int]:
        return (self.N, self.C, self.H, self.W)


@st.composite
def conv_cases(draw, max_hw: int = 9, max_k: int = 4, max_channels: int = 3) -> ConvCase:
    """Batch, channels (with groups), spatial size, kernel, stride and padding that fit."""
    groups = draw(st.sampled_from([1, 1, 2]))
    C = groups * draw(st.integers(1, max_channels))
    O = groups * draw(st.integers(1, max_channels))
    kh, kw = draw(st.integers(1, max_k)), draw(st.integers(1, max_k))
    ph, pw = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    H = draw(st.integers(max(1, kh - 2 * ph), max_hw))
    W = draw(st.integers(max(1, kw - 2 * pw), max_hw))
    return ConvCase(
        N=draw(st.integers(1, 3)),
        C=C,
        O=O,
        H=H,
        W=W,
        kh=kh,
        kw=kw,
        sh=draw(st.integers(1, 3)),
        sw=draw(st.integers(1, 3)),
        ph=ph,
        pw=pw,
        groups=groups,
        bias=draw(st.booleans()),
    )


@st.composite
def pool_cases(draw, max_hw: int = 9) -> ConvCase:
    """Max-pool windows, overlapping ones (kernel > stride) included; padding <= kernel/2."""
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    ph, pw = draw(st.integers(0, kh // 2)), draw(st.integers(0, kw // 2))
    H = draw(st.integers(max(1, kh - 2 * ph), max_hw))
    W = draw(st.integers(max(1, kw - 2 * pw), max_hw))
    C = draw(st.integers(1, 3))
    return ConvCase(
        N=draw(st.integers(1, 3)),
        C=C,
        O=C,
        H=H,
        W=W,
        kh=kh,
        kw=kw,
        sh=draw(st.integers(1, 3)),
        sw=draw(st.integers(1, 3)),
        ph=ph,
        pw=pw,
        groups=1,
        bias=False,
    )


seeds = st.integers(0, 2**32 - 1)


def normal(seed: int, shape: tuple[int, ...], dtype: str = "float64") -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(dtype)


def tie_free(seed: int, shape: tuple[int, ...], gap: float = 1e-2) -> np.ndarray:
    """Distinct values at least ``gap`` apart: no ties for max-pool, and a finite-difference
    step far below ``gap`` never changes which element wins a window."""
    n = int(np.prod(shape))
    values = np.random.default_rng(seed).permutation(n) * gap - n * gap / 2
    return values.reshape(shape).astype("float64")


def away_from_zero(seed: int, shape: tuple[int, ...], margin: float = 1e-3) -> np.ndarray:
    """Normal samples pushed at least ``margin`` away from 0 (ReLU's kink)."""
    x = normal(seed, shape)
    return np.where(x >= 0, x + margin, x - margin)


@st.composite
def batch_shapes(draw, ndim: int, min_batch: int = 1) -> tuple[int, ...]:
    """(N, C, ...) shapes with small sizes."""
    shape = [draw(st.integers(min_batch, 3)), draw(st.integers(1, 4))]
    shape += [draw(st.integers(1, 5)) for _ in range(ndim - 2)]
    shape = tuple(shape)
    assume(int(np.prod(shape)) <= 300)
    return shape
