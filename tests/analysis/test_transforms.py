"""View transforms, per-unit statistics and raw thresholds."""

import os
import warnings

import numpy as np
import pytest

from lstmviz.analysis import _index_stream, transforms
from lstmviz.analysis.transforms import (
    TRANSFORMS,
    UnitStats,
    apply_transform,
    raw_thresholds,
    tap_stats,
)
from lstmviz.recording import open_recording


def stats_of(mean, std):
    mean, std = np.asarray(mean, float), np.asarray(std, float)
    return UnitStats(mean=mean, std=std, minimum=mean - 1, maximum=mean + 1, count=10,
                     finite=np.full(len(mean), 10))


def messy_items(dtype, seed=0):
    rng = np.random.default_rng(seed)
    f = np.float16 if dtype == "float16" else np.float32
    items = []
    for n in (7, 300, 1, 150):
        x = rng.standard_normal((n, 6)) * [1, 2, 0.1, 3, 1, 1] + [0, 5, -1, 0, 0, 0]
        x[rng.random(x.shape) < 0.05] = np.nan
        x[:, 3] = 2.5            # constant
        x[:, 4] = np.nan         # no value at all
        x[0, 5] = np.inf         # min/max see infinities, mean/std do not
        items.append(x.astype(f).astype(np.float32))
    return items


