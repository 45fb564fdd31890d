"""A tiny CNN for smoke runs: seconds per epoch on a laptop CPU, 34 k parameters.

It is not an AlexNet; it exists so that a whole training run (data, loop,
checkpoints, curves) can be checked end to end in moments::

    python examples/train_cifar.py --model tiny --epochs 3 --subset 5000 --test-subset 1000
"""

from __future__ import annotations

from .. import nn

__all__ = ["tiny_cnn"]


def tiny_cnn(num_classes: int = 10, width: int = 16, *, in_channels: int = 3) -> nn.Sequential:
    """Three conv blocks and a linear layer, for inputs of shape ``(N, in_channels, 32, 32)``.

    Each block is conv 3x3 (padding 1), ReLU, BatchNorm, max-pool 2x2, so the
    feature maps go ``(N, width, 16, 16) -> (N, 2 width, 8, 8) -> (N, 4 width, 4, 4)``;
    then flatten to ``(N, 64 width)``, dropout 0.2 and a linear layer to the
    logits ``(N, num_classes)``. The layers are numbered ``0`` ... ``14`` in the
    state dict (``0.weight`` is the first convolution's).
    """
    layers: list[nn.Module] = []
    c_in = in_channels
    for c_out in (width, 2 * width, 4 * width):
        layers += [
            nn.Conv2d(c_in, c_out, 3, padding=1),
            nn.ReLU(),
            nn.BatchNorm2d(c_out),
            nn.MaxPool2d(2),
        ]
        c_in = c_out
    layers += [nn.Flatten(), nn.Dropout(0.2), nn.Linear(c_in * 4 * 4, num_classes)]
    return nn.Sequential(*layers)
