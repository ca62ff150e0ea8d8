"""Whole-corpus matching (lstmviz.analysis.matching) against slow pure-Python definitions."""

from __future__ import annotations

import itertools
from dataclasses import replace

import numpy as np
import pytest

from lstmviz.analysis.bitindex import BitIndex
from lstmviz.analysis.lstmvis_reference import lstmvis_precise
from lstmviz.analysis.match_types import MatchQuery
from lstmviz.analysis.matching import match, match_counts
from lstmviz.tasks import Cancelled, Task

# --- the definitions, written out slowly --------------------------------------------------------


def _on(on_pos, on_neg, unit, sign):
    return on_pos[:, unit] if sign > 0 else on_neg[:, unit]


def brute_counts(on_pos, on_neg, units, signs):
    c = np.zeros(on_pos.shape[0], np.int64)
    for u, s in zip(units, signs):
        c += _on(on_pos, on_neg, u, s)
    return c


def brute_candidates(c, item_offsets, k, min_len, max_len):
    """{(start, length): level}: per level m = k..1 the maximal runs of c >= m inside each item, with the
    length filter; a run already found at a stricter level keeps that level. List in (level desc, start)."""
    found = {}
    order = []
    for m in range(k, 0, -1):
        for a, b in itertools.pairwise(item_offsets):
            t = a
            while t < b:
                if c[t] >= m:
                    s = t
                    while t < b and c[t] >= m:
                        t += 1
                    length = t - s
                    if min_len <= length <= max_len and (s, length) not in found:
                        found[(s, length)] = m
                        order.append((m, s, length))
                else:
                    t += 1
    order.sort(key=lambda x: (-x[0], x[1]))
    return order


def brute_active(on_pos, on_neg, start, length, a, b, pad_left, pad_right, space):
    """The signed units of `space` on over the run and off at the padding inside the item [a, b)."""
    out = set()
    signs = {"positive": (1,), "negative": (-1,), "both": (1, -1)}[space]
    pad = [t for t in range(start - pad_left, start) if t >= a] + \
          [t for t in range(start + length, start + length + pad_right) if t < b]
    for sign in signs:
        on = on_pos if sign > 0 else on_neg
        active = on[start:start + length].all(axis=0) & ~on[pad].any(axis=0)
        out |= {(int(u), sign) for u in np.flatnonzero(active)}
    return out


def brute_match(on_pos, on_neg, item_offsets, q: MatchQuery):
    """Every field of the results, by the module's definitions, with no shortcuts."""
    k = q.k
    n = on_pos.shape[0]
    item_offsets = np.asarray(item_offsets)
    c = brute_counts(on_pos, on_neg, q.units, q.signs)
    max_len = n if q.max_length is None else q.max_length
    cands = brute_candidates(c, item_offsets, k, q.min_length, max_len)
    sel = set(zip(q.units, q.signs))

    def item_of(s):
        i = int(np.searchsorted(item_offsets, s, side="right") - 1)
        return i, int(item_offsets[i]), int(item_offsets[i + 1])

    def score(m, s, length):
        i, a, b = item_of(s)
        act = brute_active(on_pos, on_neg, s, length, a, b, q.pad_left, q.pad_right, q.space)
        inter = len(act & sel)
        union = len(act | sel)
        return {"start": s, "length": length, "item": i, "level": m, "inter": inter, "union": union,
                "jac": inter / union}

    lowest = 1
    if q.mode == "lstmvis":
        cap = q.candidate_cap
        if cap is not None:
            kept, total = [], 0
            for m in range(k, 0, -1):
                level = [x for x in cands if x[0] == m]
                kept += level
                total += len(level)
                lowest = m
                if total >= cap:
                    break
            cands = kept

        def score2(x):  # LSTMVis's: m - prev, m - next, or m - next - prev; nothing on outside an item
            m, s, length = x
            _, a, b = item_of(s)
            prev = c[s - 1] if s > a else 0
            nxt = c[s + length] if s + length < b else 0
            if q.pad_left > 0 and q.pad_right > 0:
                return m - nxt - prev
            if q.pad_left > 0:
                return m - prev
            if q.pad_right > 0:
                return m - nxt
            return 0

        cands = sorted(cands, key=lambda x: -score2(x))
        if cap is not None:
            cands = cands[:cap]
        rows = [score(*x) for x in cands]
        for r in rows:
            r["lf"] = 1.0
            r["score"] = r["jac"]
        rows.sort(key=lambda r: (-r["inter"], r["union"], -r["length"]))
    else:
        rows = [score(*x) for x in cands]
        for r in rows:
            ls = q.selection_length
            r["lf"] = 1.0 if ls is None else (min(r["length"], ls) / max(r["length"], ls)) ** q.length_weight
            r["score"] = r["jac"] * r["lf"]
        rows.sort(key=lambda r: (-r["score"], -r["inter"], r["start"], r["length"]))
    if q.limit is not None:
        rows = rows[:q.limit]
    brute_match.lowest = lowest
    return rows, len(cands)


