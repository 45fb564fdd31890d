"""What a trained classifier looks at: saliency maps and activation maps.

Both come from code the network already has, no extra machinery:

* :func:`saliency_maps` (Simonyan, Vedaldi and Zisserman, 2014, "Deep inside
  convolutional networks"): the gradient of one class's *score* (its logit, before
  the softmax) with respect to the input pixels. The backward pass that training
  runs gives it: the upstream gradient is 1 at that class's logit and 0 elsewhere,
  and the model's ``backward`` returns dL/dx, shaped like the images. A pixel whose
  small change would move the score a lot is salient; the map keeps, per pixel,
  the largest absolute value over the three colour channels.
* :func:`activation_maps`: the feature maps a block of the network outputs, one
  image per channel (what each filter of that layer responds to, and where).

The model runs in evaluation mode (BatchNorm's running statistics, no dropout),
and the parameters' gradients are left as they were, so the functions can be
called in the middle of training. Plotting (:func:`show_saliency`) imports
matplotlib only when called.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager
from typing import Any

from . import backend as _backend
from . import nn
from .summary import model_preserved

__all__ = ["activation_maps", "for_display", "saliency_maps", "show_saliency", "tile"]


@contextmanager
def _inspecting(model: nn.Module):
    """Evaluation mode and untouched ``.grad`` inside; afterwards each module's own mode,
    its pending backward cache and the parameters' gradients as they were."""
    params = list(model.parameters())
    kept = [None if p.grad is None else p.grad.copy() for p in params]
    with model_preserved(model):
        model.eval()
        try:
            yield
        finally:
            for p, g in zip(params, kept):
                p.grad = g


def _images(images: Any) -> Any:
    shape = tuple(getattr(images, "shape", ()))
    if len(shape) != 4:
        raise ValueError(
            f"images must be an array of shape (N, C, H, W), got shape {shape}; "
            "for one image use images[None]"
        )
    x = _backend.asarray(images)
    return x if x.dtype.kind == "f" else x.astype("float32")  # uint8 pictures, say


def saliency_maps(model: nn.Module, images: Any, target: Any = None) -> tuple[Any, Any]:
    """The saliency of each image for one class: |d score / d pixel|, maximised over colour.

    Args:
        model: a classifier whose ``backward`` returns the input gradient
            (every model and layer of the package does with ``input_grad=True``).
        images: (N, C, H, W), preprocessed as the model was trained (normalised).
        target: (N,) class per image whose score is differentiated, or None for the
            class the model predicts.

    Returns:
        ``(maps, logits)`` as host NumPy arrays: ``maps`` (N, H, W), each pixel's
        max over channels of ``|d logits[n, target[n]] / d images[n, c, h, w]|``;
        ``logits`` (N, num_classes) of the forward pass.

    Raises:
        ValueError: ``images`` is not 4-D, or ``target`` has the wrong length or a
            class out of range.
    """
    np = _backend.host_xp()
    x = _images(images)
    if not nn.is_grad_enabled():
        raise RuntimeError(
            "saliency_maps needs the backward pass, which no_grad() turns off: "
            "call it outside a `with no_grad():` block"
        )
    with _inspecting(model):
        logits = model(x)
        scores = _backend.to_numpy(logits).astype(np.float64)
        n, k = scores.shape
        if target is None:
            chosen = scores.argmax(axis=1)
        else:
            chosen = np.asarray(_backend.to_numpy(target), dtype=np.int64).reshape(-1)
            if chosen.shape != (n,) or chosen.min() < 0 or chosen.max() >= k:
                raise ValueError(
                    f"target must hold {n} class numbers in [0, {k}), got {chosen.tolist()}"
                )
        upstream = np.zeros((n, k), dtype=np.float32)
        upstream[np.arange(n), chosen] = 1.0  # d score / d logits: one-hot on the class
        dx = model.backward(_backend.asarray(upstream, str(logits.dtype)))
    grad = _backend.to_numpy(dx).astype(np.float64)  # (N, C, H, W), as the images
    return np.abs(grad).max(axis=1), scores


def _children(model: nn.Module) -> list[tuple[str, nn.Module]]:
    blocks = getattr(model, "blocks", None)
    if callable(blocks):  # the AlexNets: conv1 ... conv5, then the fc blocks
        return [(name, b) for name, b in blocks() if name.startswith("conv")]
    return list(model.named_children())  # a Sequential: its layers, "0", "1", ...


