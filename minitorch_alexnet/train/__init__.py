"""Training a classifier: the loop, evaluation, and the bookkeeping of a run.

In Python::

    from minitorch_alexnet.train import TrainConfig, train
    history = train(TrainConfig(model="tiny", dataset="synthetic", epochs=2))
    history[-1]["test_acc"]  # one dict per epoch, as in runs/cifar/<n>/metrics.json

Each run writes into a new numbered folder, ``runs/cifar/1``, ``runs/cifar/2``, ...,
unless ``out`` names one; a folder that holds a run is refused unless ``resume``
continues it or ``overwrite`` replaces it, and a folder another run is using is
refused too.

From the shell, ``examples/train_cifar.py`` turns its flags into a :class:`TrainConfig`
and calls :func:`run` (:func:`train` with exit codes: 0 done, 2 a problem the user
can fix, 3 diverged, 130 interrupted).

Four modules, to read in this order:

* :mod:`.loop` -- the loop itself: one step (forward, loss, backward, optimiser
  step), one epoch of steps, evaluation, and the check that the weights and
  statistics are finite;
* :mod:`.config` -- the settings, :class:`TrainConfig`, and their checks;
* :mod:`.trainer` -- a whole run: building the data, model and optimiser, the
  epochs, an atomic ``checkpoint.npz`` after every epoch, and the check that a
  resume uses the same settings;
* :mod:`.rundir` -- the run's folder: which one, the lock that keeps a second run
  out, and its files (``metrics.json``, ``curves.png``).
"""

from .loop import Diverged, evaluate, make_train_step, train_one_epoch
from .trainer import ConfigError, TrainConfig, TrainingError, run, train

__all__ = [
    "ConfigError",
    "Diverged",
    "TrainConfig",
    "TrainingError",
    "evaluate",
    "make_train_step",
    "run",
    "train",
    "train_one_epoch",
]
