"""PyTorch as a test oracle: the same layer in torch, with our weights copied in."""

from __future__ import annotations

import numpy as np
import pytest

import minitorch_alexnet as mt
from minitorch_alexnet import nn


def torch_twin(layer: nn.Module):
    """The torch.nn layer equivalent to ``layer``, with the same parameters and buffers."""
    pytest.importorskip("torch")
    from minitorch_alexnet.models.torch_reference import build_torch_layer

    return build_torch_layer(layer)


def rel_err(a: np.ndarray, b: np.ndarray) -> float:
    """max |a - b| / max(max |b|, 1): relative to the reference's scale."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.size == 0:
        return 0.0
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1.0))


def compare_with_torch(layer: nn.Module, x: np.ndarray, g_seed: int = 99) -> dict[str, float]:
    """Run ``layer`` (float64) and its torch twin on ``x`` with one random upstream gradient;
    return the relative error of the output, input gradient and each parameter gradient."""
    torch = pytest.importorskip("torch")
    layer.double()
    t = torch_twin(layer)
    tx = torch.tensor(x, dtype=torch.float64, requires_grad=True)
    ty = t(tx)
    g = np.random.default_rng(g_seed).standard_normal(tuple(ty.shape))
    ty.backward(torch.from_numpy(g))
    y = layer(mt.asarray(x, "float64"))
    dx = layer.backward(mt.asarray(g))
    errs = {"output": rel_err(mt.to_numpy(y), ty.detach().numpy())}
    errs["input grad"] = rel_err(mt.to_numpy(dx), tx.grad.numpy())
    tparams = dict(t.named_parameters())
    for name, p in layer.named_parameters():
        errs[f"{name} grad"] = rel_err(mt.to_numpy(p.grad), tparams[name].grad.numpy())
    tbufs = dict(t.named_buffers())
    for name, b in layer.named_buffers():
        errs[name] = rel_err(mt.to_numpy(b), tbufs[name].numpy())
    return errs
