"""Algorithm 2's greedy second layer, line by line: the oracle every faster path is tested against.

Written the way the paper's reference code works: for each drawn candidate one float
matrix-vector product over all points (its sums give both m and what the new neuron covers),
and predictions from the whole second layer's dense transform (second_layer_fires).  About
n * n_iter operations per drawn candidate: slow, but plain.
The `# [Line N]` comments follow the transcription of Algorithm 2 in algorithm.py's docstring.
"""
from __future__ import annotations

import numpy as np


def second_layer_fires(A: np.ndarray, U: list, m: list) -> np.ndarray:
    """(n, k) bool: second-layer neuron j fires at point z iff <Phi(z), 1_U_j> < m_j."""
    if not U:
        return np.zeros((A.shape[0], 0), bool)
    sums = A @ np.array(U, dtype=A.dtype).T
    return sums < np.array(m, dtype=A.dtype)


def greedy(A: np.ndarray, positive: np.ndarray, walk, stats: dict | None = None) -> tuple[list, list, list]:
    """The second layer that separates the `positive` points (X+) from the rest (X-).

    A        (n, n_iter) first-layer outputs Phi(x) of the training points (dense)
    positive (n,) bool, the class being separated
    walk     the positive indices in the order of the draws: [Line 5]'s "a random remaining
             candidate" is the first one of `walk` still among the candidates
    Returns (anchors, U, m): per neuron, the drawn point, its inactive units (bool over
    n_iter) and its threshold.  stats["draws"], if given, counts the draws.
    """
    negative = ~np.asarray(positive, bool)
    in_C = np.zeros(len(A), bool)
    in_C[np.asarray(walk, np.int64)] = True                  # [Line 3] C <- X+
    in_U = in_C.copy()                                       # [Line 3] U <- X+ (not yet covered)
    n_U = int(in_U.sum())
    anchors, U, m = [], [], []
    for x in walk:                                           # [Line 4] while C and U are not empty:
        if n_U == 0:
            break
        if not in_C[x]:                                      # [Line 5] draw x: the next point of the
            continue                                         #          walk that is still in C
        in_C[x] = False                                      # [Line 12] C <- C \ {x}
        if stats is not None:
            stats["draws"] = stats.get("draws", 0) + 1
        inactive = A[x] == 0                                 # [Line 6] I = {i : Phi(x)_i = 0}
        sums = A @ inactive.astype(A.dtype)                  # <Phi(z), 1_I> for every point z
        m_x = sums[negative].min()                           # [Line 7] m = min over X-
        if m_x > 0:                                          # [Line 8]
            anchors.append(int(x))                           # [Line 9] new neuron: fires iff <Phi(z), 1_I> < m
            U.append(inactive)
            m.append(m_x)
            covered = (sums < m_x) & in_U                    # the points of U it fires at (x among them)
            in_U &= ~covered                                 # [Line 10]
            in_C &= ~covered                                 # [Line 11]
            n_U -= int(covered.sum())
    return anchors, U, m
