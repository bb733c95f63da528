"""Packed bit rows: 64 first-layer units per uint64 word, and popcount kernels over them.

Unit j of a row lives in word j // 64 at bit j % 64.  Padding bits past the last unit are 0,
so AND-ing two rows and counting never sees them.
"""
from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.extending import intrinsic


@intrinsic
def popcount(typingctx, x):
    """The CPU's popcount instruction (llvm.ctpop) on one uint64 word, as int64."""
    if not isinstance(x, types.Integer) or x.bitwidth != 64:
        return None

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return types.int64(x), codegen


def n_words(n_bits: int) -> int:
    return (n_bits + 63) // 64


@njit(cache=True, nogil=True)
def count_below(a, u, limit):
    """popcount(a & u) if it is below `limit`, else some value >= limit (stops counting early).

    The greedy loop only asks "is this count below the best so far?", and counts only grow
    word by word, so most rows are rejected after their first word.
    """
    s = 0
    for w in range(a.shape[0]):
        s += popcount(a[w] & u[w])
        if s >= limit:
            return s
    return s


@njit(cache=True, nogil=True)
def pack(mask, out):
    """Bool rows (n, n_bits) -> packed words `out` (n, n_words(n_bits))."""
    n, n_bits = mask.shape
    one = np.uint64(1)
    for i in range(n):
        for w in range(out.shape[1]):
            out[i, w] = 0
        for j in range(n_bits):
            if mask[i, j]:
                out[i, j >> 6] |= one << np.uint64(j & 63)
    return out


@njit(cache=True, nogil=True)
def unpack(bits, n_bits, out):
    """Packed words (n, n_words) -> 0/1 rows `out` (n, n_bits) of out's dtype."""
    one = np.uint64(1)
    for i in range(bits.shape[0]):
        for j in range(n_bits):
            out[i, j] = (bits[i, j >> 6] >> np.uint64(j & 63)) & one
    return out


@njit(cache=True, nogil=True)
def select(bits, units, out):
    """Keep only the listed units (in that order): out[i] packs bits[i, units]."""
    one = np.uint64(1)
    for i in range(bits.shape[0]):
        for w in range(out.shape[1]):
            out[i, w] = 0
        for k in range(units.shape[0]):
            j = units[k]
            if (bits[i, j >> 6] >> np.uint64(j & 63)) & one:
                out[i, k >> 6] |= one << np.uint64(k & 63)
    return out


@njit(cache=True, nogil=True)
def row_popcounts(bits):
    out = np.zeros(bits.shape[0], np.int64)
    for i in range(bits.shape[0]):
        for w in range(bits.shape[1]):
            out[i] += popcount(bits[i, w])
    return out


def complement(bits: np.ndarray, n_bits: int) -> np.ndarray:
    """~bits with the padding bits kept at 0 (the inactive units of each row)."""
    out = ~bits
    tail = n_bits % 64
    if tail:
        out[:, -1] &= np.uint64((1 << tail) - 1)
    return out


def to_bool(bits: np.ndarray, n_bits: int) -> np.ndarray:
    return unpack(bits, n_bits, np.empty((bits.shape[0], n_bits), np.bool_))


def from_bool(mask: np.ndarray) -> np.ndarray:
    mask = np.ascontiguousarray(mask, dtype=np.bool_)
    return pack(mask, np.empty((mask.shape[0], n_words(mask.shape[1])), np.uint64))
