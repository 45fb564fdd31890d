"""Learning-rate schedulers: ``StepLR``, ``CosineAnnealingLR`` and ``OneCycleLR``.

They follow ``torch.optim.lr_scheduler`` exactly (same formulas, same order of
floating-point operations, same step counting), so a recipe written for PyTorch
gives the same learning rates here. Usage is PyTorch's::

    sched = OneCycleLR(opt, max_lr=0.1, total_steps=epochs * len(loader))
    for x, y in loader:
        ...; opt.step(); sched.step()      # OneCycleLR steps once per batch

Creating a scheduler already performs "step 0": it sets every group's ``lr`` to
the schedule's first value. Each :meth:`LRScheduler.step` then advances
``last_epoch`` by one and writes the next value into ``group["lr"]``.
"""

from __future__ import annotations

import copy
import math
import numbers
from collections.abc import Mapping
from typing import Any

from .optimizer import Optimizer


class LRScheduler:
    """Base class: keeps ``base_lrs``, ``last_epoch`` and the last learning rates.

    Args:
        optimizer: the optimiser whose groups' ``lr`` this scheduler sets.
        last_epoch: index of the last step taken (-1 for a fresh schedule).
    """

    def __init__(self, optimizer: Optimizer, last_epoch: int = -1):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer
        if last_epoch == -1:
            for group in optimizer.param_groups:
                group.setdefault("initial_lr", group["lr"])
        else:
            for i, group in enumerate(optimizer.param_groups):
                if "initial_lr" not in group:
                    raise KeyError(
                        f"param_groups[{i}] has no 'initial_lr': load the optimizer's state "
                        "before resuming a scheduler with last_epoch >= 0"
                    )
        self.base_lrs: list[float] = [group["initial_lr"] for group in optimizer.param_groups]
        self.last_epoch = last_epoch
        self._step_count = 0
        self._is_initial = True
        self.step()
        self._is_initial = False

    def get_lr(self) -> list[float]:
        """The learning rate of each group for step ``last_epoch`` (called by :meth:`step`)."""
        raise NotImplementedError

    def step(self) -> None:
        """Advance the schedule by one step and write the new rates into the optimizer."""
        self._step_count += 1
        self.last_epoch += 1
        values = self.get_lr()
        for group, lr in zip(self.optimizer.param_groups, values):
            group["lr"] = lr
        self._last_lr = [group["lr"] for group in self.optimizer.param_groups]

    def get_last_lr(self) -> list[float]:
        """The learning rates set by the latest :meth:`step`, one per parameter group."""
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        """Everything but the optimizer, as plain numbers, strings and lists (JSON-friendly)."""
        return {
            k: (list(v) if isinstance(v, tuple) else v)
            for k, v in self.__dict__.items()
            if k != "optimizer"
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a state made by :meth:`state_dict`; one that does not fit changes nothing.

        Raises:
            ValueError, TypeError: what does not fit (see :meth:`check_state_dict`).
        """
        self.check_state_dict(state_dict)
        self.__dict__.update(copy.deepcopy(dict(state_dict)))

    def check_state_dict(self, state_dict: Any) -> None:
        """Raise if :meth:`load_state_dict` would refuse ``state_dict``; change nothing.

        The state must hold exactly the keys this scheduler's own state has (never
        ``optimizer``), each of the same kind (a whole number, a finite number, a flag,
        text, a list of these), one learning rate per parameter group, and values the
        schedule can step from (``_check_values`` of each scheduler).

        Raises:
            ValueError: a key is missing or unexpected, or a value is out of range.
            TypeError: a value has the wrong type.
        """
        if not isinstance(state_dict, Mapping):
            raise TypeError(f"a scheduler state is a dict, not a {type(state_dict).__name__}")
        own = self.state_dict()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if missing or unexpected:
            raise ValueError(
                f"the {type(self).__name__} state "
                + "; ".join(
                    f"{label} {', '.join(map(repr, keys))}"
                    for label, keys in (("lacks", missing), ("has unexpected", unexpected))
                    if keys
                )
            )
        for k, template in own.items():
            _check_like(k, template, state_dict[k])
        n = len(self.optimizer.param_groups)
        for k in ("base_lrs", "_last_lr"):
            if k in own and len(state_dict[k]) != n:
                raise ValueError(f"{k} has {len(state_dict[k])} values for {n} parameter groups")
        _whole("last_epoch", state_dict, -1)
        _whole("_step_count", state_dict, 0)
        self._check_values(state_dict)

    def _check_values(self, state: Mapping[str, Any]) -> None:
        """Each scheduler's own limits on its state's values (its keys and kinds are checked)."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(last_epoch={self.last_epoch}, lr={self.get_last_lr()})"


