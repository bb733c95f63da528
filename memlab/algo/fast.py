"""The fast CPU path of Algorithm 2: the same neurons as memlab.algo.oracle, far less work.

Threshold activation (numba, packed bits).  After Thres the first layer's output is a bit row,
and <Phi(z), 1_I> with I = the candidate's inactive units is popcount(z & ~candidate).  Exact
shortcuts, none of which changes a neuron:
  * points with the same bit pattern are one pattern: a pattern already drawn and rejected
    (m = 0) would be rejected again, a covered pattern is covered for all its points;
  * the units are reordered, the most informative first (informative_order; for the
    bit-sliced path the most active first, active_first), and the rows
    of X- (and of X+, for coverage) are counted in blocks, one word at a time for the whole
    block (one vectorized pass, AVX-512 popcount where the CPU has it); a block is dropped as
    soon as its smallest partial count reaches the best so far (kernels.block_counts);
  * narrow layers (under WIDE words: kernels.greedy_packed) compute the minima over X- for a
    batch of upcoming live candidates, each block of X- read once for the batch; each
    candidate starts from the negative that gave the previous minimum and visits X- by
    increasing popcount, stopping once popcount(z) - popcount(x), a lower bound of every
    later count, reaches its best so far; coverage of X+ (also by popcount) stops the same
    way at popcount(x) + m;
  * wide layers (kernels.greedy_sliced) count bit-sliced: 256 rows of X- (or X+, for
    coverage) at a time, unit-major, so that a candidate's counts for all 256 rows are the sum
    of the 256-bit vectors of its ~n_iter/2 units I, added with carry-save adders (about 4.7
    vector logic operations per unit, 1.8 with AVX-512VL's vpternlogq); a block stops once
    none of its rows can still get below the best so far.  The minima are computed for a batch
    of upcoming live candidates (their m does not depend on what gets covered), each block read
    once for the batch, and the batch is then decided in walk order exactly as the plain loop
    would;
  * scoring (kernels.any_fires, best_class) runs batches of points against one neuron at a
    time, and skips neurons whose popcount(x) + m cannot exceed popcount(z).
Walking one random permutation of X+ and skipping what is covered or already tried draws
"a random remaining candidate" ([Line 5]) with the paper's distribution.

ReLU activation (numpy, blocks).  The next `size` live candidates are evaluated with one matrix
product against X- (their m) and one among themselves (which of them an earlier accepted one
covers), then decided in order exactly as the sequential loop would; `size` adapts to how
many candidates a block wastes.  The sums are exact (see first_layer.QUANTUM).
"""
from __future__ import annotations

import numpy as np

from memlab.algo import first_layer, kernels

# ----------------------------------------------------------------------------- threshold

WIDE = 3          # words per row from which bit-sliced batches beat one-at-a-time pruning
MAX_BATCH = 64


def informative_order(activity: np.ndarray, n_points: int) -> np.ndarray:
    """Units by decreasing min(active, inactive) count.

    The first words of a packed row then hold the units that best tell points apart, so the
    partial counts of kernels.block_counts rise fastest and most blocks stop early; units
    constant on the data (adding 0 to every sum, or never in any I) end up last, where the
    counting rarely gets.  Any order gives the same sums.
    """
    balance = np.minimum(activity, n_points - activity)
    return np.argsort(-balance, kind="stable")


def active_first(activity: np.ndarray) -> np.ndarray:
    """Units by decreasing active count: the order of the bit-sliced path (wide layers).

    A sliced block stops once its lowest row's partial count reaches the best so far; the most
    active units of I raise every row's count fastest.  On the MNIST stand-in at (2000, 0.5):
    14% fewer units counted than in informative_order (754 M against 881 M unit vectors over
    the ten classes), whose balanced units suit the word-by-word path.  Any order gives the
    same sums.
    """
    return np.argsort(-activity, kind="stable")


