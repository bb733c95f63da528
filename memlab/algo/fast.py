"""The fast CPU path of Algorithm 2: the same neurons as memlab.algo.oracle, far less work.

Threshold activation (numba, packed bits).  After Thres the first layer's output is a bit row,
and <Phi(z), 1_I> with I = the candidate's inactive units is popcount(z & ~candidate).  Exact
shortcuts, none of which changes a neuron:
  * units constant over the training set are dropped: one active everywhere is never in I,
    one inactive everywhere adds 0 to every sum;
  * points with the same bit pattern are one pattern: a pattern already drawn and rejected
    (m = 0) would be rejected again, a covered pattern is covered for all its points;
  * the minimum over X- starts from the negative that gave the previous minimum, visits the
    negatives by increasing popcount and stops once popcount(z) - popcount(candidate), a lower
    bound of every later count, reaches the best so far; each count stops as soon as it
    reaches the best so far (`bits.count_below`).
Walking one random permutation of X+ and skipping what is covered or already tried draws
"a random remaining candidate" ([Line 5]) with the paper's distribution.

ReLU activation (numpy, blocks).  The next `size` live candidates are evaluated with one matrix
product against X- (their m) and one among themselves (which of them an earlier accepted one
covers), then decided in order exactly as the sequential loop would; `size` adapts to how
many candidates a block wastes.  The sums are exact (see first_layer.QUANTUM).
"""
from __future__ import annotations

import numpy as np
from numba import njit

from memlab.algo import bits

_BIG = 1 << 62


# ----------------------------------------------------------------------------- threshold

@njit(cache=True, nogil=True)
def _greedy_packed(pat, pat_pop, walk_pid, pos_pats, neg, neg_pop):
    """Algorithm 2's loop over bit patterns.  Returns (walk positions that became neurons, m)."""
    nw = pat.shape[1]
    n_neg = neg.shape[0]
    done = np.zeros(pat.shape[0], np.bool_)       # pattern covered, or drawn and rejected
    uncovered = pos_pats.copy()                   # the universe, as distinct patterns
    n_uncovered = uncovered.shape[0]
    steps = np.empty(walk_pid.shape[0], np.int64)
    ms = np.empty(walk_pid.shape[0], np.int64)
    k = 0
    u = np.empty(nw, np.uint64)
    last = 0
    for t in range(walk_pid.shape[0]):
        if n_uncovered == 0:                      # [Line 4] nothing left to cover
            break
        p = walk_pid[t]
        if done[p]:                               # not a remaining candidate
            continue
        done[p] = True                            # [Line 12]
        for w in range(nw):                       # [Line 6] I = inactive units of x
            u[w] = ~pat[p, w]
        best = bits.count_below(neg[last], u, _BIG)
        pop_p = pat_pop[p]
        if best > 0:                              # [Line 7] m = min over X- of |z & I|
            for a in range(n_neg):
                if neg_pop[a] - pop_p >= best:
                    break
                s = bits.count_below(neg[a], u, best)
                if s < best:
                    best = s
                    last = a
                    if best == 0:
                        break
        if best == 0:                             # [Line 8]
            continue
        steps[k] = t                              # [Line 9]
        ms[k] = best
        k += 1
        i = 0
        while i < n_uncovered:                    # [Lines 10-11] drop what it covers
            q = uncovered[i]
            if bits.count_below(pat[q], u, best) < best:
                done[q] = True
                n_uncovered -= 1
                uncovered[i] = uncovered[n_uncovered]
            else:
                i += 1
    return steps[:k], ms[:k]


def varying_units(packed: np.ndarray, n_bits: int) -> np.ndarray:
    """Indices of the units that are active for some training points and inactive for others."""
    some = np.bitwise_or.reduce(packed, axis=0, keepdims=True)
    every = np.bitwise_and.reduce(packed, axis=0, keepdims=True)
    return np.flatnonzero(bits.to_bool(some & ~every, n_bits)[0])


def fit_threshold(packed: np.ndarray, n_iter: int, y_idx: np.ndarray, targets, walks) -> list:
    """Second layers for each target class (one vs the rest) from the packed first layer.

    packed  (n, n_words(n_iter)) canonical first-layer bits of the training points
    y_idx   (n,) class index of each point; targets: the class indices to separate
    walks   per target, its points (indices into packed) in draw order
    Returns per target (anchors, m, U_bits).
    """
    units = varying_units(packed, n_iter)
    if len(units) < n_iter:
        compact = bits.select(packed, units, np.empty((len(packed), bits.n_words(len(units))), np.uint64))
    else:
        compact = packed
    pat, pid = np.unique(compact, axis=0, return_inverse=True)
    pat = np.ascontiguousarray(pat)
    pid = pid.reshape(-1)
    pat_pop = bits.row_popcounts(pat)
    out = []
    for t, walk in zip(targets, walks):
        walk = np.asarray(walk, np.int64)
        neg_ids = np.unique(pid[y_idx != t])
        neg_ids = neg_ids[np.argsort(pat_pop[neg_ids], kind="stable")]
        steps, m = _greedy_packed(pat, pat_pop, pid[walk], np.unique(pid[walk]),
                                  np.ascontiguousarray(pat[neg_ids]), pat_pop[neg_ids])
        anchors = walk[steps]
        out.append((anchors, m.astype(np.float64), bits.complement(packed[anchors], n_iter)))
    return out


