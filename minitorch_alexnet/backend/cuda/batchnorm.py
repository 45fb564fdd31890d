"""BatchNorm on the GPU: per-channel sums as a two-step reduction, elementwise kernels.

Per-channel sums over (n, l) of an (N, C, L) array run in two steps: S blocks per
channel each add a strided share of the channel's N*L values (in double precision,
whatever the data type) and write a partial sum; a second small kernel adds the S
partial sums of each channel. Several blocks per channel keep the whole GPU busy
when there are few channels; the fixed order keeps the result the same every run.
"""

from __future__ import annotations

import cupy as cp

from ..half import via_float32
from .indexed import CTYPE

_BN_SOURCE = r"""
__device__ double block_sum(double v, double* shared) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffff, v, o);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) shared[warp] = v;
    __syncthreads();
    v = (threadIdx.x < (blockDim.x + 31) / 32) ? shared[threadIdx.x] : 0.0;
    if (warp == 0)
        for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffff, v, o);
    __syncthreads();
    return v;  // the total, in thread 0
}

// block (c, s) adds a[j] - p and (a[j] - p) * (b[j] - q) over its share of channel c
// into part[c, s, 0:2]. For statistics (shift = true, b = a) p = q = the channel's first
// value: shifting by a value near the mean keeps sum(x^2)/m - mean^2 accurate even when
// the mean is much larger than the spread. For plain sums (shift = false) p = q = 0.
template <typename T>
__global__ void channel_partial_sums(const T* a, const T* b, int N, int C, int L, int S,
                                     bool shift, double* part) {
    __shared__ double shared[32];
    const int c = blockIdx.x, s = blockIdx.y, m = N * L;
    const double p = shift ? (double)a[(long long)c * L] : 0.0;
    double sa = 0.0, sab = 0.0;
    for (int k = s * blockDim.x + threadIdx.x; k < m; k += S * blockDim.x) {
        const long long j = ((long long)(k / L) * C + c) * L + k % L;
        const double va = (double)a[j] - p;
        sa += va;
        sab += va * ((double)b[j] - p);
    }
    sa = block_sum(sa, shared);
    sab = block_sum(sab, shared);
    if (threadIdx.x == 0) {
        part[(c * S + s) * 2] = sa;
        part[(c * S + s) * 2 + 1] = sab;
    }
}

// from the shifted sums of x - p and (x - p)^2: mean = p + d, var = sum((x-p)^2)/m - d^2
template <typename T>
__global__ void finish_stats(const double* part, const T* x, int C, int S, int L, double m,
                             T* mean, T* var) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    double s = 0.0, q = 0.0;
    for (int i = 0; i < S; ++i) { s += part[(c * S + i) * 2]; q += part[(c * S + i) * 2 + 1]; }
    const double d = s / m, v = q / m - d * d;
    mean[c] = (T)((double)x[(long long)c * L] + d);
    var[c] = (T)(v > 0.0 ? v : 0.0);
}

// the two sums as they are (backward: sum(dy), sum(dy * xhat))
template <typename T>
__global__ void finish_sums(const double* part, int C, int S, T* sum_a, T* sum_ab) {
    const int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    double s = 0.0, q = 0.0;
    for (int i = 0; i < S; ++i) { s += part[(c * S + i) * 2]; q += part[(c * S + i) * 2 + 1]; }
    sum_a[c] = (T)s;
    sum_ab[c] = (T)q;
}
"""
_bn_module = cp.RawModule(
    code=_BN_SOURCE,
    options=("-std=c++14",),
    name_expressions=[
        f"{k}<{t}>"
        for k in ("channel_partial_sums", "finish_stats", "finish_sums")
        for t in ("float", "double")
    ],
)
_SUM_THREADS = 256


