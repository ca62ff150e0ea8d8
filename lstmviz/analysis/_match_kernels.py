"""numba kernels behind ``lstmviz.analysis.matching`` (see that module for the semantics).

Three kernels do the work:

- ``count_units``: c[t] = number of selected signed units on at t, from the unit-major bitsets of the
  selected units only: a bit-sliced (vertical) counter per block of positions, one AND/XOR ripple per
  selected unit and 64 positions, vectorised, then spread into byte counters; parallel over blocks.
- ``runs_collect`` / ``runs_gather``: the nodes of the Cartesian tree of c (a maximal run of c >= h
  whose minimum is exactly h), enumerated with a monotone stack in one left-to-right pass per block;
  values below ``lo`` are treated as 0, so a pass that only needs levels >= lo touches only the
  positions where c >= lo and skips the rest 8 at a time. Blocks start at item starts or at positions
  where c < lo (no run crosses them), so blocks are independent and run in parallel. The gather puts
  the nodes of a band of levels in (level descending, start) order.
- ``score_runs``: per candidate, AND of the row-major bits over the run and AND-NOT over the padding
  rows, popcounts of the result and of its intersection with the selection.

Parallel kernels must be called under ``lstmviz.analysis._parallel.KERNEL_LOCK``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic


@intrinsic
def _ctpop64(typingctx, x):
    sig = types.uint64(types.uint64)

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return sig, codegen


@njit(inline="always")
def popcount(x):
    return _ctpop64(np.uint64(x))


#: words of 64 positions per block of the counting kernel
COUNT_BLOCK_WORDS = 64
_M1 = np.uint64(0x0101010101010101)
_MBIT = np.uint64(0x8040201008040201)
_M7F = np.uint64(0x7F7F7F7F7F7F7F7F)


@njit(inline="always")
def _spread(b):
    """Bit i of byte b -> byte lane i (value 0 or 1) of a uint64."""
    return ((((b * _M1) & _MBIT) + _M7F) >> np.uint64(7)) & _M1


@njit(parallel=True, nogil=True, cache=True)
def count_units(bits_pos, bits_neg, units, signs, byte0, byte1, n_planes, out, out64, hist, hist_stride):
    """Selected units on per position, for bytes ``[byte0, byte1)`` of the unit-major bitsets.

    Bit-sliced: per block of 64-position words, a vertical binary counter of ``n_planes`` bit planes
    (``2 ** n_planes > k``) takes one word per selected unit with a ripple of AND/XOR over the planes
    (vectorised over the words of the block); the planes are then spread into byte or uint16 counters.

    ``out``: uint8 (k <= 255) or uint16, length ``64 * ceil((byte1 - byte0) / 8)``: out[i] = count at
    position ``8 * byte0 + i`` (0 past byte1). ``out64``: ``out.view(np.uint64)`` for uint8, else empty.
    ``hist``: int64 ``[ceil(n_blocks / hist_stride), k + 1]`` zeroed by the caller: for every
    ``hist_stride``-th block, its positions per count value (a sample, to estimate how many positions
    reach a level); ``[0, 0]`` to skip.
    """
    k = units.shape[0]
    nbytes = byte1 - byte0
    nw = (nbytes + 7) // 8
    bw = COUNT_BLOCK_WORDS
    nblk = (nw + bw - 1) // bw
    do_hist = hist.shape[0] > 0
    wide = out64.shape[0] == 0
    for bi in prange(nblk):
        w0 = bi * bw
        w1 = min(nw, w0 + bw)
        nwb = w1 - w0
        planes = np.zeros((n_planes, nwb), np.uint64)
        carry = np.empty(nwb, np.uint64)
        for s in range(k):
            # (indices from 0 in a slice, so no wrap-around checks get in the way of 8-byte loads)
            row = bits_pos[units[s], byte0:byte1] if signs[s] > 0 else bits_neg[units[s], byte0:byte1]
            full = min(nwb, nbytes // 8 - w0)  # words with all 8 bytes inside [byte0, byte1)
            for w in range(full):
                j = 8 * (w0 + w)
                x = np.uint64(0)
                for i in range(8):
                    x |= np.uint64(row[j + i]) << np.uint64(8 * i)
                carry[w] = x
            for w in range(max(full, 0), nwb):
                j = 8 * (w0 + w)
                x = np.uint64(0)
                for i in range(nbytes - j):
                    x |= np.uint64(row[j + i]) << np.uint64(8 * i)
                carry[w] = x
            for p in range(n_planes):
                pl = planes[p]
                for w in range(nwb):
                    t = pl[w] & carry[w]
                    pl[w] ^= carry[w]
                    carry[w] = t
        if not wide:
            o = out64[8 * w0:8 * w1]
            for j in range(8 * nwb):
                o[j] = 0
            for p in range(n_planes):
                pb = planes[p].view(np.uint8)
                sh = np.uint64(p)
                for j in range(8 * nwb):
                    o[j] += _spread(np.uint64(pb[j])) << sh
        else:
            for j in range(64 * w0, 64 * w1):
                out[j] = 0
            for p in range(n_planes):
                pb = planes[p].view(np.uint8)
                for j in range(8 * nwb):
                    x = _spread(np.uint64(pb[j]))
                    base = 64 * w0 + 8 * j
                    for i in range(8):
                        out[base + i] += ((x >> np.uint64(8 * i)) & np.uint64(1)) << np.uint64(p)
        if do_hist and bi % hist_stride == 0:
            h = hist[bi // hist_stride]
            for j in range(64 * w0, 64 * w1):
                h[out[j]] += 1


@njit(nogil=True, cache=True)
def split_points(c, lo, item_offsets, n, n_blocks):
    """Block boundaries for the run passes: 0, ..., n; each inner boundary p is an item start or a
    position with c[p] < lo (no run of levels >= lo crosses it), at or after an evenly spaced target."""
    out = np.empty(n_blocks + 1, np.int64)
    out[0] = 0
    m = 1
    n_items = item_offsets.shape[0] - 1
    for b in range(1, n_blocks):
        target = (n * b) // n_blocks
        if target <= out[m - 1]:
            continue
        it = np.searchsorted(item_offsets, target)  # first item offset >= target
        lim = n if it > n_items else min(n, item_offsets[it])
        p = target
        while p < lim and c[p] >= lo:
            p += 1
        if p >= n:
            break
        if p > out[m - 1]:
            out[m] = p
            m += 1
    out[m] = n
    return out[: m + 1]


_HIGH_BITS = np.uint64(0x8080808080808080)


@njit(nogil=True, inline="always")
def _item_cursor(item_offsets, t):
    """Index of the first item offset > t."""
    return np.searchsorted(item_offsets, t, side="right")


@njit(nogil=True, inline="always")
def _emit_run(start, length, level, min_len, max_len, counts, q, out_start, out_len, out_level):
    """Store the closed run [start, start + length) of ``level`` at slot q if its length is allowed;
    returns the next free slot."""
    if length < min_len or length > max_len:
        return q
    counts[level] += 1
    out_start[q] = start
    out_len[q] = length
    out_level[q] = level
    return q + 1


@njit(nogil=True, cache=True)
def _runs_block(c, c64, lo, b0, b1, item_offsets, min_len, max_len, counts, q0, out_start, out_len,
               out_level):
    """Monotone-stack pass over positions [b0, b1): every Cartesian-tree node (h, s, e) of c (c < lo
    read as 0, so h >= lo) with min_len <= e - s <= max_len is counted in counts[h] and written to
    out_*[q0 + i] (i-th node of the block, in the order the stack closes them); returns the number."""
    # SWAR test "some byte of w is >= lo" (uint8 counts, lo <= 128): (w + (128 - lo) * 0x01..01) | w
    # has a high bit set in such a byte; a carry out of a byte >= 128 only touches a word that passes anyway
    swar = c64.shape[0] > 0 and lo <= 128
    swar_add = np.uint64(0)
    if swar:
        swar_add = np.uint64(128 - lo) * np.uint64(0x0101010101010101)
    kk = counts.shape[0]
    sval = np.empty(kk + 1, np.int64)
    sstart = np.empty(kk + 1, np.int64)
    sp = 0
    q = q0
    it = _item_cursor(item_offsets, b0)
    n_off = item_offsets.shape[0]
    bound = min(item_offsets[it] if it < n_off else b1, b1)
    t = b0
    while True:
        if t >= bound:
            # item end (or block end): close every open run at t
            while sp > 0:
                sp -= 1
                q = _emit_run(sstart[sp], t - sstart[sp], sval[sp], min_len, max_len, counts, q,
                              out_start, out_len, out_level)
            if t >= b1:
                break
            while it < n_off and item_offsets[it] <= t:
                it += 1
            bound = min(item_offsets[it] if it < n_off else b1, b1)
            continue
        v = np.int64(c[t])
        if v < lo:
            v = 0
            if sp == 0:
                # nothing open: skip to the next position with c >= lo (or the item end), 8 at a time
                t += 1
                while t < bound and (t & 7) != 0 and c[t] < lo:
                    t += 1
                if swar:
                    while t + 8 <= bound and (t & 7) == 0:
                        w = c64[t >> 3]
                        if ((w + swar_add) | w) & _HIGH_BITS:
                            break
                        t += 8
                while t < bound and c[t] < lo:
                    t += 1
                continue
        start = t
        while sp > 0 and sval[sp - 1] > v:
            sp -= 1
            q = _emit_run(sstart[sp], t - sstart[sp], sval[sp], min_len, max_len, counts, q,
                          out_start, out_len, out_level)
            start = sstart[sp]
        if v > 0 and (sp == 0 or sval[sp - 1] < v):
            sval[sp] = v
            sstart[sp] = start
            sp += 1
        t += 1
    return q - q0


@njit(parallel=True, nogil=True, cache=True)
def count_at_least(c, c64, lo, kmax, bounds, out):
    """out[b]: positions of block b with c >= lo (an upper bound on its nodes of level >= lo).
    ``kmax``: the largest possible count."""
    nb = bounds.shape[0] - 1
    # 8 bytes at a time, exact when every count is < 128: b + (128 - lo) then stays below 256 (no carries)
    swar = c64.shape[0] > 0 and kmax < 128 and lo >= 1
    add = np.uint64(128 - lo) * np.uint64(0x0101010101010101) if swar else np.uint64(0)
    for b in prange(nb):
        b0 = bounds[b]
        b1 = bounds[b + 1]
        n = 0
        t = b0
        if swar:
            while t < b1 and (t & 7) != 0:
                n += c[t] >= lo
                t += 1
            while t + 8 <= b1:
                n += popcount((c64[t >> 3] + add) & _HIGH_BITS)
                t += 8
        while t < b1:
            n += c[t] >= lo
            t += 1
        out[b] = n


@njit(parallel=True, nogil=True, cache=True)
def runs_collect(c, c64, lo, bounds, item_offsets, min_len, max_len, counts, offsets, n_nodes, out_start,
                 out_len, out_level):
    """All nodes of level >= lo, block by block (parallel). Block b writes its nodes to
    out_*[offsets[b]:], room for ``count_at_least`` entries (every node owns a distinct position where c
    equals its level), their number to n_nodes[b] and its nodes per level to counts[b] (int64
    [n_blocks, k + 1], zeroed)."""
    nb = bounds.shape[0] - 1
    for b in prange(nb):
        n_nodes[b] = _runs_block(c, c64, lo, bounds[b], bounds[b + 1], item_offsets, min_len, max_len,
                                 counts[b], offsets[b], out_start, out_len, out_level)


@njit(parallel=True, nogil=True, cache=True)
def runs_gather(offsets, n_nodes, buf_start, buf_len, buf_level, lo, hi, cursors, out_start, out_len):
    """Copy the collected nodes with lo <= level <= hi to out_*: block b's nodes of level h go to
    cursors[b, h], cursors[b, h] + 1, ... in the order the block closed them (= start order, since the
    nodes of one level are disjoint)."""
    nb = n_nodes.shape[0]
    for b in prange(nb):
        cur = cursors[b]
        b0 = offsets[b]
        for i in range(b0, b0 + n_nodes[b]):
            h = buf_level[i]
            if h >= lo and h <= hi:
                j = cur[h]
                out_start[j] = buf_start[i]
                out_len[j] = buf_len[i]
                cur[h] = j + 1


@njit(parallel=True, nogil=True, cache=True)
def score_runs(rows_pos, rows_neg, use_pos, use_neg, sel_pos, sel_neg, starts, lengths, lo_bound, hi_bound,
               pad_left, pad_right, out_a, out_i):
    """Per candidate: out_a = |A| and out_i = |A & S| over the signed spaces used.

    A (per sign) = units on at every row of [start, start + length) and off at the padding rows
    [max(lo_bound, start - pad_left), start) and [stop, min(hi_bound, stop + pad_right)).
    rows_*: [n_positions, words] (uint8 or uint64 words); sel_*: the selection's bits in the same words.
    """
    n = starts.shape[0]
    nw = rows_pos.shape[1]
    for q in prange(n):
        s = starts[q]
        e = s + lengths[q]
        pl = max(lo_bound[q], s - pad_left)
        pr = min(hi_bound[q], e + pad_right)
        a_tot = 0
        i_tot = 0
        for sign in range(2):
            if sign == 0 and not use_pos:
                continue
            if sign == 1 and not use_neg:
                continue
            rows = rows_pos if sign == 0 else rows_neg
            sel = sel_pos if sign == 0 else sel_neg
            for w in range(nw):
                acc = np.uint64(rows[s, w])
                for r in range(s + 1, e):
                    acc &= np.uint64(rows[r, w])
                    if acc == 0:
                        break
                if acc != 0:
                    for r in range(pl, s):
                        acc &= ~np.uint64(rows[r, w])
                    for r in range(e, pr):
                        acc &= ~np.uint64(rows[r, w])
                a_tot += popcount(acc)
                i_tot += popcount(acc & np.uint64(sel[w]))
        out_a[q] = a_tot
        out_i[q] = i_tot
