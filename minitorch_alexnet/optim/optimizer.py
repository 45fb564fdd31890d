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

from collections.abc import Iterable
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

        Raises:
            ValueError: the number of groups or of parameters per group differs.
        """
        groups = state_dict["param_groups"]
        if len(groups) != len(self.param_groups):
            raise ValueError(
                f"optimizer state has {len(groups)} parameter groups, this "
                f"{type(self).__name__} has {len(self.param_groups)}"
            )
        for saved, own in zip(groups, self.param_groups):
            if len(saved["params"]) != len(own["params"]):
                raise ValueError(
                    f"optimizer state has a group of {len(saved['params'])} parameters where "
                    f"this {type(self).__name__} has {len(own['params'])}; it was saved for "
                    "another model"
                )
        by_index = {}
        for saved, own in zip(groups, self.param_groups):
            for i, p in zip(saved["params"], own["params"]):
                by_index[int(i)] = p
        for saved, own in zip(groups, self.param_groups):
            for k, v in saved.items():
                if k == "params":
                    continue
                own[k] = tuple(v) if isinstance(self.defaults.get(k), tuple) else v
        self.state = {}
        for key, s in state_dict["state"].items():
            p = by_index.get(int(key))
            if p is None:
                raise ValueError(f"optimizer state names parameter {key}, which does not exist")
            restored: dict[str, Any] = {}
            for name, value in s.items():
                if name in self._state_arrays and value is not None:
                    if tuple(value.shape) != tuple(p.data.shape):
                        raise ValueError(
                            f"optimizer state {name!r} of parameter {key} has shape "
                            f"{tuple(value.shape)}, the parameter has {tuple(p.data.shape)}"
                        )
                    restored[name] = _backend.array_like(value, p.data)
                else:
                    restored[name] = value
            self.state[p] = restored

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__} ("]
        for i, g in enumerate(self.param_groups):
            lines.append(f"Parameter Group {i}")
            for k in sorted(g):
                if k != "params":
                    lines.append(f"    {k}: {g[k]}")
        lines.append(")")
        return "\n".join(lines)