def activation_maps(model: nn.Module, images: Any, layer: str) -> Any:
    """The output of one block of the network for each image: its feature maps.

    Args:
        model: an AlexNet (``layer`` is a block: ``"conv1"`` ... ``"conv5"``) or a
            ``Sequential`` (``layer`` is the index of a child, ``"0"``, ``"1"``, ...).
        images: (N, C, H, W), preprocessed as the model was trained.
        layer: which block's output to return.

    Returns:
        Host NumPy array (N, C_out, H_out, W_out): the block's output in evaluation
        mode (for an AlexNet block: after its convolution, ReLU, BatchNorm and pooling).

    Raises:
        KeyError: the model has no such block; the message lists the ones it has.
    """
    x = _images(images)
    children = _children(model)
    names = [name for name, _ in children]
    if layer not in names:
        raise KeyError(f"no block {layer!r} to take the activations of; choose one of {names}")
    with _inspecting(model), nn.no_grad():
        for name, block in children:
            x = block(x)
            if name == layer:
                break
    return _backend.to_numpy(x)


def for_display(images: Any, mean: Sequence[float], std: Sequence[float]) -> Any:
    """Normalised images back to pictures: (N, 3, H, W) -> (N, H, W, 3) in [0, 1].

    Undoes ``(x / 255 - mean) / std`` (:func:`minitorch_alexnet.data.normalize`).
    """
    np = _backend.host_xp()
    x = np.asarray(_backend.to_numpy(images), dtype=np.float64)
    x = x * np.asarray(std).reshape(1, -1, 1, 1) + np.asarray(mean).reshape(1, -1, 1, 1)
    return np.clip(x.transpose(0, 2, 3, 1), 0.0, 1.0)


def tile(images: Any, cols: int = 16, gutter: int = 1) -> Any:
    """Small images as one grid, each scaled to [0, 1] on its own (min to 0, max to 1).

    Args:
        images: (N, H, W) or (N, H, W, 3): feature maps, or filters moved to
            channels-last (``w.transpose(0, 2, 3, 1)`` for a conv weight (O, 3, K, K)).
        cols: tiles per row.
        gutter: white pixels between tiles and around the grid.

    Returns:
        (rows * (H + gutter) + gutter, cols * (W + gutter) + gutter[, 3]) floats in
        [0, 1]; a constant tile is mid-grey.
    """
    np = _backend.host_xp()
    a = np.asarray(_backend.to_numpy(images), dtype=np.float64)
    if a.ndim not in (3, 4):
        raise ValueError(f"images must be (N, H, W) or (N, H, W, 3), got shape {a.shape}")
    n, h, w = a.shape[:3]
    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    axes = tuple(range(1, a.ndim))
    lo, hi = a.min(axis=axes, keepdims=True), a.max(axis=axes, keepdims=True)
    span = np.where(hi > lo, hi - lo, 1.0)
    a = np.where(hi > lo, (a - lo) / span, 0.5)
    out = np.ones((rows * (h + gutter) + gutter, cols * (w + gutter) + gutter, *a.shape[3:]))
    for i in range(n):
        r, c = divmod(i, cols)
        top, left = gutter + r * (h + gutter), gutter + c * (w + gutter)
        out[top : top + h, left : left + w] = a[i]
    return out


def show_saliency(
    pictures: Any,
    maps: Any,
    titles: Sequence[str] | None = None,
    activations: Any = None,
    cmap: str = "hot",
    correct: Sequence[bool] | None = None,
) -> Any:
    """A matplotlib figure: a column per image, the picture above its saliency map.

    Args:
        pictures: (N, H, W, 3) in [0, 1] (:func:`for_display`).
        maps: (N, H, W) from :func:`saliency_maps`; each is scaled to its own maximum.
        titles: one line per column (the true and the predicted class, say).
        activations: optional (N, H', W') to draw as a third row (one channel of
            :func:`activation_maps`, or their mean over channels).
        cmap: the colour map of the saliency row.
        correct: per column, whether the prediction was right: its title is then
            green (right) or red (wrong).

    Returns:
        The ``matplotlib.figure.Figure`` (save it with ``fig.savefig(path)``).
    """
    import matplotlib.pyplot as plt

    np = _backend.host_xp()
    n = len(pictures)
    rows = 2 if activations is None else 3
    fig, axes = plt.subplots(rows, n, figsize=(1.6 * n, 1.7 * rows), squeeze=False)
    for i in range(n):
        m = np.asarray(maps[i], dtype=np.float64)
        axes[0, i].imshow(pictures[i], interpolation="nearest")
        axes[1, i].imshow(m / max(m.max(), 1e-12), cmap=cmap, vmin=0, vmax=1)
        if activations is not None:
            axes[2, i].imshow(activations[i], cmap="viridis")
        if titles is not None:
            colour = None if correct is None else ("tab:green" if correct[i] else "tab:red")
            axes[0, i].set_title(titles[i], fontsize=8, color=colour)
        for r in range(rows):
            axes[r, i].set_axis_off()
    fig.tight_layout()
    return fig