@pytest.mark.parametrize("dtype", ["float16", "float32"])
def test_tap_stats_match_numpy_float64(write_recording, monkeypatch, dtype):
    monkeypatch.setattr(_index_stream, "SLAB_BYTES", 1)  # 1024-row slabs: the merge runs several times
    rec = open_recording(write_recording(messy_items(dtype) * 6, dtype=dtype))
    x = rec.states("h").astype(np.float64)
    stats = tap_stats(rec, "h", cache=False)
    finite = np.where(np.isfinite(x), x, np.nan)
    with warnings.catch_warnings():  # the unit without values: "Mean of empty slice"
        warnings.simplefilter("ignore", RuntimeWarning)
        mean, std = np.nanmean(finite, 0), np.nanstd(finite, 0)
        lo, hi = np.nanmin(x, 0), np.nanmax(x, 0)
    ok = ~np.isnan(mean)
    np.testing.assert_allclose(stats.mean[ok], mean[ok], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(stats.std[ok], std[ok], rtol=1e-10, atol=1e-12)
    assert stats.std[3] == 0 and stats.mean[3] == 2.5
    assert stats.mean[4] == 0 and stats.std[4] == 0 and np.isnan(stats.minimum[4]) and np.isnan(stats.maximum[4])
    np.testing.assert_array_equal(stats.minimum[ok], lo[ok])
    np.testing.assert_array_equal(stats.maximum[ok], hi[ok])
    assert stats.maximum[5] == np.inf and np.isfinite(stats.mean[5])
    assert stats.count == rec.n_positions
    np.testing.assert_array_equal(stats.finite, np.isfinite(x).sum(0))


def test_tap_stats_keep_precision_far_from_zero(write_recording, monkeypatch):
    # mean 1e6, std 0.1: a float64 sum of squares (E[x^2] - E[x]^2) loses about 1% of the variance here
    monkeypatch.setattr(_index_stream, "SLAB_BYTES", 1)
    rng = np.random.default_rng(3)
    items = [(1e6 + 0.1 * rng.standard_normal((200, 3))).astype(np.float32) for _ in range(5)]
    rec = open_recording(write_recording(items))
    x = rec.states("h").astype(np.float64)
    stats = tap_stats(rec, "h", cache=False)
    np.testing.assert_allclose(stats.std, x.std(0), rtol=1e-9)
    np.testing.assert_allclose(stats.mean, x.mean(0), rtol=1e-15)


def test_tap_stats_are_cached_until_the_file_changes(write_recording, monkeypatch, cache_dir):
    path = write_recording(messy_items("float32"))
    calls = []
    real = transforms._compute_stats
    monkeypatch.setattr(transforms, "_compute_stats", lambda *a: calls.append(1) or real(*a))
    with open_recording(path) as rec:
        first = tap_stats(rec, "h")
        second = tap_stats(rec, "h")
    assert calls == [1]
    np.testing.assert_array_equal(first.std, second.std)
    files = list(cache_dir.rglob("stats-*.npz"))
    assert len(files) == 1
    files[0].write_bytes(b"damaged")
    with open_recording(path) as rec:
        np.testing.assert_array_equal(tap_stats(rec, "h").mean, first.mean)
    assert calls == [1, 1]
    st = os.stat(path)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    with open_recording(path) as rec:
        tap_stats(rec, "h")
    assert calls == [1, 1, 1]


def test_tap_stats_report_progress(write_recording, monkeypatch):
    from lstmviz.tasks import Task

    monkeypatch.setattr(_index_stream, "SLAB_BYTES", 1)  # slabs of 1024 rows (one statistics block)
    rec = open_recording(write_recording(messy_items("float16") * 10, dtype="float16"))
    seen = []
    tap_stats(rec, "h", task=Task(on_progress=lambda d, t, m: seen.append((d, t, m))), cache=False)
    assert seen[0] == (0, rec.n_positions, "Statistics of h")
    assert seen[-1] == (rec.n_positions, rec.n_positions, "Statistics of h") and len(seen) > 3


def test_apply_transform():
    x = np.array([[0.0, 1.0, -2.0], [3.0, 1.0, 0.5]])
    raw = apply_transform(x, "raw")
    assert raw.dtype == np.float32
    np.testing.assert_array_equal(raw, x)
    np.testing.assert_allclose(apply_transform(x, "tanh"), np.tanh(x), rtol=1e-6)
    stats = stats_of([1.0, 1.0, -1.0], [2.0, 0.0, 0.5])
    z = apply_transform(x, "zscore", stats)
    assert z.dtype == np.float32
    np.testing.assert_allclose(z, [[-0.5, 0.0, -2.0], [1.0, 0.0, 3.0]])  # std 0 -> divided by 1
    np.testing.assert_allclose(apply_transform(x[:, [2, 0]], "zscore", stats, units=[2, 0]),
                               [[-2.0, -0.5], [3.0, 1.0]])
    with pytest.raises(ValueError, match="units"):
        apply_transform(x[:, :2], "zscore", stats)
    with pytest.raises(ValueError, match="mean and standard deviation"):
        apply_transform(x, "zscore")
    with pytest.raises(ValueError, match="unknown transform"):
        apply_transform(x, "sigmoid")


def test_raw_thresholds():
    t = raw_thresholds(0.5, "raw", 3)
    np.testing.assert_array_equal(t[1], [0.5] * 3)
    np.testing.assert_array_equal(t[-1], [-0.5] * 3)
    t = raw_thresholds(0.5, "tanh", 2)
    np.testing.assert_allclose(np.tanh(t[1]), 0.5)
    np.testing.assert_allclose(t[-1], -t[1])
    t = raw_thresholds(2.0, "zscore", 3, stats_of([1.0, 0.0, -1.0], [0.5, 0.0, 2.0]))
    np.testing.assert_allclose(t[1], [2.0, 2.0, 3.0])  # std 0 -> 1
    np.testing.assert_allclose(t[-1], [0.0, -2.0, -5.0])
    for bad in (1.0, -1.0, 3.0):
        with pytest.raises(ValueError, match="strictly between -1 and 1"):
            raw_thresholds(bad, "tanh", 2)
    with pytest.raises(ValueError, match="finite number"):
        raw_thresholds(float("nan"), "raw", 2)
    with pytest.raises(ValueError, match="must be a number"):
        raw_thresholds("high", "raw", 2)
    with pytest.raises(ValueError, match="unknown transform"):
        raw_thresholds(0.5, "softmax", 2)
    with pytest.raises(ValueError, match="tap_stats"):
        raw_thresholds(0.5, "zscore", 2)
    with pytest.raises(ValueError, match="3 units, not 2"):
        raw_thresholds(0.5, "zscore", 2, stats_of([0, 0, 0], [1, 1, 1]))
    assert TRANSFORMS == ("raw", "tanh", "zscore")


@pytest.mark.parametrize("transform", TRANSFORMS)
def test_thresholds_agree_with_the_transformed_view(transform):
    """on(+1) in raw space is 'transformed value >= θ', on(-1) is '<= -θ' (away from rounding ties)."""
    rng = np.random.default_rng(5)
    x = (rng.standard_normal((2000, 4)) * [1, 3, 0.2, 1] + [0, 1, -0.5, 2]).astype(np.float32)
    stats = stats_of(x.mean(0), x.std(0))
    theta = 0.4
    v = apply_transform(x, transform, stats).astype(np.float64)
    t = raw_thresholds(theta, transform, 4, stats)
    clear = (np.abs(v - theta) > 1e-5) & (np.abs(v + theta) > 1e-5)
    np.testing.assert_array_equal((x >= t[1])[clear], (v >= theta)[clear])
    np.testing.assert_array_equal((x <= t[-1])[clear], (v <= -theta)[clear])


def test_tap_stats_keep_precision_when_a_unit_jumps(write_recording, monkeypatch):
    # a unit that sits near 0, then near 1e6 (std 0.1 around each level): statistics shifted by an
    # early value would cancel catastrophically in the later rows
    rng = np.random.default_rng(4)
    low = 0.1 * rng.standard_normal((1500, 2))
    high = 1e6 + 0.1 * rng.standard_normal((2600, 2))
    rec = open_recording(write_recording([low.astype(np.float32), high.astype(np.float32)]))
    x = rec.states("h").astype(np.float64)
    stats = tap_stats(rec, "h", cache=False)
    np.testing.assert_allclose(stats.std, x.std(0), rtol=1e-9)
    tail = tap_stats(open_recording(write_recording([high.astype(np.float32)], name="high.h5")), "h", cache=False)
    np.testing.assert_allclose(tail.std, high.astype(np.float32).astype(np.float64).std(0), rtol=1e-9)
