"""The same networks written in PyTorch, as an oracle for tests and benchmarks.

PyTorch is never needed to run this project; it is imported inside these
functions only. The PyTorch modules are written out independently of ours (not
translated from them), with the same submodule names, so that state dicts line
up key for key::

    from minitorch_alexnet.models import AlexNetCIFAR
    from minitorch_alexnet.models.torch_reference import build_torch_model, copy_weights_to_torch

    ours = AlexNetCIFAR()
    theirs = copy_weights_to_torch(ours, build_torch_model("alexnet_cifar"))

The blog-style AlexNet flattens with a reshape in ``forward`` (no module), as
the blog post does, so ``torchsummary`` prints no Flatten row for it either.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

from ..backend import to_numpy
from .alexnet import PAPER_LRN

__all__ = [
    "build_torch_layer",
    "build_torch_model",
    "copy_weights_from_torch",
    "copy_weights_to_torch",
    "torchvision_alexnet",
]


@functools.cache
def _classes() -> dict[str, type]:
    import torch
    from torch import nn as tnn

    class _Blocks(tnn.Module):
        """conv1..conv5, a reshape, fc1..fc3 (the fc blocks are added by subclasses)."""

        def _flat(self, in_channels: int, size: int) -> int:
            was_training = self.training
            self.eval()
            with torch.no_grad():
                x = torch.zeros(1, in_channels, size, size)
                for block in (self.conv1, self.conv2, self.conv3, self.conv4, self.conv5):
                    x = block(x)
            self.train(was_training)
            return int(x[0].numel())

        def forward(self, x: Any) -> Any:
            out = self.conv1(x)
            out = self.conv2(out)
            out = self.conv3(out)
            out = self.conv4(out)
            out = self.conv5(out)
            out = out.reshape(out.size(0), -1)
            out = self.fc1(out)
            out = self.fc2(out)
            return self.fc3(out)

    class TorchAlexNet(_Blocks):
        def __init__(
            self,
            num_classes: int = 1000,
            *,
            in_channels: int = 3,
            channels: Sequence[int] = (96, 256, 384, 384, 256),
            hidden: int = 4096,
            input_size: int = 227,
            dropout: float = 0.5,
        ):
            super().__init__()
            c1, c2, c3, c4, c5 = channels
            self.conv1 = tnn.Sequential(
                tnn.Conv2d(in_channels, c1, kernel_size=11, stride=4, padding=0),
                tnn.ReLU(),
                tnn.BatchNorm2d(c1),
                tnn.MaxPool2d(kernel_size=3, stride=2),
                tnn.Dropout(dropout),
            )
            self.conv2 = tnn.Sequential(
                tnn.Conv2d(c1, c2, kernel_size=5, stride=1, padding=2),
                tnn.ReLU(),
                tnn.BatchNorm2d(c2),
                tnn.MaxPool2d(kernel_size=3, stride=2),
                tnn.Dropout(dropout),
            )
            self.conv3 = tnn.Sequential(
                tnn.Conv2d(c2, c3, kernel_size=3, stride=1, padding=1),
                tnn.ReLU(),
                tnn.BatchNorm2d(c3),
            )
            self.conv4 = tnn.Sequential(
                tnn.Conv2d(c3, c4, kernel_size=3, stride=1, padding=1),
                tnn.ReLU(),
                tnn.BatchNorm2d(c4),
            )
            self.conv5 = tnn.Sequential(
                tnn.Conv2d(c4, c5, kernel_size=3, stride=1, padding=1),
                tnn.ReLU(),
                tnn.BatchNorm2d(c5),
                tnn.MaxPool2d(kernel_size=3, stride=2),
                tnn.Dropout(dropout),
            )
            flat = self._flat(in_channels, input_size)
            self.fc1 = tnn.Sequential(
                tnn.Linear(flat, hidden), tnn.ReLU(), tnn.BatchNorm1d(hidden), tnn.Dropout(dropout)
            )
            self.fc2 = tnn.Sequential(
                tnn.Linear(hidden, hidden),
                tnn.ReLU(),
                tnn.BatchNorm1d(hidden),
                tnn.Dropout(dropout),
            )
            self.fc3 = tnn.Sequential(tnn.Linear(hidden, num_classes))

    class TorchAlexNetCIFAR(_Blocks):
        def __init__(
            self,
            num_classes: int = 10,
            *,
            in_channels: int = 3,
            channels: Sequence[int] = (64, 192, 384, 256, 256),
            hidden: int = 1024,
            input_size: int = 32,
            dropout: float = 0.5,
        ):
            super().__init__()
            c1, c2, c3, c4, c5 = channels
            self.conv1 = tnn.Sequential(
                tnn.Conv2d(in_channels, c1, kernel_size=5, padding=2),
                tnn.ReLU(),
                tnn.BatchNorm2d(c1),
                tnn.MaxPool2d(kernel_size=3, stride=2),
            )
            self.conv2 = tnn.Sequential(
                tnn.Conv2d(c1, c2, kernel_size=5, padding=2),
                tnn.ReLU(),
                tnn.BatchNorm2d(c2),
                tnn.MaxPool2d(kernel_size=3, stride=2),
            )
            self.conv3 = tnn.Sequential(
                tnn.Conv2d(c2, c3, kernel_size=3, padding=1), tnn.ReLU(), tnn.BatchNorm2d(c3)
            )
            self.conv4 = tnn.Sequential(
                tnn.Conv2d(c3, c4, kernel_size=3, padding=1), tnn.ReLU(), tnn.BatchNorm2d(c4)
            )
            self.conv5 = tnn.Sequential(
                tnn.Conv2d(c4, c5, kernel_size=3, padding=1),
                tnn.ReLU(),
                tnn.BatchNorm2d(c5),
                tnn.MaxPool2d(kernel_size=3, stride=2),
            )
            flat = self._flat(in_channels, input_size)
            self.fc1 = tnn.Sequential(
                tnn.Linear(flat, hidden), tnn.ReLU(), tnn.BatchNorm1d(hidden), tnn.Dropout(dropout)
            )
            self.fc2 = tnn.Sequential(
                tnn.Linear(hidden, hidden),
                tnn.ReLU(),
                tnn.BatchNorm1d(hidden),
                tnn.Dropout(dropout),
            )
            self.fc3 = tnn.Sequential(tnn.Linear(hidden, num_classes))

    class TorchAlexNet2012(_Blocks):
        def __init__(
            self,
            num_classes: int = 1000,
            *,
            in_channels: int = 3,
            channels: Sequence[int] = (96, 256, 384, 384, 256),
            hidden: int = 4096,
            input_size: int = 227,
            dropout: float = 0.5,
        ):
            super().__init__()
            c1, c2, c3, c4, c5 = channels
            n = PAPER_LRN["size"]
            # PyTorch divides alpha by n; n * 1e-4 reproduces the paper's formula.
            alpha, beta, k = n * PAPER_LRN["alpha"], PAPER_LRN["beta"], PAPER_LRN["k"]
            self.conv1 = tnn.Sequential(
                tnn.Conv2d(in_channels, c1, kernel_size=11, stride=4),
                tnn.ReLU(),
                tnn.LocalResponseNorm(n, alpha=alpha, beta=beta, k=k),
                tnn.MaxPool2d(kernel_size=3, stride=2),
            )
            self.conv2 = tnn.Sequential(
                tnn.Conv2d(c1, c2, kernel_size=5, padding=2, groups=2),
                tnn.ReLU(),
                tnn.LocalResponseNorm(n, alpha=alpha, beta=beta, k=k),
                tnn.MaxPool2d(kernel_size=3, stride=2),
            )
            self.conv3 = tnn.Sequential(tnn.Conv2d(c2, c3, kernel_size=3, padding=1), tnn.ReLU())
            self.conv4 = tnn.Sequential(
                tnn.Conv2d(c3, c4, kernel_size=3, padding=1, groups=2), tnn.ReLU()
            )
            self.conv5 = tnn.Sequential(
                tnn.Conv2d(c4, c5, kernel_size=3, padding=1, groups=2),
                tnn.ReLU(),
                tnn.MaxPool2d(kernel_size=3, stride=2),
            )
            flat = self._flat(in_channels, input_size)
            self.fc1 = tnn.Sequential(tnn.Dropout(dropout), tnn.Linear(flat, hidden), tnn.ReLU())
            self.fc2 = tnn.Sequential(tnn.Dropout(dropout), tnn.Linear(hidden, hidden), tnn.ReLU())
            self.fc3 = tnn.Sequential(tnn.Linear(hidden, num_classes))

    class TorchvisionAlexNet(tnn.Module):
        """torchvision's AlexNet, written out from its published layer list (so that the
        tests run where only torch is installed): features / avgpool / classifier."""

        def __init__(self, num_classes: int = 1000, dropout: float = 0.5):
            super().__init__()
            self.features = tnn.Sequential(
                tnn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
                tnn.ReLU(inplace=True),
                tnn.MaxPool2d(kernel_size=3, stride=2),
                tnn.Conv2d(64, 192, kernel_size=5, padding=2),
                tnn.ReLU(inplace=True),
                tnn.MaxPool2d(kernel_size=3, stride=2),
                tnn.Conv2d(192, 384, kernel_size=3, padding=1),
                tnn.ReLU(inplace=True),
                tnn.Conv2d(384, 256, kernel_size=3, padding=1),
                tnn.ReLU(inplace=True),
                tnn.Conv2d(256, 256, kernel_size=3, padding=1),
                tnn.ReLU(inplace=True),
                tnn.MaxPool2d(kernel_size=3, stride=2),
            )
            self.avgpool = tnn.AdaptiveAvgPool2d((6, 6))
            self.classifier = tnn.Sequential(
                tnn.Dropout(p=dropout),
                tnn.Linear(256 * 6 * 6, 4096),
                tnn.ReLU(inplace=True),
                tnn.Dropout(p=dropout),
                tnn.Linear(4096, 4096),
                tnn.ReLU(inplace=True),
                tnn.Linear(4096, num_classes),
            )

        def forward(self, x: Any) -> Any:
            x = self.avgpool(self.features(x))
            return self.classifier(torch.flatten(x, 1))

    return {
        "alexnet": TorchAlexNet,
        "alexnet_cifar": TorchAlexNetCIFAR,
        "alexnet2012": TorchAlexNet2012,
        "torchvision_alexnet": TorchvisionAlexNet,
    }


def torchvision_alexnet(num_classes: int = 1000, dropout: float = 0.5) -> Any:
    """torchvision's own ``alexnet()`` (random weights) when torchvision is installed,
    else the same network written out in ``torch.nn`` (same layers, same state_dict keys)."""
    try:
        from torchvision.models import alexnet
    except ImportError:
        return _classes()["torchvision_alexnet"](num_classes=num_classes, dropout=dropout)
    return alexnet(weights=None, num_classes=num_classes, dropout=dropout)


def build_torch_model(name: str, num_classes: int | None = None, **kwargs: Any) -> Any:
    """The PyTorch twin of ``minitorch_alexnet.models.build_model(name, num_classes, **kwargs)``.

    Same layers, same submodule names (``conv1.0.weight`` ...), same keyword
    arguments. Its initial weights are PyTorch's own; use
    :func:`copy_weights_to_torch` to give it ours.
    """
    classes = _classes()
    key = name.lower().replace("-", "_")
    if key not in classes:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(classes)}")
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    return classes[key](**kwargs)


def build_torch_layer(layer: Any) -> Any:
    """The ``torch.nn`` layer equivalent to one of ours, with our weights copied in.

    Covers Conv2d, Linear, MaxPool2d, BatchNorm1d/2d, LocalResponseNorm, ReLU,
    Dropout and Flatten; the twin is in our dtype and in our layer's train/eval mode.
    """
    from torch import nn as tnn

    from .. import nn

    if isinstance(layer, nn.Conv2d):
        twin = tnn.Conv2d(
            layer.in_channels,
            layer.out_channels,
            layer.kernel_size,
            layer.stride,
            layer.padding_arg,
            layer.dilation,
            groups=layer.groups,
            bias=layer.bias is not None,
        )
    elif isinstance(layer, nn.Linear):
        twin = tnn.Linear(layer.in_features, layer.out_features, bias=layer.bias is not None)
    elif isinstance(layer, nn.MaxPool2d):
        twin = tnn.MaxPool2d(
            layer.kernel_size,
            layer.stride,
            layer.padding,
            layer.dilation,
            ceil_mode=layer.ceil_mode,
        )
    elif isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)):
        cls = tnn.BatchNorm1d if isinstance(layer, nn.BatchNorm1d) else tnn.BatchNorm2d
        twin = cls(
            layer.num_features,
            layer.eps,
            layer.momentum,
            layer.affine,
            track_running_stats=layer.track_running_stats,
        )
    elif isinstance(layer, nn.LocalResponseNorm):
        twin = tnn.LocalResponseNorm(layer.size, layer.alpha, layer.beta, layer.k)
    elif isinstance(layer, nn.ReLU):
        twin = tnn.ReLU()
    elif isinstance(layer, nn.Dropout):
        twin = tnn.Dropout(layer.p)
    elif isinstance(layer, nn.Flatten):
        twin = tnn.Flatten(layer.start_dim, layer.end_dim)
    else:
        raise TypeError(f"no PyTorch twin for {type(layer).__name__}")
    copy_weights_to_torch(layer, twin)
    return twin.train(layer.training)


def copy_weights_to_torch(ours: Any, torch_model: Any) -> Any:
    """Copy every parameter and buffer of ``ours`` into ``torch_model``; return ``torch_model``.

    The PyTorch model is first cast to our floating-point dtype (float32 or
    float64). Names and shapes must match exactly; otherwise a ValueError lists
    the differences.
    """
    import torch

    src = ours.state_dict()
    dst = torch_model.state_dict()
    _check_same_keys({k: tuple(v.shape) for k, v in src.items()}, dst)
    float_dtype = next((v.dtype for v in src.values() if v.dtype.kind == "f"), None)
    if float_dtype is not None:
        torch_model.to({4: torch.float32, 8: torch.float64}[float_dtype.itemsize])
        dst = torch_model.state_dict()
    with torch.no_grad():
        for key, value in src.items():
            dst[key].copy_(torch.from_numpy(to_numpy(value).copy()))
    return torch_model


def copy_weights_from_torch(torch_model: Any, ours: Any) -> Any:
    """Copy every parameter and buffer of ``torch_model`` into ``ours``; return ``ours``.

    Values are converted to the dtype and backend of the arrays they replace.
    """
    state = {k: v.detach().cpu().numpy() for k, v in torch_model.state_dict().items()}
    ours.load_state_dict(state)
    return ours


def _check_same_keys(ours: dict[str, tuple[int, ...]], theirs: dict[str, Any]) -> None:
    """Raise a ValueError listing every key or shape in which two state dicts differ."""
    problems = []
    only_ours = [k for k in ours if k not in theirs]
    only_theirs = [k for k in theirs if k not in ours]
    if only_ours:
        problems.append(f"only in ours: {', '.join(only_ours)}")
    if only_theirs:
        problems.append(f"only in torch: {', '.join(only_theirs)}")
    for key, shape in ours.items():
        if key in theirs and tuple(theirs[key].shape) != shape:
            problems.append(f"{key}: ours {shape} vs torch {tuple(theirs[key].shape)}")
    if problems:
        raise ValueError("the two models differ -- " + "; ".join(problems))
