"""The random first layer of Algorithm 2 and its outputs, computed the same way on every path.

Two paths (the oracle, the numba fast path, the PyTorch path on a GPU) choose the same neurons
only if they see the same first-layer outputs.  A float32 matrix product rounds differently
from one library (or GPU) to the next, so a point within rounding of a hyperplane could be
"active" on one path and not on another.  The outputs are therefore canonical:

  threshold  bit = [w.x + b > 0] with the sign of the exact value: the float32 product decides
             wherever it is farther from 0 than its worst-case rounding error, and the few
             entries closer than that (about 0.1% on MNIST) are recomputed in float64.
  relu       max(w.x + b, 0) computed in float64 and rounded to a multiple of QUANTUM = 2**-24.
             Every second-layer sum of such values is exact in float64 in any order, so the
             second layer's sums (and its minimum m) are the same on every path, and a
             training point never flips sides of a threshold between fit and predict.
"""
from __future__ import annotations

import numpy as np
from memlab.algo import kernels

QUANTUM = 2.0 ** -24
CHUNK_BYTES = 16 << 20          # work buffer per chunk of rows
F32_EPS = 2.0 ** -24            # unit roundoff of float32


def draw(rng: np.random.Generator, n_iter: int, n_features: int, max_bias: float):
    """W: (n_iter, d) standard Gaussian, b: (n_iter,) uniform in [-max_bias, max_bias]; float32."""
    W = rng.standard_normal((n_iter, n_features), dtype=np.float32)
    b = rng.uniform(-max_bias, max_bias, n_iter).astype(np.float32)
    return W, b


def as_rows(X) -> np.ndarray:
    """float32, C-contiguous, 2-D: no copy when X already is (the datasets are)."""
    X = np.asarray(X, dtype=np.float32, order="C")
    if X.ndim != 2:
        raise ValueError(f"expected a 2-D array of points, got shape {X.shape}")
    return X


