"""Draw the im2col figures of docs/im2col.md from the project's own kernels.

    python docs/make_figures.py              # writes docs/img/im2col_*.png and col2im_*.png
    python docs/make_figures.py --out /some/folder

Every number in the pictures comes from the reference functions of
``minitorch_alexnet/nn/im2col.py`` (``.reference``: the plain NumPy code of that
file, whatever backend is active): ``im2col`` unfolds a 4x4 image with a 3x3
window into a 9x4 matrix, a matrix product with the filters gives the convolution
(checked against ``nn.Conv2d``), and ``col2im`` folds a column gradient back onto
the image.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

try:
    import minitorch_alexnet  # noqa: F401
except ImportError:  # running from a source checkout without installing
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from minitorch_alexnet.nn.im2col import col2im, im2col

# one colour per output position (= per column of X_col)
COLOURS = ["#e6550d", "#3182bd", "#31a354", "#756bb1"]
WINDOW = ((3, 3), (1, 1), (0, 0))  # kernel_size (KH, KW), stride (SH, SW), padding (PH, PW)


def example() -> dict[str, np.ndarray]:
    """The numbers of the figures: a 1x1x4x4 image, its columns, two filters, the output.

    Returns a dict with ``x`` (1, 1, 4, 4), ``cols`` (9, 4), ``w`` (2, 1, 3, 3),
    ``w_rows`` (2, 9), ``y_rows`` (2, 4) = ``w_rows @ cols``, ``y`` (1, 2, 2, 2) and
    ``counts`` (1, 1, 4, 4) = col2im(ones): how many windows hold each pixel.
    """
    x = np.arange(1.0, 17.0).reshape(1, 1, 4, 4)
    cols = im2col.reference(x, *WINDOW)  # (C*KH*KW, N*Ho*Wo) = (9, 4)
    w = np.array(
        [
            [[[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 1.0]]],  # sums the diagonal
            [[[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]],  # picks the centre pixel
        ]
    )
    w_rows = w.reshape(2, -1)  # (O, C*KH*KW)
    y_rows = w_rows @ cols  # (O, N*Ho*Wo)
    y = y_rows.reshape(2, 1, 2, 2).transpose(1, 0, 2, 3)  # (N, O, Ho, Wo)
    counts = col2im.reference(np.ones_like(cols), x.shape, *WINDOW)  # (N, C, H, W)
    return dict(x=x, cols=cols, w=w, w_rows=w_rows, y_rows=y_rows, y=y, counts=counts)


def check_against_conv2d(ex: dict[str, np.ndarray]) -> None:
    """The matrix product must be what nn.Conv2d computes (it is the same algorithm)."""
    import minitorch_alexnet as mt
    from minitorch_alexnet import nn

    with mt.use_backend("numpy"):
        conv = nn.Conv2d(1, 2, 3, bias=False).double()
        conv.weight.data = ex["w"].copy()
        np.testing.assert_allclose(conv(ex["x"]), ex["y"])


def _grid(ax, values, colours=None, fmt="{:g}", title="", fontsize=11) -> None:
    """Draw a matrix as a table of numbered cells; ``colours[i][j]`` tints a cell."""
    rows, cols = values.shape
    for i in range(rows):
        for j in range(cols):
            face = colours[i][j] if colours is not None and colours[i][j] else "white"
            ax.add_patch(
                _rect((j, rows - 1 - i), 1, 1, facecolor=face, edgecolor="#555555", lw=0.8)
            )
            ax.text(j + 0.5, rows - 0.5 - i, fmt.format(values[i, j]), ha="center",
                    va="center", fontsize=fontsize)  # fmt: skip
    ax.set_xlim(-0.05, cols + 0.05)
    ax.set_ylim(-0.05, rows + 0.05)
    ax.set_aspect("equal")
    ax.axis("off")
    if title:
        ax.set_title(title, fontsize=11)


def _rect(xy, w, h, **kw):
    from matplotlib.patches import Rectangle

    return Rectangle(xy, w, h, **kw)


def _tint(colour: str, alpha: float = 0.35) -> tuple[float, float, float]:
    from matplotlib.colors import to_rgb

    r, g, b = to_rgb(colour)
    return (1 - alpha + alpha * r, 1 - alpha + alpha * g, 1 - alpha + alpha * b)


def draw_columns(ex: dict[str, np.ndarray], path: Path) -> None:
    """Four windows of the image, each becoming one column of X_col."""
    import matplotlib.pyplot as plt

    x, cols = ex["x"][0, 0], ex["cols"]
    fig = plt.figure(figsize=(11.5, 3.8))
    grid = fig.add_gridspec(2, 4, width_ratios=[1, 1, 0.35, 2.1], wspace=0.25, hspace=0.45)
    for p in range(4):
        ho, wo = divmod(p, 2)
        ax = fig.add_subplot(grid[p // 2, p % 2])
        shade = [[None] * 4 for _ in range(4)]
        for i in range(3):
            for j in range(3):
                shade[ho + i][wo + j] = _tint(COLOURS[p])
        _grid(ax, x, shade, "{:.0f}", f"output (ho, wo) = ({ho}, {wo})", fontsize=9)
        ax.add_patch(_rect((wo, 4 - 3 - ho), 3, 3, fill=False, edgecolor=COLOURS[p], lw=2.5))
    ax = fig.add_subplot(grid[:, 3])
    shade = [[_tint(COLOURS[j]) for j in range(4)] for _ in range(9)]
    _grid(ax, cols, shade, "{:.0f}", "X_col = im2col(x): 9 rows (i, j), 4 columns", fontsize=9)
    for r in range(9):
        ax.text(-0.15, 8.5 - r, f"({r // 3},{r % 3})", ha="right", va="center", fontsize=8)
    fig.text(0.62, 0.5, "im2col", ha="center", va="center", fontsize=12)
    fig.text(0.62, 0.42, "$\\longrightarrow$", ha="center", va="center", fontsize=18)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def draw_matmul(ex: dict[str, np.ndarray], path: Path) -> None:
    """W_rows (2, 9) @ X_col (9, 4) = Y (2, 4), reshaped into two 2x2 maps."""
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=(12, 3.4))
    grid = fig.add_gridspec(
        1, 7, width_ratios=[9, 0.8, 4, 0.8, 4, 0.9, 4.6], wspace=0.08, left=0.02, right=0.98
    )
    _grid(fig.add_subplot(grid[0]), ex["w_rows"], None, "{:.0f}", "W (2 filters x 9)", 9)
    shade = [[_tint(COLOURS[j]) for j in range(4)] for _ in range(9)]
    _grid(fig.add_subplot(grid[2]), ex["cols"], shade, "{:.0f}", "X_col (9 x 4)", 9)
    shade = [[_tint(COLOURS[j]) for j in range(4)] for _ in range(2)]
    _grid(fig.add_subplot(grid[4]), ex["y_rows"], shade, "{:.0f}", "Y = W @ X_col (2 x 4)", 10)
    for k, sym in ((1, "@"), (3, "=")):
        ax = fig.add_subplot(grid[k])
        ax.text(0.5, 0.5, sym, ha="center", va="center", fontsize=20)
        ax.axis("off")
    ax = fig.add_subplot(grid[5])
    ax.text(0.5, 0.5, "reshape\n$\\longrightarrow$", ha="center", va="center", fontsize=11)
    ax.axis("off")
    sub = grid[6].subgridspec(2, 1, hspace=0.5)
    for o in range(2):
        shade = [[_tint(COLOURS[2 * i + j]) for j in range(2)] for i in range(2)]
        _grid(fig.add_subplot(sub[o]), ex["y"][0, o], shade, "{:.0f}", f"output map {o}", 10)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def draw_col2im(ex: dict[str, np.ndarray], path: Path) -> None:
    """col2im adds each column entry back onto its pixel: with all-ones columns, the
    result counts the windows that hold each pixel."""
    import matplotlib.pyplot as plt

    ones = np.ones_like(ex["cols"])
    counts = ex["counts"][0, 0]
    fig = plt.figure(figsize=(8.5, 3.6))
    grid = fig.add_gridspec(1, 3, width_ratios=[4, 1.3, 4], wspace=0.1)
    shade = [[_tint(COLOURS[j]) for j in range(4)] for _ in range(9)]
    _grid(fig.add_subplot(grid[0]), ones, shade, "{:.0f}", "dX_col: a 1 in every entry", 9)
    ax = fig.add_subplot(grid[1])
    ax.text(0.5, 0.5, "col2im\n$\\longrightarrow$", ha="center", va="center", fontsize=12)
    ax.axis("off")
    ax = fig.add_subplot(grid[2])
    level = {1: "#f7fbff", 2: "#c6dbef", 4: "#6baed6"}
    shade = [[level.get(int(v), "white") for v in row] for row in counts]
    _grid(ax, counts, shade, "{:.0f}", "dx: windows covering each pixel", 12)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


FIGURES = {
    "im2col_columns.png": draw_columns,
    "im2col_matmul.png": draw_matmul,
    "col2im_overlap.png": draw_col2im,
}


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="Draw the im2col figures of docs/im2col.md.")
    p.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "img")
    args = p.parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    ex = example()
    check_against_conv2d(ex)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, draw in FIGURES.items():
        draw(ex, args.out / name)
        print(args.out / name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
