"""Whole-corpus matching: find every range where the selected units are on together, and rank it.

Definitions (S = the selected signed units, k = |S|; a signed unit (u, +1) is on at t when unit u is
>= its positive threshold, (u, -1) when it is <= its negative threshold; see ``bitindex``):

- **Count.** c[t] = number of units of S that are on at t (read from the unit-major bits of the
  selected units only).
- **Candidates.** For every level m = k, ..., 1, the maximal runs [s, e) of positions with c >= m,
  split at item boundaries (a run never crosses from one item into the next), with
  ``min_length <= e - s <= max_length``. A run found at level m whose minimum count exceeds m is the
  same run as at a higher level and is counted only there, at its *level* h = min(c[s:e]) (LSTMVis
  de-duplicates the same way, strictest level first). The candidates are thus the nodes of the
  Cartesian tree of c; they are enumerated with a monotone stack, not with one pass per level, and a
  pass that needs only the levels >= lo touches only the positions where c >= lo.
- **Pattern-active units.** For a candidate [s, e) in item [a, b): A = the signed units of the query's
  unit space (positive, negative or both) that are on at every position of [s, e) and off at every
  padding position: ``pad_left`` positions before s and ``pad_right`` after e, any width, clipped to
  the item (padding positions outside the item are not checked). I = |A & S|, U = |A | S| = |A| + k - I,
  jaccard = I / U. A candidate of level h has I <= h (some position of it has only h units of S on)
  and U >= k, so jaccard <= h / k.

Modes (``MatchQuery.mode``):

- ``"lstmvis"``: LSTMVis's precise matcher (``lstmvis_reference.lstmvis_precise``), over the whole
  corpus and with multi-position padding. Levels are collected from k downwards, whole levels, until at
  least ``candidate_cap`` candidates are collected (None: every level). Each candidate gets LSTMVis's
  boundary sharpness score2: h - c[s-1] with left padding only, h - c[e] with right padding only,
  h - c[s-1] - c[e] with both (the level counted once, as ``test_cell_number - value[indices + 1] -
  value[indices - 1]`` in their ``data_handler.py``), 0 without padding; a neighbour outside the
  item (s is the item's first position, or e its end) counts as 0 units on, as if the state before
  and after an item were off. Candidates ordered by level
  (descending) then start are stably sorted by score2 descending and cut to ``candidate_cap``; each
  survivor is re-scored exactly (A, I, U above), ranked stably by (-I, U, -length) and the first
  ``limit`` are returned (None: all). ``score`` = jaccard, ``length_factor`` = 1.
- ``"scored"``: score = jaccard * (min(L, Ls) / max(L, Ls)) ** length_weight with Ls =
  ``selection_length`` (None: no length term, factor 1). Ranked by (-score, -I, start, length). Since
  score <= h / k for a candidate of level h, levels are scored from k downwards (in batches of levels)
  and the search stops as soon as at least ``limit`` scored candidates have score > (highest level not
  yet scored) / k: nothing unscored can reach the top ``limit``, which is then exact. At most
  ``candidate_cap`` candidates are scored (None: no bound), taken in (level descending, start) order;
  when the cap stops the search before that proof, ``exact`` is False. ``limit=None`` scores every
  candidate (up to the cap).

``MatchResults``: ``levels`` = the candidate's level h, ``items`` = its item, ``n_candidates`` = the
number re-scored, ``lowest_level`` = the lowest level collected (every level from k down to it was
collected; in scored mode, when the cap cut a level, the level of the last candidate scored),
``exact`` (scored mode, see above; always True in lstmvis mode), ``elapsed_s``; ``extra`` holds
``timings`` (seconds per phase) and ``passes`` (run-enumeration passes over c).

Cost: counting reads k bitsets of N/8 bytes (bit-sliced, vectorised); a run pass touches only the
positions with c >= lo (the rest is skipped 8 counts at a time), and lo is chosen from a sampled
histogram of c so that usually one pass suffices; re-scoring reads (length + padding) rows of
ceil(D/64) words per candidate. Memory: the counts (1 byte per position below 256 units) and 20 bytes
per position with c >= lo for the collected candidates.
"""

