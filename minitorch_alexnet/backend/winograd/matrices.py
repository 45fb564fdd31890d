"""Winograd's transforms: the matrices of F(2x2, 5x5), F(4x4, 3x3) and larger tiles,
and where they come from (``reference.py`` computes with them).

A k x k convolution with stride 1 costs k^2 multiplications per output pixel and
input channel. Winograd's minimal filtering algorithm F(m x m, r x r) computes an
m x m block of outputs of an r x r filter from an (m + r - 1) x (m + r - 1) block
of inputs with (m + r - 1)^2 multiplications, at the price of cheap linear
transforms before and after. The variants here:

    F(2x2, 5x5): 36 multiplications for 2x2 outputs instead of 4 * 25 = 100    (2.8x)
    F(4x4, 3x3): 36 multiplications for 4x4 outputs instead of 16 * 9 = 144    (4x)
    F(3x3, 5x5): 49 multiplications for 3x3 outputs instead of 9 * 25 = 225    (4.6x)
    F(4x4, 5x5): 64 multiplications for 4x4 outputs instead of 16 * 25 = 400   (6.25x)

The first two have 6x6 input tiles and are the defaults (``VARIANTS``); the larger
5x5 ones (7x7 and 8x8 tiles) trade float32 accuracy for speed, and a backend opts
into them (see "Precision" below).

One dimension first: F(m, r)
----------------------------
The correlation of a signal d (alpha = m + r - 1 values) with a filter g (r values),

    y[k] = sum_{j=0..r-1} d[k + j] * g[j]          k = 0 .. m-1,

is computed as

    y = A^T [ (G g) ⊙ (B^T d) ]                     (⊙: elementwise product)

with B^T (alpha x alpha), G (alpha x r) and A^T (m x alpha) below; the alpha
elementwise products are the only multiplications that involve both d and g.

Where the matrices come from (Toom-Cook / Lagrange interpolation). Write the
*linear convolution* of an m-tap h with g as a polynomial product
s(x) = g(x) h(x), of degree (r - 1) + (m - 1) = alpha - 1, so alpha coefficients.
Evaluate g(x) and h(x) at alpha points, multiply the values pairwise, and
interpolate the product back from its alpha values:

    s = L [ (E_g g) ⊙ (E_h h) ]

E_g (alpha x r) and E_h (alpha x m) evaluate: row a is [1, a, a^2, ...], and for
the point "infinity" (the value there of a polynomial is its leading coefficient)
[0, ..., 0, 1]. L (alpha x alpha) interpolates: it is the inverse of the
alpha x alpha evaluation matrix. As a matrix, s = T(g) h with T(g)[t, k] = g[t - k],
and the correlation above is y = T(g)^T d: correlation is the transpose of
convolution. Transposing s = L diag(E_g g) E_h h gives

    y = E_h^T [ (E_g g) ⊙ (L^T d) ],   so   A^T = E_h^T,  G = E_g,  B^T = L^T,

up to a diagonal scale D moved from B^T to G (G = D E_g, B^T = D^-1 L^T) that
makes B^T integer.

The key point: the first two variants have alpha = 6 (2 + 5 - 1 = 4 + 3 - 1), and
both use the six points 0, 1, -1, 2, -2 and infinity. L, hence B^T, depends only on the
points, so **B^T is the same matrix for both**; only G (which evaluates the filter,
r coefficients), A^T (which evaluates the output tile, m coefficients) and the tile
stride m differ. Row a of L^T holds the coefficients of the Lagrange basis
polynomial for point a, M_a(x) / N_a with M_a(x) = prod_{b != a} (x - b) over the
five finite points and N_a = M_a(a); the row for infinity holds the coefficients of
M(x) = prod_b (x - b) = x^5 - 5x^3 + 4x. Scaling row a by N_a leaves

    B^T rows:  M_a(x) for a = 0, 1, -1, 2, -2  and  M(x), coefficients x^0 .. x^5
    N_a:       N_0 = 4, N_1 = N_-1 = -6, N_2 = N_-2 = 24
    G rows:    [1, a, ..., a^(r-1)] / N_a        and  [0, ..., 0, 1]   (6 x r)
    A^T:       columns [1, a, ..., a^(m-1)]      and  [0, ..., 0, 1]   (m x 6)

Two dimensions: F(m x m, r x r)
-------------------------------
Nesting the 1-D algorithm along rows and columns, a 6x6 input tile d and an r x r
filter g give the m x m output tile

    Y = A^T [ (G g G^T) ⊙ (B^T d B) ] A.

Tiles start every m pixels (neighbouring 6x6 tiles overlap by r - 1). For a whole
convolution, with U = G g G^T per (out channel o, in channel c) and V = B^T d B
per (in channel c, tile t), the sum over input channels moves inside: at each of
the 36 transform positions (i, j)

    M[i,j][o, t] = sum_c U[i,j][o, c] * V[i,j][c, t],

that is, 36 independent matrix products U[36, O, C] @ V[36, C, T] with
T = N * tiles per image, followed by Y = A^T M A for every (o, t).

Any alpha: more points
----------------------
Nothing above depends on alpha = 6. A larger tile needs more points: F(3x3, 5x5)
(alpha = 7) adds 1/2, F(4x4, 5x5) (alpha = 8) adds 1/2 and -1/2. The recipe is the
same (B^T rows: the coefficients of M_a and M; G rows: the powers of a over N_a;
A^T columns: the powers of a), so :func:`variant_from_points` derives all three
matrices from the points, exactly (in fractions), and the 6x6 literals below are
checked against it by a test. Small points keep the entries small: fractions like
1/2 serve where integers would grow (3 and -3 would put 3^3 = 27 into A^T).

Precision. The larger m, the larger the entries of A^T (up to 2^3 = 8 for m = 4)
and of B^T (up to 21/4 for alpha = 8), and the more the terms that cancel, so
F(4x4, 3x3) rounds somewhat worse than F(2x2, 5x5), and F(4x4, 5x5) worse again;
tests/test_winograd.py measures and bounds each (its docstring has the numbers).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

# Evaluation points 0, 1, -1, 2, -2 and infinity (the last row/column of each matrix).
# B^T: rows are the coefficients (x^0 .. x^5) of M_a(x) = prod_{b != a} (x - b), e.g.
#   M_0(x) = (x^2 - 1)(x^2 - 4)  = 4 - 5x^2 + x^4,
#   M_1(x) = x(x + 1)(x^2 - 4)   = -4x - 4x^2 + x^3 + x^4,
# and of M(x) = x^5 - 5x^3 + 4x for infinity. Shared by both variants.
BT = np.array(
    [
        [4, 0, -5, 0, 1, 0],  # M_0
        [0, -4, -4, 1, 1, 0],  # M_1
        [0, 4, -4, -1, 1, 0],  # M_-1
        [0, -2, -1, 2, 1, 0],  # M_2
        [0, 2, -1, -2, 1, 0],  # M_-2
        [0, 4, 0, -5, 0, 1],  # M (infinity)
    ],
    dtype=np.float64,
)

# ---- F(2x2, 5x5): r = 5, m = 2
# G: row a evaluates g(x) = g0 + g1 x + ... + g4 x^4 at a, divided by N_a = M_a(a);
# the row for infinity picks the leading coefficient g4.
G5 = np.array(
    [
        [1 / 4, 0, 0, 0, 0],  # a = 0,  N = 4
        [-1 / 6, -1 / 6, -1 / 6, -1 / 6, -1 / 6],  # a = 1,  N = -6
        [-1 / 6, 1 / 6, -1 / 6, 1 / 6, -1 / 6],  # a = -1, N = -6
        [1 / 24, 2 / 24, 4 / 24, 8 / 24, 16 / 24],  # a = 2,  N = 24
        [1 / 24, -2 / 24, 4 / 24, -8 / 24, 16 / 24],  # a = -2, N = 24
        [0, 0, 0, 0, 1],  # infinity
    ],
    dtype=np.float64,
)

# A^T: column a evaluates a 2-tap polynomial h0 + h1 x at a: [1, a]; infinity: [0, 1].
AT2 = np.array(
    [
        [1, 1, 1, 1, 1, 0],
        [0, 1, -1, 2, -2, 1],
    ],
    dtype=np.float64,
)

# ---- F(4x4, 3x3): r = 3, m = 4 (same points, same B^T)
# G: row a evaluates g(x) = g0 + g1 x + g2 x^2 at a, divided by N_a; infinity: g2.
G3 = np.array(
    [
        [1 / 4, 0, 0],  # a = 0,  N = 4
        [-1 / 6, -1 / 6, -1 / 6],  # a = 1,  N = -6
        [-1 / 6, 1 / 6, -1 / 6],  # a = -1, N = -6
        [1 / 24, 2 / 24, 4 / 24],  # a = 2,  N = 24
        [1 / 24, -2 / 24, 4 / 24],  # a = -2, N = 24
        [0, 0, 1],  # infinity
    ],
    dtype=np.float64,
)

# A^T: column a evaluates a 4-tap polynomial h0 + h1 x + h2 x^2 + h3 x^3 at a:
# [1, a, a^2, a^3]; infinity: [0, 0, 0, 1].
AT4 = np.array(
    [
        [1, 1, 1, 1, 1, 0],  # a^0
        [0, 1, -1, 2, -2, 0],  # a^1
        [0, 1, 1, 4, 4, 0],  # a^2
        [0, 1, -1, 8, -8, 1],  # a^3
    ],
    dtype=np.float64,
)


def _product(points: Sequence[Fraction]) -> list[Fraction]:
    """Coefficients (x^0 first) of prod_b (x - b) over ``points``."""
    c = [Fraction(1)]
    for b in points:  # c(x) * (x - b): shift up by one power, subtract b * c
        c = [lo - b * hi for lo, hi in zip([Fraction(0), *c], [*c, Fraction(0)])]
    return c


def winograd_matrices(
    m: int, r: int, points: Sequence[Fraction | int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """B^T, G and A^T of F(m x m, r x r) at the finite ``points`` and infinity.

    There must be alpha - 1 = m + r - 2 distinct finite points. With
    M_a(x) = prod_{b != a} (x - b), N_a = M_a(a) and M(x) = prod_b (x - b):

        B^T (alpha x alpha): row a = the coefficients x^0 .. x^(alpha-1) of M_a(x),
                             last row (infinity) those of M(x);
        G   (alpha x r):     row a = [1, a, ..., a^(r-1)] / N_a, last row [0, ..., 0, 1];
        A^T (m x alpha):     column a = [1, a, ..., a^(m-1)], last column [0, ..., 0, 1].

    Computed in exact fractions, returned as float64 arrays.
    """
    pts = [Fraction(p) for p in points]
    alpha = m + r - 1
    if len(pts) != alpha - 1 or len(set(pts)) != len(pts):
        raise ValueError(f"F({m}x{m}, {r}x{r}) needs {alpha - 1} distinct finite points")
    bt = [_product([b for b in pts if b != a]) + [Fraction(0)] for a in pts] + [_product(pts)]
    norm = [np.prod([a - b for b in pts if b != a]) for a in pts]  # N_a
    g = [[a**k / n for k in range(r)] for a, n in zip(pts, norm)] + [[0] * (r - 1) + [1]]
    at = [[a**k for a in pts] + [int(k == m - 1)] for k in range(m)]
    return tuple(np.array(mat, dtype=np.float64) for mat in (bt, g, at))  # type: ignore[return-value]


SIX_POINTS = (0, 1, -1, 2, -2)  # and infinity: the points of BT, G5, AT2, G3, AT4


@dataclass(frozen=True, eq=False)
class Variant:
    """One Winograd algorithm F(m x m, r x r) with alpha x alpha input tiles,
    alpha = m + r - 1.

    Attributes:
        name: e.g. ``"F(2x2, 5x5)"``.
        r: the filter size.
        m: the output tile size, which is also the stride between input tiles.
        G: the filter transform, shape (alpha, r).
        AT: the output transform A^T, shape (m, alpha).
        BT: the input transform B^T, shape (alpha, alpha) (the shared 6x6 ``BT``
            unless given).
        points: the finite interpolation points (infinity is the last).
    """

    name: str
    r: int
    m: int
    G: np.ndarray
    AT: np.ndarray
    BT: np.ndarray = field(default_factory=lambda: BT)
    points: tuple = SIX_POINTS

    @property
    def alpha(self) -> int:
        """The input tile's size, m + r - 1."""
        return self.m + self.r - 1

    @property
    def ident(self) -> str:
        """A name usable in code: ``"F2x2_5x5"``."""
        return f"F{self.m}x{self.m}_{self.r}x{self.r}"


def variant_from_points(m: int, r: int, points: Sequence[Fraction | int]) -> Variant:
    """F(m x m, r x r) with the matrices of :func:`winograd_matrices` at ``points``."""
    bt, g, at = winograd_matrices(m, r, points)
    return Variant(f"F({m}x{m}, {r}x{r})", r=r, m=m, G=g, AT=at, BT=bt, points=tuple(points))


F2x2_5x5 = Variant("F(2x2, 5x5)", r=5, m=2, G=G5, AT=AT2)
F4x4_3x3 = Variant("F(4x4, 3x3)", r=3, m=4, G=G3, AT=AT4)
VARIANTS = {5: F2x2_5x5, 3: F4x4_3x3}  # the defaults, by kernel size
HALF = Fraction(1, 2)
# larger tiles for 5x5 filters, 7x7 and 8x8 input tiles (a backend chooses them)
F3x3_5x5 = variant_from_points(3, 5, (0, 1, -1, 2, -2, HALF))
F4x4_5x5 = variant_from_points(4, 5, (0, 1, -1, 2, -2, HALF, -HALF))
