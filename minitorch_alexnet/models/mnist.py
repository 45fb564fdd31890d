"""An AlexNet-style network sized for 28x28 greyscale images (MNIST, Fashion-MNIST).

The same five conv blocks and three fully connected blocks as the other AlexNets
here (:mod:`.alexnet`), narrower, with 3x3 convolutions and a 2x2 pool where the
28x28 image cannot afford an 11x11 stride-4 one: 0.43 M parameters, a few seconds per
thousand images on a laptop CPU.
"""

from __future__ import annotations

from collections.abc import Sequence

from .. import nn
from .alexnet import _BlockNet, _five

__all__ = ["AlexNetMNIST"]


class AlexNetMNIST(_BlockNet):
    """Input (N, 1, 28, 28) -> logits (N, num_classes)::

        conv1: Conv2d(1, 32, 3, padding 1)   ReLU BatchNorm2d(32) MaxPool2d(2)      28 -> 14
        conv2: Conv2d(32, 64, 3, padding 1)  ReLU BatchNorm2d(64) MaxPool2d(2)      14 -> 7
        conv3: Conv2d(64, 96, 3, padding 1)  ReLU BatchNorm2d(96)
        conv4: Conv2d(96, 96, 3, padding 1)  ReLU BatchNorm2d(96)
        conv5: Conv2d(96, 64, 3, padding 1)  ReLU BatchNorm2d(64) MaxPool2d(3, 2)   7 -> 3
        (flatten: (N, 64, 3, 3) -> (N, 576))
        fc1:   Linear(576, 256) ReLU BatchNorm1d(256) Dropout(0.5)
        fc2:   Linear(256, 256) ReLU BatchNorm1d(256) Dropout(0.5)
        fc3:   Linear(256, num_classes)

    Args:
        num_classes: outputs of fc3.
        in_channels, channels, hidden, input_size, dropout: keyword-only knobs, as in
            :class:`~minitorch_alexnet.models.AlexNet`.
    """

    def __init__(
        self,
        num_classes: int = 10,
        *,
        in_channels: int = 1,
        channels: Sequence[int] = (32, 64, 96, 96, 64),
        hidden: int = 256,
        input_size: int = 28,
        dropout: float = 0.5,
    ):
        super().__init__()
        c1, c2, c3, c4, c5 = _five(channels, "AlexNetMNIST")
        self.num_classes = num_classes
        self.input_size = (in_channels, input_size, input_size)

        def conv(c_in: int, c_out: int, *pool: nn.Module) -> nn.Sequential:
            layer = nn.Conv2d(c_in, c_out, kernel_size=3, stride=1, padding=1)
            return nn.Sequential(layer, nn.ReLU(), nn.BatchNorm2d(c_out), *pool)

        self.conv1 = conv(in_channels, c1, nn.MaxPool2d(kernel_size=2))
        self.conv2 = conv(c1, c2, nn.MaxPool2d(kernel_size=2))
        self.conv3 = conv(c2, c3)
        self.conv4 = conv(c3, c4)
        self.conv5 = conv(c4, c5, nn.MaxPool2d(kernel_size=3, stride=2))
        flat = self._flat_features(in_channels, input_size)  # 64 * 3 * 3 = 576
        self.fc1 = nn.Sequential(
            nn.Linear(flat, hidden), nn.ReLU(), nn.BatchNorm1d(hidden), nn.Dropout(dropout)
        )
        self.fc2 = nn.Sequential(
            nn.Linear(hidden, hidden), nn.ReLU(), nn.BatchNorm1d(hidden), nn.Dropout(dropout)
        )
        self.fc3 = nn.Sequential(nn.Linear(hidden, num_classes))