@njit(cache=True, nogil=True)
def any_fires(packed, U, m):
    """(n,) bool: does some second-layer neuron fire (popcount(z & U_j) < m_j)?"""
    out = np.zeros(packed.shape[0], np.bool_)
    for i in range(packed.shape[0]):
        for j in range(U.shape[0]):
            if bits.count_below(packed[i], U[j], m[j]) < m[j]:
                out[i] = True
                break
    return out


@njit(cache=True, nogil=True)
def neuron_sums(packed, U):
    """(n, k) int64: <Phi(z), 1_U_j> = popcount(z & U_j) for every point and neuron."""
    out = np.zeros((packed.shape[0], U.shape[0]), np.int64)
    for i in range(packed.shape[0]):
        for j in range(U.shape[0]):
            for w in range(U.shape[1]):
                out[i, j] += bits.popcount(packed[i, w] & U[j, w])
    return out


# ----------------------------------------------------------------------------- dense (ReLU)

def _next_block(walk, t, covered, size):
    block = []
    while t < len(walk) and len(block) < size:
        if not covered[walk[t]]:
            block.append(walk[t])
        t += 1
    return block, t


def decide_block(m: np.ndarray, inner: np.ndarray) -> tuple[list, int]:
    """The sequential loop over one block: which candidates become neurons, and how many were
    skipped because an earlier one in the block covered them.  inner[i, j] = <Phi(c_i), 1_I_j>."""
    alive = np.ones(len(m), bool)
    accepted, skipped = [], 0
    for j in range(len(m)):
        if not alive[j]:
            skipped += 1
        elif m[j] > 0:                                       # [Line 8]
            accepted.append(j)                               # [Line 9]
            alive &= ~(inner[:, j] < m[j])                   # [Line 11] (within the block)
    return accepted, skipped


def next_size(size: int, n: int, skipped: int) -> int:
    if skipped * 4 > n:
        return max(1, size // 2)
    return min(512, size * 2) if skipped == 0 else size


def greedy_dense(A: np.ndarray, positive: np.ndarray, walk) -> tuple[np.ndarray, np.ndarray]:
    """Algorithm 2's loop over dense first-layer outputs A (n, units), in blocks.

    All sums must be exact (0/1 float32 or quantized float64) so that the block order of
    summation cannot change a decision.  Returns (anchors, m).
    """
    walk = np.asarray(walk, np.int64)
    pos = np.flatnonzero(positive)
    A_neg = A[~positive]
    A_pos = A[pos]
    covered = np.zeros(len(A), bool)
    n_uncovered = len(pos)
    anchors, ms = [], []
    t, size = 0, 16
    while t < len(walk) and n_uncovered:                     # [Line 4]
        block, t = _next_block(walk, t, covered, size)       # [Line 5] the next draws
        if not block:
            break
        Ab = A[block]
        U = (Ab == 0).astype(A.dtype)                        # [Line 6]
        m = (A_neg @ U.T).min(axis=0)                        # [Line 7]
        accepted, skipped = decide_block(m, Ab @ U.T)
        if accepted:
            hit = ((A_pos @ U[accepted].T) < m[accepted]).any(axis=1)   # [Line 10]
            newly = pos[hit & ~covered[pos]]
            covered[newly] = True
            n_uncovered -= len(newly)
            anchors += [block[j] for j in accepted]
            ms += [m[j] for j in accepted]
        size = next_size(size, len(block), skipped)
    return np.array(anchors, np.int64), np.array(ms, np.float64)


def fit_dense(A_full: np.ndarray, y_idx: np.ndarray, targets, walks) -> list:
    """Second layers per target class from dense outputs (n, n_iter); see fit_threshold."""
    varying = np.flatnonzero((A_full > 0).any(axis=0) & (A_full == 0).any(axis=0))
    A = np.ascontiguousarray(A_full[:, varying]) if len(varying) < A_full.shape[1] else A_full
    out = []
    for t, walk in zip(targets, walks):
        anchors, m = greedy_dense(A, y_idx == t, walk)
        out.append((anchors, m, bits.from_bool(A_full[anchors] == 0)))
    return out
