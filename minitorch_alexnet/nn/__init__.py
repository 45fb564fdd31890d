"""Layers with hand-written forward and backward passes, in PyTorch's names.

One small file per layer; each states its forward and backward math beside the code.
"""

from .activation import ReLU
from .batchnorm import BatchNorm1d, BatchNorm2d
from .container import Sequential
from .conv import Conv2d
from .dropout import Dropout
from .linear import Flatten, Linear
from .loss import CrossEntropyLoss
from .lrn import LocalResponseNorm
from .module import Module, Parameter, is_grad_enabled, no_grad
from .pooling import MaxPool2d

__all__ = [
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv2d",
    "CrossEntropyLoss",
    "Dropout",
    "Flatten",
    "Linear",
    "LocalResponseNorm",
    "MaxPool2d",
    "Module",
    "Parameter",
    "ReLU",
    "Sequential",
    "is_grad_enabled",
    "no_grad",
]
