"""Kernels behind algorithm.py (Algorithm 2 of arXiv 2310.00327).

    first_layer.py   random first layer: weights, canonical outputs (packed bits or quantized floats)
    oracle.py        the plain, line-by-line Algorithm 2 the tests check everything against
    fast.py          the CPU fast path: numba popcount kernels (threshold), block products (ReLU)
    torch_path.py    the same block algorithm in PyTorch, for GPUs (device="cuda")
"""
