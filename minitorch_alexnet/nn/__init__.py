"""Layers with hand-written forward and backward passes, in PyTorch's names.

One small file per layer; each states its forward and backward math beside the code.
"""

from .activation import ReLU
from .adaptive import AdaptiveAvgPool2d, AdaptiveMaxPool2d
from .avgpool import AvgPool2d
from .batchnorm import BatchNorm1d, BatchNorm2d
from .container import Sequential
from .conv import Conv2d
from .dropout import Dropout
from .linear import Flatten, Linear
from .loss import CrossEntropyLoss
from .lrn import LocalResponseNorm
from .module import Module, Parameter, is_grad_enabled, no_grad
from .pooling import MaxPool2d
from .softmax import LogSoftmax, NLLLoss, Softmax
from .syncbatchnorm import SyncBatchNorm

__all__ = [
    "AdaptiveAvgPool2d",
    "AdaptiveMaxPool2d",
    "AvgPool2d",
    "BatchNorm1d",
    "BatchNorm2d",
    "Conv2d",
    "CrossEntropyLoss",
    "Dropout",
    "Flatten",
    "Linear",
    "LocalResponseNorm",
    "LogSoftmax",
    "MaxPool2d",
    "Module",
    "NLLLoss",
    "Parameter",
    "ReLU",
    "Sequential",
    "Softmax",
    "SyncBatchNorm",
    "is_grad_enabled",
    "no_grad",
]
