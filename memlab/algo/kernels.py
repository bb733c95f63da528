"""Every numba kernel of Algorithm 2, in one module.

One module because numba's on-disk cache is invalidated by the source file of the function it
compiled: a kernel that inlines a helper from another file would keep running the helper's
old code after an edit.

Packed bit rows: 64 first-layer units per uint64 word; unit j of a row lives in word j // 64
at bit j % 64.  Padding bits past the last unit are 0, so AND-ing two rows and counting never
sees them.  "Word-major" arrays are transposed: T[w, r] is word w of row r, so one word of
many rows is one contiguous, vectorizable pass.
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import carray, njit, types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model


@intrinsic
def popcount(typingctx, x):
    """The CPU's popcount instruction (llvm.ctpop) on one uint64 word, as int64."""
    if not isinstance(x, types.Integer) or x.bitwidth != 64:
        return None

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return types.int64(x), codegen


@intrinsic
def lowest_bit(typingctx, x):
    """Index of the lowest set bit of a nonzero uint64 word (llvm.cttz), as int64."""
    if not isinstance(x, types.Integer) or x.bitwidth != 64:
        return None

    def codegen(context, builder, signature, args):
        return builder.cttz(args[0], ir.Constant(ir.IntType(1), 1))

    return types.int64(x), codegen


def n_words(n_bits: int) -> int:
    return (n_bits + 63) // 64


@njit(inline="always")
def block_counts(T, u, r0, r1, limit, acc):
    """acc[r] = popcount(row r0 + r & u) for the rows r0..r1-1 of T, where it is below `limit`;
    rows whose acc is >= limit may hold a partial count (still >= limit).

    T is word-major (T[w, r] = word w of row r), so each word is one vectorized pass over the
    block.  Counts only grow, so once the block's smallest partial count reaches `limit`
    nothing in it can end below: returns False.  Once few rows are still below, they are
    finished one by one.  The most informative units come first (fast.informative_order),
    so most blocks stop after a word or two.
    """
    n = r1 - r0
    nw = T.shape[0]
    for w in range(nw):
        uw = u[w]
        Tw = T[w, r0:r1]            # 1-D slices: indices from range() let LLVM vectorize
        below = 0
        if w == 0:                  # most blocks stop here: their smallest count, nothing stored
            low = limit
            for r in range(n):
                low = min(low, np.int64(popcount(Tw[r] & uw)))
            if low >= limit:
                return False
            for r in range(n):
                v = np.int64(popcount(Tw[r] & uw))
                acc[r] = v
                below += np.int64(v < limit)
        else:
            for r in range(n):
                v = acc[r] + popcount(Tw[r] & uw)
                acc[r] = v
                below += np.int64(v < limit)
        if below == 0:
            return False
        if below * 16 <= n:         # few left: finish them one by one
            for r in range(n):
                if acc[r] < limit:
                    for w2 in range(w + 1, nw):
                        acc[r] += popcount(T[w2, r0 + r] & u[w2])
                        if acc[r] >= limit:
                            break
            return True
    return True


@njit(cache=True, nogil=True)
def column_counts(packed, n_bits):
    """(n_bits,) how many rows have each unit active."""
    out = np.zeros(n_bits, np.int64)
    one = np.uint64(1)
    for i in range(packed.shape[0]):
        for j in range(n_bits):
            out[j] += (packed[i, j >> 6] >> np.uint64(j & 63)) & one
    return out


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
    """Keep only the listed units (in that order): out[i] packs bits[i, units].  Each output
    word is gathered in a register, without branches."""
    one = np.uint64(1)
    n_out = units.shape[0]
    for i in range(bits.shape[0]):
        row = bits[i]
        for w in range(out.shape[1]):
            word = np.uint64(0)
            lo = w * 64
            for k in range(lo, min(lo + 64, n_out)):
                j = units[k]
                word |= ((row[j >> 6] >> np.uint64(j & 63)) & one) << np.uint64(k - lo)
            out[i, w] = word
    return out


@njit(cache=True, nogil=True)
def row_popcounts(bits):
    out = np.zeros(bits.shape[0], np.int64)
    for i in range(bits.shape[0]):
        for w in range(bits.shape[1]):
            out[i] += popcount(bits[i, w])
    return out


@njit(cache=True, nogil=True)
def dedup_rows(bits):
    """(pid, first): each row's pattern id and the first row of each pattern, ids in order of
    first appearance.  One pass with an open-addressing hash table: O(n words), no sort."""
    n, nw = bits.shape
    size = 1
    while size < 2 * n:
        size *= 2
    mask = np.uint64(size - 1)
    table = np.full(size, -1, np.int64)      # pattern id in each slot
    first = np.empty(n, np.int64)
    pid = np.empty(n, np.int64)
    k = 0
    for i in range(n):
        h = np.uint64(0x9E3779B97F4A7C15)
        for w in range(nw):
            h = (h ^ bits[i, w]) * np.uint64(0xBF58476D1CE4E5B9)
            h ^= h >> np.uint64(31)
        slot = h & mask
        while True:
            p = table[slot]
            if p < 0:
                table[slot] = k
                first[k] = i
                pid[i] = k
                k += 1
                break
            r = first[p]
            same = True
            for w in range(nw):
                if bits[r, w] != bits[i, w]:
                    same = False
                    break
            if same:
                pid[i] = p
                break
            slot = (slot + np.uint64(1)) & mask
    return pid, first[:k].copy()


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


# ----------------------------------------------------------------------------- first layer

@njit(cache=True, nogil=True)
def _dense_float64_sign(b, x, w):
    """[b + sum x_k w_k > 0] in float64, k in increasing order: the fallback of pack_signs and
    narrow_signs, outside any fastmath function so that its order of summation stays fixed."""
    s = np.float64(b)
    for k in range(x.shape[0]):
        s += np.float64(x[k]) * np.float64(w[k])
    return s > 0


