"""Winograd convolutions: fewer multiplications for 5x5 and 3x3 stride-1 layers.

``reference.py`` derives the transforms and computes with them in plain array code
(NumPy or CuPy): read it for the math. ``cuda.py`` runs the same algorithms as CUDA
kernels around one batched cuBLAS product, from source that ``cuda_source.py`` writes
out from the matrices; the GPU backend's Conv2d override (``backend/cuda/conv.py``)
uses it where it measured faster than im2col.
"""