def sample_order(X: np.ndarray, W: np.ndarray, b: np.ndarray, sliced: bool, rows: int = 1024) -> np.ndarray:
    """The unit order (active_first where the layer is counted bit-sliced, else
    informative_order) estimated on evenly spaced rows of X (it only has to be a good order)."""
    sample = X[:: max(1, len(X) // rows)]
    activity = kernels.column_counts(first_layer.threshold_bits(sample, W, b), W.shape[0])
    return active_first(activity) if sliced else informative_order(activity, len(sample))


def unit_list_dtype(n_iter: int):
    """The dtype of the sliced path's unit lists (offsets 4 x unit): uint16 below 16,384 units."""
    return np.uint16 if 4 * n_iter < 2**16 else np.int64


def grouped_layout(pat, by_pop, major, n_classes: int, n_iter: int):
    """The patterns bit-sliced (kernels.sliced) class by class, each pattern in the group of the
    class it occurs in most (major), by popcount within a group, each group padded to whole
    blocks: (G, group_blocks), group c in the blocks group_blocks[c]:group_blocks[c + 1]."""
    rows, group_blocks = [], [0]
    for c in range(n_classes):
        ids = by_pop[major[by_pop] == c]
        pad = -len(ids) % kernels.SLICE
        rows.append(np.concatenate([ids, np.full(pad, -1, np.int64)]))
        group_blocks.append(group_blocks[-1] + (len(ids) + pad) // kernels.SLICE)
    return kernels.sliced(pat, np.concatenate(rows), n_iter), group_blocks


def fit_threshold(X: np.ndarray, W: np.ndarray, b: np.ndarray, y_idx: np.ndarray, targets, walks) -> dict:
    """Second layers for each target class (one vs the rest), threshold activation.

    y_idx   (n,) class index of each point; targets: the class indices to separate
    walks   per target, its points (indices into X) in draw order
    Returns {"layers": per target (anchors, m, U_bits), "draws": per target, "order": the unit
    order of "packed", the training points' first layer, packed, "ordered_U", the U_bits in
    that order, and "covered": per target, which of its points some neuron fires at}.
    """
    n_iter = W.shape[0]
    wide = kernels.n_words(n_iter) >= WIDE
    if kernels.n_words(n_iter) > 1:
        order = sample_order(X, W, b, sliced=wide)
        packed = first_layer.threshold_bits(X, np.ascontiguousarray(W[order]), b[order])   # [Line 2]
    else:                                  # one word: every count is a single popcount anyway
        order = np.arange(n_iter)
        packed = first_layer.threshold_bits(X, W, b)
    natural = np.argsort(order).astype(np.int64)
    pid, first = kernels.dedup_rows(packed)          # points sharing a pattern share every sum
    pat = packed[first]
    pop = kernels.row_popcounts(pat)
    n_pat, n_classes = len(first), int(y_idx.max()) + 1
    per_class = np.bincount(pid * n_classes + y_idx, minlength=n_pat * n_classes).reshape(n_pat, n_classes)
    everywhere = per_class.sum(axis=1)
    by_pop = np.argsort(pop, kind="stable")
    local = np.empty(n_pat, np.int64)
    if wide:                               # every class's patterns, bit-sliced once
        major = per_class.argmax(axis=1)
        G, group_blocks = grouped_layout(pat, by_pop, major, n_classes, n_iter)
        UI = np.empty((MAX_BATCH, n_iter + kernels.GROUP), unit_list_dtype(n_iter))
    else:                                  # the patterns by popcount, word-major, once for all classes
        sorted_T = np.ascontiguousarray(pat[by_pop].T)
        sorted_pop = pop[by_pop]
        sorted_here = np.ascontiguousarray(per_class[by_pop].T)      # (classes, patterns)
        sorted_elsewhere = everywhere[by_pop] - sorted_here          # points of other classes
    layers, draws, ordered_U, covered = [], [], [], []
    for t, walk in zip(targets, walks):
        walk = np.asarray(walk, np.int64)
        if wide:
            pos_ids = np.flatnonzero(per_class[:, t])                  # patterns of X+
            PT = np.ascontiguousarray(pat[pos_ids].T)
        else:
            # X+ by popcount too, for greedy_packed's cover bound (the sliced path keeps pattern
            # order: sorted, its fit at (2000, 0.5) measured 3% slower, within noise)
            in_pos = sorted_here[t] > 0
            pos_ids = by_pop[in_pos]
            PT = np.compress(in_pos, sorted_T, axis=1)
        local[pos_ids] = np.arange(len(pos_ids))
        walk_pat = local[pid[walk]]
        if wide:
            # X-: the other classes' groups, and t's patterns that other classes share
            shared = np.flatnonzero((major == t) & (everywhere > per_class[:, t]))
            E = kernels.sliced(pat, shared, n_iter)
            steps, m, n_draws, state = kernels.greedy_sliced(
                PT, walk_pat, G, group_blocks[t], group_blocks[t + 1], E, n_iter, MAX_BATCH, UI)
        else:
            in_neg = sorted_elsewhere[t] > 0                           # X-, by popcount
            steps, m, n_draws, state = kernels.greedy_packed(
                PT, walk_pat, np.compress(in_neg, sorted_T, axis=1), sorted_pop[in_neg], sorted_pop[in_pos], MAX_BATCH)
        anchors = walk[steps]
        U = kernels.complement(packed[anchors], n_iter)
        layers.append((anchors, m.astype(np.float64), kernels.select(U, natural, np.empty_like(U))))
        draws.append(int(n_draws))
        ordered_U.append(U)
        covered.append(walk[state[walk_pat] == kernels.COVERED])
    return {"layers": layers, "draws": draws, "order": order, "packed": packed, "ordered_U": ordered_U,
            "covered": covered}


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


def greedy_dense(A: np.ndarray, positive: np.ndarray, walk, covered_out: list | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Algorithm 2's loop over dense first-layer outputs A (n, units), in blocks.

    All sums must be exact (0/1 float32 or quantized float64) so that the block order of
    summation cannot change a decision.  Returns (anchors, m); covered_out, if given, gets the
    indices of the points of X+ some neuron fires at.
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
    if covered_out is not None:
        covered_out.append(np.flatnonzero(covered))
    return np.array(anchors, np.int64), np.array(ms, np.float64)


def _products(store, rows: np.ndarray, UT: np.ndarray, buf: np.ndarray):
    """Yield (start, A[rows[start:stop]] @ UT) chunk by chunk: dense rows only a chunk at a time."""
    for start in range(0, len(rows), len(buf)):
        dense = store.rows(rows[start:start + len(buf)], buf)
        yield start, dense @ UT


def greedy_stored(store, positive: np.ndarray, walk, covered_out: list | None = None):
    """greedy_dense over a first_layer.ReluStore: the same blocks and decisions, each product
    computed over chunks of expanded rows, so no dense (n, n_iter) matrix is ever held."""
    walk = np.asarray(walk, np.int64)
    pos = np.flatnonzero(positive)
    neg = np.flatnonzero(~positive)
    buf = np.empty((max(16, first_layer.CHUNK_BYTES // (8 * store.n_iter)), store.n_iter), np.float64)
    covered = np.zeros(store.shape[0], bool)
    n_uncovered = len(pos)
    anchors, ms = [], []
    t, size = 0, 16
    while t < len(walk) and n_uncovered:                     # [Line 4]
        block, t = _next_block(walk, t, covered, size)       # [Line 5] the next draws
        if not block:
            break
        Ab = store.rows(np.array(block))
        UT = np.ascontiguousarray((Ab == 0).T.astype(np.float64))     # [Line 6]
        m = np.full(len(block), np.inf)
        for _, part in _products(store, neg, UT, buf):       # [Line 7]
            np.minimum(m, part.min(axis=0), out=m)
        accepted, skipped = decide_block(m, Ab @ UT)
        if accepted:
            UTa, ma = np.ascontiguousarray(UT[:, accepted]), m[accepted]
            for start, part in _products(store, pos, UTa, buf):      # [Line 10]
                hit = pos[start:start + len(part)][(part < ma).any(axis=1)]
                hit = hit[~covered[hit]]
                covered[hit] = True
                n_uncovered -= len(hit)
            anchors += [block[j] for j in accepted]
            ms += [m[j] for j in accepted]
        size = next_size(size, len(block), skipped)
    if covered_out is not None:
        covered_out.append(np.flatnonzero(covered))
    return np.array(anchors, np.int64), np.array(ms, np.float64)


DENSE_RELU_BYTES = 1 << 30      # dense float64 ReLU outputs up to this size, compressed beyond


def fit_relu(X: np.ndarray, W: np.ndarray, b: np.ndarray, y_idx: np.ndarray, targets, walks) -> dict:
    """Second layers per target class, ReLU: dense outputs where they are small, else a
    first_layer.ReluStore (peak memory about 4 bytes per nonzero output); the same neurons."""
    if 8 * X.shape[0] * W.shape[0] <= DENSE_RELU_BYTES:
        return fit_dense(first_layer.relu_outputs(X, W, b), y_idx, targets, walks)
    store = first_layer.relu_store(X, W, b)
    if store is None:                                        # outputs too large for int32 units
        return fit_dense(first_layer.relu_outputs(X, W, b), y_idx, targets, walks)
    layers, covered = [], []
    for t, walk in zip(targets, walks):
        anchors, m = greedy_stored(store, y_idx == t, walk, covered)
        U = store.rows(anchors) == 0 if len(anchors) else np.zeros((0, W.shape[0]), bool)
        layers.append((anchors, m, kernels.from_bool(U)))
    return {"layers": layers, "covered": covered}


def fit_dense(A_full: np.ndarray, y_idx: np.ndarray, targets, walks) -> dict:
    """Second layers per target class from dense outputs (n, n_iter); see fit_threshold."""
    varying = np.flatnonzero((A_full > 0).any(axis=0) & (A_full == 0).any(axis=0))
    A = np.ascontiguousarray(A_full[:, varying]) if len(varying) < A_full.shape[1] else A_full
    layers, covered = [], []
    for t, walk in zip(targets, walks):
        anchors, m = greedy_dense(A, y_idx == t, walk, covered)
        layers.append((anchors, m, kernels.from_bool(A_full[anchors] == 0)))
    return {"layers": layers, "covered": covered}