def assert_same(res, rows):
    assert len(res) == len(rows)
    assert res.starts.tolist() == [r["start"] for r in rows]
    assert res.lengths.tolist() == [r["length"] for r in rows]
    assert res.items.tolist() == [r["item"] for r in rows]
    assert res.levels.tolist() == [r["level"] for r in rows]
    assert res.intersection.tolist() == [r["inter"] for r in rows]
    assert res.union.tolist() == [r["union"] for r in rows]
    np.testing.assert_allclose(res.jaccard, [r["jac"] for r in rows])
    np.testing.assert_allclose(res.length_factor, [r["lf"] for r in rows])
    np.testing.assert_allclose(res.score, [r["score"] for r in rows])


# --- data -----------------------------------------------------------------------------------------


def random_on(rng, n, d, p=0.35, stay=0.7):
    """Sticky random on/off states (runs of various lengths), independently per unit."""
    on = np.zeros((n, d), bool)
    on[0] = rng.random(d) < p
    for t in range(1, n):
        keep = rng.random(d) < stay
        on[t] = np.where(keep, on[t - 1], rng.random(d) < p)
    return on


def random_offsets(rng, n, mean=25):
    cuts = np.sort(rng.choice(np.arange(1, n), size=max(1, n // mean), replace=False))
    return np.concatenate(([0], cuts, [n])).astype(np.int64)


@pytest.fixture(scope="module", params=[20, 64], ids=["d20", "d64"])
def data(request):
    """Units in bytes (d=20) and in whole 64-bit words (d=64: the kernels' word path, as for 512 units)."""
    rng = np.random.default_rng(7)
    n, d = 400, request.param
    on_pos = random_on(rng, n, d)
    on_neg = random_on(rng, n, d, p=0.25) & ~on_pos
    offsets = random_offsets(rng, n)
    return on_pos, on_neg, offsets, BitIndex.from_bool(on_pos, on_neg, offsets)


# --- tests ----------------------------------------------------------------------------------------


def test_match_counts_equal_numpy(data):
    on_pos, on_neg, _, index = data
    units, signs = [3, 0, 7, 7, 19], [1, 1, 1, -1, -1]
    want = brute_counts(on_pos, on_neg, units, signs)
    for start, stop in [(0, 400), (5, 13), (8, 16), (399, 400), (17, 17), (1, 399)]:
        got = match_counts(index, units, signs, start, stop)
        assert got.dtype == np.int32
        assert got.tolist() == want[start:stop].tolist()
    assert match_counts(index, [2], None, 0, 400).tolist() == on_pos[:, 2].astype(int).tolist()
    with pytest.raises(ValueError):
        match_counts(index, [on_pos.shape[1]], [1], 0, 10)
    with pytest.raises(IndexError):
        match_counts(index, [1], [1], 0, 401)


@pytest.mark.parametrize("pad_left", [0, 1, 2, 3])
@pytest.mark.parametrize("pad_right", [0, 1, 2, 3])
@pytest.mark.parametrize("mode", ["lstmvis", "scored"])
def test_every_field_equals_the_definition(data, mode, pad_left, pad_right):
    on_pos, on_neg, offsets, index = data
    q = MatchQuery(units=(1, 4, 6, 9, 12), mode=mode, pad_left=pad_left, pad_right=pad_right, limit=None,
                   candidate_cap=None, selection_length=3 if mode == "scored" else None)
    res = match(index, q)
    rows, n_cands = brute_match(on_pos, on_neg, offsets, q)
    assert_same(res, rows)
    assert res.n_candidates == n_cands
    assert res.exact and res.lowest_level == 1


@pytest.mark.parametrize("space", ["positive", "negative", "both", None])
def test_signed_units_and_unit_spaces(data, space):
    on_pos, on_neg, offsets, index = data
    for mode in ("lstmvis", "scored"):
        q = MatchQuery(units=(2, 5, 5, 11), signs=(1, 1, -1, -1), mode=mode, pad_left=1, pad_right=1,
                       unit_space=space, limit=40, candidate_cap=None)
        rows, _ = brute_match(on_pos, on_neg, offsets, q)
        assert_same(match(index, q), rows)
    # negative-only selection: counts come from the negative bits
    q = MatchQuery(units=(0, 3, 8), signs=(-1, -1, -1), limit=None, candidate_cap=None)
    assert q.space == "negative"
    rows, _ = brute_match(on_pos, on_neg, offsets, q)
    assert_same(match(index, q), rows)


def test_runs_never_cross_items_and_padding_outside_the_item_is_unchecked():
    # units 0-2 on over positions 3..8; an item boundary at 6; unit 3 on at 4 and 6, 7
    n, d = 12, 4
    on = np.zeros((n, d), bool)
    on[3:9, :3] = True
    on[4, 3] = True
    on[6:8, 3] = True
    index = BitIndex.from_bool(on, None, [0, 6, n])
    q = MatchQuery(units=(0, 1, 2, 3), pad_left=2, pad_right=0, min_length=1, limit=None, candidate_cap=None)
    res = match(index, q)
    spans = set(zip(res.starts.tolist(), res.stops.tolist()))
    assert len(spans) == len(res)
    assert (3, 6) in spans and (6, 9) in spans and (6, 8) in spans
    assert all(a >= 6 or b <= 6 for a, b in spans)  # nothing crosses position 6
    # [6, 8): units 0-3 all on; the padding 4, 5 lies in item 0 and is not checked, so every unit counts
    spans = list(zip(res.starts.tolist(), res.stops.tolist()))
    i = spans.index((6, 8))
    assert res.intersection[i] == 4 and res.union[i] == 4 and res.levels[i] == 4 and res.items[i] == 1
    # [3, 6) in item 0: padding 1, 2 is inside the item and off; unit 3 is off at 3 -> not active
    i = spans.index((3, 6))
    assert res.intersection[i] == 3 and res.items[i] == 0
    # an empty item between the two changes nothing but the item numbers
    res2 = match(BitIndex.from_bool(on, None, [0, 6, 6, n]), q)
    assert res2.starts.tolist() == res.starts.tolist() and res2.lengths.tolist() == res.lengths.tolist()
    assert res2.intersection.tolist() == res.intersection.tolist()
    assert res2.items.tolist() == [0 if s < 6 else 2 for s in res.starts.tolist()]
    # one item: the runs join, and the padding 4, 5 of [6, 8) is checked: every unit is on there
    res1 = match(BitIndex.from_bool(on), q)
    spans1 = list(zip(res1.starts.tolist(), res1.stops.tolist()))
    assert sorted(spans1) == [(3, 9), (4, 5), (6, 8)]
    assert res1.intersection[spans1.index((6, 8))] == 0
    assert res1.intersection[spans1.index((3, 9))] == 3


def test_length_filters_and_single_token_patterns(data):
    on_pos, on_neg, offsets, index = data
    for min_len, max_len in [(1, 1), (2, None), (3, 5), (1, 2)]:
        for mode in ("lstmvis", "scored"):
            q = MatchQuery(units=(0, 3, 7, 10), mode=mode, min_length=min_len, max_length=max_len, limit=None,
                           candidate_cap=None)
            res = match(index, q)
            rows, _ = brute_match(on_pos, on_neg, offsets, q)
            assert_same(res, rows)
            assert np.all(res.lengths >= min_len)
            if max_len is not None:
                assert np.all(res.lengths <= max_len)
    # a single on position of one unit is a match of length 1 (LSTMVis cannot find it: runs >= 2 only)
    on = np.zeros((9, 3), bool)
    on[4, 1] = True
    res = match(BitIndex.from_bool(on), MatchQuery(units=(1,), limit=None))
    assert res.starts.tolist() == [4] and res.lengths.tolist() == [1] and res.jaccard.tolist() == [1.0]
    assert len(match(BitIndex.from_bool(on), MatchQuery(units=(1,), min_length=2))) == 0


@pytest.mark.parametrize("cap", [1, 7, 40, 150])
def test_lstmvis_mode_limit_and_candidate_cap(data, cap):
    on_pos, on_neg, offsets, index = data
    for limit in (1, 10, None):
        q = MatchQuery(units=(1, 2, 3, 13, 14, 15), pad_left=1, pad_right=1, limit=limit, candidate_cap=cap)
        res = match(index, q)
        rows, n_cands = brute_match(on_pos, on_neg, offsets, q)
        assert_same(res, rows)
        assert res.n_candidates == n_cands <= cap
        assert res.lowest_level == brute_match.lowest


def test_scored_mode_is_exact_without_scoring_everything():
    rng = np.random.default_rng(3)
    n, d = 3000, 24
    on = random_on(rng, n, d, p=0.2, stay=0.6)
    # planted: units 0-5 on together for 4..8 positions, all other units off, position before off
    starts = np.arange(50, n - 20, 97)
    for s in starts:
        on[s - 1] = False
        on[s:s + 4 + s % 5] = False
        on[s:s + 4 + s % 5, :6] = True
    offsets = random_offsets(rng, n, mean=200)
    index = BitIndex.from_bool(on, None, offsets)
    q = MatchQuery(units=tuple(range(6)), mode="scored", pad_left=1, limit=10, candidate_cap=None,
                   selection_length=6)
    res = match(index, q)
    full = match(index, replace(q, limit=None))
    rows, n_all = brute_match(on, np.zeros_like(on), offsets, q)
    assert_same(res, rows)
    assert res.exact and full.exact
    assert res.n_candidates < full.n_candidates == n_all  # stopped early, with a proof
    assert res.lowest_level > 1
    assert res.score[-1] > (res.lowest_level - 1) / q.k


def test_scored_mode_cap_makes_it_inexact(data):
    on_pos, on_neg, offsets, index = data
    q = MatchQuery(units=(1, 4, 6, 9, 12), mode="scored", limit=30, candidate_cap=25, pad_left=1)
    res = match(index, q)
    assert not res.exact
    assert res.n_candidates == 25
    # it ranks exactly the first 25 candidates in (level desc, start) order
    c = brute_counts(on_pos, on_neg, q.units, q.signs)
    first = brute_candidates(c, offsets, q.k, 1, 400)[:25]
    assert set(zip(res.starts.tolist(), res.lengths.tolist())) == {(s, length) for _, s, length in first}
    assert res.lowest_level == first[-1][0]
    # a cap above the number of candidates changes nothing
    big = match(index, replace(q, candidate_cap=10**6, limit=None))
    rows, n_all = brute_match(on_pos, on_neg, offsets, replace(q, candidate_cap=None, limit=None))
    assert big.exact and big.n_candidates == n_all
    assert_same(big, rows)


def test_counts_above_127_in_bytes():
    # 128..255 selected units: byte counts whose high bit is set (the 8-at-a-time skips must not be fooled)
    rng = np.random.default_rng(13)
    n, d = 150, 200
    on = rng.random((n, d)) < 0.95
    on[::23] = False
    on[40:44] = rng.random((4, d)) < 0.5
    index = BitIndex.from_bool(on)
    assert match_counts(index, range(d), None, 3, n).tolist() == on[3:].sum(axis=1).tolist()
    for mode in ("lstmvis", "scored"):
        q = MatchQuery(units=tuple(range(d)), mode=mode, limit=None, candidate_cap=None)
        rows, _ = brute_match(on, np.zeros_like(on), [0, n], q)
        assert_same(match(index, q), rows)
    q = MatchQuery(units=tuple(range(d)), candidate_cap=7, limit=5)  # a level high up (>= 128) is enough
    rows, _ = brute_match(on, np.zeros_like(on), [0, n], q)
    res = match(index, q)
    assert_same(res, rows)
    assert res.lowest_level > 128


@pytest.mark.slow  # compiles every kernel once more for uint16 counts (several seconds on a cold cache)
def test_many_units_use_wide_counts():
    rng = np.random.default_rng(11)
    n, d = 120, 300
    on = rng.random((n, d)) < 0.97
    on[::17] = False
    index = BitIndex.from_bool(on)
    units = tuple(range(d))
    assert match_counts(index, units, None, 0, n).tolist() == on.sum(axis=1).tolist()
    q = MatchQuery(units=units, limit=5, candidate_cap=None)
    res = match(index, q)
    rows, _ = brute_match(on, np.zeros_like(on), [0, n], q)
    assert_same(res, rows)


def test_equals_lstmvis_precise_on_one_stream():
    rng = np.random.default_rng(5)
    n, d = 1500, 16
    raw = np.where(random_on(rng, n, d, p=0.4, stay=0.65), 0.8, -0.5) + rng.normal(0.0, 0.2, (n, d))
    raw[0] = raw[-1] = -2.0  # no run touches the ends (theirs skips those, see lstmvis_reference)
    raw = raw.astype(np.float32)
    theta = 0.3
    index = BitIndex.from_bool(raw >= np.arctanh(theta))
    cells = [0, 3, 5, 8, 11]
    for left, right in [(1, 0), (0, 1), (1, 1), (0, 0)]:
        # caps that cut inside the top level, and caps that mix levels (where the score2 formula matters)
        for cap in (10000, 60, 150, 400, 900):
            theirs = lstmvis_precise(raw, cells, theta, constrain_left=bool(left), constrain_right=bool(right),
                                     candidate_cap=cap)
            q = MatchQuery(units=tuple(cells), pad_left=left, pad_right=right, min_length=2, limit=50,
                           candidate_cap=cap)
            ours = match(index, q)
            key_t = [(r["intersection"], r["union"], r["length"]) for r in theirs]
            key_o = list(zip(ours.intersection.tolist(), ours.union.tolist(), ours.lengths.tolist()))
            assert key_o == key_t
            last = key_t[-1]
            better_t = {(r["pos"], r["length"]) for r in theirs
                        if (-r["intersection"], r["union"], -r["length"]) < (-last[0], last[1], -last[2])}
            better_o = {(s, length) for s, length, key in zip(ours.starts.tolist(), ours.lengths.tolist(), key_o)
                        if (-key[0], key[1], -key[2]) < (-last[0], last[1], -last[2])}
            assert better_o == better_t
            # with the same candidate order the whole list agrees, ties included
            assert [(r["pos"], r["length"]) for r in theirs] == list(zip(ours.starts.tolist(),
                                                                        ours.lengths.tolist()))
            np.testing.assert_allclose(ours.jaccard, [r["jaccard"] for r in theirs])


def test_two_sided_padding_ranks_candidates_as_lstmvis():
    """The example of issue 9: with padding on both sides LSTMVis scores a run m - next - prev, so the
    cap keeps (9, 2) (score 1), not (5, 2) (score 0; 2m - prev - next would give it 2 and keep it)."""
    u0 = [0, 1, 1, 0, 1, 1, 1, 1, 0, 1, 1, 0, 0, 0, 0, 0]
    u1 = [0, 1, 1, 0, 0, 1, 1, 0, 0, 0, 0, 0, 1, 1, 0, 0]
    on = np.array([u0, u1], bool).T
    q = MatchQuery(units=(0, 1), pad_left=1, pad_right=1, min_length=2, candidate_cap=3, limit=None)
    ours = match(BitIndex.from_bool(on, item_offsets=[0, 16]), q)
    theirs = lstmvis_precise(np.where(on, 1.0, -1.0), [0, 1], 0.3, constrain_left=True, constrain_right=True,
                             candidate_cap=3)
    assert sorted(zip(ours.starts.tolist(), ours.lengths.tolist())) == [(1, 2), (4, 4), (9, 2)]
    assert sorted((r["pos"], r["length"]) for r in theirs) == [(1, 2), (4, 4), (9, 2)]


@pytest.mark.parametrize("left, right", [(0, 0), (1, 0), (0, 1), (1, 1)])
def test_candidate_cut_equals_lstmvis_at_every_cap(left, right):
    """Small data where every cap mixes levels: the capped candidate set (and so the ranked list) is
    LSTMVis's for no, one-sided and two-sided padding."""
    for seed in range(6):
        rng = np.random.default_rng(100 + seed)
        on = random_on(rng, 120, 6, p=0.5, stay=0.6)
        on[0] = on[-1] = False  # theirs skips runs touching the stream ends
        raw = np.where(on, 1.0, -1.0).astype(np.float32)
        index = BitIndex.from_bool(on)
        for cap in (1, 2, 3, 5, 8, 13, 21):
            q = MatchQuery(units=(0, 1, 2, 4), pad_left=left, pad_right=right, min_length=2, limit=None,
                           candidate_cap=cap)
            ours = match(index, q)
            theirs = lstmvis_precise(raw, [0, 1, 2, 4], 0.3, constrain_left=bool(left),
                                     constrain_right=bool(right), candidate_cap=cap, no_of_results=10**6)
            assert list(zip(ours.starts.tolist(), ours.lengths.tolist())) == \
                [(r["pos"], r["length"]) for r in theirs], (seed, cap)


def test_progress_and_cancel(data):
    *_, index = data
    seen = []
    task = Task(on_progress=lambda done, total, msg: seen.append((done, total)))
    for mode in ("lstmvis", "scored"):
        seen.clear()
        res = match(index, MatchQuery(units=(1, 2), mode=mode), task=task)
        assert seen[0][0] == 0 and seen[-1][0] == seen[-1][1] == 4
        assert res.elapsed_s > 0 and set(res.extra["timings"]) >= {"count", "runs", "score", "total"}
    task.cancel()
    with pytest.raises(Cancelled):
        match(index, MatchQuery(units=(1, 2)), task=task)


def test_bad_units_and_empty_index():
    index = BitIndex.from_bool(np.zeros((0, 5), bool))
    res = match(index, MatchQuery(units=(1, 2)))
    assert len(res) == 0 and res.n_candidates == 0
    with pytest.raises(ValueError, match="outside"):
        match(index, MatchQuery(units=(5,)))


def test_runs_at_the_ends_of_the_stream():
    # 128 positions (a whole number of 64-position words): runs touching position 0 and the end
    on = np.zeros((128, 4), bool)
    on[:5, :2] = True
    on[120:, :2] = True
    on[60:70, :2] = True
    index = BitIndex.from_bool(on)
    for mode in ("lstmvis", "scored"):
        q = MatchQuery(units=(0, 1), mode=mode, pad_left=2, pad_right=2, limit=None, candidate_cap=None)
        res = match(index, q)
        rows, _ = brute_match(on, np.zeros_like(on), [0, 128], q)
        assert_same(res, rows)
        assert set(zip(res.starts.tolist(), res.lengths.tolist())) == {(0, 5), (120, 8), (60, 10)}
