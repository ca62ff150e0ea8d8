"""Whole-corpus matching over shards, with exactly the results of ``matching.match`` on the single file.

Read ``matching``'s docstring first: counts c[t], candidates (Cartesian-tree nodes of c, split at item
boundaries), their levels, the two modes. Since no item spans two shards, no candidate does either:
each candidate, its count, its neighbours' counts (``score2``) and its exact re-score (A, I, U) are
computed inside one shard, from that shard's index alone. What is global is only *which* candidates
are scored and kept, and ``matching.match`` decides that from three things that add across shards:

- ``p_ge[m]``, the positions with c >= m (an estimate from a sampled histogram), which only chooses
  the level ``lo`` from which runs are collected;
- ``per_level[h]``, the exact number of candidates of level h (for h >= lo);
- the candidate order (level descending, then start): over shards, (level descending, shard, start
  within the shard), so the first r candidates of a level are those of the first shards.

So the coordinator runs ``matching.match``'s own control flow on the sums, and the shards do the
work in phases (each a task per shard, ``shard_exec``): **counts** (c and its histogram; returns p_ge),
**collect** at a level lo (returns per_level), and **take** (scored mode: the shard's share of the
candidates the coordinator chose, scored, in global coordinates). In ``lstmvis`` mode the level m_lo (the highest m
with at least ``candidate_cap`` candidates of level >= m) is fixed by the summed per_level; each shard
orders its candidates of level >= m_lo by (score2 descending, level descending, start) as the single
file does and returns its first ``candidate_cap`` (no more of its candidates can be among the global
first ``candidate_cap`` in that order); the coordinator merges them by the same order and cuts to
``candidate_cap``, the shards score only the survivors (**score**), and the coordinator ranks them
stably by (-I, U, -length) from the merged order, so ties break in the single file's order. In
``scored`` mode the coordinator runs ``matching._match_scored``'s band loop, handing each shard the
length of its prefix of each band (the cap cuts a band by level, then by shard, then by start); the
stopping bound and the final ranking (by score, -I, start, length, a total order) are computed on the
merged scores.

Results equal the single file's in every field that describes matches (starts, lengths, items,
levels, intersection, union, jaccard, length factor, score, order) and in ``exact``; in lstmvis mode
also in ``n_candidates`` and ``lowest_level`` (both follow from the exact per-level counts). The
histogram is sampled (``matching._counts``) when the corpus has 524,288 positions or more, and the
shards' summed estimate can then choose another ``lo`` than the single file's: that changes only how
many passes collect runs and, in scored mode, possibly ``n_candidates`` and ``lowest_level``. The
matches cannot change: in scored mode the result is always the top ``limit`` (by score, -I, start,
length) of the first ``candidate_cap`` candidates in (level descending, start) order, however the
bands were cut (the loop stops early only once that top is proven), and ``exact`` is whether that top
is proven for all candidates. The per-shard counts are kept in the worker between the phases
of one query (``shard_exec.worker_state``) and recomputed if that worker lost them.
"""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass

import numpy as np

from lstmviz.analysis.bitindex import IndexKey
from lstmviz.analysis.match_types import MatchQuery, MatchResults
from lstmviz.analysis.matching import (
    _check_units,
    _counts,
    _next_level,
    _Runs,
    _Scorer,
    _start_level,
    lstmvis_levels,
    lstmvis_ranked,
    lstmvis_score2,
    ranked_results,
)
from lstmviz.analysis.shard_exec import drop_state, worker_state
from lstmviz.analysis.shard_index import shard_index
from lstmviz.analysis.transforms import UnitStats
from lstmviz.tasks import ensure_task


@dataclass(frozen=True)
class ShardRef:
    """What a task needs to reach one shard's index, and where the shard lies in the corpus."""

    path: str
    fingerprint: str
    key: IndexKey
    stats: UnitStats | None
    row_offset: int
    item_offset: int