@njit(cache=True, nogil=True)
def pack_signs(pre, b, Xc, W, xnorm, wtol, btol, out):
    """out[i] packs [pre[i, j] + b[j] > 0]; pre (rows, units) float32 is overwritten.

    Where |pre + b| <= xnorm[i] * wtol[j] + btol[j] (a bound on the float32 product's rounding
    error) the float32 sign is not trusted and the sign of a float64 dot product is used.
    """
    rows, n_units = pre.shape
    for i in range(rows):
        row = pre[i]
        xi = xnorm[i]
        unsure = 0
        for j in range(n_units):
            v = row[j] + b[j]
            row[j] = v
            unsure += np.int64(abs(v) <= xi * wtol[j] + btol[j])
        if unsure:
            for j in range(n_units):
                if abs(row[j]) <= xi * wtol[j] + btol[j]:
                    row[j] = np.float32(1.0) if _dense_float64_sign(b[j], Xc[i], W[j]) else np.float32(-1.0)
        for w in range(out.shape[1]):
            word = np.uint64(0)
            lo = w * 64
            for j in range(lo, min(lo + 64, n_units)):
                word |= np.uint64(row[j] > 0) << np.uint64(j - lo)
            out[i, w] = word
    return out


@njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
def narrow_signs(X, WP, b, wtol, btol, out):
    """pack_signs(X @ W.T, ...) for narrow layers, in one pass over X: the same bits.

    WP (units rounded up to a multiple of 4, d) float32 = W, then zero rows.  Four rows of X
    against four units at a time: sixteen dot products accumulate in registers (vectorized
    along d; the rounding bound holds for any order of summation), so each loaded x or w
    value serves four multiply-adds, and X is read once, with no packed copy as a BLAS
    product of 20-100 columns makes (1.2-2x faster than it from 1 to 100 units on MNIST-like
    data).  The rows' norms come from the same pass; the unsure units are decided by
    _dense_float64_sign, as in pack_signs.
    """
    n, d = X.shape
    nu = b.shape[0]
    pre = np.empty((4, WP.shape[0]), np.float32)
    xn = np.empty(4, np.float32)
    for i0 in range(0, n, 4):
        last = min(n, i0 + 4) - 1            # a last partial block repeats its last row
        x0 = X[i0]
        x1 = X[min(i0 + 1, last)]
        x2 = X[min(i0 + 2, last)]
        x3 = X[min(i0 + 3, last)]
        s0 = s1 = s2 = s3 = np.float32(0)
        for k in range(d):
            s0 += x0[k] * x0[k]
            s1 += x1[k] * x1[k]
            s2 += x2[k] * x2[k]
            s3 += x3[k] * x3[k]
        xn[0], xn[1], xn[2], xn[3] = np.sqrt(s0), np.sqrt(s1), np.sqrt(s2), np.sqrt(s3)
        for u in range(0, WP.shape[0], 4):
            wa, wb, wc, wd = WP[u], WP[u + 1], WP[u + 2], WP[u + 3]
            a0 = a1 = a2 = a3 = b0 = b1 = b2 = b3 = np.float32(0)
            c0 = c1 = c2 = c3 = e0 = e1 = e2 = e3 = np.float32(0)
            for k in range(d):
                p, q, r, s = wa[k], wb[k], wc[k], wd[k]
                v0, v1, v2, v3 = x0[k], x1[k], x2[k], x3[k]
                a0 += v0 * p
                a1 += v1 * p
                a2 += v2 * p
                a3 += v3 * p
                b0 += v0 * q
                b1 += v1 * q
                b2 += v2 * q
                b3 += v3 * q
                c0 += v0 * r
                c1 += v1 * r
                c2 += v2 * r
                c3 += v3 * r
                e0 += v0 * s
                e1 += v1 * s
                e2 += v2 * s
                e3 += v3 * s
            pre[0, u], pre[1, u], pre[2, u], pre[3, u] = a0, a1, a2, a3
            pre[0, u + 1], pre[1, u + 1], pre[2, u + 1], pre[3, u + 1] = b0, b1, b2, b3
            pre[0, u + 2], pre[1, u + 2], pre[2, u + 2], pre[3, u + 2] = c0, c1, c2, c3
            pre[0, u + 3], pre[1, u + 3], pre[2, u + 3], pre[3, u + 3] = e0, e1, e2, e3
        for h in range(last - i0 + 1):
            i = i0 + h
            for w in range(out.shape[1]):
                word = np.uint64(0)
                for j in range(w * 64, min(nu, w * 64 + 64)):
                    v = pre[h, j] + b[j]
                    if abs(v) <= xn[h] * wtol[j] + btol[j]:
                        positive = _dense_float64_sign(b[j], X[i], WP[j])
                    else:
                        positive = v > 0
                    word |= np.uint64(positive) << np.uint64(j - w * 64)
                out[i, w] = word
    return out


@intrinsic
def stack_f32(typingctx, n):
    """A float32 scratch buffer of n (a literal) in the kernel's stack frame (llvm alloca).

    Unlike np.empty, LLVM sees that it aliases nothing else, so a small accumulator indexed by
    constants after unrolling lives in vector registers for a whole loop instead of memory.
    """
    if not isinstance(n, types.IntegerLiteral):
        return None
    size = n.literal_value

    def codegen(context, builder, signature, args):
        return cgutils.alloca_once(builder, ir.FloatType(), size=size)

    return types.CPointer(types.float32)(n), codegen


SIGN_LANES = 32               # units per column block of sparse_signs (half a packed word)
_SIGN_ACC = 2 * SIGN_LANES    # its two interleaved partial sums
_U1, _U2 = np.uint64(1), np.uint64(2)


@njit(cache=True, nogil=True)
def _float64_sign(b, data, indices, t0, t1, Wj):
    """[b + sum x_k w_k > 0] in float64, k in increasing order: pack_signs' fallback, term for
    term (the zero entries it adds do not change a float64 sum)."""
    s = np.float64(b)
    for t in range(t0, t1):
        s += np.float64(data[t]) * np.float64(Wj[indices[t]])
    return s > 0


