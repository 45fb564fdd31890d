"""Conv2d by im2col and col2im: the tests you are given (the grader runs a few more)."""

from __future__ import annotations

import numpy as np
import pytest
from conv2d import Conv2d, col2im, im2col
from hypothesis import given

from minitorch_alexnet.testing import (
    assert_gradcheck,
    assert_matches_reference,
    conv_configs,
    normal,
    seeds,
)

configs = conv_configs(max_hw=6, max_k=3, max_channels=2)  # stride, padding, groups


def layers(cfg):
    kw = dict(stride=cfg.stride, padding=cfg.padding, groups=cfg.groups, bias=cfg.bias)
    return Conv2d(cfg.C, cfg.O, cfg.kernel, **kw), cfg.conv2d()


@pytest.mark.task1
def test_im2col_by_hand():
    """A 1x1x3x3 image, a 2x2 kernel, stride 1: four columns of four pixels."""
    x = np.arange(9.0).reshape(1, 1, 3, 3)
    cols = im2col(x, (2, 2), (1, 1), (0, 0))
    want = [[0, 1, 3, 4], [1, 2, 4, 5], [3, 4, 6, 7], [4, 5, 7, 8]]
    np.testing.assert_allclose(cols, want, err_msg="rows (i, j), columns (ho, wo)")


@pytest.mark.task1
@pytest.mark.points(3)
@given(cfg=configs, seed=seeds())
def test_forward_matches_the_library(cfg, seed):
    stu, ref = layers(cfg)
    assert_matches_reference(stu, ref, normal(seed, cfg.x_shape), check_backward=False,
                             config=cfg)  # fmt: skip


@pytest.mark.task2
@given(cfg=configs, seed=seeds())
def test_col2im_is_the_adjoint_of_im2col(cfg, seed):
    """<im2col(x), c> = <x, col2im(c)> for every x and c."""
    x = normal(seed, cfg.x_shape)
    args = (cfg.kernel, cfg.stride, cfg.padding)
    cols = im2col(x, *args)
    c = normal(seed + 1, cols.shape)
    np.testing.assert_allclose(np.sum(cols * c), np.sum(x * col2im(c, x.shape, *args)),
                               rtol=1e-9, err_msg=repr(cfg))  # fmt: skip


@pytest.mark.task2
@pytest.mark.points(3)
@given(cfg=configs, seed=seeds())
def test_backward_matches_the_library(cfg, seed):
    stu, ref = layers(cfg)
    assert_matches_reference(stu, ref, normal(seed, cfg.x_shape), config=cfg)


@pytest.mark.task2
@given(cfg=conv_configs(max_hw=5, max_k=3, max_channels=2), seed=seeds())
def test_backward_against_finite_differences(cfg, seed):
    stu, _ = layers(cfg)
    assert_gradcheck(stu, normal(seed, cfg.x_shape), config=cfg)
