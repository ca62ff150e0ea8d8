"""View transforms of tap values (raw, tanh, z-score), per-unit statistics, and the on/off rule.

A recording stores raw values; a transform is a view setting:

* raw:    x (as float32)
* tanh:   tanh(x), computed in float64 and rounded to float32              (|θ| < 1)
* zscore: (x - mean) / std, computed in float64 and rounded to float32

A unit whose standard deviation is 0 is z-scored with std 1 (constant units become 0).

**The one on/off rule** (``is_on``; selection, active counts, the match index and matching all follow
it): at threshold θ, unit u is *on* in the positive direction at a position when its transformed value
``v`` (float32, exactly as ``apply_transform`` gives it, i.e. as the views show it) satisfies
``v >= float32(θ)``, and on in the negative direction when ``v <= -float32(θ)``. NaN is never on.

Matching and indexing never transform the file: every transform is non-decreasing in x, so for every
unit there is one smallest stored value that is on (and one largest that is on in the negative
direction). ``stored_bounds`` finds them exactly, by bisection over the values of the storage dtype
with ``apply_transform`` itself, so a raw comparison ``x >= low[u]`` decides exactly what the views
decide, even for a value that lies on the threshold (a float32 value equal to float32(0.7) is on at
θ = 0.7 everywhere). ``raw_thresholds`` gives the same thresholds in real arithmetic (artanh(θ),
mean + θ·std) for display; they can differ from the bounds by rounding.
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
        # in float64, then rounded: numpy's float32 tanh is not monotone (tanh(1.4999999) >
        # tanh(1.5) by one ulp here), and the on/off rule needs a non-decreasing transform
        return np.tanh(np.asarray(values, dtype=np.float64)).astype(np.float32)
    stats = _need_stats(stats)
    values = np.asarray(values)
    mean = stats.mean if units is None else stats.mean[units]
    std = stats.safe_std() if units is None else stats.safe_std()[units]
    k = values.shape[-1] if values.ndim else 1
    if np.ndim(mean) != 1 or len(mean) != k:
        raise ValueError(f"values have {k} units but the statistics select {np.size(mean)}; pass `units` "
                         f"naming the stats columns of the values")
    return ((values.astype(np.float64) - mean) / std).astype(np.float32)


def threshold32(threshold: float) -> np.float32:
    """The threshold as the on/off rule compares it: rounded to float32 (module docstring)."""
    return np.float32(threshold)


def is_on(values, sign: int, threshold: float) -> np.ndarray:
    """The on/off rule (module docstring) for transformed ``values`` (cast to float32 first)."""
    values = np.asarray(values, dtype=np.float32)
    theta = threshold32(threshold)
    return values >= theta if sign > 0 else values <= -theta


_KEY_TYPES = {np.dtype(np.float16): np.int16, np.dtype(np.float32): np.int32}


def _order_keys(values: np.ndarray, itype) -> np.ndarray:
    """Integer keys (int64) in the order of the float values: -inf < ... < -0.0 < +0.0 < ... < +inf."""
    bits = np.dtype(itype).itemsize * 8
    v = values.view(itype).astype(np.int64)
    return v ^ ((v >> (bits - 1)) & ((1 << (bits - 1)) - 1))


def _from_keys(keys: np.ndarray, dtype) -> np.ndarray:
    itype = _KEY_TYPES[np.dtype(dtype)]
    bits = np.dtype(itype).itemsize * 8
    k = np.asarray(keys, np.int64)
    return (k ^ ((k >> (bits - 1)) & ((1 << (bits - 1)) - 1))).astype(itype).view(dtype)


def stored_bounds(threshold: float, transform: str, dtype, n_units: int,
                  stats: UnitStats | None = None) -> dict[int, np.ndarray]:
    """``{+1: low, -1: high}`` (float64 ``[n_units]``, each value exactly a value of ``dtype``):
    ``low[u]`` is the smallest value x of the storage dtype with ``is_on(apply_transform(x), +1, θ)``,
    ``high[u]`` the largest with ``is_on(apply_transform(x), -1, θ)``, so that for every stored value
    x: on(+1) ⇔ x >= low[u] and on(-1) ⇔ x <= high[u] (NaN excluded), exactly.

    Found by bisection over the dtype's values in order (16 or 32 steps, all units at once), with the
    same ``apply_transform`` the views use; valid because every transform is non-decreasing in x.
    Raises ``ValueError`` (a sentence) for a bad threshold, transform or dtype.
    """
    theta = check_threshold(threshold, transform)
    dtype = np.dtype(dtype)
    if dtype not in _KEY_TYPES:
        raise ValueError(f"values stored as {dtype} have no on/off bounds; float16 or float32 is needed")
    if transform == "zscore":
        stats = _need_stats(stats)
        if stats.n_units != int(n_units):
            raise ValueError(f"The statistics are for {stats.n_units} units, not {n_units}.")
    itype = _KEY_TYPES[dtype]
    n_units = int(n_units)
    key_ninf, key_inf = _order_keys(np.array([-np.inf, np.inf], dtype), itype)

    def on(keys, sign):
        with np.errstate(invalid="ignore", over="ignore"):
            v = apply_transform(_from_keys(keys, dtype)[None, :].astype(np.float32), transform, stats)[0]
        return is_on(v, sign, theta)

    def bisect(sign):
        # the keys where the unit is on form one end of [key(-inf), key(+inf)]: the top end for +1,
        # the bottom end for -1 (+inf is always on, -inf always on in the negative direction)
        far = np.full(n_units, key_inf if sign > 0 else key_ninf, np.int64)
        near = np.full(n_units, key_ninf if sign > 0 else key_inf, np.int64)
        if not on(far, sign).all():
            raise ValueError(f"no value is on at threshold {theta:g} ({transform}); the statistics may be broken")
        done = on(near, sign)
        far[done] = near[done]
        while True:
            open_ = np.abs(far - near) > 1
            if not open_.any():
                return far
            mid = (far + near) // 2
            hit = on(mid, sign) & open_
            far = np.where(hit, mid, far)
            near = np.where(open_ & ~hit, mid, near)

    return {s: _from_keys(bisect(s), dtype).astype(np.float64) for s in (1, -1)}


def raw_thresholds(threshold: float, transform: str, n_units: int,
                   stats: UnitStats | None = None) -> dict[int, np.ndarray]:
    """Raw per-unit thresholds ``{+1: pos, -1: neg}`` (float64 ``[n_units]``) for ``threshold`` in
    ``transform`` space, in real arithmetic: θ, ±artanh(θ) or mean ± θ·std. For display; what is on is
    decided by ``is_on`` / ``stored_bounds`` (module docstring), which can differ at the last bit.

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
    fold = StatsFold(d)
    message = f"Statistics of {tap}"
    task.progress(0, n, message)
    with SlabReader(recording, tap, slab_rows(d, dtype.itemsize, STATS_BLOCK_ROWS)) as slabs:
        for a, b, x in slabs:
            fold.add(*block_stats(x))
            task.progress(b, n, message)
    return fold.result(n)


