"""Algorithm 2 in PyTorch, for GPU nodes: Memorizer(device="cuda") or method="torch".

The same block algorithm as fast.greedy_dense (the next live candidates evaluated with one
matrix product against X- and one among themselves, then decided in order on the host), on
`device`.  It gives the same neurons as the oracle because every sum is exact:
  threshold  0/1 float32 entries: integer sums (TF32 keeps 0 and 1 exact, sums stay in fp32);
  relu       float64 multiples of first_layer.QUANTUM: exact in any summation order.
The first layer is computed in float64 on the device and rounded as in first_layer, so its
outputs agree with the CPU paths' canonical ones (they differ only for a point within about
1e-16 of a hyperplane, or of a QUANTUM rounding boundary).  Scoring runs on the CPU kernels.
"""
from __future__ import annotations

import numpy as np
import torch

from memlab.algo import fast, first_layer, kernels

CHUNK_ELEMENTS = 1 << 25        # rows x units per first-layer chunk on the device


def outputs(X: np.ndarray, W: np.ndarray, b: np.ndarray, activation: str, device) -> torch.Tensor:
    """Phi(X) on the device: (n, n_iter) float32 0/1 (thres) or quantized float64 (relu)."""
    n, n_iter = X.shape[0], W.shape[0]
    dtype = torch.float32 if activation == "thres" else torch.float64
    A = torch.empty((n, n_iter), dtype=dtype, device=device)
    Wd = torch.as_tensor(W, device=device).double()
    bd = torch.as_tensor(b, device=device).double()
    rows = max(1, CHUNK_ELEMENTS // max(n_iter, X.shape[1]))
    for start in range(0, n, rows):
        Xc = torch.tensor(X[start:start + rows], dtype=torch.float64, device=device)
        pre = torch.addmm(bd, Xc, Wd.T)
        if activation == "thres":
            A[start:start + rows] = pre > 0
        else:
            A[start:start + rows] = pre.clamp_(min=0).mul_(1 / first_layer.QUANTUM).round_().mul_(first_layer.QUANTUM)
    return A


def greedy(A: torch.Tensor, positive: np.ndarray, walk: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Algorithm 2's loop for one class on dense outputs A (device); see fast.greedy_dense."""
    device = A.device
    pos = np.flatnonzero(positive)
    A_neg = A[torch.as_tensor(np.flatnonzero(~positive), device=device)]
    A_pos = A[torch.as_tensor(pos, device=device)]
    covered = np.zeros(len(positive), bool)
    n_uncovered = len(pos)
    anchors, ms = [], []
    t, size = 0, 64
    while t < len(walk) and n_uncovered:                              # [Line 4]
        block, t = fast._next_block(walk, t, covered, size)           # [Line 5] the next draws
        if not block:
            break
        Ab = A[torch.as_tensor(block, device=device)]
        U = (Ab == 0).to(A.dtype)                                     # [Line 6]
        m_dev = (A_neg @ U.T).amin(dim=0)                             # [Line 7]
        m = m_dev.cpu().numpy()
        accepted, skipped = fast.decide_block(m, (Ab @ U.T).cpu().numpy())
        if accepted:
            acc = torch.as_tensor(accepted, device=device)
            hit = ((A_pos @ U[acc].T) < m_dev[acc]).any(dim=1).cpu().numpy()   # [Line 10]
            newly = pos[hit & ~covered[pos]]
            covered[newly] = True
            n_uncovered -= len(newly)
            anchors += [block[j] for j in accepted]
            ms += [float(m[j]) for j in accepted]
        size = min(4096, fast.next_size(size, len(block), skipped))
    return np.array(anchors, np.int64), np.array(ms, np.float64)


def fit(X, W, b, activation: str, y_idx: np.ndarray, targets, walks, device: str) -> dict:
    """Second layers per target class; the same result as fast.fit_threshold / fast.fit_dense."""
    with torch.no_grad():
        A_full = outputs(X, W, b, activation, device)                 # [Line 2]
        active = (A_full > 0).sum(dim=0)
        varying = torch.nonzero((active > 0) & (active < len(X))).flatten()
        A = A_full[:, varying] if len(varying) < A_full.shape[1] else A_full
        layers = []
        for t, walk in zip(targets, walks):
            anchors, m = greedy(A, y_idx == t, np.asarray(walk, np.int64))
            inactive = (A_full[torch.as_tensor(anchors, device=A.device)] == 0).cpu().numpy()
            layers.append((anchors, m, kernels.from_bool(inactive.reshape(len(anchors), W.shape[0]))))
        if activation == "thres":
            return {"layers": layers, "order": fast.informative_order(active.cpu().numpy().astype(np.int64), len(X))}
    return {"layers": layers}