@njit(cache=True, nogil=True, fastmath={"contract"})
def sparse_signs(X, WB, W, bB, wtolB, btolB, xnorm, out, rows):
    """pack_signs(X @ W.T, ...) for sparse rows of X without the dense product: out[i] packs
    [x_i . w_j + b_j > 0] (the same bits).

    X (n, d) float32; WB (n_blocks, d, SIGN_LANES) = W.T cut into blocks of units (zero past
    the last unit); bB, wtolB, btolB (n_blocks, SIGN_LANES) b, wtol, btol per block (b < 0 and
    tolerances 0 past the last unit, so those bits stay 0).  `rows` rows at a time are
    compressed to their nonzeros (padded with zero terms to an even count); then, block by
    block, each row's dot products accumulate in registers (two interleaved partial sums,
    fused multiply-adds; the rounding bound holds for any order) and are compared, checked
    against the bound and packed while still in registers.  The few unsure units are decided
    by _float64_sign, as in pack_signs.
    """
    L = SIGN_LANES
    n, d = X.shape
    nb = WB.shape[0]
    per_word = 64 // L
    indptr = np.empty(rows + 1, np.uint64)       # unsigned positions: no negative-index checks
    indices = np.zeros(rows * (d + 1), np.uint32)
    data = np.zeros(rows * (d + 1), np.float32)
    acc = carray(stack_f32(_SIGN_ACC), (_SIGN_ACC,))
    for r0 in range(0, n, rows):
        r1 = min(n, r0 + rows)
        t = 0
        indptr[0] = 0
        for i in range(r0, r1):
            x = X[i]
            for k in range(d):
                if x[k] != 0:
                    indices[t] = k
                    data[t] = x[k]
                    t += 1
            if t % 2:
                indices[t] = 0
                data[t] = 0.0
                t += 1
            indptr[i - r0 + 1] = t
            for w in range(out.shape[1]):
                out[i, w] = 0
        for jb in range(nb):
            Wb = WB[jb]
            bb = bB[jb]
            wt = wtolB[jb]
            bt = btolB[jb]
            shift = np.uint64(L * (jb % per_word))
            word = jb // per_word
            for i in range(r1 - r0):
                for j in range(_SIGN_ACC):
                    acc[j] = 0.0
                t0 = indptr[i]
                t1 = indptr[i + 1]
                t = t0
                while t < t1:
                    v0 = data[t]
                    v1 = data[t + _U1]
                    w0 = Wb[indices[t]]
                    w1 = Wb[indices[t + _U1]]
                    for j in range(SIGN_LANES):
                        acc[j] += v0 * w0[j]
                        acc[SIGN_LANES + j] += v1 * w1[j]
                    t += _U2
                xi = xnorm[r0 + i]
                bits = np.uint64(0)
                unsure = np.uint64(0)
                for j in range(SIGN_LANES):
                    v = (acc[j] + acc[SIGN_LANES + j]) + bb[j]
                    bits |= np.uint64(v > 0) << np.uint64(j)
                    unsure |= np.uint64(abs(v) <= xi * wt[j] + bt[j]) << np.uint64(j)
                while unsure:
                    j = lowest_bit(unsure)
                    unsure &= unsure - _U1
                    one = _U1 << np.uint64(j)
                    if _float64_sign(bb[j], data, indices, t0, t1, W[jb * L + j]):
                        bits |= one
                    else:
                        bits &= ~one
                out[r0 + i, word] |= bits << shift
    return out


@njit(cache=True, nogil=True)
def expand_rows(bits, vals, row_ptr, rows, scale, out):
    """out[i] = the dense row rows[i] of a compressed matrix: its nonzero entries, in column
    order, are vals[row_ptr[r]:row_ptr[r + 1]] * scale at the set bits of bits[r]."""
    nw = bits.shape[1]
    for i in range(rows.shape[0]):
        r = rows[i]
        row = out[i]
        for j in range(row.shape[0]):
            row[j] = 0.0
        pos = row_ptr[r]
        for w in range(nw):
            word = bits[r, w]
            while word != 0:
                row[w * 64 + lowest_bit(word)] = vals[pos] * scale
                pos += 1
                word &= word - np.uint64(1)
    return out


# ----------------------------------------------------------------------------- Algorithm 2, threshold

BLOCK = 384                   # rows counted together, one word at a time (block_counts; 256: 8% slower, 512: 3%)
BLOCK_1 = 256                 # the same for one-word rows (384: 1.3x slower at n_iter 20)
REMAINING, REJECTED, COVERED = 0, 1, 2


@njit(inline="always")
def next_batch(walk, t, state, size, cand, where):
    """The next `size` live candidates of the walk from position t ([Line 5]: those not yet
    covered; a rejected pattern drawn again is one, with m = 0 again): their patterns in cand,
    their walk positions in where.  Returns (how many, the position after them)."""
    B = 0
    while t < walk.shape[0] and B < size:
        p = walk[t]
        if state[p] != COVERED:
            cand[B] = p
            where[B] = t
            B += 1
        t += 1
    return B, t


