"""Input checks shared by the layers: clear errors instead of deep NumPy tracebacks."""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

from ..backend import get_backend

#: The dtypes the layers compute in (float16 by float32 inside where a kernel has none);
#: longdouble and the rest are refused before any computing starts.
SUPPORTED_DTYPES = ("float16", "float32", "float64")


def _whole(v: Any) -> bool:
    """An int, or an integer like NumPy's int64 (PyTorch takes those too); not a bool."""
    return (
        isinstance(v, numbers.Integral) and not isinstance(v, bool) and type(v).__name__ != "bool_"
    )


def pair(value: int | tuple[int, int], what: str, layer: str) -> tuple[int, int]:
    """``3`` -> ``(3, 3)``; ``(3, 2)`` stays. Rejects anything else with a clear message."""
    if _whole(value):
        return int(value), int(value)
    if isinstance(value, (tuple, list)) and len(value) == 2 and all(_whole(v) for v in value):
        return int(value[0]), int(value[1])
    raise TypeError(f"{layer}: {what} must be an int or a pair of ints, got {value!r}")


def conv_padding(
    padding: Any, kernel: tuple[int, int], stride: tuple[int, int], dilation: tuple, layer: str
) -> tuple[tuple[int, int], tuple[int, int]]:
    """Conv2d's ``padding`` as (symmetric padding, extra bottom/right padding): an int or
    pair as given; "valid" none; "same" D*(K-1) in all per side, the odd one at the end,
    as PyTorch (stride 1 only: PyTorch's ValueError otherwise)."""
    if not isinstance(padding, str):
        return pair(padding, "padding", layer), (0, 0)
    if padding == "valid":
        return (0, 0), (0, 0)
    if padding != "same":
        raise ValueError(
            f"{layer}: invalid padding string {padding!r}, should be one of 'valid', 'same'"
        )
    if stride != (1, 1):
        raise ValueError(
            f"{layer}: padding='same' is not supported for strided convolutions "
            f"(stride {stride}); use stride=1 or an int padding"
        )
    total = [d * (k - 1) for k, d in zip(kernel, dilation)]
    return (total[0] // 2, total[1] // 2), (total[0] % 2, total[1] % 2)


def check_conv_counts(layer: str, in_channels: int, out_channels: int, groups: int) -> None:
    """Channels and groups are ints >= 1, both channel counts divisible by groups."""
    counts = (in_channels, out_channels, groups)
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in counts):
        raise ValueError(f"{layer}: channels and groups must be ints >= 1, got {counts}")
    if in_channels % groups or out_channels % groups:
        raise ValueError(
            f"{layer}: in_channels ({in_channels}) and out_channels ({out_channels}) must "
            f"both be divisible by groups ({groups})"
        )


def check_window(
    layer: str,
    kernel: tuple[int, int],
    stride: tuple[int, int],
    padding: tuple[int, int],
    dilation: tuple[int, int] = (1, 1),
) -> None:
    """Kernel, stride and dilation >= 1, padding >= 0."""
    if min(kernel) < 1:
        raise ValueError(f"{layer}: kernel_size must be >= 1, got {kernel}")
    if min(stride) < 1:
        raise ValueError(
            f"{layer}: stride must be >= 1, got {stride} (a stride of 0 would never move "
            "the window); use stride=1 for a dense sliding window"
        )
    if min(padding) < 0:
        raise ValueError(f"{layer}: padding must be >= 0, got {padding}")
    if min(dilation) < 1:
        raise ValueError(f"{layer}: dilation must be >= 1, got {dilation} (1: no gaps)")


def check_window_fits(
    layer: Any, x: Any, kernel: tuple[int, int], padding: tuple[int, int], what: str
) -> None:
    """Every dimension but the batch is at least 1 (PyTorch's rule: an image of no pixels
    has no windows), and the ``what`` ("kernel" or "window") fits inside the zero/-inf
    padded input."""
    (kh, kw), (ph, pw) = kernel, padding
    empty = [f"{d} = 0" for d, n in zip("CHW", x.shape[1:]) if n == 0]
    if empty:
        raise ValueError(
            f"{layer._name()}: input shape {tuple(x.shape)} has {' and '.join(empty)}; only "
            "the batch dimension N may be 0 (an empty batch): an image of no pixels has no "
            "windows, padded or not. Pass images with C, H, W >= 1"
        )
    H, W = x.shape[2:]
    if H + 2 * ph < kh or W + 2 * pw < kw:
        raise ValueError(
            f"{layer._name()}: {what} {kh}x{kw} is larger than the padded input "
            f"{H + 2 * ph}x{W + 2 * pw} (input shape {tuple(x.shape)}, padding {ph},{pw}); "
            f"use a larger input, more padding or a smaller {what}"
        )


