"""Unit selection against brute-force loops: LSTMVis's exact rule, tolerance, directions, clipped padding."""

import math
from fractions import Fraction

import numpy as np
import pytest

from lstmviz.analysis.selection import (
    active_counts,
    rank_candidates,
    required_on,
    select_units,
)
from lstmviz.analysis.selection_types import SelectionSpec

LEVELS = np.array([-0.9, -0.5, -0.3, -0.1, 0.0, 0.1, 0.3, 0.5, 0.9])  # includes exactly +-threshold


def signs_of(direction):
    return {"positive": (1,), "negative": (-1,), "both": (1, -1)}[direction]


def is_on(value, sign, threshold):
    return value >= threshold if sign > 0 else value <= -threshold


def reference_select(values, values_start, spec, item_start=None, item_stop=None):
    """The rule written out position by position."""
    lo = values_start if item_start is None else max(values_start, item_start)
    hi = values_start + len(values) if item_stop is None else min(values_start + len(values), item_stop)
    need = math.ceil(Fraction(repr(spec.tolerance)) * spec.length)
    padding = [p for p in range(spec.brush_start - spec.pad_left, spec.brush_start) if p >= lo]
    padding += [p for p in range(spec.brush_stop, spec.brush_stop + spec.pad_right) if p < hi]
    chosen = set()
    for sign in signs_of(spec.direction):
        for u in range(values.shape[1]):
            n_on = sum(is_on(values[p - values_start, u], sign, spec.threshold)
                       for p in range(spec.brush_start, spec.brush_stop))
            pad_on = any(is_on(values[p - values_start, u], sign, spec.threshold) for p in padding)
            if n_on >= need and not pad_on:
                chosen.add((u, sign))
    chosen -= set(spec.removed)
    chosen |= set(spec.added)
    return sorted(chosen, key=lambda p: (p[0], -p[1]))


def reference_ranking(values, values_start, spec, item_start=None, item_stop=None):
    lo = values_start if item_start is None else max(values_start, item_start)
    hi = values_start + len(values) if item_stop is None else min(values_start + len(values), item_stop)
    padding = [p for p in range(spec.brush_start - spec.pad_left, spec.brush_start) if p >= lo]
    padding += [p for p in range(spec.brush_stop, spec.brush_stop + spec.pad_right) if p < hi]
    rows = []
    for sign in signs_of(spec.direction):
        for u in range(values.shape[1]):
            rng = [sign * values[p - values_start, u] for p in range(spec.brush_start, spec.brush_stop)]
            pad = [sign * values[p - values_start, u] for p in padding]
            margin = min(rng) - (max(pad) if pad else spec.threshold)
            f_rng = sum(v >= spec.threshold for v in rng) / len(rng)
            f_pad = sum(v >= spec.threshold for v in pad) / len(pad) if pad else math.nan
            rows.append((u, sign, margin, f_rng, f_pad))
    rows.sort(key=lambda r: (-r[2], -(r[3] - (0 if math.isnan(r[4]) else r[4])), r[0], -r[1]))
    return rows


def random_values(rng, n, units):
    return rng.choice(LEVELS, size=(n, units))


# ------------------------------------------------------------------------------ planted cases

def planted(n=12, units=8):
    v = np.full((n, units), -0.1)
    return v


def test_exact_lstmvis_rule_on_planted_units():
    v = planted()
    brush = (4, 8)  # absolute positions with values_start 0
    v[4:8, 0] = 0.8  # on over the range, off on the padding: selected
    v[4:8, 1] = 0.8
    v[3, 1] = 0.5  # on at the one left padding position: rejected
    v[4:8, 2] = 0.8
    v[6, 2] = 0.29  # one dip below threshold: rejected under the exact rule
    v[4:8, 3] = 0.3  # exactly the threshold counts as on
    v[4:9, 4] = 0.8  # on after the range: allowed, pad_right is 0
    v[2, 5] = 0.9  # on two before the range: pad_left 1 does not see it
    v[4:8, 5] = 0.9
    spec = SelectionSpec(*brush, threshold=0.3)
    sel = select_units(v, 0, spec)
    assert sel.pairs() == [(0, 1), (3, 1), (4, 1), (5, 1)]
    assert sel.units.dtype == np.int64 and sel.signs.dtype == np.int8
    assert sel.spec is spec
    # wider padding now sees unit 4's tail and unit 5's early rise
    sel = select_units(v, 0, SelectionSpec(*brush, threshold=0.3, pad_left=2, pad_right=1))
    assert sel.pairs() == [(0, 1), (3, 1)]
    # no padding at all: unit 1 (on just before) is selected too
    sel = select_units(v, 0, SelectionSpec(*brush, threshold=0.3, pad_left=0))
    assert sel.pairs() == [(0, 1), (1, 1), (3, 1), (4, 1), (5, 1)]
    assert sel.extra["padding_left"] == (4, 4)


