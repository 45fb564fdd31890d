"""What a check is made of: a configuration (:class:`ConvConfig`), and a layer with
its inputs (:class:`LayerCase`), with the recipe for each built-in layer's cases.

The recipes are plain functions of the numbers Hypothesis draws
(:func:`~minitorch_alexnet.testing.layer_cases` draws them), so this module needs
no Hypothesis. They choose inputs a correct backward passes gradcheck on: tie-free
inputs for max-pooling, inputs away from 0 for ReLU, random gamma, beta and running
statistics for BatchNorm, integer targets for the loss.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from .. import backend as _backend
from .. import nn
from ..gradcheck import build_layer
from .arrays import away_from_zero, normal, tie_free

__all__ = [
    "BUILTIN_LAYERS",
    "ConvConfig",
    "LayerCase",
    "adaptive_pool_case",
    "avgpool2d_case",
    "batchnorm_case",
    "conv2d_case",
    "cross_entropy_case",
    "dropout_case",
    "flatten_case",
    "linear_case",
    "lrn_case",
    "make_case",
    "maxpool2d_case",
    "nll_case",
    "relu_case",
    "softmax_case",
]

#: The layers :func:`~minitorch_alexnet.testing.layer_cases` (and ``python -m
#: minitorch_alexnet gradcheck``) know.
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
    "AvgPool2d",
    "AdaptiveAvgPool2d",
    "AdaptiveMaxPool2d",
    "Softmax",
    "LogSoftmax",
    "NLLLoss",
)


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
    def w_shape(self) -> tuple[int, int, int, int]:
        """The convolution weight's shape (O, C/G, KH, KW)."""
        return (self.O, self.C // self.groups, self.kh, self.kw)

    @property
    def out_hw(self) -> tuple[int, int]:
        """(Ho, Wo) = floor((H + 2P - K) / S) + 1 for each side."""
        return (
            (self.H + 2 * self.ph - self.kh) // self.sh + 1,
            (self.W + 2 * self.pw - self.kw) // self.sw + 1,
        )

    def conv2d(self) -> Any:
        """A :class:`~minitorch_alexnet.nn.Conv2d` (C -> O) with this configuration."""
        return nn.Conv2d(
            self.C,
            self.O,
            self.kernel,
            self.stride,
            self.padding,
            groups=self.groups,
            bias=self.bias,
        )

    def maxpool2d(self) -> Any:
        """A :class:`~minitorch_alexnet.nn.MaxPool2d` with this window."""
        return nn.MaxPool2d(self.kernel, self.stride, self.padding)


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


def make_case(layer_or_factory: Any, inputs: tuple[Any, ...], note: str = "") -> LayerCase:
    """A :class:`LayerCase` whose ``make`` is :func:`~minitorch_alexnet.gradcheck.build_layer`
    of ``layer_or_factory`` (so building leaves the generator alone), named after the
    layer it builds plus ``note``."""
    make = functools.partial(build_layer, layer_or_factory)
    layer = make()
    name = layer._name() if hasattr(layer, "_name") else type(layer).__name__
    return LayerCase(name + note, make, tuple(inputs))


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


def _with_parameters(build: Callable[[], Any], seed: int, bn_style: bool = False) -> Any:
    """A factory: ``build()``, then its parameters set from ``seed``."""

    def make() -> Any:
        layer = build()
        _set_parameters(layer, seed, bn_style)
        return layer

    return make


# ---------------------------------------------------------------- one recipe per built-in layer
def conv2d_case(cfg: ConvConfig, seed: int) -> LayerCase:
    return make_case(_with_parameters(cfg.conv2d, seed), (normal(seed, cfg.x_shape),))


def maxpool2d_case(cfg: ConvConfig, seed: int) -> LayerCase:
    return make_case(cfg.maxpool2d, (tie_free(seed, cfg.x_shape),))


def relu_case(shape: tuple[int, ...], seed: int) -> LayerCase:
    return make_case(nn.ReLU, (away_from_zero(seed, shape),))


def batchnorm_case(cls: type, shape: tuple[int, ...], seed: int, train: bool) -> LayerCase:
    """``cls`` (BatchNorm1d or BatchNorm2d) for C = ``shape[1]``, in training mode or not."""
    make = _with_parameters(lambda: cls(shape[1]).train(train), seed, bn_style=True)
    return make_case(make, (normal(seed, shape),), "" if train else " [eval]")


def linear_case(n: int, fin: int, fout: int, bias: bool, seed: int) -> LayerCase:
    make = _with_parameters(lambda: nn.Linear(fin, fout, bias=bias), seed)
    return make_case(make, (normal(seed, (n, fin)),))


def flatten_case(shape: tuple[int, ...], seed: int) -> LayerCase:
    return make_case(nn.Flatten, (normal(seed, shape),))


def dropout_case(p: float, shape: tuple[int, ...], seed: int) -> LayerCase:
    return make_case(lambda: nn.Dropout(p), (normal(seed, shape),))


def lrn_case(
    size: int, alpha: float, beta: float, k: float, shape: tuple[int, ...], seed: int
) -> LayerCase:
    x = normal(seed, shape) * 2
    return make_case(lambda: nn.LocalResponseNorm(size, alpha, beta, k), (x,))


def cross_entropy_case(n: int, k: int, smoothing: float, seed: int) -> LayerCase:
    """``n`` examples of ``k`` classes: logits, and integer targets."""
    z = normal(seed, (n, k)) * 3
    t = _backend.host_xp().random.default_rng(seed).integers(0, k, n).astype("int64")
    return make_case(lambda: nn.CrossEntropyLoss(label_smoothing=smoothing), (z, t))


def avgpool2d_case(cfg: ConvConfig, options: tuple[bool, bool, int | None], seed: int) -> LayerCase:
    """AvgPool2d with ``cfg``'s window and ``(ceil_mode, count_include_pad, divisor_override)``."""
    return make_case(
        lambda: nn.AvgPool2d(cfg.kernel, cfg.stride, cfg.padding, *options),
        (normal(seed, cfg.x_shape),),
    )


def adaptive_pool_case(cls: type, shape: tuple[int, ...], output_size: Any, seed: int) -> LayerCase:
    """AdaptiveAvgPool2d or AdaptiveMaxPool2d (``cls``) to ``output_size``; tie-free
    inputs, so the maximum of each window is unique."""
    return make_case(lambda: cls(output_size), (tie_free(seed, shape),))


def softmax_case(cls: type, shape: tuple[int, ...], dim: int, seed: int) -> LayerCase:
    """Softmax or LogSoftmax (``cls``) along ``dim``."""
    return make_case(lambda: cls(dim), (normal(seed, shape) * 2,))


def nll_case(n: int, k: int, reduction: str, seed: int) -> LayerCase:
    """NLLLoss of ``n`` rows of ``k`` log-probabilities against integer targets."""
    z = normal(seed, (n, k)) * 2
    log_p = z - _backend.host_xp().log(_backend.host_xp().exp(z).sum(axis=1, keepdims=True))
    t = _backend.host_xp().random.default_rng(seed).integers(0, k, n).astype("int64")
    return make_case(lambda: nn.NLLLoss(reduction=reduction), (log_p, t))
