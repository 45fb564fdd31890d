"""Optimisers and learning-rate schedulers with PyTorch's update formulas.

from minitorch_alexnet import optim
opt = optim.SGD(model.parameters(), lr=0.1, momentum=0.9, nesterov=True, weight_decay=5e-4)
sched = optim.OneCycleLR(opt, max_lr=0.1, total_steps=steps, pct_start=0.2)
...
opt.zero_grad(); model.backward(crit.backward()); opt.step(); sched.step()

``optim.swa_utils`` keeps averages of the weights (``AveragedModel``, an EMA).
"""

from . import swa_utils
from .adam import Adam, AdamW
from .lr_scheduler import CosineAnnealingLR, LRScheduler, OneCycleLR, StepLR
from .optimizer import Optimizer
from .sgd import SGD

__all__ = [
    "Adam",
    "AdamW",
    "CosineAnnealingLR",
    "LRScheduler",
    "OneCycleLR",
    "Optimizer",
    "SGD",
    "StepLR",
    "swa_utils",
]
