"""numba kernels behind the match index (``bitindex.py``) and unit statistics (``transforms.py``).

numba cannot load float16, so taps are passed as their raw bits: float16 as int16, float32 as int32.
Both become *order keys* of the same width, ``k = v ^ ((v >> 15) & 0x7FFF)`` (int16) or
``v ^ ((v >> 31) & 0x7FFFFFFF)`` (int32), which sort like the values they encode (-0.0 sorts just
below +0.0, NaNs beyond the infinities). A threshold test ``x >= t`` is then an integer range test
against per-unit keys computed in numpy (``bitindex.key_thresholds``): ``lo <= k <= key(+inf)``,
written as ``uint(k - lo) <= range`` in the key's width; NaN falls outside every range, so it is never
on. Staying in 16-bit lanes for float16 packs twice as many values per vector instruction.

``pack_slab`` turns a slab of rows into both layouts at once. For each group of 8 rows it ORs every
unit's on-bit into a byte per unit (bit r = row r) — the unit-major byte — while it writes the same
bit at the unit's position in a per-row byte mask; folding each 8-byte word of that mask gives the
row-major byte. All inner loops run over units, so they vectorise.

Parallel kernels must be called under ``lstmviz.analysis._parallel.KERNEL_LOCK``.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange, types
from numba.extending import overload

#: rows per unit-major word; slabs and flushes start at multiples of this
CHUNK_ROWS = 64
#: 64-row chunks per parallel work item of ``pack_slab``
_CHUNKS_PER_BLOCK = 4
#: rows per parallel work item of ``stats_slab``
STATS_BLOCK_ROWS = 1024


def order_key(v):
    """The order key of stored bits ``v`` (int16 or int32), in the same width."""


@overload(order_key, inline="always")
def _order_key_impl(v):
    if v.bitwidth == 16:
        return lambda v: np.int16(v ^ np.int16(np.int16(v >> np.int16(15)) & np.int16(0x7FFF)))
    return lambda v: np.int32(v ^ np.int32(np.int32(v >> np.int32(31)) & np.int32(0x7FFFFFFF)))


def within(k, lo, span):
    """``lo <= k <= lo + span`` for keys of one width: ``uint(k - lo) <= span`` with wrap-around."""


@overload(within, inline="always")
def _within_impl(k, lo, span):
    if k.bitwidth == 16:
        return lambda k, lo, span: np.uint16(k - lo) <= span
    return lambda k, lo, span: np.uint32(k - lo) <= span


@njit(parallel=True, nogil=True, cache=True)
def pack_slab(x, lo_pos, range_pos, hi_neg, range_neg, bit_of, rows_pos, rows_neg, words_pos, words_neg,
              count_pos, count_neg, word0):
    """Binarise and pack ``x`` (int16/int32 bits ``[n, D]``) against per-unit key ranges.

    on(+1) at (t, u): ``within(k, lo_pos[u], range_pos[u])``; on(-1): ``within(hi_neg[u], k,
    range_neg[u])``, with keys, ``lo_pos``, ``hi_neg`` int16 and ranges uint16 for int16 ``x`` (int32 and
    uint32 for int32 ``x``). Writes rows ``0..n-1`` of ``rows_*`` (uint8 ``[>= n, ceil(D/8)]``) and of
    ``count_*`` (units on per row), and the unit-major words ``words_*[u, word0 + c]`` (uint64, bit i of
    word c = row ``64 c + i``; rows past ``n`` are 0). ``bit_of[u] = 1 << (u % 8)``, padded to
    ``8 * ceil(D/8)``.
    """
    n, d = x.shape
    nb = rows_pos.shape[1]
    n_chunks = (n + CHUNK_ROWS - 1) // CHUNK_ROWS
    n_blocks = (n_chunks + _CHUNKS_PER_BLOCK - 1) // _CHUNKS_PER_BLOCK
    for blk in prange(n_blocks):
        acc_pos = np.zeros((8, nb * 8), np.uint8)
        acc_neg = np.zeros((8, nb * 8), np.uint8)
        mask_pos = np.zeros(nb * 8, np.uint8)
        mask_neg = np.zeros(nb * 8, np.uint8)
        mw_pos = mask_pos.view(np.uint64)
        mw_neg = mask_neg.view(np.uint64)
        c_end = min(n_chunks, (blk + 1) * _CHUNKS_PER_BLOCK)
        for c in range(blk * _CHUNKS_PER_BLOCK, c_end):
            for g in range(8):
                ap = acc_pos[g]
                an = acc_neg[g]
                ap[:] = 0
                an[:] = 0
                t0 = c * CHUNK_ROWS + g * 8
                for r in range(max(0, min(8, n - t0))):
                    t = t0 + r
                    row = x[t]
                    row_bit = np.uint8(1 << r)
                    cp = np.uint32(0)
                    cn = np.uint32(0)
                    for u in range(d):
                        k = order_key(row[u])
                        a = np.uint8(within(k, lo_pos[u], range_pos[u]))
                        b = np.uint8(within(hi_neg[u], k, range_neg[u]))
                        # 0x00/0xFF masks: AND with a constant bit is cheaper than a byte shift
                        ma = np.uint8(0) - a
                        mb = np.uint8(0) - b
                        ap[u] |= ma & row_bit
                        an[u] |= mb & row_bit
                        mask_pos[u] = ma & bit_of[u]
                        mask_neg[u] = mb & bit_of[u]
                        cp += a
                        cn += b
                    count_pos[t] = cp
                    count_neg[t] = cn
                    out_pos = rows_pos[t]
                    out_neg = rows_neg[t]
                    for j in range(nb):
                        w = mw_pos[j]
                        w |= w >> np.uint64(32)
                        w |= w >> np.uint64(16)
                        w |= w >> np.uint64(8)
                        out_pos[j] = np.uint8(w & np.uint64(255))
                        w = mw_neg[j]
                        w |= w >> np.uint64(32)
                        w |= w >> np.uint64(16)
                        w |= w >> np.uint64(8)
                        out_neg[j] = np.uint8(w & np.uint64(255))
            col = word0 + c
            for u in range(d):
                wp = np.uint64(0)
                wn = np.uint64(0)
                for g in range(8):
                    wp |= np.uint64(acc_pos[g, u]) << np.uint64(8 * g)
                    wn |= np.uint64(acc_neg[g, u]) << np.uint64(8 * g)
                words_pos[u, col] = wp
                words_neg[u, col] = wn


@njit(cache=True)
def half_to_float(h):
    """The float32 value of float16 bits ``h`` (an integer; only the low 16 bits are used)."""
    hb = np.int32(h) & 0xFFFF
    e = (hb >> 10) & 0x1F
    m = hb & 0x3FF
    sign = (hb & 0x8000) << 16
    # no early returns, so that loops over it vectorise (LLVM turns these ifs into selects)
    exponent = (e + 112) << 23
    if e == 31:
        exponent = 0x7F800000
    value = np.int32(sign | exponent | (m << 13)).view(np.float32)
    tiny = np.float32(m) * np.float32(5.9604644775390625e-08)  # zero or subnormal: m * 2**-24
    if sign != 0:
        tiny = -tiny
    if e == 0:
        value = tiny
    return value


def _value(v):
    """The float value of one stored element (float16 bits as int16, or a float)."""


@overload(_value)
def _value_impl(v):
    if isinstance(v, types.Integer):
        return lambda v: np.float64(half_to_float(np.int32(v)))
    return lambda v: np.float64(v)


@njit(parallel=True, nogil=True, cache=True)
def stats_slab(x, count, shift, s1, s2, minimum, maximum):
    """Per block of ``STATS_BLOCK_ROWS`` rows of ``x`` (float16 bits as int16, or floats ``[n, D]``):
    ``count`` finite values, ``shift`` = the block's first row (0 where not finite), ``s1`` = sum of
    (v - shift) and ``s2`` = sum of (v - shift)**2 over finite values, ``minimum``/``maximum`` over
    non-NaN values; all ``[n_blocks, D]`` (float64, ``count`` int64), written whole.

    Shifting by a sample of the same block bounds the rounding error of ``s2 - s1**2 / count``
    (the block's M2) by about ``count * eps * M2``, however far the values lie from 0.
    """
    n, d = x.shape
    n_blocks = (n + STATS_BLOCK_ROWS - 1) // STATS_BLOCK_ROWS
    for blk in prange(n_blocks):
        cnt = count[blk]
        sh = shift[blk]
        a1 = s1[blk]
        a2 = s2[blk]
        lo = minimum[blk]
        hi = maximum[blk]
        t0 = blk * STATS_BLOCK_ROWS
        first = x[t0]
        for u in range(d):
            v = _value(first[u])
            sh[u] = v if (v - v) == 0.0 else 0.0
            cnt[u] = 0
            a1[u] = 0.0
            a2[u] = 0.0
            lo[u] = np.inf
            hi[u] = -np.inf
        for t in range(t0, min(n, t0 + STATS_BLOCK_ROWS)):
            row = x[t]
            for u in range(d):
                v = _value(row[u])
                finite = (v - v) == 0.0
                dv = v - sh[u] if finite else 0.0
                cnt[u] += 1 if finite else 0
                a1[u] += dv
                a2[u] += dv * dv
                lo[u] = np.fmin(lo[u], v)  # fmin/fmax skip NaN
                hi[u] = np.fmax(hi[u], v)
