"""The ``Optimizer`` base class: parameter groups, ``zero_grad`` and state (de)serialisation.

An optimiser holds *parameter groups*, as in PyTorch: each group is a dict with a
``"params"`` list and its own hyper-parameters (``lr``, ``momentum``, ...).
Learning-rate schedulers change ``group["lr"]`` between steps.

Per-parameter state (momentum buffers, Adam's moments) lives in ``self.state``, a
dict keyed by the ``Parameter`` object. :meth:`Optimizer.state_dict` turns it into
plain arrays and numbers keyed by the parameter's position, so it can be written
to an ``.npz`` file and loaded back on any backend.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any

from .. import backend as _backend
from ..nn.module import Parameter

ParamsLike = Iterable[Parameter] | Iterable[dict[str, Any]]


class Optimizer:
    """Base class of the optimisers.

    Args:
        params: an iterable of :class:`Parameter` (a model's ``parameters()``), or an
            iterable of dicts, each with a ``"params"`` entry and optional
            hyper-parameters that override ``defaults`` for that group.
        defaults: the hyper-parameters of every group that does not set its own.

    Subclasses implement :meth:`step` and name their per-parameter array states in
    ``_state_arrays`` (for example ``("momentum_buffer",)``).
    """

    _state_arrays: tuple[str, ...] = ()

    def __init__(self, params: ParamsLike, defaults: dict[str, Any]):
        self.defaults = dict(defaults)
        self.param_groups: list[dict[str, Any]] = []
        self.state: dict[Parameter, dict[str, Any]] = {}
        # per group, 0-d device arrays that step() reads instead of numbers (CUDA graphs)
        self._device_hyper: list[dict[str, Any]] | None = None
        groups = list(params)
        if not groups:
            raise ValueError(f"{type(self).__name__} got an empty list of parameters")
        if not isinstance(groups[0], dict):
            groups = [{"params": groups}]
        for g in groups:
            self.add_param_group(g)

    def add_param_group(self, group: dict[str, Any]) -> None:
        """Add a group of parameters (a dict with ``"params"``) with its own hyper-parameters."""
        params = group["params"]
        params = [params] if isinstance(params, Parameter) else list(params)
        for p in params:
            if not isinstance(p, Parameter):
                raise TypeError(
                    f"{type(self).__name__} optimises Parameter objects, got {type(p).__name__}"
                )
        seen = {id(p) for g in self.param_groups for p in g["params"]}
        if any(id(p) in seen for p in params):
            raise ValueError("some parameters appear in more than one parameter group")
        full = dict(self.defaults)
        full.update({k: v for k, v in group.items() if k != "params"})
        full["params"] = params
        self.param_groups.append(full)

    # ------------------------------------------------------------ stepping
    def step(self) -> None:
        """Update every parameter that has a gradient (in place, on its backend)."""
        raise NotImplementedError

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Forget the gradients: ``None`` (default, as in PyTorch) or zeros in place."""
        for p in self._index():
            p.zero_grad(set_to_none)

    # ------------------------------------------------------------ hyper-parameters on the device
    def hyperparameters_on_device(self, names: tuple[str, ...] = ("lr", "momentum")) -> None:
        """Let :meth:`step` read ``names`` from device scalars, as a CUDA graph needs.

        A captured step replays its kernels with the very arguments they were launched
        with, so a learning rate passed as a number would stay frozen at its value during
        capture. After this call, :meth:`step` passes 0-d arrays (one per group and name,
        in the dtype of the group's parameters) and :meth:`write_hyperparameters` copies
        each group's current values into them; call it before every step. Schedulers keep
        changing ``group["lr"]`` as usual.
        """
        xp = _backend.get_backend().xp
        self._device_hyper = [
            {
                name: xp.full((), g[name], dtype=g["params"][0].data.dtype)
                for name in names
                if name in g
            }
            for g in self.param_groups
        ]

    def write_hyperparameters(self) -> None:
        """Copy every group's current hyper-parameters into its device scalars (a no-op
        unless :meth:`hyperparameters_on_device` was called). Launches one small kernel
        per value; nothing waits for the device."""
        for group, device in zip(self.param_groups, self._device_hyper or ()):
            for name, scalar in device.items():
                scalar.fill(group[name])

    def _hyper(self, index: int, group: dict[str, Any], name: str) -> Any:
        """``group[name]``, or its device scalar when the hyper-parameters live on the device."""
        if self._device_hyper is not None and name in self._device_hyper[index]:
            return self._device_hyper[index][name]
        return group[name]

    def _params_with_grad(self, group: dict[str, Any]) -> Iterable[Parameter]:
        for p in group["params"]:
            if p.grad is not None and p.requires_grad:
                yield p

    # ------------------------------------------------------------ state
    def _required_state(self, group: dict[str, Any]) -> tuple[str, ...]:
        """The names a parameter's state must hold once it holds any (for a group with
        these settings); :meth:`check_state_dict` refuses a state that lacks one. None
        by default; an optimiser whose :meth:`step` reads names it did not create lists them.
        """
        return ()

    def _index(self) -> list[Parameter]:
        return [p for g in self.param_groups for p in g["params"]]

    def state_dict(self) -> dict[str, Any]:
        """The optimiser's state as plain data.

        Returns:
            ``{"state": {index: {name: array | number}}, "param_groups": [dict]}``, the
            layout of PyTorch's ``Optimizer.state_dict``: parameters are numbered in
            the order of the groups, each group lists the indices of its parameters
            under ``"params"``. The arrays are the live backend arrays (not copies);
            :func:`minitorch_alexnet.checkpoint.save_checkpoint` copies them to the host.
        """
        index = {id(p): i for i, p in enumerate(self._index())}
        state = {index[id(p)]: dict(s) for p, s in self.state.items() if id(p) in index}
        groups = []
        for g in self.param_groups:
            d = {k: (list(v) if isinstance(v, tuple) else v) for k, v in g.items() if k != "params"}
            d["params"] = [index[id(p)] for p in g["params"]]
            groups.append(d)
        return {"state": state, "param_groups": groups}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore a state made by :meth:`state_dict` (possibly saved on another backend).

        Each saved array is copied into the array library and dtype of the parameter
        it belongs to, so a state saved with NumPy arrays loads into a model on CuPy.
        The whole state is checked first (:meth:`check_state_dict`): a state that does
        not fit changes nothing.

        Raises:
            ValueError, TypeError: what does not fit (see :meth:`check_state_dict`).
        """
        groups, state = self._checked_state(state_dict)
        restored = {
            p: {
                name: (
                    _backend.array_like(v, p.data)
                    if name in self._state_arrays and v is not None
                    else v
                )
                for name, v in s.items()
            }
            for p, s in state
        }
        for own, saved in zip(self.param_groups, groups):
            own.update(saved)
        self.state = restored

    def check_state_dict(self, state_dict: Any) -> None:
        """Raise if :meth:`load_state_dict` would refuse ``state_dict``; change nothing.

        Checked: the layout (``"state"`` and ``"param_groups"``); as many groups, of as
        many parameters, as this optimiser has, numbered once each; every
        hyper-parameter of the defaults, of the same kind (a finite number, a flag, a
        pair such as ``betas``) and within range; per-parameter state of the names this
        optimiser keeps (``_state_arrays``, and a ``step`` count), each array of its
        parameter's shape and of a numeric dtype. Arrays are only looked at through
        ``shape`` and ``dtype``, so declared shapes can be checked before data is read.

        Raises:
            ValueError: a value, a count or a shape does not fit.
            TypeError: a value has the wrong type.
        """
        self._checked_state(state_dict)

    def _checked_state(self, state_dict: Any) -> tuple[list[dict[str, Any]], list[tuple]]:
        """(each group's new hyper-parameters, [(parameter, its state)]) after every check."""
        name = type(self).__name__
        if not isinstance(state_dict, Mapping) or set(state_dict) != {"state", "param_groups"}:
            raise TypeError("an optimizer state is a dict of 'state' and 'param_groups'")
        groups, saved_state = state_dict["param_groups"], state_dict["state"]
        if not isinstance(groups, list | tuple) or not all(isinstance(g, Mapping) for g in groups):
            raise TypeError("the optimizer state's param_groups is not a list of dicts")
        if len(groups) != len(self.param_groups):
            raise ValueError(
                f"optimizer state has {len(groups)} parameter groups, this "
                f"{name} has {len(self.param_groups)}"
            )
        n_params = sum(len(g["params"]) for g in self.param_groups)
        by_index: dict[int, Parameter] = {}
        group_of = {id(p): gi for gi, g in enumerate(self.param_groups) for p in g["params"]}
        new_groups = []
        for gi, (saved, own) in enumerate(zip(groups, self.param_groups)):
            ids = saved.get("params")
            if not isinstance(ids, list | tuple) or not all(_is_int(i) for i in ids):
                raise TypeError(f"param_groups[{gi}]['params'] is not a list of indices")
            if len(ids) != len(own["params"]):
                raise ValueError(
                    f"optimizer state has a group of {len(ids)} parameters where "
                    f"this {name} has {len(own['params'])}; it was saved for "
                    "another model"
                )
            for i, p in zip(ids, own["params"]):
                if not 0 <= i < n_params:
                    raise ValueError(f"param_groups[{gi}] names parameter {i} of {n_params}")
                if int(i) in by_index:
                    raise ValueError(f"param_groups[{gi}] names parameter {i} a second time")
                by_index[int(i)] = p
            new = {}
            for k in self.defaults:
                if k not in saved:
                    raise ValueError(f"param_groups[{gi}] has no {k!r}")
            for k, v in saved.items():
                if k != "params":
                    new[k] = _checked_hyper(f"param_groups[{gi}][{k!r}]", k, v, self.defaults)
            new_groups.append(new)
        if not isinstance(saved_state, Mapping):
            raise TypeError("the optimizer state's 'state' is not a dict")
        state = []
        for key, s in saved_state.items():
            index = int(key) if isinstance(key, str) and key.isdecimal() else key
            p = by_index.get(index) if _is_int(index) else None
            if p is None:
                raise ValueError(f"optimizer state names parameter {key!r}, which does not exist")
            if not isinstance(s, Mapping):
                raise TypeError(f"the state of parameter {key} is not a dict")
            for what, value in s.items():
                where = f"optimizer state {what!r} of parameter {key}"
                if what in self._state_arrays:
                    if value is None:
                        continue
                    if not (hasattr(value, "shape") and hasattr(value, "dtype")):
                        raise TypeError(f"{where} is a {type(value).__name__}, not an array")
                    if tuple(value.shape) != tuple(p.data.shape):
                        raise ValueError(
                            f"{where} has shape {tuple(value.shape)}, the parameter has "
                            f"{tuple(p.data.shape)}"
                        )
                    if value.dtype.kind not in "biuf" or value.dtype.names is not None:
                        raise TypeError(f"{where} holds {value.dtype} values, not numbers")
                elif what == "step":
                    if not (_is_int(value) and value >= 0):
                        raise TypeError(f"{where} is {value!r}, not a count of steps")
                else:
                    keeps = ", ".join([*self._state_arrays, "step"])
                    raise ValueError(f"{where} is not one that {name} keeps ({keeps})")
            group = {**self.param_groups[group_of[id(p)]], **new_groups[group_of[id(p)]]}
            lacking = [k for k in self._required_state(group) if s and k not in s]
            if lacking:
                raise ValueError(f"the state of parameter {key} lacks {', '.join(lacking)}")
            state.append((p, dict(s)))
        if len(state) != len({id(p) for p, _ in state}):
            raise ValueError("optimizer state names a parameter twice")
        return new_groups, state

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(g):
                if k != "params":
                    lines.append(f"    {k}: {g[k]}")
        lines.append(")")
        return "\n".join(lines)


_NON_NEGATIVE = ("lr", "momentum", "dampening", "weight_decay", "eps")


def _is_int(v: Any) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v: Any) -> bool:
    """A finite number (not a flag); a whole number too large for a float is not one."""
    if not isinstance(v, numbers.Real) or isinstance(v, bool):
        return False
    try:
        return math.isfinite(float(v))
    except OverflowError:
        return False


def _checked_hyper(where: str, key: str, value: Any, defaults: dict[str, Any]) -> Any:
    """A saved hyper-parameter, checked against the kind of its default (if it has one)."""
    default = defaults.get(key)
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise TypeError(f"{where} is {value!r}, not True or False")
        return value
    if isinstance(default, tuple):
        if not (
            isinstance(value, list | tuple)
            and len(value) == len(default)
            and all(_is_real(v) for v in value)
        ):
            raise TypeError(f"{where} is {value!r}, not {len(default)} finite numbers")
        if key == "betas" and not all(0.0 <= v < 1.0 for v in value):
            raise ValueError(f"{where} is {value!r}; both must be in [0, 1)")
        return tuple(value)
    if isinstance(default, numbers.Real) or key in _NON_NEGATIVE:
        if not _is_real(value):
            raise TypeError(f"{where} is {value!r}, not a finite number")
        if key in _NON_NEGATIVE and value < 0:
            raise ValueError(f"{where} is {value!r}; it must not be negative")
        return value
    # a setting a scheduler added (initial_lr, max_momentum, ...): a plain value
    if value is None or isinstance(value, bool | str) or _is_real(value):
        return value
    if isinstance(value, list | tuple) and all(_is_real(v) for v in value):
        return list(value)
    raise TypeError(f"{where} is {value!r}, not a number, flag or text")