def _channel_partial_sums(a: cp.ndarray, b: cp.ndarray, shift: bool) -> cp.ndarray:
    """Step one of the per-channel reduction of ``a`` and ``a * b``: partial sums (C, S, 2)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        raise TypeError(f"per-channel sums need two arrays alike, got {a.dtype}, {b.dtype}")
    a, b = cp.ascontiguousarray(a), cp.ascontiguousarray(b)
    N, C, L = a.shape
    m = N * L
    # enough blocks for the whole GPU, but each with at least a few elements per thread
    S = max(1, min(-(-1024 // C), -(-m // (_SUM_THREADS * 4))))
    part = cp.empty((C, S, 2), dtype=cp.float64)
    args = (a, b, cp.int32(N), cp.int32(C), cp.int32(L), cp.int32(S), shift, part)
    f = _bn_module.get_function(f"channel_partial_sums<{CTYPE[a.dtype]}>")
    f((C, S), (_SUM_THREADS,), args)
    return part


_bn_normalize = cp.ElementwiseKernel(
    "T x, raw T mean, raw T inv_std, raw T gamma, raw T beta, bool affine, int32 C, int32 L",
    "T y, T xhat",
    """
    const int c = (int)((i / L) % C);
    const T h = (x - mean[c]) * inv_std[c];
    xhat = h;
    y = affine ? h * gamma[c] + beta[c] : h;
    """,
    "minitorch_bn_normalize",
)

_bn_dx = cp.ElementwiseKernel(
    "T dy, T xhat, raw T scale, raw T sum_dy, raw T sum_dyx, bool batch_stats, "
    "int32 C, int32 L, T m",
    "T dx",
    """
    const int c = (int)((i / L) % C);
    dx = batch_stats ? scale[c] * (dy - sum_dy[c] / m - xhat * (sum_dyx[c] / m)) : dy * scale[c];
    """,
    "minitorch_bn_dx",
)

_bn_running = cp.ElementwiseKernel(
    "T mean, T var, T factor, T unbias",
    "T running_mean, T running_var",
    """
    running_mean = (1 - factor) * running_mean + factor * mean;
    running_var = (1 - factor) * running_var + factor * var * unbias;
    """,
    "minitorch_bn_running",
)


_inv_std = cp.ElementwiseKernel(
    "T var, T eps", "T out", "out = (T)1 / sqrt(var + eps);", "minitorch_inv_std"
)


def _stats(x3: cp.ndarray) -> tuple[cp.ndarray, cp.ndarray]:
    """Per-channel mean and biased variance of x3 (N, C, L), (C,) each."""
    N, C, L = x3.shape
    mean, var = cp.empty(C, dtype=x3.dtype), cp.empty(C, dtype=x3.dtype)
    part = _channel_partial_sums(x3, x3, shift=True)
    f = _bn_module.get_function(f"finish_stats<{CTYPE[x3.dtype]}>")
    S, m = part.shape[1], cp.float64(N * L)
    f((-(-C // 128),), (128,), (part, x3, cp.int32(C), cp.int32(S), cp.int32(L), m, mean, var))
    return mean, var


@via_float32(updates=("running_mean", "running_var"))
def batchnorm_forward(
    x: cp.ndarray,
    weight: cp.ndarray | None,
    bias: cp.ndarray | None,
    running_mean: cp.ndarray | None,
    running_var: cp.ndarray | None,
    batch_stats: bool,
    momentum: float,
    eps: float,
    save: bool = True,
) -> tuple[cp.ndarray, dict | None]:
    """See ``nn/batchnorm.py``: the statistics by the two-step reduction, the running
    update, 1/sqrt(var + eps), and xhat with y, one kernel each (xhat is written
    either way, and dropped at once with ``save=False``)."""
    N, C = x.shape[:2]
    x3 = cp.ascontiguousarray(x).reshape(N, C, -1)
    L = x3.shape[2]
    if batch_stats:
        mu, var = _stats(x3)
        if running_mean is not None:
            t = running_mean.dtype.type
            unbias = t(N * L / (N * L - 1))  # the variance enters unbiased
            _bn_running(mu, var, t(momentum), unbias, running_mean, running_var)
    else:
        mu, var = running_mean, running_var
    inv_std = _inv_std(var, var.dtype.type(eps))
    affine = weight is not None
    g, b = (weight, bias) if affine else (mu, mu)  # placeholders the kernel never reads
    y, xhat = _bn_normalize(x3, mu, inv_std, g, b, affine, C, L)
    if not save:
        return y.reshape(x.shape), None
    ctx = dict(xhat=xhat, inv_std=inv_std, weight=weight, batch_stats=batch_stats)
    return y.reshape(x.shape), ctx


@via_float32()
def batchnorm_backward(grad_out: cp.ndarray, ctx: dict) -> tuple:
    """See ``nn/batchnorm.py``: both sums by the two-step reduction, then dx, one kernel."""
    xhat, inv_std, gamma = ctx["xhat"], ctx["inv_std"], ctx["weight"]
    N, C = grad_out.shape[:2]
    dy3 = cp.ascontiguousarray(grad_out).reshape(N, C, -1)
    L = dy3.shape[2]
    sum_dy, sum_dyx = cp.empty(C, dtype=dy3.dtype), cp.empty(C, dtype=dy3.dtype)
    part = _channel_partial_sums(dy3, xhat, shift=False)
    f = _bn_module.get_function(f"finish_sums<{CTYPE[dy3.dtype]}>")
    f((-(-C // 128),), (128,), (part, cp.int32(C), cp.int32(part.shape[1]), sum_dy, sum_dyx))
    scale = inv_std if gamma is None else gamma * inv_std
    dx = _bn_dx(dy3, xhat, scale, sum_dy, sum_dyx, ctx["batch_stats"], C, L, dy3.dtype.type(N * L))
    if gamma is None:
        return dx.reshape(grad_out.shape), None, None
    return dx.reshape(grad_out.shape), sum_dyx, sum_dy
