"""The assignment kit: what a grading test calls to check a layer written by a student.

Its modules, each usable on its own:

* :mod:`~minitorch_alexnet.testing.arrays`, test arrays (plain functions, no
  Hypothesis needed): :func:`normal`, :func:`tie_free` (distinct values, none near
  0: no ties for max-pooling and no input on a kink such as ReLU's),
  :func:`away_from_zero` and :func:`integer_valued` (whole numbers, for checks that
  must agree exactly).
* :mod:`~minitorch_alexnet.testing.strategies`, Hypothesis strategies for layer
  configurations and inputs: :func:`conv_configs`, :func:`pool_configs`,
  :func:`batch_shapes`, :func:`seeds`, :func:`tie_free_arrays`, :func:`normal_arrays`,
  and :func:`layer_cases`, which generates complete checks (a layer and its inputs)
  for every built-in layer. Hypothesis is a test-time dependency: it is imported
  when a strategy is first built, and a missing Hypothesis raises an
  ``ImportError`` that says how to install it.
* :mod:`~minitorch_alexnet.testing.cases`, what a check is made of:
  :class:`ConvConfig`, :class:`LayerCase` and the recipe of each built-in layer's
  cases.
* :mod:`~minitorch_alexnet.testing.assertions`, with failure messages a student
  can act on: :func:`assert_gradcheck` (backward against finite differences) and
  :func:`assert_matches_reference` (forward output, input gradient, parameter
  gradients and buffers against a reference layer with the same parameters).
  Both name the tensor, the index, the two values, the layer's configuration and
  the input shapes.
* :mod:`~minitorch_alexnet.testing.naive`, the layers' definitions as plain nested
  loops, forward and backward (:func:`conv2d_naive`, :func:`conv2d_backward_naive`,
  :func:`maxpool2d_backward_naive`, ...): the yardstick the tests hold the layers'
  reference functions and the backends' kernels to.

Wherever a layer is asked for, a class or a function that builds one will do:
:func:`build_layer` (from :mod:`minitorch_alexnet.gradcheck`) builds it.

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

from ..gradcheck import LayerBuildError, build_layer
from .arrays import away_from_zero, integer_valued, normal, tie_free
from .assertions import ReferenceCheck, assert_gradcheck, assert_matches_reference
from .assertions import _hint as _hint
from .cases import BUILTIN_LAYERS, ConvConfig, LayerCase
from .naive import (
    batchnorm_backward_naive,
    conv2d_backward_naive,
    conv2d_naive,
    linear_backward_naive,
    maxpool2d_backward_naive,
    maxpool2d_naive,
    relu_backward_naive,
)
from .strategies import (
    INSTALL_HINT,
    batch_shapes,
    conv_configs,
    layer_cases,
    normal_arrays,
    pool_configs,
    seeds,
    tie_free_arrays,
)
from .strategies import _hypothesis as _hypothesis

__all__ = [
    "BUILTIN_LAYERS",
    "INSTALL_HINT",
    "ConvConfig",
    "LayerBuildError",
    "LayerCase",
    "ReferenceCheck",
    "assert_gradcheck",
    "assert_matches_reference",
    "away_from_zero",
    "batch_shapes",
    "batchnorm_backward_naive",
    "build_layer",
    "conv2d_backward_naive",
    "conv2d_naive",
    "conv_configs",
    "integer_valued",
    "layer_cases",
    "linear_backward_naive",
    "maxpool2d_backward_naive",
    "maxpool2d_naive",
    "normal",
    "normal_arrays",
    "pool_configs",
    "relu_backward_naive",
    "seeds",
    "tie_free",
    "tie_free_arrays",
]
