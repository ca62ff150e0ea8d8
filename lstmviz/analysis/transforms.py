"""View transforms of tap values (raw, tanh, z-score), per-unit statistics, and thresholds in raw space.

A recording stores raw values; a transform is a view setting. A threshold chosen in a transformed
space maps back to one raw threshold per unit and direction (``raw_thresholds``), so matching and
indexing compare raw values and never transform the file:

* raw:    on(+1) ⇔ x >= θ,                    on(-1) ⇔ x <= -θ
* tanh:   on(+1) ⇔ tanh(x) >= θ ⇔ x >= artanh(θ), on(-1) ⇔ x <= -artanh(θ)       (|θ| < 1)
* zscore: on(+1) ⇔ (x - mean) / std >= θ ⇔ x >= mean + θ·std, on(-1) ⇔ x <= mean - θ·std

A unit whose standard deviation is 0 is z-scored with std 1 (constant units become 0). NaN is never on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lstmviz.analysis import cache as _cache
from lstmviz.analysis._index_kernels import STATS_BLOCK_ROWS, stats_slab
from lstmviz.analysis._index_stream import SlabReader, slab_rows
from lstmviz.analysis._parallel import KERNEL_LOCK
from lstmviz.tasks import ensure_task

TRANSFORMS = ("raw", "tanh", "zscore")

STATS_CACHE_VERSION = 1


@dataclass(frozen=True)
class UnitStats:
    """Per-unit statistics of one tap over all its rows.

    ``mean`` and ``std`` (population, ddof 0) are over the finite values of each unit; ``minimum`` and
    ``maximum`` over its non-NaN values (they may be ±inf; NaN when a unit has none). ``count`` is the
    number of rows scanned and ``finite`` the number of finite values per unit. A unit without any
    finite value has mean 0 and std 0.
    """

    mean: np.ndarray  # float64 [units]
    std: np.ndarray  # float64 [units]
    minimum: np.ndarray  # float64 [units]
    maximum: np.ndarray  # float64 [units]
    count: int
    finite: np.ndarray | None = None  # int64 [units]

    @property
    def n_units(self) -> int:
        return len(self.mean)

    def safe_std(self) -> np.ndarray:
        """``std`` with 0 replaced by 1: the divisor of the z-score."""
        return np.where(self.std > 0, self.std, 1.0)


def check_transform(transform: str) -> None:
    if transform not in TRANSFORMS:
        raise ValueError(f"unknown transform {transform!r}; choose one of {', '.join(TRANSFORMS)}")


def check_threshold(threshold, transform: str) -> float:
    """``threshold`` as a float if it is valid in ``transform`` space, else ``ValueError`` (a sentence)."""
    check_transform(transform)
    try:
        theta = float(threshold)
    except (TypeError, ValueError):
        raise ValueError(f"The threshold must be a number, got {threshold!r}.") from None
    if not np.isfinite(theta):
        raise ValueError(f"The threshold must be a finite number, got {theta}.")
    if transform == "tanh" and not abs(theta) < 1.0:
        raise ValueError(f"A threshold in tanh space must lie strictly between -1 and 1 (tanh never "
                         f"reaches ±1); got {theta:g}.")
    return theta


def apply_transform(values, transform: str, stats: UnitStats | None = None, units=None) -> np.ndarray:
    """``values`` (float, last axis = units) in ``transform`` space, as float32.

    ``units`` names the stats columns that the last axis of ``values`` holds (None: all of them, in
    order; or an index array, slice or boolean mask); only z-score uses it. Raw returns ``values``
    as float32 (without a copy when it already is).
    """
    check_transform(transform)
    if transform == "raw":
        return np.asarray(values, dtype=np.float32)
    if transform == "tanh":
        return np.tanh(np.asarray(values, dtype=np.float32))
    stats = _need_stats(stats)
    values = np.asarray(values)
    mean = stats.mean if units is None else stats.mean[units]
    std = stats.safe_std() if units is None else stats.safe_std()[units]
    k = values.shape[-1] if values.ndim else 1
    if np.ndim(mean) != 1 or len(mean) != k:
        raise ValueError(f"values have {k} units but the statistics select {np.size(mean)}; pass `units` "
                         f"naming the stats columns of the values")
    return ((values.astype(np.float64) - mean) / std).astype(np.float32)


def raw_thresholds(threshold: float, transform: str, n_units: int,
                   stats: UnitStats | None = None) -> dict[int, np.ndarray]:
    """Raw per-unit thresholds ``{+1: pos, -1: neg}`` (float64 ``[n_units]``) for ``threshold`` in
    ``transform`` space: on(+1) ⇔ raw >= pos[u], on(-1) ⇔ raw <= neg[u].

    Raises ``ValueError`` with a sentence for the user on a bad threshold or transform.
    """
    theta = check_threshold(threshold, transform)
    n_units = int(n_units)
    if transform == "raw":
        pos = np.full(n_units, theta)
        neg = np.full(n_units, -theta)
    elif transform == "tanh":
        pos = np.full(n_units, np.arctanh(theta))
        neg = -pos
    else:
        stats = _need_stats(stats)
        if stats.n_units != n_units:
            raise ValueError(f"The statistics are for {stats.n_units} units, not {n_units}.")
        std = stats.safe_std()
        pos = stats.mean + theta * std
        neg = stats.mean - theta * std
    return {1: pos.astype(np.float64), -1: neg.astype(np.float64)}


def tap_stats(recording, tap: str, *, task=None, cache: bool = True) -> UnitStats:
    """Per-unit statistics of ``tap`` in one streaming pass (float64 accumulation, slab by slab).

    Cached on disk beside the recording's other caches (``cache.cache_dir_for``) and rebuilt when the
    recording changes. Progress: ``task.progress(rows_done, rows, "Statistics of <tap>")``.
    """
    task = ensure_task(task)
    info = recording.taps.get(tap)
    if info is None:  # the reader's error names the taps the file has
        recording.raw_states(tap, 0, 0)
        raise KeyError(tap)
    path = None
    if cache:
        directory = _cache.cache_dir_for(recording.path)
        path = directory / _cache.cache_name("stats", tap, *_cache.view_parts(recording), suffix=".npz")
        fingerprint = _cache.recording_fingerprint(recording)
        stats = _cache.load_cached(path, lambda p: _load_stats(p, fingerprint, tap, info.units), "statistics")
        if stats is not None:
            return stats
    stats = _compute_stats(recording, tap, task)
    if path is not None:
        _save_stats(path, stats, fingerprint, tap)
    return stats


def _need_stats(stats: UnitStats | None) -> UnitStats:
    if stats is None:
        raise ValueError("The z-score needs each unit's mean and standard deviation; compute them first "
                         "(tap_stats).")
    return stats


def _compute_stats(recording, tap: str, task) -> UnitStats:
    info = recording.taps[tap]
    n = recording.axis_length(info.axis)
    d = info.units
    dtype = np.dtype(info.dtype)
    view = np.int16 if dtype == np.float16 else None
    total_n = np.zeros(d, np.int64)
    mean = np.zeros(d)
    m2 = np.zeros(d)
    lo = np.full(d, np.inf)
    hi = np.full(d, -np.inf)
    message = f"Statistics of {tap}"
    task.progress(0, n, message)
    with SlabReader(recording, tap, slab_rows(d, dtype.itemsize, STATS_BLOCK_ROWS)) as slabs:
        for a, b, x in slabs:
            blocks = -(-(b - a) // STATS_BLOCK_ROWS)
            c = np.empty((blocks, d), np.int64)
            shift, s1, s2, mn, mx = (np.empty((blocks, d)) for _ in range(5))
            with KERNEL_LOCK:
                stats_slab(x.view(view) if view is not None else x, c, shift, s1, s2, mn, mx)
            lo = np.minimum(lo, mn.min(0))
            hi = np.maximum(hi, mx.max(0))
            # every block's (count, mean, M2), then Chan et al.'s merge into the running totals
            with np.errstate(invalid="ignore", divide="ignore"):
                block_mean = np.where(c > 0, shift + s1 / c, 0.0)
                block_m2 = np.where(c > 0, np.maximum(s2 - s1 * s1 / c, 0.0), 0.0)
            for i in range(blocks):
                total_n, mean, m2 = _merge(total_n, mean, m2, c[i], block_mean[i], block_m2[i])
            task.progress(b, n, message)
    no_value = ~(lo <= hi)
    lo[no_value] = np.nan
    hi[no_value] = np.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        std = np.where(total_n > 0, np.sqrt(m2 / np.maximum(total_n, 1)), 0.0)
    return UnitStats(mean=mean, std=std, minimum=lo, maximum=hi, count=int(n), finite=total_n)


def _merge(n_a, mean_a, m2_a, n_b, mean_b, m2_b):
    """Count, mean and M2 of two groups together (Chan, Golub and LeVeque), per unit."""
    n = n_a + n_b
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(n > 0, n_b / n, 0.0)
    delta = mean_b - mean_a
    return n, mean_a + delta * frac, m2_a + m2_b + delta * delta * n_a * frac


def _load_stats(path, fingerprint: str, tap: str, n_units: int) -> UnitStats | None:
    """The cached statistics (None: built from other inputs); raises when the file is damaged; read
    through ``cache.load_cached``."""
    with np.load(path, allow_pickle=False) as z:
        meta = [str(m) for m in z["meta"]]
        if meta != [str(STATS_CACHE_VERSION), fingerprint, tap]:
            return None
        arrays = {k: np.asarray(z[k], np.float64) for k in ("mean", "std", "minimum", "maximum")}
        finite = np.asarray(z["finite"])
        count = z["count"]
        if count.shape != () or finite.dtype.kind not in "iu":
            raise _cache.CacheDamaged("count or finite counts of the wrong type")
        if any(a.shape != (n_units,) for a in (*arrays.values(), finite)):
            raise _cache.CacheDamaged(f"arrays of the wrong shape for {n_units} units")
        return UnitStats(**arrays, count=int(count), finite=finite.astype(np.int64))


def _save_stats(path, stats: UnitStats, fingerprint: str, tap: str) -> None:
    try:
        with _cache.atomic_path(path) as temp, open(temp, "wb") as f:
            np.savez(f, meta=np.array([str(STATS_CACHE_VERSION), fingerprint, tap]), mean=stats.mean,
                     std=stats.std, minimum=stats.minimum, maximum=stats.maximum,
                     count=np.int64(stats.count), finite=stats.finite)
    except OSError:  # an unwritable cache directory costs a recomputation next time, nothing more
        pass
