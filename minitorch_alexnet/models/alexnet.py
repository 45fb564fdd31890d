"""Three AlexNets, each as five convolutional blocks and three fully connected blocks.

Every model has the submodules ``conv1`` ... ``conv5`` and ``fc1`` ... ``fc3``,
each an :class:`~minitorch_alexnet.nn.Sequential`. The forward pass runs the
conv blocks, flattens (N, C, H, W) to (N, C*H*W) with a reshape, and runs the
fc blocks; the backward pass runs the same blocks in reverse, reshaping the
gradient back to (N, C, H, W) in between (the chain rule through the reshape).

Before the forward pass, the input shape is walked through every layer, each
stating its own output shape (``floor((W - K + 2P) / S) + 1`` for the windows;
:mod:`minitorch_alexnet.shape_walk`), so an input that is too small fails at once
with the name of the first layer whose output would be empty and the smallest
input that works, and a wrong channel count names the expected one.

See ``docs/alexnet.md`` for the three side by side with torchvision's AlexNet.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

from .. import nn
from ..shape_walk import check_input, trace_shapes

__all__ = ["AlexNet", "AlexNet2012", "AlexNetCIFAR"]

#: The paper's local response normalisation constants, in the paper's notation:
#: b = a / (k + alpha * sum of a^2 over n neighbouring channels)^beta.
PAPER_LRN = {"size": 5, "alpha": 1e-4, "beta": 0.75, "k": 2.0}


def _five(channels: Sequence[int], who: str) -> tuple[int, int, int, int, int]:
    c = tuple(int(v) for v in channels)
    if len(c) != 5 or min(c) < 1:
        raise ValueError(
            f"{who}: channels must be five positive ints (conv1..conv5), got {channels}"
        )
    return c  # type: ignore[return-value]


class _BlockNet(nn.Module):
    """The shared skeleton: conv blocks, a flatten, fc blocks; forward, backward, checks."""

    _conv_blocks: tuple[str, ...] = ("conv1", "conv2", "conv3", "conv4", "conv5")
    _fc_blocks: tuple[str, ...] = ("fc1", "fc2", "fc3")

    #: (C, H, W) of the input the default configuration is built for.
    input_size: tuple[int, int, int]

    def _flat_features(self, in_channels: int, size: int) -> int:
        """C*H*W after conv5 for a (in_channels, size, size) input, by the shape formula."""
        plan = [(n, m) for n, m in self.layer_plan() if n.startswith("conv")]
        last = trace_shapes(plan, (1, in_channels, size, size), name=type(self).__name__)[-1]
        return int(last.output_shape[1] * last.output_shape[2] * last.output_shape[3])

    def layer_plan(self) -> list[tuple[str, nn.Module]]:
        """Every layer in execution order, as (dotted name, module); the flatten is ``"flatten"``.

        The flatten is a reshape inside :meth:`forward`; it appears here as an
        ``nn.Flatten`` that is not a submodule, so that shape walks include it.
        """
        plan: list[tuple[str, nn.Module]] = []
        for block in self._conv_blocks:
            plan += [(f"{block}.{n}", m) for n, m in getattr(self, block).named_children()]
        plan.append(("flatten", nn.Flatten()))
        for block in self._fc_blocks:
            if block in self._modules:
                plan += [(f"{block}.{n}", m) for n, m in getattr(self, block).named_children()]
        return plan

    def check_input(self, input_shape: Sequence[int]) -> None:
        """Raise :class:`~minitorch_alexnet.shape_walk.InputShapeError` (a ValueError) unless
        an input of ``input_shape`` (N, C, H, W) runs through every layer."""
        check_input(self, input_shape)

    def blocks(self) -> Iterator[tuple[str, nn.Sequential]]:
        """(name, block) for conv1..conv5 and fc1..fc3, in order."""
        for name in (*self._conv_blocks, *self._fc_blocks):
            yield name, getattr(self, name)

    def forward(self, x: Any) -> Any:
        """x (N, C, H, W) -> logits (N, num_classes)."""
        if not hasattr(x, "shape"):
            raise TypeError(
                f"{type(self).__name__}: expected an array of shape (N, C, H, W), got "
                f"{type(x).__name__}; convert it with minitorch_alexnet.asarray(x)"
            )
        self.check_input(tuple(x.shape))
        for name in self._conv_blocks:
            x = getattr(self, name)(x)
        self.save_for_backward(conv_shape=x.shape)
        x = x.reshape(x.shape[0], math.prod(x.shape[1:]))  # flatten: (N, C, H, W) -> (N, C*H*W)
        for name in self._fc_blocks:
            x = getattr(self, name)(x)
        return x

    def backward(self, grad_out: Any, *, input_grad: bool = True) -> Any:
        """dL/dlogits (N, num_classes) -> dL/dx (N, C, H, W); fills every parameter's .grad.

        Training needs only the parameters' gradients: ``input_grad=False`` skips
        dL/dx of the images (conv1's dX_col product and col2im) and returns None,
        as PyTorch does for inputs that do not require grad.
        """
        conv_shape = self.saved()["conv_shape"]
        g = grad_out
        for name in reversed(self._fc_blocks):
            g = getattr(self, name).backward(g)
        g = g.reshape(conv_shape)  # the flatten's backward: (N, C*H*W) -> (N, C, H, W)
        first = self._conv_blocks[0]
        for name in reversed(self._conv_blocks):
            g = getattr(self, name).backward(g, input_grad=input_grad or name != first)
        return g


class AlexNet(_BlockNet):
    """AlexNet as a well-known blog post writes it in PyTorch, with its three bugs fixed.

    Input (N, 3, 227, 227) -> logits (N, num_classes). Blocks, each a Sequential::

        conv1: Conv2d(3, 96, 11, stride 4)    ReLU BatchNorm2d(96)  MaxPool2d(3, 2) Dropout(0.5)
        conv2: Conv2d(96, 256, 5, padding 2)  ReLU BatchNorm2d(256) MaxPool2d(3, 2) Dropout(0.5)
        conv3: Conv2d(256, 384, 3, padding 1) ReLU BatchNorm2d(384)
        conv4: Conv2d(384, 384, 3, padding 1) ReLU BatchNorm2d(384)
        conv5: Conv2d(384, 256, 3, padding 1) ReLU BatchNorm2d(256) MaxPool2d(3, 2) Dropout(0.5)
        (flatten: (N, 256, 6, 6) -> (N, 9216))
        fc1:   Linear(9216, 4096) ReLU BatchNorm1d(4096) Dropout(0.5)
        fc2:   Linear(4096, 4096) ReLU BatchNorm1d(4096) Dropout(0.5)
        fc3:   Linear(4096, num_classes)

    Shapes: 227 -> 55 (conv1) -> 27 (pool) -> 27 (conv2) -> 13 (pool) -> 13 (conv3..5)
    -> 6 (pool). 62,397,480 parameters with 1000 classes.

    Fixed from the blog's code, which would not have trained as written:

    * its ``forward`` computed the output and never returned it, so the model
      returned ``None``; here it returns the logits;
    * it accepted ``num_classes`` but ignored it, the last layer being
      hard-wired to 1000 outputs; here fc3 has ``num_classes`` outputs;
    * fc3 was ``Linear -> ReLU``, so the logits could never be negative and a
      class whose logit is clipped to 0 gets no gradient to climb back with;
      logits go into softmax/cross-entropy unclipped, so the ReLU is gone.

    Args:
        num_classes: outputs of fc3.
        in_channels, channels, hidden, input_size, dropout: keyword-only knobs
            for scaled-down copies (tests); the defaults are the network above.
            ``channels`` are the output channels of conv1..conv5, ``hidden`` the
            width of fc1/fc2, ``input_size`` the square input side that fc1's
            input size is computed for (by the shape formula).
    """

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
        c1, c2, c3, c4, c5 = _five(channels, "AlexNet")
        self.num_classes = num_classes
        self.input_size = (in_channels, input_size, input_size)
        self.conv1 = nn.Sequential(
            nn.Conv2d(in_channels, c1, kernel_size=11, stride=4, padding=0),
            nn.ReLU(),
            nn.BatchNorm2d(c1),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Dropout(dropout),
        )
        self.conv2 = nn.Sequential(
            nn.Conv2d(c1, c2, kernel_size=5, stride=1, padding=2),
            nn.ReLU(),
            nn.BatchNorm2d(c2),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Dropout(dropout),
        )
        self.conv3 = nn.Sequential(
            nn.Conv2d(c2, c3, kernel_size=3, stride=1, padding=1),
            nn.ReLU(),
            nn.BatchNorm2d(c3),
        )
        self.conv4 = nn.Sequential(
            nn.Conv2d(c3, c4, kernel_size=3, stride=1, padding=1),
            nn.ReLU(),
            nn.BatchNorm2d(c4),
        )
        self.conv5 = nn.Sequential(
            nn.Conv2d(c4, c5, kernel_size=3, stride=1, padding=1),
            nn.ReLU(),
            nn.BatchNorm2d(c5),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Dropout(dropout),
        )
        flat = self._flat_features(in_channels, input_size)  # 256 * 6 * 6 = 9216
        self.fc1 = nn.Sequential(
            nn.Linear(flat, hidden), nn.ReLU(), nn.BatchNorm1d(hidden), nn.Dropout(dropout)
        )
        self.fc2 = nn.Sequential(
            nn.Linear(hidden, hidden), nn.ReLU(), nn.BatchNorm1d(hidden), nn.Dropout(dropout)
        )
        self.fc3 = nn.Sequential(nn.Linear(hidden, num_classes))


class AlexNetCIFAR(_BlockNet):
    """The same block style scaled to CIFAR-10's 32x32 images.

    Input (N, 3, 32, 32) -> logits (N, num_classes)::

        conv1: Conv2d(3, 64, 5, padding 2)    ReLU BatchNorm2d(64)  MaxPool2d(3, 2)   32 -> 15
        conv2: Conv2d(64, 192, 5, padding 2)  ReLU BatchNorm2d(192) MaxPool2d(3, 2)   15 -> 7
        conv3: Conv2d(192, 384, 3, padding 1) ReLU BatchNorm2d(384)
        conv4: Conv2d(384, 256, 3, padding 1) ReLU BatchNorm2d(256)
        conv5: Conv2d(256, 256, 3, padding 1) ReLU BatchNorm2d(256) MaxPool2d(3, 2)   7 -> 3
        (flatten: (N, 256, 3, 3) -> (N, 2304))
        fc1:   Linear(2304, 1024) ReLU BatchNorm1d(1024) Dropout(0.5)
        fc2:   Linear(1024, 1024) ReLU BatchNorm1d(1024) Dropout(0.5)
        fc3:   Linear(1024, num_classes)

    5,877,834 parameters with 10 classes; 0.364 GFLOP per image in the
    convolutions and linear layers. The benchmarks hold this exact network
    against PyTorch (:func:`minitorch_alexnet.models.torch_reference.build_torch_model`),
    so it must not change.

    Args:
        num_classes: outputs of fc3.
        in_channels, channels, hidden, input_size, dropout: keyword-only knobs
            for scaled-down copies, as in :class:`AlexNet`.
    """

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
        c1, c2, c3, c4, c5 = _five(channels, "AlexNetCIFAR")
        self.num_classes = num_classes
        self.input_size = (in_channels, input_size, input_size)
        self.conv1 = nn.Sequential(
            nn.Conv2d(in_channels, c1, kernel_size=5, stride=1, padding=2),
            nn.ReLU(),
            nn.BatchNorm2d(c1),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.conv2 = nn.Sequential(
            nn.Conv2d(c1, c2, kernel_size=5, stride=1, padding=2),
            nn.ReLU(),
            nn.BatchNorm2d(c2),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.conv3 = nn.Sequential(
            nn.Conv2d(c2, c3, kernel_size=3, stride=1, padding=1),
            nn.ReLU(),
            nn.BatchNorm2d(c3),
        )
        self.conv4 = nn.Sequential(
            nn.Conv2d(c3, c4, kernel_size=3, stride=1, padding=1),
            nn.ReLU(),
            nn.BatchNorm2d(c4),
        )
        self.conv5 = nn.Sequential(
            nn.Conv2d(c4, c5, kernel_size=3, stride=1, padding=1),
            nn.ReLU(),
            nn.BatchNorm2d(c5),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        flat = self._flat_features(in_channels, input_size)  # 256 * 3 * 3 = 2304
        self.fc1 = nn.Sequential(
            nn.Linear(flat, hidden), nn.ReLU(), nn.BatchNorm1d(hidden), nn.Dropout(dropout)
        )
        self.fc2 = nn.Sequential(
            nn.Linear(hidden, hidden), nn.ReLU(), nn.BatchNorm1d(hidden), nn.Dropout(dropout)
        )
        self.fc3 = nn.Sequential(nn.Linear(hidden, num_classes))


class AlexNet2012(_BlockNet):
    """The network of Krizhevsky, Sutskever and Hinton (NeurIPS 2012).

    Input (N, 3, 227, 227) -> logits (N, num_classes)::

        conv1: Conv2d(3, 96, 11, stride 4)               ReLU LRN MaxPool2d(3, 2)   227 -> 55 -> 27
        conv2: Conv2d(96, 256, 5, padding 2, groups 2)   ReLU LRN MaxPool2d(3, 2)   27 -> 13
        conv3: Conv2d(256, 384, 3, padding 1)            ReLU
        conv4: Conv2d(384, 384, 3, padding 1, groups 2)  ReLU
        conv5: Conv2d(384, 256, 3, padding 1, groups 2)  ReLU MaxPool2d(3, 2)       13 -> 6
        (flatten: (N, 256, 6, 6) -> (N, 9216))
        fc1:   Dropout(0.5) Linear(9216, 4096) ReLU
        fc2:   Dropout(0.5) Linear(4096, 4096) ReLU
        fc3:   Linear(4096, num_classes)

    60,965,224 parameters with 1000 classes. fc1..fc3 are the layers that
    Caffe and many papers call fc6..fc8 (counting the five convolutions first);
    the blocks are named like the other two models here.

    * **Two GPUs, as groups.** The paper split the network over two GPUs of
      3 GB; conv2, conv4 and conv5 only see the feature maps on their own GPU,
      which is exactly a grouped convolution with ``groups=2``. conv3 and the
      fully connected layers communicate across GPUs, so they are ungrouped.
    * **Overlapping pooling**: 3x3 windows with stride 2 (section 3.4).
    * **Dropout** of 0.5 only before the first two fully connected layers (section 4.2).
    * **Local response normalisation** after the ReLUs of conv1 and conv2
      (section 3.3), with the paper's constants n = 5, alpha = 1e-4,
      beta = 0.75, k = 2 (:data:`PAPER_LRN`).

    The LRN constants. The paper divides by ``(k + alpha * sum_j a_j^2)^beta``;
    PyTorch's ``LocalResponseNorm`` (and ours, which follows PyTorch) divides by
    ``(k + alpha / n * sum_j a_j^2)^beta``, i.e. it divides alpha by the window
    size n. "LocalResponseNorm(5, alpha=1e-4, beta=0.75, k=2)" in a description
    of *this* network means the paper's constants, so the layer is built with
    ``alpha = n * 1e-4 = 5e-4``, which computes the paper's formula exactly.
    (Writing ``nn.LocalResponseNorm(5, alpha=1e-4, ...)`` literally, as some
    PyTorch ports do, would normalise five times more weakly than the paper.)

    Args:
        num_classes: outputs of fc3.
        in_channels, channels, hidden, input_size, dropout: keyword-only knobs
            for scaled-down copies, as in :class:`AlexNet`; the grouped layers
            need channel counts divisible by 2.
    """

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
        c1, c2, c3, c4, c5 = _five(channels, "AlexNet2012")
        n = PAPER_LRN["size"]
        lrn = {"alpha": n * PAPER_LRN["alpha"], "beta": PAPER_LRN["beta"], "k": PAPER_LRN["k"]}
        self.num_classes = num_classes
        self.input_size = (in_channels, input_size, input_size)
        self.conv1 = nn.Sequential(
            nn.Conv2d(in_channels, c1, kernel_size=11, stride=4, padding=0),
            nn.ReLU(),
            nn.LocalResponseNorm(n, **lrn),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.conv2 = nn.Sequential(
            nn.Conv2d(c1, c2, kernel_size=5, stride=1, padding=2, groups=2),
            nn.ReLU(),
            nn.LocalResponseNorm(n, **lrn),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.conv3 = nn.Sequential(nn.Conv2d(c2, c3, kernel_size=3, stride=1, padding=1), nn.ReLU())
        self.conv4 = nn.Sequential(
            nn.Conv2d(c3, c4, kernel_size=3, stride=1, padding=1, groups=2), nn.ReLU()
        )
        self.conv5 = nn.Sequential(
            nn.Conv2d(c4, c5, kernel_size=3, stride=1, padding=1, groups=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        flat = self._flat_features(in_channels, input_size)  # 256 * 6 * 6 = 9216
        self.fc1 = nn.Sequential(nn.Dropout(dropout), nn.Linear(flat, hidden), nn.ReLU())
        self.fc2 = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden, hidden), nn.ReLU())
        self.fc3 = nn.Sequential(nn.Linear(hidden, num_classes))