from __future__ import annotations

import time

import numba
import numpy as np

from lstmviz.analysis import _match_kernels as K
from lstmviz.analysis._parallel import KERNEL_LOCK
from lstmviz.analysis.bitindex import BitIndex
from lstmviz.analysis.match_types import MatchQuery, MatchResults
from lstmviz.tasks import ensure_task

__all__ = ["match", "match_counts"]

_STEPS = 4  # progress steps reported by match(): count, runs, score, rank
_HIST_BLOCKS = 64  # count-value histogram sampled over about this many blocks of 4096 positions


def _readonly(*arrays: np.ndarray) -> tuple[np.ndarray, ...]:
    """Read-only views: the kernels see one array type whether the index lives in memory or is
    memory-mapped read-only from its cache file (one numba specialisation, compiled once)."""
    out = []
    for a in arrays:
        a = np.asarray(a).view()
        a.flags.writeable = False
        out.append(a)
    return tuple(out)


def _check_units(index: BitIndex, units: np.ndarray, signs: np.ndarray) -> None:
    if units.size and (units.min() < 0 or units.max() >= index.n_units):
        bad = units.min() if units.min() < 0 else units.max()
        raise ValueError(f"unit {bad} is outside 0..{index.n_units - 1} ({index.n_units} units)")
    if np.any((signs != 1) & (signs != -1)):
        raise ValueError("signs must be +1 or -1")
    for s in set(signs.tolist()):
        if s not in index.units or s not in index.rows:
            raise ValueError(f"the index has no bits for sign {s:+d}")