class _ShardQuery:
    """One query on one shard, kept in the worker between phases: the counts, runs and scorer."""

    def __init__(self, ref: ShardRef, q: MatchQuery):
        index = shard_index(ref.path, ref.key, ref.stats, ref.fingerprint)
        units = np.asarray(q.units, np.int64)
        signs = np.asarray(q.signs, np.int64)
        _check_units(index, units, signs)
        n = int(index.n_positions)
        self.n = n
        self.item_offsets = np.asarray(index.item_offsets, np.int64)
        self.c, vhist = _counts(index, units, signs, 0, -(-n // 8), True)
        self.p_ge = np.cumsum(vhist[::-1])[::-1]
        max_len = n if q.max_length is None else min(n, q.max_length)
        self.runs = _Runs(self.c, self.item_offsets, n, q.k, q.min_length, max_len)
        self.scorer = _Scorer(index, q)
        self.ref = ref

    def collected(self, lo: int) -> None:
        if self.runs.lo != lo:
            self.runs.collect(lo)

    def bounds(self, starts):
        items = np.searchsorted(self.item_offsets, starts, side="right") - 1
        return items, self.item_offsets[items], self.item_offsets[items + 1]

    def scored(self, starts, lengths, levels, **extra) -> dict:
        items, lo, hi = self.bounds(starts)
        inter, union = self.scorer(starts, lengths, lo, hi)
        return {"starts": starts + self.ref.row_offset, "lengths": lengths, "levels": levels,
                "items": items + self.ref.item_offset, "inter": inter, "union": union, **extra}


def _state(ref: ShardRef, q: MatchQuery, qid: str) -> _ShardQuery:
    return worker_state(("query", qid, ref.path), lambda: _ShardQuery(ref, q))


def phase_counts(ref: ShardRef, q: MatchQuery, qid: str) -> np.ndarray:
    """Phase 1 (a task): the shard's counts; returns p_ge (positions with c >= m, an estimate)."""
    return _state(ref, q, qid).p_ge


def phase_collect(ref: ShardRef, q: MatchQuery, qid: str, lo: int) -> np.ndarray:
    """Phase 2 (a task): collect the runs of level >= lo; returns the candidates per level."""
    s = _state(ref, q, qid)
    s.runs.collect(lo)
    return s.runs.counts.sum(axis=0)


def phase_take(ref: ShardRef, q: MatchQuery, qid: str, lo: int, m_cut: int, hi: int, keep: int) -> dict:
    """Phase 3, scored mode (a task): the first ``keep`` candidates of levels [m_cut, hi] (level
    descending, then start), scored."""
    s = _state(ref, q, qid)
    s.collected(lo)
    starts, lengths, levels = s.runs.take(m_cut, hi)
    return s.scored(starts[:keep], lengths[:keep], levels[:keep])


def phase_lstmvis(ref: ShardRef, q: MatchQuery, qid: str, lo: int, m_lo: int) -> dict:
    """Phase 3, lstmvis mode (a task): the shard's candidates of level >= m_lo in the single file's
    order (score2 descending, level descending, start), its first ``candidate_cap``, not yet scored."""
    s = _state(ref, q, qid)
    s.collected(lo)
    starts, lengths, levels = s.runs.take(m_lo, q.k)
    _, item_lo, item_hi = s.bounds(starts)
    c, n = s.c, s.n
    prev = np.where(starts > item_lo, c[np.maximum(starts - 1, 0)], 0).astype(np.int64)
    nxt = np.where(starts + lengths < item_hi, c[np.minimum(starts + lengths, n - 1)], 0).astype(np.int64)
    score2 = lstmvis_score2(q, levels.astype(np.int64), prev, nxt)
    order = np.argsort(-score2, kind="stable")
    if q.candidate_cap is not None:
        order = order[:q.candidate_cap]
    return {"starts": starts[order] + ref.row_offset, "lengths": lengths[order], "levels": levels[order],
            "score2": score2[order]}


def phase_score(ref: ShardRef, q: MatchQuery, qid: str, starts, lengths, levels) -> dict:
    """Phase 4, lstmvis mode (a task): score the shard's candidates that survived the global cap
    (``starts`` in global positions)."""
    s = _state(ref, q, qid)
    return s.scored(np.asarray(starts, np.int64) - ref.row_offset, np.asarray(lengths, np.int64), levels)


def phase_release(qid: str) -> int:
    """Forget the query's per-shard state in this worker (a task)."""
    return drop_state(lambda k: k[0] == "query" and k[1] == qid)


# --- the coordinator -------------------------------------------------------------------------------


def match_shards(shards, key: IndexKey, query: MatchQuery, backend, *, stats: UnitStats | None = None,
                 task=None) -> MatchResults:
    """``matching.match`` over every shard of ``shards`` (a ``ShardSet``) on the indices of ``key``
    (``shard_index.build_indices``; built on first use), in global coordinates. ``stats``: the
    global statistics of a z-score key (``shard_index.index_stats``)."""
    t_begin = time.perf_counter()
    task = ensure_task(task)
    q = query
    info = shards.tap(key.tap)
    if key.transform == "zscore" and stats is None and len(shards) > 1:
        raise ValueError("a z-score index over shards needs the global statistics (shard_index.index_stats)")
    units = np.asarray(q.units, np.int64)
    if units.size and (units.min() < 0 or units.max() >= info.units):
        bad = units.min() if units.min() < 0 else units.max()
        raise ValueError(f"unit {bad} is outside 0..{info.units - 1} ({info.units} units)")
    rows = shards.position_offsets(info.axis)
    items = shards.item_starts()
    refs = [ShardRef(s.path, s.fingerprint, key, stats if key.transform == "zscore" else None, int(rows[j]),
                     int(items[j])) for j, s in enumerate(shards.shards)]
    qid = secrets.token_hex(8)
    slots = list(range(len(refs)))
    timings = {}
    rounds = [0]

    def run(fn, *args_per_shard, message=""):
        t = time.perf_counter()
        calls = [(fn, (ref, q, qid, *(a[j] for a in args_per_shard))) for j, ref in enumerate(refs)]
        out = backend.run(calls, slots, task=None, message=message)
        timings[fn.__name__] = timings.get(fn.__name__, 0.0) + time.perf_counter() - t
        rounds[0] += 1
        task.check()
        return out

    def every(value):
        return [value] * len(refs)

    try:
        task.progress(0, 4, "counting selected units")
        p_ge = np.sum(run(phase_counts), axis=0)
        task.progress(1, 4, "finding runs")
        if q.mode == "lstmvis":
            res = _lstmvis(q, p_ge, run, every)
        else:
            res = _scored(q, p_ge, run, every, task)
    finally:
        backend.run([(phase_release, (qid,)) for _ in refs], slots, wait=False)
    timings["total"] = time.perf_counter() - t_begin
    task.progress(4, 4, f"{len(res)} matches")
    return MatchResults(
        q, res.starts, res.lengths, res.items, res.levels, res.intersection, res.union, res.jaccard,
        res.length_factor, res.score, n_candidates=res.n_candidates, exact=res.exact,
        lowest_level=res.lowest_level, elapsed_s=time.perf_counter() - t_begin,
        extra={"timings": timings, "rounds": rounds[0], "shards": len(refs)})


def _lstmvis(q, p_ge, run, every) -> MatchResults:
    """``matching.match`` in lstmvis mode: the level search on the summed per-level counts; the shards'
    candidates merged in the single file's order and cut to the cap; only the survivors are scored."""
    k, cap = q.k, q.candidate_cap
    lo, m_lo = lstmvis_levels(p_ge, k, cap, lambda lo: np.sum(run(phase_collect, every(lo)), axis=0))
    parts = run(phase_lstmvis, every(lo), every(m_lo))
    shard = np.concatenate([np.full(len(p["starts"]), j, np.int64) for j, p in enumerate(parts)]) if parts else \
        np.zeros(0, np.int64)
    starts, lengths, levels = _cat(parts, "starts", np.int64), _cat(parts, "lengths", np.int64), \
        _cat(parts, "levels", np.int32)
    score2 = _cat(parts, "score2", np.int64)
    order = np.lexsort((starts, -levels.astype(np.int64), -score2))  # the single file's candidate order
    if cap is not None:
        order = order[:cap]
    keep = [order[shard[order] == j] for j in range(len(parts))]  # each shard's survivors, in that order
    scored = run(phase_score, [starts[o] for o in keep], [lengths[o] for o in keep], [levels[o] for o in keep])
    # back into the merged order: survivors of shard j are its entries of `order`, in order
    inter = np.empty(len(order), np.int32)
    union = np.empty(len(order), np.int32)
    items = np.empty(len(order), np.int64)
    position = np.empty(len(starts), np.int64)
    position[order] = np.arange(len(order))
    for o, got in zip(keep, scored):
        at = position[o]
        inter[at], union[at], items[at] = got["inter"], got["union"], got["items"]
    starts, lengths, levels = starts[order], lengths[order], levels[order]
    return lstmvis_ranked(q, starts, lengths, items, levels, inter, union, m_lo)


def _cat(parts, name, dtype):
    return np.concatenate([np.asarray(p[name], dtype) for p in parts]) if parts else np.zeros(0, dtype)


def _scored(q, p_ge, run, every, task) -> MatchResults:
    """``matching._match_scored`` on the summed per-level counts; the shards score their prefixes."""
    k = q.k
    cap, limit = q.candidate_cap, q.limit
    ls = q.selection_length
    parts = []
    n_scored = 0
    hi = k
    lo = 1 if limit is None else _start_level(p_ge, 4 * limit, k + 1)
    exact = False
    lowest = k + 1
    while True:
        shard_levels = np.array(run(phase_collect, every(lo)), np.int64)  # [shards, k + 1]
        per_level = shard_levels.sum(axis=0)
        band = per_level[lo:hi + 1]
        n_new = int(band.sum())
        room = n_new if cap is None else max(0, min(n_new, cap - n_scored))
        if room == n_new:
            next_level = lo - 1
            lowest = lo
        if room > 0:
            cum = np.cumsum(band[::-1])
            m_cut = hi - int(np.searchsorted(cum, room))
            keep = _prefixes(shard_levels, m_cut, hi, room)
            if room < n_new:
                left_at_cut = int(per_level[m_cut]) - int(room - shard_levels[:, m_cut + 1:hi + 1].sum())
                next_level = m_cut if left_at_cut > 0 else lo + int(np.flatnonzero(per_level[lo:m_cut])[-1])
                lowest = m_cut
            got = run(phase_take, every(lo), every(m_cut), every(hi), keep)
            starts, lengths, levels = _cat(got, "starts", np.int64), _cat(got, "lengths", np.int64), \
                _cat(got, "levels", np.int32)
            items, inter, union = _cat(got, "items", np.int64), _cat(got, "inter", np.int32), _cat(got, "union", np.int32)
            jac = inter / union
            lf = np.ones(len(starts)) if ls is None else \
                (np.minimum(lengths, ls) / np.maximum(lengths, ls)) ** q.length_weight
            parts.append((starts, lengths, levels, items, inter, union, jac, lf, jac * lf))
            n_scored += len(starts)
        elif n_new > 0:
            next_level = lo + int(np.flatnonzero(band)[-1])
        task.progress(2, 4, f"scored {n_scored} candidates down to level {min(lowest, k)}")
        if next_level <= 0:
            exact = True
            break
        if limit is not None and parts:
            bound = next_level / k
            if sum(int(np.count_nonzero(p[-1] > bound)) for p in parts) >= limit:
                exact = True
                break
        if room < n_new:
            break
        want = 4 * max(int(per_level[lo:].sum()), limit or 1)
        if cap is not None:
            want = max(want, cap)
        hi = lo - 1
        lo = _next_level(p_ge, lo, int(per_level[lo:].sum()), want)
    task.progress(3, 4, "ranking")
    return ranked_results(q, parts, limit, n_candidates=n_scored, exact=exact, lowest_level=min(lowest, k))


def _prefixes(shard_levels: np.ndarray, m_cut: int, hi: int, room: int) -> list[int]:
    """Per shard, how many of its candidates of levels [m_cut, hi] (level descending, then start) are
    among the first ``room`` of the band in the global order (level descending, shard, start)."""
    above = shard_levels[:, m_cut + 1:hi + 1].sum(axis=1)
    left = room - int(above.sum())  # candidates of level m_cut still to take, shard by shard
    keep = []
    for j in range(len(shard_levels)):
        r = min(int(shard_levels[j, m_cut]), max(0, left))
        left -= r
        keep.append(int(above[j]) + r)
    return keep