def test_tolerance_counts_positions_on():
    v = planted(n=14)
    v[2:12, 0] = 0.8
    v[[4, 7, 9], 0] = 0.0  # 7 of 10 on
    spec = SelectionSpec(2, 12, threshold=0.3, tolerance=0.7)
    assert required_on(spec) == 7
    assert select_units(v, 0, spec).pairs() == [(0, 1)]
    assert select_units(v, 0, SelectionSpec(2, 12, threshold=0.3, tolerance=0.71)).pairs() == []
    assert select_units(v, 0, SelectionSpec(2, 12, threshold=0.3)).pairs() == []
    # a tiny tolerance still needs one position on
    assert required_on(SelectionSpec(2, 12, tolerance=1e-6)) == 1
    # 0.28 * 25 is 7.000000000000001 in binary; the user asked for 7 of 25
    v = planted(n=30)
    v[[3, 5, 8, 13, 21, 22, 26], 0] = 0.5
    spec = SelectionSpec(2, 27, threshold=0.3, tolerance=0.28)
    assert required_on(spec) == 7
    assert select_units(v, 0, spec).pairs() == [(0, 1)]


def test_negative_and_both_directions():
    v = planted()
    v[4:8, 0] = -0.8  # negative-going unit
    v[4:8, 1] = 0.8  # positive-going unit
    v[4:8, 2] = -0.3  # exactly -threshold counts as on (negative)
    v[4:8, 3] = -0.8
    v[3, 3] = -0.5  # on (negative) at the padding: rejected
    assert select_units(v, 0, SelectionSpec(4, 8, direction="negative")).pairs() == [(0, -1), (2, -1)]
    assert select_units(v, 0, SelectionSpec(4, 8, direction="positive")).pairs() == [(1, 1)]
    both = select_units(v, 0, SelectionSpec(4, 8, direction="both"))
    assert both.pairs() == [(0, -1), (1, 1), (2, -1)]
    # one unit can qualify in both directions when the tolerance allows half the range either way
    v[4:6, 5], v[6:8, 5] = 0.9, -0.9
    sel = select_units(v, 0, SelectionSpec(4, 8, direction="both", tolerance=0.5))
    assert (5, 1) in sel.pairs() and (5, -1) in sel.pairs()
    assert sel.pairs().index((5, 1)) + 1 == sel.pairs().index((5, -1))  # +1 before -1


def test_padding_is_clipped_at_the_item_and_the_values_block():
    v = planted()
    v[:, 0] = 0.8  # on everywhere: only selectable when every padding position is outside the item
    v[5:9, 1] = 0.8
    spec = SelectionSpec(105, 109, pad_left=3, pad_right=2)
    assert select_units(v, 100, spec).pairs() == [(1, 1)]
    # the item starts at the brush and ends at its stop: no padding is checked
    sel = select_units(v, 100, spec, item_start=105, item_stop=109)
    assert sel.pairs() == [(0, 1), (1, 1)]
    assert sel.extra["padding_left"] == (105, 105) and sel.extra["padding_right"] == (109, 109)
    # the values block itself ends at the brush: nothing beyond it is checked
    sel = select_units(v[5:9], 105, spec)
    assert sel.pairs() == [(0, 1), (1, 1)]
    # partly clipped: one left padding position inside the item still rejects unit 0
    sel = select_units(v, 100, spec, item_start=104, item_stop=109)
    assert sel.pairs() == [(1, 1)]
    assert sel.extra["padding_left"] == (104, 105)


def test_removed_then_added():
    v = planted()
    v[4:8, 0] = 0.8
    v[4:8, 1] = 0.8
    spec = SelectionSpec(4, 8, removed=[(0, 1), (6, -1), (99, 1)], added=[(3, -1), (6, -1), (1, 1)])
    # (0,+1) removed; (6,-1) removed and added: added wins; (1,+1) already in; (99,+1) unknown: ignored
    assert select_units(v, 0, spec).pairs() == [(1, 1), (3, -1), (6, -1)]