def _chunk_rows(n_iter: int, itemsize: int) -> int:
    """Rows per chunk for a buffer of n_iter items of itemsize bytes per row.  Also the rows
    that kernels.sparse_signs compresses at a time (8 bytes per entry, 2,671 rows of MNIST):
    each chunk reads all of W once more, so it pays to make them large (at 2000 units on the
    stand-in: 1.3 s in chunks of 256 rows, 1.1 s from 1,024 to 8,192)."""
    return max(16, CHUNK_BYTES // max(1, n_iter * itemsize))


# threshold_bits multiplies only the nonzeros of X where at most this fraction of its entries
# are nonzero and the layer has at least SPARSE_MIN_UNITS units: measured on 8,000 x 784 random
# rows at n_iter 2000, the sparse kernel is 2.1x faster at 10% nonzeros, 1.5x at 25%, even at
# 35%, 0.7x at 45% and 0.5x on dense rows (BENCHMARKS.md, Algorithm 2 reference section).
SPARSE_DENSITY = 1 / 3
SPARSE_MIN_UNITS = 64
# Layers of at most NARROW_UNITS units go through kernels.narrow_signs, whatever X's density:
# 4 rows x 4 units of dot products at a time in registers, one pass over X.  On the 35,000 x
# 784 MNIST stand-in, against the path threshold_bits took before: 14 vs 29 ms at 7 units, 20 vs
# 33 ms at 20, 46 vs 66 ms at 64 (sparse kernel), 67 vs 78 ms at 100; slower from 128 units.
NARROW_UNITS = 100


def threshold_bits(X, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Thres(W x + b) for every row of X, packed: (n, n_words(n_iter)) uint64.

    Narrow layers go through kernels.narrow_signs; wider ones with sparse X (MNIST: 75% zeros)
    through kernels.sparse_signs, which multiplies only the nonzeros; the others through a
    float32 BLAS product and kernels.pack_signs.  All three give the same bits: the exact sign
    wherever float32 is sure of it, the same float64 sum elsewhere.
    """
    X = as_rows(X)
    n, d = X.shape
    n_iter = W.shape[0]
    out = np.empty((n, kernels.n_words(n_iter)), np.uint64)
    # |float32 dot - exact| <= (d + 2) u sum|x_k w_k| <= (d + 2) u (|x| |w| + |b|) in any
    # summation order; doubled to cover the rounding of this bound itself.
    tol = 2.0 * (d + 2) * F32_EPS
    wtol = (tol * np.linalg.norm(W.astype(np.float64), axis=1)).astype(np.float32)
    btol = (tol * np.abs(b.astype(np.float64))).astype(np.float32)
    if n_iter <= NARROW_UNITS:
        WP = np.zeros((-(-n_iter // 4) * 4, d), np.float32)
        WP[:n_iter] = W
        return kernels.narrow_signs(X, WP, np.asarray(b, np.float32), wtol, btol, out)
    xnorm = np.sqrt(np.einsum("ij,ij->i", X, X))    # no (n, d) temporary, unlike np.linalg.norm
    if n and n_iter >= SPARSE_MIN_UNITS and _density(X) <= SPARSE_DENSITY:
        W = np.ascontiguousarray(W, dtype=np.float32)
        L = kernels.SIGN_LANES
        nb = -(-n_iter // L)
        WB = _aligned_zeros((nb, d, L))
        for k in range(nb):
            WB[k, :, : min(L, n_iter - k * L)] = W[k * L:(k + 1) * L].T
        kernels.sparse_signs(X, WB, W, _blocks(b, nb, -1.0), _blocks(wtol, nb, 0.0),
                             _blocks(btol, nb, 0.0), xnorm, out, _chunk_rows(d + 1, 8))
        return out
    rows = _chunk_rows(n_iter, 4)
    buf = np.empty((min(rows, n), n_iter), np.float32)
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        pre = buf[: stop - start]
        np.matmul(X[start:stop], W.T, out=pre)
        kernels.pack_signs(pre, b, X[start:stop], W, xnorm[start:stop], wtol, btol, out[start:stop])
    return out


def _density(X: np.ndarray, rows: int = 2048) -> float:
    """The fraction of nonzero entries in about `rows` evenly spaced rows of X.  It only picks
    the faster of two paths that give the same bits; counting all of MNIST's 55 M entries
    took 4% of a fit at n_iter = 100."""
    sample = X[:: max(1, len(X) // rows)]
    return np.count_nonzero(sample) / max(1, sample.size)


def _blocks(v: np.ndarray, n_blocks: int, fill: float) -> np.ndarray:
    """(n_blocks, SIGN_LANES) float32: v, then `fill` for the units past its end."""
    out = np.full(n_blocks * kernels.SIGN_LANES, fill, np.float32)
    out[: len(v)] = v
    return out.reshape(n_blocks, kernels.SIGN_LANES)


def _aligned_zeros(shape, align: int = 64) -> np.ndarray:
    """float32 zeros starting on a cache line (a block row of WB is then whole lines)."""
    nbytes = int(np.prod(shape)) * 4
    raw = np.zeros(nbytes + align, np.uint8)
    skip = -raw.ctypes.data % align
    return raw[skip:skip + nbytes].view(np.float32).reshape(shape)


def relu_outputs(X, W: np.ndarray, b: np.ndarray) -> np.ndarray:
    """ReLU(W x + b) for every row of X: (n, n_iter) float64, multiples of QUANTUM."""
    X = as_rows(X)
    n = X.shape[0]
    n_iter = W.shape[0]
    out = np.empty((n, n_iter), np.float64)
    WT = W.astype(np.float64).T
    b64 = b.astype(np.float64)
    rows = _chunk_rows(n_iter, 8)
    for start in range(0, n, rows):
        block = out[start:min(n, start + rows)]
        np.matmul(X[start:start + len(block)].astype(np.float64), WT, out=block)
        block += b64
        quantize_relu(block)
    return out


def quantize_relu(pre: np.ndarray) -> np.ndarray:
    """In place: max(pre, 0) rounded to a multiple of QUANTUM (exact float64 operations)."""
    np.maximum(pre, 0.0, out=pre)
    pre *= 1.0 / QUANTUM
    np.rint(pre, out=pre)
    pre *= QUANTUM
    return pre


def dense_outputs(X, W, b, activation: str) -> np.ndarray:
    """The first layer's outputs as a dense matrix, as the oracle reads them.

    threshold: float32 0/1 (its sums are exact integers); relu: float64 (see QUANTUM).
    """
    if activation == "thres":
        packed = threshold_bits(X, W, b)
        return kernels.unpack(packed, W.shape[0], np.empty((packed.shape[0], W.shape[0]), np.float32))
    return relu_outputs(X, W, b)


class ReluStore:
    """ReLU outputs of every training point, compressed for wide layers (see relu_store).

    bits (n, n_words) which units are nonzero; vals (nnz,) int32 the nonzero outputs in units of
    QUANTUM, row by row in unit order; row_ptr (n + 1,) where each row's values start.  About
    4 bytes per nonzero output (half the units on average) instead of 8 per unit: 70,000 x
    10,000 takes about 1.5 GB instead of 5.6.  rows(idx) gives the exact canonical float64 rows.
    """

    def __init__(self, bits, vals, row_ptr, n_iter):
        self.bits, self.vals, self.row_ptr, self.n_iter = bits, vals, row_ptr, n_iter
        self.shape = (bits.shape[0], n_iter)

    def rows(self, idx, out=None) -> np.ndarray:
        idx = np.ascontiguousarray(idx, dtype=np.int64)
        if out is None:
            out = np.empty((len(idx), self.n_iter), np.float64)
        return kernels.expand_rows(self.bits, self.vals, self.row_ptr, idx, QUANTUM, out[: len(idx)])


INT32_SPAN = 2.0 ** 31 * QUANTUM      # outputs below this are exact int32 multiples of QUANTUM


def relu_store(X, W: np.ndarray, b: np.ndarray) -> ReluStore | None:
    """relu_outputs(X, W, b) compressed (ReluStore), chunk by chunk, never dense in full; None
    where some output is >= INT32_SPAN (128: huge biases), which int32 cannot hold exactly."""
    X = as_rows(X)
    n, n_iter = X.shape[0], W.shape[0]
    nw = kernels.n_words(n_iter)
    bits = np.empty((n, nw), np.uint64)
    row_ptr = np.zeros(n + 1, np.int64)
    vals = np.empty(max(1, int(0.6 * n * n_iter)), np.int32)
    nnz = 0
    WT = W.astype(np.float64).T
    b64 = b.astype(np.float64)
    rows = _chunk_rows(n_iter, 8)
    block = np.empty((min(rows, n), n_iter), np.float64)
    for start in range(0, n, rows):
        stop = min(n, start + rows)
        pre = block[: stop - start]
        np.matmul(X[start:stop].astype(np.float64), WT, out=pre)
        pre += b64
        quantize_relu(pre)
        if pre.max(initial=0.0) >= INT32_SPAN:
            return None
        mask = pre > 0
        kernels.pack(mask, bits[start:stop])
        counts = mask.sum(axis=1)
        row_ptr[start + 1:stop + 1] = nnz + np.cumsum(counts)
        new = pre[mask] * (1.0 / QUANTUM)
        if nnz + len(new) > len(vals):
            vals = np.resize(vals, max(nnz + len(new), int(1.25 * len(vals))))
        vals[nnz:nnz + len(new)] = new
        nnz += len(new)
    return ReluStore(bits, vals[:nnz], row_ptr, n_iter)
