"""Dropout's random numbers on the GPU, from a generator whose state is on the device.

A counter-based generator: sample i of call k is a hash of (seed, k, i), so the whole
state is two integers in device memory, state = [seed, k]. One kernel fills the
output, a second adds 1 to k. Nothing about a call is decided on the host, which is
what a CUDA graph needs: a replayed training step draws fresh dropout masks.
"""

from __future__ import annotations

import cupy as cp
import numpy as _np

_MIX64 = r"""
__device__ __forceinline__ unsigned long long mix64(unsigned long long z) {
    // SplitMix64's finaliser: a bijection of 64-bit integers that scrambles every bit
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
"""
_GOLDEN = "0x9E3779B97F4A7C15ULL"  # 2^64 / golden ratio: spreads consecutive counters
_uniform = cp.ElementwiseKernel(
    "raw uint64 state",
    "T u",
    f"""
    const unsigned long long key = mix64(state[0] ^ mix64(state[1] + {_GOLDEN}));
    const unsigned long long z = mix64(key + (unsigned long long)(i + 1) * {_GOLDEN});
    // the top 24 (float) or 53 (double) bits, scaled into [0, 1)
    u = sizeof(T) == 4 ? (T)((double)(z >> 40) * (1.0 / 16777216.0))
                       : (T)((double)(z >> 11) * (1.0 / 9007199254740992.0));
    """,
    "minitorch_uniform",
    preamble=_MIX64,
)
_advance = cp.RawKernel(
    r"""extern "C" __global__ void minitorch_rng_advance(unsigned long long* state) {
        state[1] += 1ULL;
    }""",
    "minitorch_rng_advance",
)


class DeviceGenerator:
    """Uniform random numbers on the GPU from the state ``[seed, counter]`` on the device."""

    def __init__(self, seed: int = 0):
        self.state = cp.zeros(2, dtype=cp.uint64)
        self.manual_seed(seed)

    def manual_seed(self, seed: int) -> None:
        """Restart the stream at ``seed`` (in place, so captured graphs keep working)."""
        self.state.set(_np.array([seed % 2**64, 0], dtype=_np.uint64))

    def random(self, shape: tuple[int, ...], dtype) -> cp.ndarray:
        """Uniform [0, 1) samples: one fill kernel, then one kernel advancing the counter."""
        out = cp.empty(shape, dtype=dtype)
        _uniform(self.state, out)
        _advance((1,), (1,), (self.state,))
        return out


generator = DeviceGenerator()