def _counts(index: BitIndex, units: np.ndarray, signs: np.ndarray, byte0: int, byte1: int,
            with_hist: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Counts for positions from 8*byte0 on (uint8, or uint16 above 255 units; length a multiple of 64,
    0 past byte1) and, optionally, an estimate of the positions per count value."""
    k = len(units)
    dtype = np.uint8 if k <= 255 else np.uint16
    nbytes = byte1 - byte0
    nw = -(-nbytes // 8)
    out = np.zeros(64 * nw, dtype)
    if k == 0 or nbytes == 0:
        hist = np.zeros(k + 1)
        hist[0] = out.size
        return out, hist if with_hist else None
    bp, bn = _readonly(index.units[1] if 1 in index.units else index.units[-1],
                       index.units[-1] if -1 in index.units else index.units[1])
    nblk = -(-nw // K.COUNT_BLOCK_WORDS)
    stride = max(1, nblk // _HIST_BLOCKS)
    n_hist = -(-nblk // stride)
    hist = np.zeros((n_hist, k + 1) if with_hist else (0, 0), np.int64)
    out64 = out.view(np.uint64) if dtype == np.uint8 else np.zeros(0, np.uint64)
    with KERNEL_LOCK:
        K.count_units(bp, bn, units.astype(np.int64), signs.astype(np.int64), byte0, byte1, int(k).bit_length(),
                      out, out64, hist, stride)
    if not with_hist:
        return out, None
    # an estimate from every stride-th block, scaled to all positions (exact when stride == 1)
    return out, hist.sum(axis=0) * (nblk / n_hist)


def match_counts(index: BitIndex, units, signs, start: int, stop: int) -> np.ndarray:
    """int32 ``[stop - start]``: how many of the signed units (``units[i]``, ``signs[i]``) are on at
    each position of ``[start, stop)``, from the unit-major bits (only the selected units are read)."""
    units = np.asarray(units, dtype=np.int64).reshape(-1)
    signs = np.ones_like(units) if signs is None or len(signs) == 0 else np.asarray(signs, np.int64).reshape(-1)
    if signs.shape != units.shape:
        raise ValueError(f"{len(units)} units but {len(signs)} signs")
    if not 0 <= start <= stop <= index.n_positions:
        raise IndexError(f"positions {start}..{stop} are outside 0..{index.n_positions}")
    _check_units(index, units, signs)
    if start == stop:
        return np.zeros(0, np.int32)
    byte0, byte1 = start // 8, -(-stop // 8)
    c, _ = _counts(index, units, signs, byte0, byte1, False)
    lo = start - 8 * byte0
    return c[lo:lo + stop - start].astype(np.int32)


class _Runs:
    """The Cartesian-tree nodes of c (the candidates): collected for all levels >= lo in one pass,
    then handed out by bands of levels."""

    def __init__(self, c, item_offsets, n, k, min_len, max_len):
        self.c, self.item_offsets, self.n, self.k = c, item_offsets, n, k
        # 8 counts per word for skipping empty stretches (uint8 counts; the array length is a multiple of 8)
        self.c64 = c.view(np.uint64) if c.dtype == np.uint8 and len(c) % 8 == 0 else np.zeros(0, np.uint64)
        self.min_len, self.max_len = min_len, max_len
        self.n_blocks = max(1, min(16 * numba.get_num_threads(), n // 4096))
        self.passes = 0
        self.lo = None

    def collect(self, lo: int) -> np.ndarray:
        """Collect every node of level >= lo; returns the nodes per level (int64 [k + 1])."""
        self.lo = lo
        self.bounds = K.split_points(self.c, lo, self.item_offsets, self.n, self.n_blocks)
        nb = len(self.bounds) - 1
        self.counts = np.zeros((nb, self.k + 1), np.int64)
        self.n_nodes = np.zeros(nb, np.int64)
        # room per block: its positions with c >= lo (every node owns one where c equals its level)
        room = np.zeros(nb, np.int64)
        with KERNEL_LOCK:
            K.count_at_least(self.c, self.c64, lo, self.k, self.bounds, room)
        self.offsets = np.cumsum(room) - room
        total = int(room.sum())
        self.buf_start = np.empty(total, np.int64)
        self.buf_len = np.empty(total, np.int64)
        self.buf_level = np.empty(total, np.int32)
        with KERNEL_LOCK:
            K.runs_collect(self.c, self.c64, lo, self.bounds, self.item_offsets, self.min_len, self.max_len,
                           self.counts, self.offsets, self.n_nodes, self.buf_start, self.buf_len, self.buf_level)
        self.passes += 1
        return self.counts.sum(axis=0)

    def take(self, lo: int, hi: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(starts, lengths, levels) of the collected nodes with lo <= level <= hi, by level desc then start."""
        assert self.lo is not None and lo >= self.lo
        counts = self.counts
        per_level = counts[:, lo:hi + 1].sum(axis=0)  # index h - lo
        total = int(per_level.sum())
        starts = np.empty(total, np.int64)
        lengths = np.empty(total, np.int64)
        if total == 0:
            return starts, lengths, np.zeros(0, np.int32)
        # level-major layout: level hi first; inside a level, block order (= start order)
        level_base = np.zeros(hi - lo + 2, np.int64)
        level_base[1:] = np.cumsum(per_level[::-1])
        cursors = np.zeros_like(counts)
        for h in range(lo, hi + 1):
            col = counts[:, h]
            cursors[:, h] = level_base[hi - h] + np.cumsum(col) - col
        with KERNEL_LOCK:
            K.runs_gather(self.offsets, self.n_nodes, self.buf_start, self.buf_len, self.buf_level, lo, hi,
                          cursors, starts, lengths)
        levels = np.repeat(np.arange(hi, lo - 1, -1, dtype=np.int32), per_level[::-1])
        return starts, lengths, levels


class _Scorer:
    """Exact re-scoring of candidates from the row-major bits."""

    def __init__(self, index: BitIndex, query: MatchQuery):
        space = query.space
        self.use_pos = space in ("positive", "both")
        self.use_neg = space in ("negative", "both")
        need = [s for s, use in ((1, self.use_pos), (-1, self.use_neg)) if use]
        for s in need:
            if s not in index.rows:
                raise ValueError(f"the index has no bits for sign {s:+d}")
        rp = index.rows[1] if 1 in index.rows else index.rows[-1]
        rn = index.rows[-1] if -1 in index.rows else index.rows[1]
        rp, rn = _readonly(rp, rn)
        nb = rp.shape[1]
        sel = {1: np.zeros(nb, np.uint8), -1: np.zeros(nb, np.uint8)}
        for u, s in zip(query.units, query.signs):
            sel[s][u // 8] |= np.uint8(1 << (u % 8))
        if nb % 8 == 0 and nb > 0 and rp.flags.c_contiguous and rn.flags.c_contiguous:
            rp, rn = rp.view(np.uint64), rn.view(np.uint64)
            sel = {s: v.view(np.uint64) for s, v in sel.items()}
        self.rp, self.rn, self.sel_pos, self.sel_neg = rp, rn, sel[1], sel[-1]
        self.k = query.k
        self.pad_left, self.pad_right = query.pad_left, query.pad_right

    def __call__(self, starts, lengths, item_lo, item_hi) -> tuple[np.ndarray, np.ndarray]:
        """(intersection, union) as int32 arrays."""
        n = len(starts)
        a = np.zeros(n, np.int64)
        i = np.zeros(n, np.int64)
        if n:
            with KERNEL_LOCK:
                K.score_runs(self.rp, self.rn, self.use_pos, self.use_neg, self.sel_pos, self.sel_neg,
                             starts, lengths, item_lo, item_hi, self.pad_left, self.pad_right, a, i)
        return i.astype(np.int32), (a + self.k - i).astype(np.int32)


def _start_level(p_ge: np.ndarray, want: float, below: int) -> int:
    """The highest level m < below whose positions with c >= m number at least ``want`` (else 1)."""
    for m in range(below - 1, 0, -1):
        if p_ge[m] >= want:
            return m
    return 1


def _next_level(p_ge: np.ndarray, lo: int, nodes_ge_lo: int, want_nodes: float) -> int:
    """A lower level to collect from when the levels >= lo gave too few candidates: the highest one
    expected to give ``want_nodes`` (with a margin), at the ratio of candidates to positions just seen."""
    if nodes_ge_lo > 0 and p_ge[lo] > 0:
        return _start_level(p_ge, 1.5 * want_nodes * p_ge[lo] / nodes_ge_lo, lo)
    return _start_level(p_ge, 8 * max(float(p_ge[lo]), 1.0), lo)


def lstmvis_levels(p_ge: np.ndarray, k: int, cap: int | None, collect) -> tuple[int, int]:
    """LSTMVis mode's level search: ``(lo, m_lo)``, the level runs were collected from and the highest level
    ``m_lo`` with at least ``cap`` candidates of level >= m_lo (1 without a cap or when there are fewer).
    ``collect(lo)`` collects the runs of level >= lo and returns the candidates per level (over the whole
    corpus: the single file's runs, or the sum over shards); ``p_ge`` chooses where to start."""
    lo = 1 if cap is None else _start_level(p_ge, 4 * cap, k + 1)
    while True:
        cum = np.cumsum(np.asarray(collect(lo))[::-1])[::-1]  # cum[m]: nodes with level >= m
        if cap is not None and cum[lo] >= cap:
            return lo, max(m for m in range(lo, k + 1) if cum[m] >= cap)
        if lo == 1:
            return lo, 1
        lo = _next_level(p_ge, lo, int(cum[lo]), cap)


def lstmvis_score2(q: MatchQuery, levels: np.ndarray, prev: np.ndarray, nxt: np.ndarray) -> np.ndarray:
    """LSTMVis's candidate score: the level less the counts just outside the run on the padded sides
    (the level counted once for both sides)."""
    if q.pad_left > 0 and q.pad_right > 0:
        return levels - prev - nxt
    if q.pad_left > 0:
        return levels - prev
    if q.pad_right > 0:
        return levels - nxt
    return np.zeros(len(levels), np.int64)


def lstmvis_ranked(q: MatchQuery, starts, lengths, items, levels, inter, union, m_lo: int) -> MatchResults:
    """LSTMVis mode's scored candidates (in the candidate order) ranked by intersection descending, union,
    then length descending (stable: ties keep the candidate order); the first ``q.limit``."""
    rank = np.lexsort((-lengths, union, -inter.astype(np.int64)))
    if q.limit is not None:
        rank = rank[:q.limit]
    jac = inter[rank] / union[rank]
    return MatchResults(
        q, starts[rank], lengths[rank], items[rank], levels[rank], inter[rank], union[rank], jac,
        np.ones(len(rank)), jac.copy(), n_candidates=len(starts), exact=True, lowest_level=m_lo,
        elapsed_s=0.0, extra={})


def ranked_results(q: MatchQuery, parts: list, limit: int | None, **extra) -> MatchResults:
    """The scored candidates ``parts`` (each ``(starts, lengths, levels, items, intersection, union, jaccard,
    length_factor, score)``) as results in the one order of every match: score descending, then
    intersection descending, then start, then length (so a sharded match ties exactly as the single
    file's); the first ``limit``. ``extra``: ``MatchResults`` fields (``n_candidates``, ...)."""
    if parts:
        cols = [np.concatenate([p[j] for p in parts]) for j in range(9)]
    else:
        cols = [np.zeros(0, np.int64)] * 4 + [np.zeros(0, np.int32)] * 2 + [np.zeros(0)] * 3
    starts, lengths, levels, items, inter, union, jac, lf, score = cols
    rank = np.lexsort((lengths, starts, -inter.astype(np.int64), -score))
    if limit is not None:
        rank = rank[:limit]
    return MatchResults(
        q, starts[rank].astype(np.int64), lengths[rank].astype(np.int64), items[rank].astype(np.int64),
        levels[rank].astype(np.int32), inter[rank].astype(np.int32), union[rank].astype(np.int32),
        jac[rank].astype(np.float64), lf[rank].astype(np.float64), score[rank].astype(np.float64), **extra)


def match(index: BitIndex, query: MatchQuery, *, task=None) -> MatchResults:
    """Search the whole index for ranges where the query's units are on together; see the module doc."""
    t_begin = time.perf_counter()
    task = ensure_task(task)
    q = query
    k = q.k
    units = np.asarray(q.units, np.int64)
    signs = np.asarray(q.signs, np.int64)
    _check_units(index, units, signs)
    n = int(index.n_positions)
    item_offsets = np.asarray(index.item_offsets, np.int64)
    timings = {}
    task.progress(0, _STEPS, "counting selected units")

    t = time.perf_counter()
    nbytes = -(-n // 8)
    c, vhist = _counts(index, units, signs, 0, nbytes, True)
    p_ge = np.cumsum(vhist[::-1])[::-1]  # p_ge[m]: positions with c >= m (padding bits are 0)
    timings["count"] = time.perf_counter() - t
    task.progress(1, _STEPS, "finding runs")

    max_len = n if q.max_length is None else min(n, q.max_length)
    runs = _Runs(c, item_offsets, n, k, q.min_length, max_len)
    scorer = _Scorer(index, q)

    def item_bounds(starts):
        items = np.searchsorted(item_offsets, starts, side="right") - 1
        return items, item_offsets[items], item_offsets[items + 1]

    t = time.perf_counter()
    if q.mode == "lstmvis":
        cap = q.candidate_cap

        def collect(lo):
            per_level = runs.collect(lo)
            task.check()
            return per_level

        _, m_lo = lstmvis_levels(p_ge, k, cap, collect)
        timings["collect"] = time.perf_counter() - t
        starts, lengths, levels = runs.take(m_lo, k)
        timings["take"] = time.perf_counter() - t
        items, item_lo, item_hi = item_bounds(starts)
        # the counts just outside the run; outside its item nothing is on (0)
        prev = np.where(starts > item_lo, c[np.maximum(starts - 1, 0)], 0).astype(np.int64)
        nxt = np.where(starts + lengths < item_hi, c[np.minimum(starts + lengths, n - 1)], 0).astype(np.int64)
        score2 = lstmvis_score2(q, levels.astype(np.int64), prev, nxt)
        order = np.argsort(-score2, kind="stable")
        if cap is not None:
            order = order[:cap]
        starts, lengths, levels = starts[order], lengths[order], levels[order]
        items, item_lo, item_hi = items[order], item_lo[order], item_hi[order]
        timings["runs"] = time.perf_counter() - t
        task.progress(2, _STEPS, f"scoring {len(starts)} candidates")

        t = time.perf_counter()
        inter, union = scorer(starts, lengths, item_lo, item_hi)
        timings["score"] = time.perf_counter() - t
        task.progress(3, _STEPS, "ranking")
        res = lstmvis_ranked(q, starts, lengths, items, levels, inter, union, m_lo)
        lowest = m_lo
        exact = True
    else:
        res, lowest, exact = _match_scored(q, runs, scorer, p_ge, item_bounds, task, timings, t)
    timings["total"] = time.perf_counter() - t_begin
    task.progress(_STEPS, _STEPS, f"{len(res)} matches")
    return MatchResults(
        q, res.starts, res.lengths, res.items, res.levels, res.intersection, res.union, res.jaccard,
        res.length_factor, res.score, n_candidates=res.n_candidates, exact=exact, lowest_level=int(lowest),
        elapsed_s=time.perf_counter() - t_begin, extra={"timings": timings, "passes": runs.passes})


def _match_scored(q, runs, scorer, p_ge, item_bounds, task, timings, t_runs):
    k = q.k
    cap, limit = q.candidate_cap, q.limit
    ls = q.selection_length
    parts = []  # (starts, lengths, levels, items, inter, union, jaccard, length factor, score)
    n_scored = 0
    hi = k  # the highest level not yet collected
    lo = 1 if limit is None else _start_level(p_ge, 4 * limit, k + 1)
    exact = False
    lowest = k + 1
    t_score = 0.0
    while True:
        per_level = runs.collect(lo)
        task.check()
        band = per_level[lo:hi + 1]  # index h - lo
        n_new = int(band.sum())
        room = n_new if cap is None else max(0, min(n_new, cap - n_scored))
        if room == n_new:
            next_level = lo - 1  # every candidate of the band gets scored
            lowest = lo
        if room > 0:
            # only the levels needed to fill `room` (level-major order)
            cum = np.cumsum(band[::-1])  # cum[j]: nodes with level in [hi - j, hi]
            m_cut = hi - int(np.searchsorted(cum, room))
            starts, lengths, levels = runs.take(m_cut, hi)
            if room < n_new:
                # the cap cuts the band: the first unscored candidate has the highest level left
                next_level = int(levels[room]) if room < len(levels) else \
                    lo + int(np.flatnonzero(per_level[lo:m_cut])[-1])
                starts, lengths, levels = starts[:room], lengths[:room], levels[:room]
                lowest = int(levels[-1])
            ts = time.perf_counter()
            items, item_lo, item_hi = item_bounds(starts)
            inter, union = scorer(starts, lengths, item_lo, item_hi)
            jac = inter / union
            if ls is None:
                lf = np.ones(len(starts))
            else:
                lf = (np.minimum(lengths, ls) / np.maximum(lengths, ls)) ** q.length_weight
            parts.append((starts, lengths, levels, items, inter, union, jac, lf, jac * lf))
            n_scored += len(starts)
            t_score += time.perf_counter() - ts
        elif n_new > 0:
            next_level = lo + int(np.flatnonzero(band)[-1])
        task.progress(2, _STEPS, f"scored {n_scored} candidates down to level {min(lowest, k)}")
        if next_level <= 0:
            exact = True  # every candidate scored
            break
        if limit is not None and parts:
            # nothing unscored can score above next_level / k
            bound = next_level / k
            if sum(int(np.count_nonzero(p[-1] > bound)) for p in parts) >= limit:
                exact = True
                break
        if room < n_new:
            break  # the cap stops the search before the top `limit` is proven
        # more candidates: 4x as many, and at once as many as the cap allows (scoring is the cheap part)
        want = 4 * max(int(per_level[lo:].sum()), limit or 1)
        if cap is not None:
            want = max(want, cap)
        hi = lo - 1
        lo = _next_level(p_ge, lo, int(per_level[lo:].sum()), want)
    timings["runs"] = time.perf_counter() - t_runs - t_score
    timings["score"] = t_score
    task.progress(3, _STEPS, "ranking")
    res = ranked_results(q, parts, limit, n_candidates=n_scored)
    return res, min(lowest, k), exact