def block_stats(x: np.ndarray) -> tuple[np.ndarray, ...]:
    """Per block of ``STATS_BLOCK_ROWS`` rows of ``x`` (stored dtype ``[rows, D]``): ``(count, mean, M2,
    minimum, maximum)``, each ``[blocks, D]``. A block's numbers depend only on its rows, so blocks at
    the same global rows give the same numbers whichever read they come from (``sharded``)."""
    d = x.shape[1]
    view = np.int16 if x.dtype == np.float16 else None
    blocks = -(-len(x) // STATS_BLOCK_ROWS)
    c = np.empty((blocks, d), np.int64)
    shift, s1, s2, mn, mx = (np.empty((blocks, d)) for _ in range(5))
    if blocks:
        with KERNEL_LOCK:
            stats_slab(x.view(view) if view is not None else x, c, shift, s1, s2, mn, mx)
    with np.errstate(invalid="ignore", divide="ignore"):
        block_mean = np.where(c > 0, shift + s1 / c, 0.0)
        block_m2 = np.where(c > 0, np.maximum(s2 - s1 * s1 / c, 0.0), 0.0)
    return c, block_mean, block_m2, mn, mx


class StatsFold:
    """Running per-unit statistics: blocks merged one after another, in row order, by Chan et al.'s
    formula (``_merge``); min and max do not depend on the order."""

    def __init__(self, d: int):
        self.total_n = np.zeros(d, np.int64)
        self.mean = np.zeros(d)
        self.m2 = np.zeros(d)
        self.lo = np.full(d, np.inf)
        self.hi = np.full(d, -np.inf)

    def add(self, c, block_mean, block_m2, mn, mx) -> None:
        """Merge blocks ``[blocks, D]`` (as ``block_stats`` gives them), in order."""
        if len(c) == 0:
            return
        self.lo = np.minimum(self.lo, mn.min(0))
        self.hi = np.maximum(self.hi, mx.max(0))
        for i in range(len(c)):
            self.total_n, self.mean, self.m2 = _merge(self.total_n, self.mean, self.m2, c[i], block_mean[i],
                                                      block_m2[i])

    def result(self, n: int) -> UnitStats:
        lo, hi = self.lo.copy(), self.hi.copy()
        no_value = ~(lo <= hi)
        lo[no_value] = np.nan
        hi[no_value] = np.nan
        with np.errstate(invalid="ignore", divide="ignore"):
            std = np.where(self.total_n > 0, np.sqrt(self.m2 / np.maximum(self.total_n, 1)), 0.0)
        return UnitStats(mean=self.mean.copy(), std=std, minimum=lo, maximum=hi, count=int(n),
                         finite=self.total_n.copy())


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