def test_errors_say_what_is_wrong():
    v = planted()
    with pytest.raises(ValueError, match="not inside the values"):
        select_units(v, 0, SelectionSpec(10, 14))
    with pytest.raises(ValueError, match="not inside the values"):
        select_units(v, 5, SelectionSpec(3, 8))
    with pytest.raises(ValueError, match="starts before its item"):
        select_units(v, 0, SelectionSpec(3, 8), item_start=4)
    with pytest.raises(ValueError, match="past the end of its item"):
        select_units(v, 0, SelectionSpec(3, 8), item_stop=7)
    with pytest.raises(ValueError, match="cannot add unit 8"):
        select_units(v, 0, SelectionSpec(3, 8, added=[(8, 1)]))
    with pytest.raises(ValueError, match="sign"):
        select_units(v, 0, SelectionSpec(3, 8, added=[(1, 2)]))
    with pytest.raises(ValueError, match="positions, units"):
        select_units(v[:, 0], 0, SelectionSpec(3, 8))


# ------------------------------------------------------------------------------ random cases vs reference

@pytest.mark.parametrize("seed", range(40))
def test_select_units_matches_the_reference(seed):
    rng = np.random.default_rng(seed)
    n, units = int(rng.integers(6, 30)), int(rng.integers(1, 24))
    values_start = int(rng.integers(0, 1000))
    v = random_values(rng, n, units)
    # make some units cleanly on over a range so selections are not always empty
    a = int(rng.integers(0, n - 1))
    b = int(rng.integers(a + 1, n + 1))
    for u in rng.choice(units, size=max(1, units // 3), replace=False):
        v[a:b, u] = rng.choice([0.5, 0.9, -0.5, -0.9])
    length = b - a
    item_start = values_start + int(rng.integers(0, a + 1)) if rng.random() < 0.5 else None
    item_stop = values_start + int(rng.integers(b, n + 1)) if rng.random() < 0.5 else None
    spec = SelectionSpec(
        values_start + a, values_start + b,
        threshold=float(rng.choice([0.0, 0.1, 0.3, 0.5])),
        pad_left=int(rng.integers(0, 4)), pad_right=int(rng.integers(0, 4)),
        tolerance=float(rng.choice([1.0, 0.5, 0.7, 0.34, 1 / max(1, length)])),
        direction=str(rng.choice(["positive", "negative", "both"])),
        removed=[(int(rng.integers(0, units)), int(rng.choice([1, -1])))],
        added=[(int(rng.integers(0, units)), int(rng.choice([1, -1])))] if rng.random() < 0.5 else [],
    )
    got = select_units(v, values_start, spec, item_start=item_start, item_stop=item_stop).pairs()
    assert got == reference_select(v, values_start, spec, item_start, item_stop)


@pytest.mark.parametrize("seed", range(20))
def test_rank_candidates_matches_the_reference(seed):
    rng = np.random.default_rng(100 + seed)
    n, units = int(rng.integers(6, 20)), int(rng.integers(1, 16))
    v = random_values(rng, n, units)
    a = int(rng.integers(0, n - 1))
    b = int(rng.integers(a + 1, n + 1))
    spec = SelectionSpec(a + 7, b + 7, threshold=0.3, pad_left=int(rng.integers(0, 3)),
                         pad_right=int(rng.integers(0, 3)),
                         direction=str(rng.choice(["positive", "negative", "both"])))
    item_start = 7 + int(rng.integers(0, a + 1)) if rng.random() < 0.5 else None
    ranking = rank_candidates(v, 7, spec, item_start=item_start)
    expected = reference_ranking(v, 7, spec, item_start=item_start)
    assert len(ranking) == len(expected) == units * len(signs_of(spec.direction))
    assert list(zip(ranking.units.tolist(), ranking.signs.tolist())) == [(r[0], r[1]) for r in expected]
    np.testing.assert_allclose(ranking.margin, [r[2] for r in expected])
    np.testing.assert_allclose(ranking.on_fraction_range, [r[3] for r in expected])
    np.testing.assert_allclose(ranking.on_fraction_padding, [r[4] for r in expected])


def test_ranking_puts_the_cleanest_separator_first():
    v = np.zeros((10, 4))
    v[3:7, 0] = 0.9  # margin 0.9 - 0.0
    v[3:7, 1] = 0.5  # margin 0.5
    v[3:7, 2] = 0.9
    v[2, 2] = 0.8  # high padding: margin 0.1
    v[3:7, 3] = [0.9, 0.9, 0.9, -0.2]  # dips: negative margin
    ranking = rank_candidates(v, 0, SelectionSpec(3, 7, pad_left=1, pad_right=1))
    assert ranking.units.tolist() == [0, 1, 2, 3]
    np.testing.assert_allclose(ranking.margin, [0.9, 0.5, 0.1, -0.2])
    np.testing.assert_allclose(ranking.on_fraction_range, [1, 1, 1, 0.75])
    np.testing.assert_allclose(ranking.on_fraction_padding, [0, 0, 0.5, 0])
    # no padding: the margin is measured against the threshold
    ranking = rank_candidates(v, 0, SelectionSpec(3, 7, pad_left=0, threshold=0.3))
    np.testing.assert_allclose(ranking.margin[:2], [0.6, 0.6])
    assert np.isnan(ranking.on_fraction_padding).all()


def test_ranking_ties_break_on_fraction_gap_then_unit():
    v = np.full((4, 4), -0.3)
    v[1:3, 0] = [0.2, 0.2]  # margin 0.5, nothing on
    v[1:3, 1] = [0.2, 0.9]  # margin 0.5, half the range on: ranks before unit 0
    v[1:3, 2] = [0.9, 0.2]  # the same as unit 1: the lower unit first
    v[1:3, 3] = [0.9, 0.9]  # margin 1.2
    ranking = rank_candidates(v, 0, SelectionSpec(1, 3, pad_left=1, pad_right=1, threshold=0.3))
    assert ranking.units.tolist() == [3, 1, 2, 0]
    np.testing.assert_allclose(ranking.margin, [1.2, 0.5, 0.5, 0.5])


# ------------------------------------------------------------------------------ active counts

def test_active_counts_matches_a_loop():
    rng = np.random.default_rng(5)
    v = random_values(rng, 30, 12)
    units = np.array([0, 3, 3, 7, 11])
    signs = np.array([1, 1, -1, -1, 1])
    got = active_counts(v, units, signs, 0.3)
    expected = [sum(is_on(v[t, u], s, 0.3) for u, s in zip(units, signs)) for t in range(30)]
    assert got.dtype == np.int32
    assert got.tolist() == expected
    assert active_counts(v, [], [], 0.3).tolist() == [0] * 30
    # many units (another code path), with a unit listed twice counting twice
    units = np.concatenate([np.arange(12), np.arange(12), [5]])
    signs = np.concatenate([np.ones(12, int), -np.ones(12, int), [1]])
    expected = [sum(is_on(v[t, u], s, 0.3) for u, s in zip(units, signs)) for t in range(30)]
    assert active_counts(v, units, signs, 0.3).tolist() == expected
    assert active_counts(v, np.arange(12).repeat(2), np.tile([1, 1], 12), 0.1).tolist() == [
        2 * sum(v[t, u] >= 0.1 for u in range(12)) for t in range(30)]
    with pytest.raises(ValueError, match="unit 12 is outside 0-11"):
        active_counts(v, [12], [1], 0.3)
    with pytest.raises(ValueError, match="sign"):
        active_counts(v, [1], [0], 0.3)
    with pytest.raises(ValueError, match="units but"):
        active_counts(v, [1, 2], [1], 0.3)


def test_float32_values_compare_in_float32():
    v = np.full((4, 2), 0.3, dtype=np.float32)  # float32(0.3) is just above 0.3
    assert select_units(v, 0, SelectionSpec(1, 3, pad_left=0)).pairs() == [(0, 1), (1, 1)]
    assert active_counts(v, [0, 1], [1, 1], 0.3).tolist() == [2, 2, 2, 2]


def test_nan_is_never_on():
    v = np.zeros((6, 3))
    v[2:4, :] = 0.9
    v[2, 0] = np.nan  # a gap in the range: not on there
    v[1, 1] = np.nan  # a gap in the padding: counts as off
    assert select_units(v, 0, SelectionSpec(2, 4)).pairs() == [(1, 1), (2, 1)]
    assert select_units(v, 0, SelectionSpec(2, 4, tolerance=0.5)).pairs() == [(0, 1), (1, 1), (2, 1)]
    ranking = rank_candidates(v, 0, SelectionSpec(2, 4, pad_right=1))
    assert ranking.units.tolist() == [2, 1, 0]  # NaN margins rank last (1 before 0: larger on-fraction gap)
    assert np.isnan(ranking.margin[1:]).all()
