"""Models: five AlexNets with hand-written forward and backward passes.

* :class:`AlexNet` -- a blog post's PyTorch AlexNet (BatchNorm, dropout in the
  conv blocks), input 3x227x227, with the post's three bugs fixed;
* :class:`AlexNetCIFAR` -- the same block style for 3x32x32 CIFAR images;
* :class:`AlexNet2012` -- the 2012 paper's network (LRN, grouped convolutions);
* :class:`TorchvisionAlexNet` (:func:`alexnet`) -- torchvision's ``alexnet()``, with its
  state_dict keys, so PyTorch's weights load into it;
* :class:`AlexNetMNIST` -- the block style sized for 1x28x28 MNIST and Fashion-MNIST;
* :func:`tiny_cnn` -- not an AlexNet: a small CNN for quick smoke runs of training.

``build_model("alexnet_cifar")`` builds one by name. The equivalent PyTorch
networks, for tests and benchmarks, are in :mod:`.torch_reference` (which
imports torch only when called).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..nn import Module
from .alexnet import PAPER_LRN, AlexNet, AlexNet2012, AlexNetCIFAR
from .mnist import AlexNetMNIST
from .tiny import tiny_cnn
from .torchvision import TorchvisionAlexNet, alexnet

#: Model names accepted by :func:`build_model` and the command line.
MODELS: dict[str, Callable[..., Module]] = {
    "alexnet": AlexNet,
    "alexnet_cifar": AlexNetCIFAR,
    "alexnet2012": AlexNet2012,
    "torchvision_alexnet": TorchvisionAlexNet,
    "alexnet_mnist": AlexNetMNIST,
    "tiny": tiny_cnn,
}

#: The square input side each model is built for (what the images are resized to).
INPUT_SIDES: dict[str, int] = {
    "alexnet": 227,
    "alexnet_cifar": 32,
    "alexnet2012": 227,
    "torchvision_alexnet": 224,
    "alexnet_mnist": 28,
    "tiny": 32,
}


def build_model(name: str, num_classes: int | None = None, **kwargs: Any) -> Module:
    """Build a model by name (a key of :data:`MODELS`, e.g. ``"alexnet_cifar"``).

    ``num_classes`` defaults to the model's own default (1000 for the ImageNet-sized
    ones, 10 for the others); other keyword arguments go to the constructor
    (``in_channels=``, ``channels=``, ``hidden=``, ...).
    """
    key = name.lower().replace("-", "_")
    if key not in MODELS:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    if num_classes is not None:
        kwargs["num_classes"] = num_classes
    return MODELS[key](**kwargs)


__all__ = [
    "MODELS",
    "PAPER_LRN",
    "AlexNet",
    "AlexNet2012",
    "AlexNetCIFAR",
    "AlexNetMNIST",
    "INPUT_SIDES",
    "TorchvisionAlexNet",
    "alexnet",
    "build_model",
    "tiny_cnn",
]
