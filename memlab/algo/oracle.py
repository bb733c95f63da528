"""Algorithm 2's greedy second layer, line by line: the oracle every faster path is tested against.

Written the way the paper's reference code works: for each drawn candidate a matrix-vector
product over all points, and after each new neuron the whole second layer recomputed to find
what it covers.  Slow (about n * n_iter per candidate plus n * n_iter * k per neuron) but plain.
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


def greedy(A: np.ndarray, positive: np.ndarray, walk) -> tuple[list, list, list]:
    """The second layer that separates the `positive` points (X+) from the rest (X-).

    A        (n, n_iter) first-layer outputs Phi(x) of the training points (dense)
    positive (n,) bool, the class being separated
    walk     the positive indices in the order of the draws: [Line 5]'s "a random remaining
             candidate" is the first one of `walk` still among the candidates
    Returns (anchors, U, m): per neuron, the drawn point, its inactive units (bool over
    n_iter) and its threshold.
    """
    negative = ~np.asarray(positive, bool)
    candidates = [int(i) for i in walk]                      # [Line 3] C <- X+
    universe = set(candidates)                               # [Line 3] points not yet covered
    anchors, U, m = [], [], []
    while candidates and universe:                           # [Line 4]
        x = candidates.pop(0)                                # [Line 5] draw x from C; [Line 12] C <- C \ {x}
        inactive = A[x] == 0                                 # [Line 6] I = {i : Phi(x)_i = 0}
        sums = A @ inactive.astype(A.dtype)                  # <Phi(z), 1_I> for every point z
        m_x = sums[negative].min()                           # [Line 7] m = min over X-
        if m_x > 0:                                          # [Line 8]
            anchors.append(x)                                # [Line 9] new neuron: fires iff <Phi(z), 1_I> < m
            U.append(inactive)
            m.append(m_x)
            covered = second_layer_fires(A, U, m).any(axis=1) & ~negative
            universe -= set(np.flatnonzero(covered).tolist())      # [Line 10]
            candidates = [c for c in candidates if not covered[c]]  # [Line 11]
    return anchors, U, m