def check_array(layer: Any, x: Any, name: str = "input") -> Any:
    """``x`` must be a floating-point array of the active backend."""
    B = get_backend()
    if not B.owns(x):
        kind = type(x).__module__.split(".")[0] + "." + type(x).__name__
        hint = (
            "move the data with minitorch_alexnet.asarray(x)"
            if kind.startswith(("numpy", "cupy"))
            else "convert it with minitorch_alexnet.asarray(x)"
        )
        raise TypeError(
            f"{layer._name()}: {name} is a {kind}, but the active backend is "
            f"{B.name!r} ({B.xp.__name__} arrays); {hint}, or switch backends with "
            "set_backend()/model.to()."
        )
    if x.dtype.name not in SUPPORTED_DTYPES:
        raise TypeError(
            f"{layer._name()}: {name} has dtype {x.dtype}; the layers compute in the "
            f"floating-point dtypes {', '.join(SUPPORTED_DTYPES)} only: cast it, e.g. "
            "asarray(x, 'float32')"
        )
    return x


def check_params_match(layer: Any, x: Any) -> None:
    """The layer's parameters must live on the active backend and share ``x``'s dtype."""
    B = get_backend()
    for pname, p in layer._parameters.items():
        if not B.owns(p.data):
            raise RuntimeError(
                f"{layer._name()}: parameter {pname!r} lives on another backend than the "
                f"active one ({B.name!r}); call model.to({B.name!r}) first."
            )
        if p.data.dtype != x.dtype:
            fix = {2: "model.half()", 8: "model.double()"}.get(x.dtype.itemsize, "model.float()")
            raise TypeError(
                f"{layer._name()}: input dtype {x.dtype} does not match parameter "
                f"{pname!r} dtype {p.data.dtype}; call {fix} or cast the input with "
                f"asarray(x, {str(p.data.dtype)!r})."
            )


def check_shape(
    layer: Any, x: Any, ndims: tuple[int, ...], channels: int | None, layout: str
) -> None:
    """``x.ndim`` in ``ndims`` and, when given, ``x.shape[1] == channels``."""
    if x.ndim not in ndims:
        raise ValueError(
            f"{layer._name()}: expected a {' or '.join(f'{d}-D' for d in ndims)} input "
            f"{layout}, got shape {tuple(x.shape)}"
            + ("; add a batch dimension with x[None]" if x.ndim == min(ndims) - 1 else "")
        )
    if channels is not None and x.shape[1] != channels:
        raise ValueError(
            f"{layer._name()}: expected {channels} channels/features at dim 1 {layout}, "
            f"got shape {tuple(x.shape)} with {x.shape[1]}"
        )


def check_grad(
    layer: Any, grad_out: Any, expected_shape: tuple[int, ...], dtype: Any = None
) -> Any:
    """The upstream gradient must be an array like the forward output: same backend,
    same dtype, same shape."""
    B = get_backend()
    if not B.owns(grad_out):
        raise TypeError(
            f"{layer._name()}.backward: grad_out is a {type(grad_out).__name__}, not an array "
            f"of the active backend {B.name!r}; pass dL/d(output) as the forward output's kind "
            "of array (minitorch_alexnet.asarray converts)"
        )
    if dtype is not None and grad_out.dtype != dtype:
        raise TypeError(
            f"{layer._name()}.backward: grad_out has dtype {grad_out.dtype} but the forward "
            f"output had dtype {dtype}; cast it with asarray(grad_out, {str(dtype)!r})"
        )
    if tuple(grad_out.shape) != tuple(expected_shape):
        raise ValueError(
            f"{layer._name()}.backward: grad_out has shape {tuple(grad_out.shape)} but the "
            f"forward output had shape {tuple(expected_shape)}; pass dL/d(output)."
        )
    return grad_out


def state_entry_problems(state: Mapping[str, Any], own: Mapping[str, Any]) -> tuple[list, list]:
    """``load_state_dict``'s checks of the entries ``state`` shares with the module's own
    state ``own``: (values that are not arrays of numbers, shape mismatches), each
    "key: ..." naming what the module holds there. A plain number passes for a 0-d
    entry (``num_batches_tracked``)."""
    not_arrays, wrong = [], []
    for key, mine in own.items():
        if key not in state:
            continue
        value, shape = state[key], tuple(mine.shape)
        if isinstance(value, numbers.Real) and shape == ():
            continue
        kind = getattr(getattr(value, "dtype", None), "kind", None)  # None: a torch tensor
        if not hasattr(value, "shape") or kind not in (None, "b", "i", "u", "f"):
            got = f"an array of dtype {value.dtype}" if kind else f"a {type(value).__name__}"
            not_arrays.append(
                f"{key}: expected an array of shape {shape} ({mine.dtype}), got {got}"
            )
        elif tuple(value.shape) != shape:
            wrong.append(f"{key}: checkpoint {tuple(value.shape)} vs model {shape}")
    return not_arrays, wrong
