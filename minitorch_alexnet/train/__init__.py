"""Training a classifier: the loop, evaluation, and the bookkeeping of a run.

In Python::

    from minitorch_alexnet.train import TrainConfig, train
    history = train(TrainConfig(model="tiny", dataset="synthetic", epochs=2, out="runs/tiny"))
    history[-1]["test_acc"]  # one dict per epoch, as in out/metrics.json

From the shell, ``examples/train_cifar.py`` turns its flags into a :class:`TrainConfig`
and calls :func:`run` (:func:`train` with exit codes: 0 done, 2 a problem the user
can fix, 3 diverged, 130 interrupted).

Two modules, to read in this order:

* :mod:`.loop` -- the loop itself: one step (forward, loss, backward, optimiser
  step), one epoch of steps, and evaluation;
* :mod:`.trainer` -- a whole run: the settings, building the data, model and
  optimiser, the epochs, and the files (``metrics.json``, ``curves.png``, an
  atomic ``checkpoint.npz`` after every epoch, the check that a resume uses the
  same settings).
"""

from .loop import Diverged, evaluate, make_train_step, train_one_epoch
from .trainer import TrainConfig, TrainingError, run, train

__all__ = [
    "Diverged",
    "TrainConfig",
    "TrainingError",
    "evaluate",
    "make_train_step",
    "run",
    "train",
    "train_one_epoch",
]