class StepLR(LRScheduler):
    """Multiply the learning rate by ``gamma`` every ``step_size`` steps.

    ``lr = initial_lr * gamma ** (last_epoch // step_size)``, computed as PyTorch
    does: by multiplying the current rate when a boundary is crossed.
    """

    def __init__(
        self, optimizer: Optimizer, step_size: int, gamma: float = 0.1, last_epoch: int = -1
    ):
        if step_size <= 0:
            raise ValueError(f"step_size must be a positive integer, got {step_size}")
        self.step_size = step_size
        self.gamma = gamma
        super().__init__(optimizer, last_epoch)

    def _check_values(self, state: Mapping[str, Any]) -> None:
        _whole("step_size", state, 1)

    def get_lr(self) -> list[float]:
        groups = self.optimizer.param_groups
        if self.last_epoch == 0 or self.last_epoch % self.step_size != 0:
            return [g["lr"] for g in groups]
        return [g["lr"] * self.gamma for g in groups]


class CosineAnnealingLR(LRScheduler):
    """Cosine annealing from the initial rate down to ``eta_min`` over ``T_max`` steps.

    ``lr_t = eta_min + (initial_lr - eta_min) * (1 + cos(pi * t / T_max)) / 2``,
    evaluated recursively as PyTorch does (past ``T_max`` the rate rises again:
    the cosine continues, it does not restart).
    """

    def __init__(
        self, optimizer: Optimizer, T_max: int, eta_min: float = 0.0, last_epoch: int = -1
    ):
        self.T_max = T_max
        self.eta_min = eta_min
        super().__init__(optimizer, last_epoch)

    def _check_values(self, state: Mapping[str, Any]) -> None:
        _whole("T_max", state, 1)

    def get_lr(self) -> list[float]:
        groups = self.optimizer.param_groups
        t, T, lo = self.last_epoch, self.T_max, self.eta_min
        if self._is_initial:
            return [g["lr"] for g in groups]
        if self._step_count == 1 and t > 0:
            return [
                lo + (base - lo) * (1 + math.cos(t * math.pi / T)) / 2 for base in self.base_lrs
            ]
        if (t - 1 - T) % (2 * T) == 0:
            return [
                g["lr"] + (base - lo) * (1 - math.cos(math.pi / T)) / 2
                for base, g in zip(self.base_lrs, groups)
            ]
        return [
            (1 + math.cos(math.pi * t / T)) / (1 + math.cos(math.pi * (t - 1) / T)) * (g["lr"] - lo)
            + lo
            for g in groups
        ]


