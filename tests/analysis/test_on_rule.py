"""One on/off rule everywhere (transforms.is_on): Select, active counts, the match index and matching
agree on every value, including a value that lies exactly on the threshold."""

from __future__ import annotations

import numpy as np
import pytest

from lstmviz.analysis.bitindex import IndexKey, build_index
from lstmviz.analysis.match_types import MatchQuery
from lstmviz.analysis.matching import match
from lstmviz.analysis.selection import active_counts, select_units
from lstmviz.analysis.selection_types import SelectionSpec
from lstmviz.analysis.transforms import UnitStats, apply_transform, is_on, stored_bounds, tap_stats
from lstmviz.recording import open_recording


def _stats(mean, std):
    mean, std = np.asarray(mean, float), np.asarray(std, float)
    return UnitStats(mean=mean, std=std, minimum=mean - 3 * std, maximum=mean + 3 * std, count=100,
                     finite=np.full(len(mean), 100))


def test_the_issue_example_float32_07_is_on_in_select_and_in_match(write_recording):
    """A value exactly float32(0.7) at θ = 0.7 (raw): selected, counted and matched alike."""
    x = np.full((12, 3), -1.0, np.float32)
    x[4:8, 0] = np.float32(0.7)
    x[4:8, 1] = np.nextafter(np.float32(0.7), np.float32(0))  # one float32 step below: off everywhere
    rec = open_recording(write_recording([x]))
    spec = SelectionSpec(brush_start=4, brush_stop=8, threshold=0.7, pad_left=1, pad_right=1)
    values = apply_transform(rec.states("h"), "raw")
    sel = select_units(values, 0, spec)
    assert sel.units.tolist() == [0]
    assert active_counts(values, [0, 1], [1, 1], 0.7).tolist() == [0] * 4 + [1] * 4 + [0] * 4
    index = build_index(rec, IndexKey("h", "raw", 0.7))
    res = match(index, MatchQuery(units=(0,), pad_left=1, pad_right=1, min_length=1))
    assert list(zip(res.starts.tolist(), res.lengths.tolist())) == [(4, 4)]
    assert len(match(index, MatchQuery(units=(1,), min_length=1))) == 0


@pytest.mark.parametrize("dtype", ["float16", "float32"])
@pytest.mark.parametrize("transform", ["raw", "tanh", "zscore"])
def test_a_value_on_the_threshold_is_on_everywhere(write_recording, dtype, transform):
    """θ chosen as the transformed value of one stored value v0 (so v0 lies exactly on it): v0 is on in
    Select and in the index, the stored value just below it is off, in both directions."""
    f = np.dtype(dtype).type
    rng = np.random.default_rng(1)
    x = rng.normal(0.0, 1.0, (40, 4)).astype(f)
    v0 = f(0.40625)  # exact in float16 and float32
    below = np.nextafter(v0, f(-1))
    x[10:14, 2] = v0
    x[20:24, 2] = below
    rec = open_recording(write_recording([x.astype(np.float32)], dtype=dtype))
    stats = tap_stats(rec, "h") if transform == "zscore" else None
    t0 = apply_transform(np.full((1, 4), v0, np.float32), transform, stats)[0, 2]
    theta = float(t0)
    values = apply_transform(rec.states("h"), transform, stats)
    assert values[10, 2] == np.float32(theta) and values[20, 2] < np.float32(theta)
    index = build_index(rec, IndexKey("h", transform, theta))
    on_index = np.unpackbits(index.rows[1], axis=1, bitorder="little")[:, :4].astype(bool)
    np.testing.assert_array_equal(on_index, is_on(values, 1, theta))
    assert on_index[10:14, 2].all() and not on_index[20:24, 2].any()
    sel = select_units(values, 0, SelectionSpec(brush_start=10, brush_stop=14, threshold=theta, pad_left=0,
                                                pad_right=0))
    assert 2 in sel.units.tolist()
    # the negative direction at -θ: the mirror value -v0 (raw/tanh are odd; for zscore use the bound)
    neg = np.unpackbits(index.rows[-1], axis=1, bitorder="little")[:, :4].astype(bool)
    np.testing.assert_array_equal(neg, is_on(values, -1, theta))


@pytest.mark.parametrize("transform, theta, stats", [
    ("raw", 0.1, None), ("raw", 0.7, None), ("raw", 0.0, None), ("raw", -0.3, None), ("raw", 1e-7, None),
    ("tanh", 0.3, None), ("tanh", 0.7, None), ("tanh", -0.95, None), ("tanh", 0.999999, None),
    ("zscore", 0.5, _stats([0.1, -2.0, 0.0], [0.3, 1.7, 0.0])),
    ("zscore", -1.25, _stats([0.1, -2.0, 0.0], [0.3, 1.7, 0.0])),
])
def test_stored_bounds_decide_exactly_as_the_rule_for_every_float16_value(transform, theta, stats):
    d = 3
    x = np.arange(65536, dtype=np.uint16).view(np.float16)
    x = x[~np.isnan(x)]
    values = apply_transform(np.repeat(x[:, None], d, 1).astype(np.float32), transform, stats)
    bounds = stored_bounds(theta, transform, np.float16, d, stats)
    xs = x.astype(np.float64)[:, None]
    np.testing.assert_array_equal(xs >= bounds[1], is_on(values, 1, theta))
    np.testing.assert_array_equal(xs <= bounds[-1], is_on(values, -1, theta))


@pytest.mark.parametrize("transform", ["raw", "tanh", "zscore"])
def test_stored_bounds_are_exact_for_float32_around_the_bound(transform):
    stats = _stats([0.25, -1.5], [0.75, 3.0]) if transform == "zscore" else None
    rng = np.random.default_rng(0)
    for theta in rng.uniform(-0.9, 0.9, 25).tolist() + [0.7, 0.3, 0.0]:
        bounds = stored_bounds(theta, transform, np.float32, 2, stats)
        for sign in (1, -1):
            b = bounds[sign].astype(np.float32)
            # the bound and the 3 float32 values on each side of it, and random values
            steps = [b]
            for _ in range(3):
                steps.append(np.nextafter(steps[-1], np.float32(np.inf)))
                steps.insert(0, np.nextafter(steps[0], np.float32(-np.inf)))
            x = np.concatenate([np.stack(steps), rng.normal(0, 2, (200, 2)).astype(np.float32)])
            want = is_on(apply_transform(x, transform, stats), sign, theta)
            got = x.astype(np.float64) >= bounds[1] if sign > 0 else x.astype(np.float64) <= bounds[-1]
            np.testing.assert_array_equal(got, want)


def test_the_transforms_are_non_decreasing_where_float32_tanh_is_not():
    """numpy's float32 tanh decreases by one ulp at 1.5 on this kind of machine; the view's tanh (float64,
    rounded) must not, or no stored bound could decide the rule exactly."""
    x = np.float32(1.5)
    around = np.array([np.nextafter(x, np.float32(0)), x, np.nextafter(x, np.float32(2))], np.float32)
    around = np.concatenate([-around[::-1], around])
    for transform, stats in (("tanh", None), ("raw", None), ("zscore", _stats([0.3], [0.7]))):
        v = apply_transform(around[:, None], transform, stats)[:, 0]
        assert np.all(np.diff(v) >= 0), transform
    # and for all float16 values in order
    f16 = np.arange(65536, dtype=np.uint16).view(np.float16)
    f16 = np.sort(f16[~np.isnan(f16)].astype(np.float32))
    assert np.all(np.diff(apply_transform(f16[:, None], "tanh")[:, 0]) >= 0)