@njit(inline="always")
def next_batch_size(size, B, wasted, max_batch):
    """Halve the batch when over a quarter of it was covered by earlier members, double it
    when none was."""
    if wasted * 4 > B:
        return max(1, size // 2)
    if wasted == 0:
        return min(max_batch, size * 2)
    return size


@njit(cache=True, nogil=True)
def greedy_packed(PT, walk, NT, N_pop, P_pop, max_batch):
    """Algorithm 2's loop for one class, over distinct bit patterns.

    PT     (w, n_p) the distinct patterns of X+, word-major; walk: the pattern of each draw
    NT     (w, n_n) the distinct patterns of X-, word-major; both by increasing popcount
    N_pop, P_pop  their popcounts
    Returns (walk positions that became neurons, their m, how many draws [Line 5] were made,
    each pattern's state).

    The minima over X- are computed for a batch of up to max_batch upcoming live candidates
    at a time (their m does not depend on what gets covered), blocks outside and candidates
    inside, so that each block of X- is read from L2 once per batch instead of once per
    candidate; the batch is then decided one by one in walk order exactly as the plain loop
    would (a member covered by an earlier member's neuron is skipped, its m unused), as in
    greedy_sliced.  A candidate stops at the first block whose rows all have popcount(z) -
    popcount(x) >= its best so far, a lower bound of |z & I| for every row from there on, or
    at m = 0; only the members still counting visit a block.  On the (100, 1) inputs of the
    MNIST stand-in this is 0.7x the time of one candidate at a time (BENCHMARKS.md).
    """
    nw, n_p = PT.shape
    n_n = NT.shape[1]
    acc = np.empty(BLOCK, np.int64)
    state = np.zeros(n_p, np.int8)
    n_uncovered = n_p
    steps = np.empty(walk.shape[0], np.int64)
    ms = np.empty(walk.shape[0], np.int64)
    U = np.empty((max_batch, nw), np.uint64)
    best = np.empty(max_batch, np.int64)
    found = np.empty(max_batch, np.int64)
    cand = np.empty(max_batch, np.int64)
    where = np.empty(max_batch, np.int64)
    act = np.empty(max_batch, np.int64)
    rows = BLOCK if nw > 1 else BLOCK_1
    k = 0
    draws = 0
    last = 0
    t = 0
    size = 8
    while t < walk.shape[0] and n_uncovered > 0:          # [Line 4]
        B, t = next_batch(walk, t, state, size, cand, where)   # [Line 5]
        n_act = 0                                         # the members still counting
        for c in range(B):
            p = cand[c]
            found[c] = last
            best[c] = 0
            if state[p] == REJECTED:                      # drawn before: m = 0 again
                continue
            for w in range(nw):                           # [Line 6] I = the inactive units of x
                U[c, w] = ~PT[w, p]
                best[c] += popcount(NT[w, last] & U[c, w])
            if best[c] > 0:
                act[n_act] = c
                n_act += 1
        a0 = 0                                            # [Line 7] m = min over X- of |z & I|
        while n_act > 0 and a0 < n_n:
            a1 = min(a0 + rows, n_n)
            i = 0
            while i < n_act:
                c = act[i]
                if N_pop[a0] - P_pop[cand[c]] < best[c]:
                    if block_counts(NT, U[c], a0, a1, best[c], acc):
                        for r in range(a1 - a0):
                            if acc[r] < best[c]:
                                best[c] = acc[r]
                                found[c] = a0 + r
                    if best[c] > 0:
                        i += 1
                        continue
                n_act -= 1                                # done: no later row can get below
                act[i] = act[n_act]
            a0 = a1
        wasted = 0
        for j in range(B):
            p = cand[j]
            if state[p] == COVERED or n_uncovered == 0:   # covered by an earlier member's neuron
                wasted += 1
                continue
            draws += 1                                    # [Line 5] x = this member
            last = found[j]
            if state[p] == REJECTED or best[j] == 0:      # [Line 8]
                state[p] = REJECTED                       # [Line 12]
                continue
            state[p] = REJECTED                           # (covered below: popcount(x & ~x) = 0)
            steps[k] = where[j]                           # [Line 9]
            ms[k] = best[j]
            k += 1
            n_uncovered -= cover(PT, U[j], best[j], state, acc, P_pop, P_pop[p], rows)   # [Lines 10-11]
        size = next_batch_size(size, B, wasted, max_batch)
    return steps[:k], ms[:k], draws, state


@njit(inline="always")
def cover(PT, u, m, state, acc, P_pop, px, rows):
    """Mark COVERED every pattern of X+ with popcount(z & u) < m; returns how many were new.
    X+ is by increasing popcount (P_pop), u = ~x with popcount(x) = px: since popcount(z & u)
    >= popcount(z) - px, the first block whose rows all have popcount(z) >= px + m ends it."""
    n_p = PT.shape[1]
    new = 0
    for q0 in range(0, n_p, rows):
        if P_pop[q0] - px >= m:
            break
        q1 = min(q0 + rows, n_p)
        if block_counts(PT, u, q0, q1, m, acc):
            for r in range(q1 - q0):
                if acc[r] < m and state[q0 + r] != COVERED:
                    state[q0 + r] = COVERED
                    new += 1
    return new


# ----------------------------------------------------------------------------- bit-sliced counting
#
# Wide first layers count "vertically": a block of 256 rows of X- is stored unit-major, one
# 256-bit vector per unit (bit r of lane l is row 64 l + r), and a candidate's count for all
# 256 rows at once is the sum of the vectors of its units I, added with carry-save adders
# (Harley-Seal) into bit-sliced counters: about 4.7 vector AND/XOR/OR per unit for 256 pairs
# (about 1.8 vpternlogq where the CPU has AVX-512VL), against a 64-bit popcount per word per
# pair.  The vectors are LLVM <4 x i64> values (AVX2 registers where the CPU has them), through
# the small type and intrinsics below.

class U64x4Type(types.Type):
    """Four uint64 lanes as one LLVM vector value."""

    def __init__(self):
        super().__init__(name="u64x4")


u64x4 = U64x4Type()
_VEC = ir.VectorType(ir.IntType(64), 4)


@register_model(U64x4Type)
class _U64x4Model(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, _VEC)


@intrinsic
def vzero(typingctx):
    return u64x4(), lambda context, builder, sig, args: ir.Constant(_VEC, [0] * 4)


@intrinsic
def vones(typingctx):
    return u64x4(), lambda context, builder, sig, args: ir.Constant(_VEC, [-1] * 4)


@intrinsic
def vsplat(typingctx, x):
    """A vector with the uint64 x in every lane."""
    if not isinstance(x, types.Integer):
        return None

    def codegen(context, builder, sig, args):
        v = ir.Constant(_VEC, [0] * 4)
        x = context.cast(builder, args[0], sig.args[0], types.uint64)
        for lane in range(4):
            v = builder.insert_element(v, x, ir.Constant(ir.IntType(32), lane))
        return v
    return u64x4(x), codegen


def _vector_op(op):
    def typer(typingctx, a, b):
        if a is not u64x4 or b is not u64x4:
            return None
        return u64x4(u64x4, u64x4), lambda context, builder, sig, args: op(builder, *args)
    return intrinsic(typer)


vxor = _vector_op(lambda builder, a, b: builder.xor(a, b))
vand = _vector_op(lambda builder, a, b: builder.and_(a, b))
vor = _vector_op(lambda builder, a, b: builder.or_(a, b))
vandnot = _vector_op(lambda builder, a, b: builder.and_(builder.not_(a), b))     # ~a & b


def _has_ternary_logic() -> bool:
    """Does the CPU that numba compiles for have AVX-512VL's vpternlogq (any bit function of
    three vectors in one instruction, 256-bit vectors included)?  The features numba passes to
    LLVM: the host's, unless NUMBA_CPU_FEATURES names others (NUMBA_CPU_NAME=generic: none)."""
    from numba.core import codegen, config
    features = config.CPU_FEATURES if config.CPU_FEATURES is not None else codegen.get_host_cpu_features()
    return "+avx512vl" in features.split(",")


TERNARY = _has_ternary_logic()


def _ternary_op(imm: int, plain):
    """A bit function of three vectors: one vpternlogq (truth table imm) where the CPU has it,
    else the plain AND/OR/XOR form (LLVM does not fuse a carry-save adder's shared XOR itself)."""
    def typer(typingctx, a, b, c):
        if a is not u64x4 or b is not u64x4 or c is not u64x4:
            return None

        def codegen(context, builder, sig, args):
            if not TERNARY:
                return plain(builder, *args)
            fnty = ir.FunctionType(_VEC, [_VEC, _VEC, _VEC, ir.IntType(32)])
            fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.x86.avx512.pternlog.q.256")
            return builder.call(fn, [*args, ir.Constant(ir.IntType(32), imm)])
        return u64x4(u64x4, u64x4, u64x4), codegen
    return intrinsic(typer)


vxor3 = _ternary_op(0x96, lambda builder, a, b, c: builder.xor(builder.xor(a, b), c))
vmajority = _ternary_op(0xE8, lambda builder, a, b, c: builder.or_(builder.and_(a, b),
                                                                   builder.and_(c, builder.or_(a, b))))


def _rows4(arr) -> bool:
    """Is arr a C-contiguous 2-D uint64 array (rows of 4 lanes, as the vector intrinsics read)?"""
    return isinstance(arr, types.Array) and arr.dtype == types.uint64 and arr.ndim == 2 and arr.layout == "C"


def _vector_pointer(context, builder, sig, args, rows: bool):
    """Pointer to the vector of arr = args[0] at args[1]: its row (rows=True) or its uint64 offset."""
    data = builder.bitcast(context.make_array(sig.args[0])(context, builder, args[0]).data,
                           ir.IntType(64).as_pointer())
    offset = context.cast(builder, args[1], sig.args[1], types.int64)
    if rows:
        offset = builder.mul(offset, ir.Constant(offset.type, 4))
    return builder.bitcast(builder.gep(data, [offset]), _VEC.as_pointer())


@intrinsic
def vload(typingctx, arr, row):
    """Row `row` of a C-contiguous (n, 4) uint64 array, as one vector (no bounds check)."""
    if not _rows4(arr):
        return None
    return u64x4(arr, row), lambda context, builder, sig, args: builder.load(
        _vector_pointer(context, builder, sig, args, True), align=8)


@intrinsic
def vload_at(typingctx, arr, offset):
    """The vector at uint64 offset `offset` (4 x its row) of a C-contiguous (n, 4) uint64 array:
    unit lists hold these offsets, which x86 addressing scales without a shift."""
    if not _rows4(arr):
        return None
    return u64x4(arr, offset), lambda context, builder, sig, args: builder.load(
        _vector_pointer(context, builder, sig, args, False), align=8)


@intrinsic
def vstore(typingctx, arr, row, v):
    """Store the vector v as row `row` of a C-contiguous (n, 4) uint64 array."""
    if not _rows4(arr):
        return None

    def codegen(context, builder, sig, args):
        builder.store(args[2], _vector_pointer(context, builder, sig, args, True), align=8)
        return context.get_dummy_value()
    return types.none(arr, row, v), codegen


@intrinsic
def vget(typingctx, v, lane):
    """Lane `lane` (0-3) of a vector, as uint64."""
    if v is not u64x4 or not isinstance(lane, types.Integer):
        return None
    return types.uint64(v, lane), lambda context, builder, sig, args: builder.extract_element(args[0], args[1])


@intrinsic
def vany(typingctx, v):
    """Is some bit of the vector set?"""
    if v is not u64x4:
        return None

    def codegen(context, builder, sig, args):
        wide = builder.bitcast(args[0], ir.IntType(256))
        return builder.icmp_unsigned("!=", wide, ir.Constant(ir.IntType(256), 0))
    return types.boolean(v), codegen


SLICE = 256                   # rows per bit-sliced block
GROUP = 32                    # units added per carry-save step (unit lists are padded to a multiple)
CHECK = 128                   # units between two "can any row of the block still get below?" tests


@njit(cache=True, nogil=True)
def transpose64(a):
    """In place: the 64 x 64 bit matrix a (a[i] bit j) becomes its transpose (a[j] bit i)."""
    j = 32
    m = np.uint64(0x00000000FFFFFFFF)
    while j != 0:
        k = 0
        while k < 64:
            for i in range(k, k + j):
                t = ((a[i] >> np.uint64(j)) ^ a[i + j]) & m
                a[i] ^= t << np.uint64(j)
                a[i + j] ^= t
            k += 2 * j
        j >>= 1
        m ^= m << np.uint64(j)
    return a


@njit(cache=True, nogil=True)
def sliced(bits, rows, n_units):
    """The packed rows bits[rows] in blocks of SLICE rows, unit-major: S[b, j, l] bit r is unit
    j of row rows[b * SLICE + 64 l + r].  Rows past the end, and rows -1 (padding), are all ones
    on the units (their count popcount(row & U) = |U| is never below a real row's); S[b, n_units]
    is all zeros, the unit that pads the unit lists (unit_list)."""
    n = rows.shape[0]
    nw = bits.shape[1]
    nb = (n + SLICE - 1) // SLICE
    S = np.zeros((nb, n_units + 1, 4), np.uint64)
    buf = np.empty(64, np.uint64)
    for g in range(nb * 4):
        b = g >> 2
        lane = g & 3
        for w in range(nw):
            units = min(64, n_units - w * 64)
            fill = ~np.uint64(0) if units == 64 else (np.uint64(1) << np.uint64(units)) - np.uint64(1)
            for i in range(64):
                r = g * 64 + i
                buf[i] = bits[rows[r], w] if r < n and rows[r] >= 0 else fill
            transpose64(buf)
            for k in range(units):
                S[b, w * 64 + k, lane] = buf[k]
    return S


@njit(inline="always", cache=True, nogil=True)
def unit_list(ubits, n_units, out):
    """out[:L] the units set in the packed row ubits (increasing) as uint64 offsets 4 x unit into
    a sliced block (vload_at), padded with the offset of unit n_units (the zero unit of a sliced
    block) to a multiple of GROUP; returns L."""
    L = 0
    for w in range(ubits.shape[0]):
        word = ubits[w]
        while word != 0:
            unit = w * 64 + lowest_bit(word)
            if unit < n_units:
                out[L] = 4 * unit
                L += 1
            word &= word - np.uint64(1)
    while L % GROUP != 0:
        out[L] = 4 * n_units
        L += 1
    return L


@njit(inline="always")
def csa(a, b, c):
    """Carry-save adder: (carry, sum) with a + b + c = 2 carry + sum, bit by bit: the majority
    and the XOR of the three, two instructions with AVX-512VL.  Otherwise five, a being the
    running plane: b and c are combined first, so the chain through a is one operation deep."""
    if TERNARY:
        return vmajority(a, b, c), vxor3(a, b, c)
    u = vxor(b, c)
    return vor(vand(b, c), vand(u, a)), vxor(u, a)


@njit(inline="always")
def add8(V, q, o, p0, p1, p2):
    """Add the vectors of units q[o:o + 8] into the planes p0, p1, p2 (weights 1, 2, 4) with
    seven carry-save adders; returns (the carry of weight 8, p0, p1, p2)."""
    tA, p0 = csa(p0, vload_at(V, q[o]), vload_at(V, q[o + 1]))
    tB, p0 = csa(p0, vload_at(V, q[o + 2]), vload_at(V, q[o + 3]))
    fA, p1 = csa(p1, tA, tB)
    tA, p0 = csa(p0, vload_at(V, q[o + 4]), vload_at(V, q[o + 5]))
    tB, p0 = csa(p0, vload_at(V, q[o + 6]), vload_at(V, q[o + 7]))
    fB, p1 = csa(p1, tA, tB)
    e, p2 = csa(p2, fA, fB)
    return e, p0, p1, p2


@njit(inline="always")
def _plane(k, P, hi):
    """Plane k (weight 2**k) of a bit-sliced count: P = (p0, ..., p5) in registers, hi beyond."""
    if k >= 6:
        return vload(hi, k - 6)
    if k == 5:
        return P[5]
    if k == 4:
        return P[4]
    if k == 3:
        return P[3]
    if k == 2:
        return P[2]
    if k == 1:
        return P[1]
    return P[0]


@njit(inline="always")
def _below(T, P, hi, nhi):
    """The rows whose bit-sliced count (planes P of weights 1..32, then hi[k] of weight 64 << k
    for k < nhi) is below T, as a vector of bits: one comparison, highest plane first, without
    branches on T's bits."""
    if (T >> (nhi + 6)) != 0:
        return vones()
    lt = vzero()
    eq = vones()
    for k in range(nhi + 5, -1, -1):
        pk = _plane(k, P, hi)
        tk = vsplat(np.uint64(0) - np.uint64((T >> k) & 1))
        lt = vor(lt, vand(vandnot(pk, eq), tk))          # T has a 1 where the count has a 0
        eq = vandnot(vxor(pk, tk), eq)
    return lt


@njit(inline="always")
def _count_of(lane, low, P, hi, nhi):
    """The count of the row at bit `low` (a one-bit word) of lane `lane`."""
    cnt = 0
    for k in range(nhi + 6):
        if vget(_plane(k, P, hi), lane) & low:
            cnt += 1 << k
    return cnt


@njit(inline="always")
def hi_planes(n_units):
    """How many planes of weight 64, 128, ... hold any count up to n_units."""
    nhi = 0
    while (64 << nhi) <= n_units:
        nhi += 1
    return nhi


@njit(inline="always")
def _ripple(hi, nhi, carry):
    """Add the bits of `carry` (weight 64) into the planes hi[:nhi]."""
    for k in range(nhi):
        h = vload(hi, k)
        vstore(hi, k, vxor(h, carry))
        carry = vand(h, carry)


@njit(inline="always")
def count_block(V, idx, n, T, hi, nhi):
    """Bit-sliced counts popcount(row & U) of the SLICE rows of the sliced block V, U's units
    idx[:n] (n a multiple of GROUP), in carry-save planes.  Returns (stopped, P): P = (p0, ..., p5)
    the planes of weights 1..32, hi[:nhi] those of 64 and up (hi_planes); stopped once every
    row's partial count has reached T (tested every CHECK units, from the first multiple of
    CHECK >= T: each unit adds at most 1 to a count, so no block stops sooner), since counts
    only grow.  Two groups' carries of weight 32 meet in p5, so the planes in memory are
    touched once per 2 GROUP units."""
    p0 = vzero()
    p1 = vzero()
    p2 = vzero()
    p3 = vzero()
    p4 = vzero()
    p5 = vzero()
    pending = vzero()
    for k in range(nhi):
        vstore(hi, k, vzero())
    test = CHECK * max(1, (T + CHECK - 1) // CHECK)
    for i in range(0, n, GROUP):
        q = idx[i:i + GROUP]                     # constant offsets in add8: no index checks
        eA, p0, p1, p2 = add8(V, q, 0, p0, p1, p2)
        eB, p0, p1, p2 = add8(V, q, 8, p0, p1, p2)
        sA, p3 = csa(p3, eA, eB)
        eA, p0, p1, p2 = add8(V, q, 16, p0, p1, p2)
        eB, p0, p1, p2 = add8(V, q, 24, p0, p1, p2)
        sB, p3 = csa(p3, eA, eB)
        carry, p4 = csa(p4, sA, sB)
        if (i // GROUP) % 2 == 0:
            pending = carry
            continue
        c64, p5 = csa(p5, pending, carry)
        pending = vzero()
        _ripple(hi, nhi, c64)
        if i + GROUP >= test and i + GROUP < n:
            test += CHECK
            if not vany(_below(T, (p0, p1, p2, p3, p4, p5), hi, nhi)):
                return True, (p0, p1, p2, p3, p4, p5)
    _ripple(hi, nhi, vand(p5, pending))          # an odd number of groups: fold the last carry
    p5 = vxor(p5, pending)
    return False, (p0, p1, p2, p3, p4, p5)


@njit(inline="always", cache=True, nogil=True)
def sliced_min(S, blocks, UI, ulen, B, best, found, hi):
    """best[c] = min(best[c], min over the rows of the sliced blocks S[blocks] of
    popcount(row & U_c)), for the B candidates whose unit lists are UI[c, :ulen[c]]; found[c]
    the block where best[c] was last lowered.  Blocks outside, candidates inside: a block
    (64 KB at n_iter = 2000) is read from memory once for the whole batch."""
    nhi = hi_planes(S.shape[1] - 1)
    for blk in blocks:
        V = S[blk]
        for c in range(B):
            T = best[c]
            stopped, P = count_block(V, UI[c], ulen[c], T, hi, nhi)
            if stopped:
                continue
            lt = _below(T, P, hi, nhi)
            if vany(lt):
                found[c] = blk
                for lane in range(4):
                    bits = vget(lt, lane)
                    while bits != 0:
                        best[c] = min(best[c], _count_of(lane, bits & (~bits + np.uint64(1)), P, hi, nhi))
                        bits &= bits - np.uint64(1)


@njit(inline="always", cache=True, nogil=True)
def sliced_cover(S, n_rows, idx, n, m, state, hi):
    """Mark COVERED every row of the sliced blocks S (X+, n_rows real rows) with
    popcount(row & U) < m, U's units idx[:n]; returns how many were new."""
    nhi = hi_planes(S.shape[1] - 1)
    new = 0
    for blk in range(S.shape[0]):
        stopped, P = count_block(S[blk], idx, n, m, hi, nhi)
        if stopped:
            continue
        lt = _below(m, P, hi, nhi)
        for lane in range(4):
            bits = vget(lt, lane)
            while bits != 0:
                r = blk * SLICE + lane * 64 + lowest_bit(bits)
                if r < n_rows and state[r] != COVERED:
                    state[r] = COVERED
                    new += 1
                bits &= bits - np.uint64(1)
    return new


@njit(cache=True, nogil=True)
def greedy_sliced(PT, walk, G, skip_lo, skip_hi, E, n_units, max_batch, UI):
    """greedy_packed for wide layers, counting bit-sliced: the minimum over X- is computed for
    batches of upcoming live candidates, and coverage of X+ for each new neuron.

    The batch holds the next live candidates of the walk; their m does not depend on what is
    covered, so the batch is then decided one by one in walk order exactly as the plain loop
    would (a member covered by an earlier member's neuron is skipped, its m unused).
    X- is the sliced blocks of G outside [skip_lo, skip_hi) and those of E (the layout of every
    class's patterns is built once: fast.fit_threshold); UI (max_batch, n_units + GROUP) a buffer
    for unit lists (uint16 where 4 n_units < 65536: they hold offsets 4 x unit, else int64).
    Returns what greedy_packed returns.
    """
    nw, n_p = PT.shape
    SP = sliced(np.ascontiguousarray(PT.T), np.arange(n_p), n_units)   # X+
    hi = np.zeros((48, 4), np.uint64)
    best = np.empty(max_batch, np.int64)
    found = np.zeros(max_batch, np.int64)
    ulen = np.empty(max_batch, np.int64)
    visit = np.concatenate((np.arange(skip_lo), np.arange(skip_hi, G.shape[0])))   # X-'s blocks of G
    every = np.arange(E.shape[0])
    cand = np.empty(max_batch, np.int64)
    where = np.empty(max_batch, np.int64)
    u = np.empty(nw, np.uint64)
    state = np.zeros(n_p, np.int8)
    n_uncovered = n_p
    steps = np.empty(walk.shape[0], np.int64)
    ms = np.empty(walk.shape[0], np.int64)
    k = 0
    draws = 0
    t = 0
    size = 8
    while t < walk.shape[0] and n_uncovered > 0:          # [Line 4]
        B, t = next_batch(walk, t, state, size, cand, where)   # [Line 5]
        for c in range(B):
            for w in range(nw):                           # [Line 6] I = the inactive units of x
                u[w] = ~PT[w, cand[c]]
            ulen[c] = unit_list(u, n_units, UI[c])
        best[:B] = 1 << 30                                # [Line 7] for the whole batch
        sliced_min(G, visit, UI, ulen, B, best, found, hi)
        sliced_min(E, every, UI, ulen, B, best, found, hi)
        lead = 0                                          # next batch: the blocks that held
        for j in range(B):                                # minima first (a low bound early
            for v in range(lead, visit.shape[0]):         # stops more blocks)
                if visit[v] == found[j]:
                    visit[lead], visit[v] = visit[v], visit[lead]
                    lead += 1
                    break
        wasted = 0
        for j in range(B):
            p = cand[j]
            if state[p] == COVERED or n_uncovered == 0:   # covered by an earlier member's neuron
                wasted += 1
                continue
            draws += 1                                    # [Line 5] x = this member
            if best[j] == 0:                              # [Line 8]
                state[p] = REJECTED                       # [Line 12]
                continue
            steps[k] = where[j]                           # [Line 9]
            ms[k] = best[j]
            k += 1
            n_uncovered -= sliced_cover(SP, n_p, UI[j], ulen[j], best[j], state, hi)   # [Lines 10-11]
        size = next_batch_size(size, B, wasted, max_batch)
    return steps[:k], ms[:k], draws, state


# ----------------------------------------------------------------------------- scoring

@njit(cache=True, nogil=True)
def any_fires(packed, U, m, reach, batch=512):
    """(n,) bool: does some second-layer neuron fire, popcount(z & U_j) < m_j?

    U (k, w) row-major with the neurons by decreasing reach = popcount(x_j) + m_j (x_j the
    neuron's drawn point, U_j = ~x_j): since popcount(z & ~x_j) >= popcount(z) - popcount(x_j),
    only neurons with reach > popcount(z) can fire at z, a prefix of the list.  `batch` points
    at a time, word-major, against one neuron at a time, so each neuron is read once per
    batch; a neuron stops counting once no live point of the batch can get below its m
    (checked after words 1, 2, 4, 8, ...); points that fired leave the batch.
    """
    n, nw = packed.shape
    out = np.zeros(n, np.bool_)
    neg_reach = -reach
    XT = np.empty((nw, batch), np.uint64)
    acc = np.empty(batch, np.int32)
    start = np.empty(batch, np.int32)
    for p0 in range(0, n, batch):
        b = min(batch, n - p0)
        min_pop = 1 << 62
        for c in range(b):
            pop = 0
            for w in range(nw):
                XT[w, c] = packed[p0 + c, w]
                pop += popcount(packed[p0 + c, w])
            min_pop = min(min_pop, pop)
            start[c] = 0
        left = b
        k = np.searchsorted(neg_reach, -min_pop)        # neurons that can fire at some point here
        for j in range(k):
            u = U[j]
            mj = np.int32(m[j])
            for c in range(b):
                acc[c] = start[c]
            check = 0
            alive = True
            for w in range(nw):
                uw = u[w]
                Xw = XT[w]
                for c in range(b):
                    acc[c] += np.int32(popcount(Xw[c] & uw))
                if w == check:
                    below = 0
                    for c in range(b):
                        below += np.int32(acc[c] < mj)
                    if below == 0:
                        alive = False
                        break
                    check = 2 * check + 1
            if alive:
                for c in range(b):
                    if acc[c] < mj:
                        out[p0 + c] = True
                        start[c] = 1 << 28                 # fired: out of the batch
                        left -= 1
                if left == 0:
                    break
    return out


@njit(cache=True, nogil=True)
def best_margin(packed, UT, m, starts):
    """(n,) float64: max over neurons j of (m_j - popcount(z & U_j)) / m_j.

    UT (w, k) word-major with the neurons sorted by m; starts: where each run of equal m
    begins (and k at the end).  Within a run the best margin is the smallest count, an integer
    min that vectorizes; one division per run.
    """
    nw, k = UT.shape
    out = np.full(packed.shape[0], -np.inf)
    acc = np.empty(k, np.int64)
    for i in range(packed.shape[0]):
        for j in range(k):
            acc[j] = 0
        for w in range(nw):
            xw = packed[i, w]
            Uw = UT[w]
            for j in range(k):
                acc[j] += popcount(Uw[j] & xw)
        best = -np.inf
        for g in range(starts.shape[0] - 1):
            lo = 1 << 62
            for j in range(starts[g], starts[g + 1]):
                lo = min(lo, acc[j])
            mg = m[starts[g]]
            best = max(best, (mg - lo) / mg)
        out[i] = best
    return out


@njit(cache=True, nogil=True)
def best_class(packed, U, m, starts, class_runs, batch=256):
    """(n,) the class with the largest margin max_j (m_j - popcount(z & U_j)) / m_j; ties go
    to the first class, as numpy's argmax over best_margin would.

    U (K, w) holds every class's neurons, each class's sorted by m; starts: where each run of
    equal m begins (K at the end); class_runs[c]..class_runs[c + 1]: class c's runs.  A class
    without neurons has margin -inf.  Points go in batches, word-major, against one neuron at
    a time; a point's count can only beat its best margin so far if it stays below
    m (1 - best), so a neuron stops counting once no point of the batch can (the bound is
    loosened by one and every candidate is then decided exactly).
    """
    n, nw = packed.shape
    n_classes = class_runs.shape[0] - 1
    out = np.zeros(n, np.int64)
    XT = np.empty((nw, batch), np.uint64)
    acc = np.empty(batch, np.int64)
    limit = np.empty(batch, np.int64)
    best = np.empty(batch, np.float64)
    for p0 in range(0, n, batch):
        b = min(batch, n - p0)
        for c in range(b):
            for w in range(nw):
                XT[w, c] = packed[p0 + c, w]
            best[c] = -np.inf
            out[p0 + c] = 0
        for cl in range(n_classes):
            for g in range(class_runs[cl], class_runs[cl + 1]):
                if starts[g] == starts[g + 1]:
                    continue
                mg = m[starts[g]]
                for c in range(b):
                    limit[c] = (1 << 62) if best[c] == -np.inf else np.int64(np.ceil(mg * (1.0 - best[c]))) + 1
                for j in range(starts[g], starts[g + 1]):
                    u = U[j]
                    for c in range(b):
                        acc[c] = 0
                    check = 0
                    alive = True
                    for w in range(nw):
                        uw = u[w]
                        Xw = XT[w]
                        for c in range(b):
                            acc[c] += popcount(Xw[c] & uw)
                        if w == check:
                            below = 0
                            for c in range(b):
                                below += np.int64(acc[c] < limit[c])
                            if below == 0:
                                alive = False
                                break
                            check = 2 * check + 1
                    if alive:
                        for c in range(b):
                            if acc[c] < limit[c]:
                                v = (mg - acc[c]) / mg
                                if v > best[c]:              # strict: the earlier class keeps a tie
                                    best[c] = v
                                    out[p0 + c] = cl
                                    limit[c] = np.int64(np.ceil(mg * (1.0 - v))) + 1
    return out


@njit(cache=True, nogil=True)
def neuron_sums(packed, U):
    """(n, k) int64: <Phi(z), 1_U_j> = popcount(z & U_j) for every point and neuron."""
    out = np.zeros((packed.shape[0], U.shape[0]), np.int64)
    for i in range(packed.shape[0]):
        for j in range(U.shape[0]):
            for w in range(U.shape[1]):
                out[i, j] += popcount(packed[i, w] & U[j, w])
    return out