class OneCycleLR(LRScheduler):
    """The 1cycle policy (Smith & Topin): warm up to ``max_lr``, then anneal far below the start.

    Steps once per *batch*. With the defaults the rate starts at
    ``max_lr / div_factor``, rises over the first ``pct_start`` of ``total_steps``
    to ``max_lr``, then falls to ``initial_lr / final_div_factor``. With
    ``three_phase`` it first comes back down to the initial rate symmetrically and
    only then anneals to the minimum.

    With ``cycle_momentum`` (the default, as in PyTorch) the momentum moves
    against the rate, from ``max_momentum`` down to ``base_momentum`` and back:
    SGD's ``momentum`` or Adam's ``beta1`` is overwritten each step.

    Args:
        optimizer: the optimiser.
        max_lr: peak learning rate (one value, or one per group).
        total_steps: number of :meth:`step` calls in the whole run (or give
            ``epochs`` and ``steps_per_epoch``).
        pct_start: fraction of the steps spent warming up.
        anneal_strategy: ``"cos"`` or ``"linear"``.
        cycle_momentum, base_momentum, max_momentum: the momentum cycle.
        div_factor: ``initial_lr = max_lr / div_factor``.
        final_div_factor: ``min_lr = initial_lr / final_div_factor``.
        three_phase: use the three-phase schedule.
    """

    def __init__(
        self,
        optimizer: Optimizer,
        max_lr: float | list[float],
        total_steps: int | None = None,
        epochs: int | None = None,
        steps_per_epoch: int | None = None,
        pct_start: float = 0.3,
        anneal_strategy: str = "cos",
        cycle_momentum: bool = True,
        base_momentum: float | list[float] = 0.85,
        max_momentum: float | list[float] = 0.95,
        div_factor: float = 25.0,
        final_div_factor: float = 1e4,
        three_phase: bool = False,
        last_epoch: int = -1,
    ):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        if total_steps is not None:
            if not isinstance(total_steps, int) or total_steps <= 0:
                raise ValueError(f"expected a positive integer total_steps, got {total_steps}")
            self.total_steps = total_steps
        elif epochs is not None and steps_per_epoch is not None:
            if epochs <= 0 or steps_per_epoch <= 0:
                raise ValueError("epochs and steps_per_epoch must be positive integers")
            self.total_steps = int(epochs) * int(steps_per_epoch)
        else:
            raise ValueError("give either total_steps or both epochs and steps_per_epoch")
        if not 0.0 <= float(pct_start) <= 1.0:
            raise ValueError(f"pct_start must be between 0 and 1, got {pct_start}")
        if anneal_strategy not in ("cos", "linear"):
            raise ValueError(f"anneal_strategy must be 'cos' or 'linear', got {anneal_strategy!r}")
        self.anneal_strategy = anneal_strategy

        n = self.total_steps
        warm_end = float(pct_start * n) - 1
        if three_phase:
            self._schedule_phases = [
                [warm_end, "initial_lr", "max_lr", "max_momentum", "base_momentum"],
                [
                    float(2 * pct_start * n) - 2,
                    "max_lr",
                    "initial_lr",
                    "base_momentum",
                    "max_momentum",
                ],
                [n - 1, "initial_lr", "min_lr", "max_momentum", "max_momentum"],
            ]
        else:
            self._schedule_phases = [
                [warm_end, "initial_lr", "max_lr", "max_momentum", "base_momentum"],
                [n - 1, "max_lr", "min_lr", "base_momentum", "max_momentum"],
            ]

        groups = optimizer.param_groups
        max_lrs = _per_group("max_lr", groups, max_lr)
        if last_epoch == -1:
            for group, top in zip(groups, max_lrs):
                group["initial_lr"] = top / div_factor
                group["max_lr"] = top
                group["min_lr"] = group["initial_lr"] / final_div_factor

        self.cycle_momentum = cycle_momentum
        if cycle_momentum:
            if "momentum" not in optimizer.defaults and "betas" not in optimizer.defaults:
                raise ValueError("cycle_momentum needs an optimizer with momentum or betas")
            self.use_beta1 = "betas" in optimizer.defaults
            highs = _per_group("max_momentum", groups, max_momentum)
            lows = _per_group("base_momentum", groups, base_momentum)
            if last_epoch == -1:
                for group, hi, lo in zip(groups, highs, lows):
                    if self.use_beta1:
                        group["betas"] = (hi, *group["betas"][1:])
                    else:
                        group["momentum"] = hi
                    group["max_momentum"] = hi
                    group["base_momentum"] = lo
        super().__init__(optimizer, last_epoch)

    def _check_values(self, state: Mapping[str, Any]) -> None:
        _whole("total_steps", state, 1)
        if state["last_epoch"] > state["total_steps"]:
            raise ValueError(
                f"last_epoch {state['last_epoch']} is past total_steps {state['total_steps']}"
            )
        if state["anneal_strategy"] not in ("cos", "linear"):
            raise ValueError(f"anneal_strategy is {state['anneal_strategy']!r}, not cos or linear")
        names = {"initial_lr", "max_lr", "min_lr", "max_momentum", "base_momentum"}
        for i, phase in enumerate(state["_schedule_phases"]):
            if not set(phase[1:]) <= names:
                raise ValueError(f"_schedule_phases[{i}] names {phase[1:]}, not among {names}")

    def _anneal(self, start: float, end: float, pct: float) -> float:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (math.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def get_lr(self) -> list[float]:
        step = self.last_epoch
        if step > self.total_steps:
            raise ValueError(
                f"OneCycleLR stepped {step} times but was built for total_steps={self.total_steps}"
            )
        lrs = []
        last = len(self._schedule_phases) - 1
        for group in self.optimizer.param_groups:
            start_step = 0.0
            for i, (end_step, lr0, lr1, mom0, mom1) in enumerate(self._schedule_phases):
                if step <= end_step or i == last:
                    span = end_step - start_step
                    # a phase shorter than one step (tiny total_steps) is at its end at once,
                    # where PyTorch would divide by zero
                    pct = (step - start_step) / span if span > 0 else 1.0
                    lr = self._anneal(group[lr0], group[lr1], pct)
                    if self.cycle_momentum:
                        momentum = self._anneal(group[mom0], group[mom1], pct)
                    break
                start_step = end_step
            lrs.append(lr)
            if self.cycle_momentum:
                if self.use_beta1:
                    group["betas"] = (momentum, *group["betas"][1:])
                else:
                    group["momentum"] = momentum
        return lrs


def _per_group(name: str, groups: list[dict[str, Any]], value: Any) -> list[float]:
    if isinstance(value, list | tuple):
        if len(value) != len(groups):
            raise ValueError(f"{name} has {len(value)} values for {len(groups)} parameter groups")
        return [float(v) for v in value]
    return [float(value)] * len(groups)


def _kind(v: Any) -> str:
    if isinstance(v, bool):
        return "a flag (True or False)"
    if isinstance(v, numbers.Real):
        return "a finite number"
    if isinstance(v, str):
        return "text"
    if isinstance(v, list | tuple):
        return "a list"
    return "None" if v is None else type(v).__name__


def _finite(v: Any) -> bool:
    try:
        return math.isfinite(float(v))
    except OverflowError:  # a whole number too large for a float
        return False


def _check_like(where: str, template: Any, value: Any) -> None:
    """``value`` must be of ``template``'s kind; lists element by element (a list whose
    elements are all of one kind may have any length)."""
    kind = _kind(template)
    if _kind(value) != kind or (kind == "a finite number" and not _finite(value)):
        raise TypeError(f"{where} is {value!r}, not {kind}")
    if kind != "a list":
        return
    if len({_kind(t) for t in template}) <= 1:
        if template:
            for i, v in enumerate(value):
                _check_like(f"{where}[{i}]", template[0], v)
        elif value:
            raise ValueError(f"{where} is {value!r}, not an empty list")
        return
    if len(value) != len(template):
        raise ValueError(f"{where} has {len(value)} entries, not {len(template)}")
    for i, (t, v) in enumerate(zip(template, value)):
        _check_like(f"{where}[{i}]", t, v)


def _whole(key: str, state: Mapping[str, Any], least: int) -> None:
    """``state[key]`` must be a whole number of at least ``least``."""
    v = state[key]
    if not (isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= least):
        raise ValueError(f"{key} is {v!r}, not a whole number >= {least}")
