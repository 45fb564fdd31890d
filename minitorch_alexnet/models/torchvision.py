"""torchvision's AlexNet, layer for layer, with the same state_dict keys.

``torchvision.models.alexnet()`` is the AlexNet most PyTorch users meet. It has
three submodules, and their indices are the state_dict keys (``features.0.weight``,
``classifier.6.bias``, ...), so a PyTorch state dict loads into this model as it is
(:mod:`minitorch_alexnet.checkpoint.weights`)::

    features    0 Conv2d(3, 64, 11, stride 4, padding 2)   1 ReLU  2 MaxPool2d(3, 2)
                3 Conv2d(64, 192, 5, padding 2)            4 ReLU  5 MaxPool2d(3, 2)
                6 Conv2d(192, 384, 3, padding 1)           7 ReLU
                8 Conv2d(384, 256, 3, padding 1)           9 ReLU
               10 Conv2d(256, 256, 3, padding 1)          11 ReLU 12 MaxPool2d(3, 2)
    avgpool       AdaptiveAvgPool2d((6, 6))
    (flatten: (N, 256, 6, 6) -> (N, 9216), torch.flatten(x, 1) in torchvision)
    classifier  0 Dropout(0.5)  1 Linear(9216, 4096)  2 ReLU
                3 Dropout(0.5)  4 Linear(4096, 4096)  5 ReLU
                6 Linear(4096, num_classes)

Shapes at 224: 224 -> 55 (conv) -> 27 (pool) -> 27 -> 13 (pool) -> 13 -> 6 (pool) -> 6
(avgpool: nothing to average). Other input sizes from 63 up work too: the adaptive
pool averages whatever map arrives down to 6x6. 61,100,840 parameters with 1000 classes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from .. import nn
from ..shape_walk import check_input

__all__ = ["TorchvisionAlexNet", "alexnet"]


class TorchvisionAlexNet(nn.Module):
    """torchvision's ``AlexNet(num_classes=1000, dropout=0.5)``: input (N, 3, H, W), H and W
    at least 63 (224 by default) -> logits (N, num_classes).

    Args:
        num_classes: outputs of the last Linear layer (``classifier.6``).
        dropout: the probability of both Dropout layers.
        in_channels: input channels (keyword-only; torchvision's is 3).
    """

    #: (C, H, W) of the input torchvision's transforms give it.
    input_size: tuple[int, int, int]

    def __init__(self, num_classes: int = 1000, dropout: float = 0.5, *, in_channels: int = 3):
        super().__init__()
        self.num_classes = num_classes
        self.input_size = (in_channels, 224, 224)
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d((6, 6))
        self.classifier = nn.Sequential(
            nn.Dropout(p=dropout),
            nn.Linear(256 * 6 * 6, 4096),
            nn.ReLU(),
            nn.Dropout(p=dropout),
            nn.Linear(4096, 4096),
            nn.ReLU(),
            nn.Linear(4096, num_classes),
        )

    def layer_plan(self) -> list[tuple[str, nn.Module]]:
        """Every layer in execution order, as (dotted name, module); the flatten, a reshape
        inside :meth:`forward`, appears as an ``nn.Flatten`` named ``"flatten"``."""
        plan = [(f"features.{n}", m) for n, m in self.features.named_children()]
        plan += [("avgpool", self.avgpool), ("flatten", nn.Flatten())]
        return plan + [(f"classifier.{n}", m) for n, m in self.classifier.named_children()]

    def check_input(self, input_shape: Sequence[int]) -> None:
        """Raise :class:`~minitorch_alexnet.shape_walk.InputShapeError` (a ValueError) unless
        an input of ``input_shape`` (N, C, H, W) runs through every layer."""
        check_input(self, input_shape)

    def forward(self, x: Any) -> Any:
        """x (N, C, H, W) -> logits (N, num_classes)."""
        if not hasattr(x, "shape"):
            raise TypeError(
                f"TorchvisionAlexNet: expected an array of shape (N, C, H, W), got "
                f"{type(x).__name__}; convert it with minitorch_alexnet.asarray(x)"
            )
        self.check_input(tuple(x.shape))
        x = self.avgpool(self.features(x))
        self.save_for_backward(pooled_shape=x.shape)
        x = x.reshape(x.shape[0], math.prod(x.shape[1:]))  # flatten: (N, 256, 6, 6) -> (N, 9216)
        return self.classifier(x)

    def backward(self, grad_out: Any, *, input_grad: bool = True) -> Any:
        """dL/dlogits (N, num_classes) -> dL/dx (N, C, H, W), or None with
        ``input_grad=False``; fills every parameter's .grad."""
        pooled_shape = self.saved()["pooled_shape"]
        g = self.classifier.backward(grad_out)
        g = self.avgpool.backward(g.reshape(pooled_shape))  # the flatten's backward: a reshape
        return self.features.backward(g, input_grad=input_grad)


def alexnet(num_classes: int = 1000, dropout: float = 0.5, **kwargs: Any) -> TorchvisionAlexNet:
    """``torchvision.models.alexnet()``'s network with fresh weights (our initialisation).

    Load torchvision's trained weights with
    :func:`minitorch_alexnet.checkpoint.load_weights` from a file that PyTorch saved
    (``torch.save(torchvision_model.state_dict(), "alexnet.pt")``) or a safetensors file.
    """
    return TorchvisionAlexNet(num_classes=num_classes, dropout=dropout, **kwargs)
