"""The B-test: a low-variance kernel two-sample test (Zaremba, Gretton, Blaschko, NeurIPS 2013).

Given paired samples ``x_1..x_n ~ P`` and ``y_1..y_n ~ Q`` (vectors of the same dimension) the test
asks whether ``P = Q``. With the Gaussian kernel

    k(a, b) = exp(-||a - b||² / (2 σ²))

and the paired h-function

    h(i, j) = k(x_i, x_j) + k(y_i, y_j) - k(x_i, y_j) - k(x_j, y_i),

the samples are cut into ``n_blocks = n / B`` blocks of ``B`` consecutive pairs; in block ``b``

    η_b = 1 / (B (B - 1)) · Σ_{i ≠ j in b} h(i, j)          (the unbiased quadratic-time MMD²_u)

and the B-statistic is ``η̂ = mean_b η_b``. Under ``H0: P = Q`` every ``η_b`` has mean 0 and the blocks
are independent, so by the central limit theorem over blocks ``η̂`` is approximately normal with
variance ``var(η_b) / n_blocks``, estimated by ``std_error = sqrt(var(η_b, ddof=1) / n_blocks)``. The
test is one-sided (MMD² is large under the alternative):

    p = 1 - Φ(η̂ / std_error),   reject when p < α   (equivalently η̂ > z_{1-α} · std_error).

``B`` trades power against cost: ``B = 2`` is the linear-time MMD, ``B = n`` the quadratic-time
MMD²_u (one block: no variance estimate, hence no p-value), the default ``B = floor(sqrt(n))`` costs
``O(n^1.5 d)`` (as in the authors' ``btest.m``).

Choices the paper leaves open, written down:

- **Pairing and trimming.** The design is paired, so both samples are trimmed to ``min(n, m)``: the
  longer one to a random subset (seeded), then both are permuted by one joint random permutation
  (seeded) so that neither the trim nor the block assignment follows the caller's order, and the last
  ``min(n, m) mod B`` pairs are dropped (``BTestResult.n`` is the count used). The joint permutation
  keeps pairs together; with one block it is skipped (it cannot change the statistic), so that
  ``b_test(x, y, block_size=len(x)).statistic == mmd2_unbiased(x, y, σ)`` holds bit for bit.
- **Bandwidth.** The median heuristic: ``σ`` = the median Euclidean distance between distinct points of
  the pooled sample ``x ∪ y`` after trimming (a seeded subsample of at most ``MEDIAN_SUBSAMPLE`` points). When that
  median is 0 (more than half the pairs coincide) the mean non-zero distance is used, and 1.0 when all
  points coincide.
- **Too few samples.** At least two blocks are needed for a p-value, so ``n < 2 B`` raises, except for
  ``B == n`` exactly (one block: the statistic alone, ``p_value`` and ``std_error`` are NaN and
  ``reject`` is False). ``B < 2`` raises (MMD²_u needs two pairs).
- **Degenerate variance.** If every block gives the same value (``std_error == 0``), ``p`` is 0 when
  ``η̂ > 0`` and 1 otherwise.

The samples must be **independent**: states at positions of the same item are not, so callers sample
one vector per item (``btest_groups``).

Several tests at once (several taps or layers) are corrected with the Benjamini-Hochberg step-up
procedure (``benjamini_hochberg``, ``bh_adjust``), which controls the false discovery rate at ``q`` for
independent or positively dependent tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.stats import norm

__all__ = [
    "BTestResult",
    "MEDIAN_SUBSAMPLE",
    "b_test",
    "block_statistics",
    "mmd2_unbiased",
    "median_bandwidth",
    "benjamini_hochberg",
    "bh_adjust",
]

MEDIAN_SUBSAMPLE = 1000
"""At most this many pooled points enter the median heuristic."""

_CHUNK_ELEMENTS = 1 << 22
"""Kernel entries computed at once (blocks are processed in chunks of this many B×B entries)."""


@dataclass(frozen=True)
class BTestResult:
    """Outcome of one B-test.

    ``p_value`` and ``std_error`` are NaN when there is a single block (``block_size == n``): the
    statistic is then the quadratic-time MMD²_u and has no variance estimate; ``reject`` is False.
    """

    statistic: float  # η̂ = mean of the block MMD²_u
    std_error: float  # sqrt(var(η_b, ddof=1) / n_blocks)  (nan when 1 block)
    p_value: float  # 1 - Φ(η̂ / std_error)  (one-sided; nan with 1 block)
    reject: bool  # p_value < alpha
    alpha: float
    block_size: int
    n_blocks: int
    n: int  # samples used per side (after trimming to a multiple of block_size)
    bandwidth: float  # Gaussian kernel width σ: k(a,b) = exp(-‖a-b‖² / (2σ²))


def _as_samples(a, name: str) -> np.ndarray:
    arr = np.asarray(a)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array [samples, dims], got shape {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{name} must be real numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if not np.all(np.isfinite(arr)):
        bad = int(np.count_nonzero(~np.all(np.isfinite(arr), axis=1)))
        raise ValueError(f"{name} has {bad} row(s) with non-finite values (NaN or inf); remove them first")
    return arr


def _check_pair(x, y) -> tuple[np.ndarray, np.ndarray]:
    x = _as_samples(x, "x")
    y = _as_samples(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have the same dimension: x has {x.shape[1]}, y has {y.shape[1]}")
    return x, y


def _check_bandwidth(bandwidth) -> float:
    s = float(bandwidth)
    if not (math.isfinite(s) and s > 0):
        raise ValueError(f"bandwidth must be a positive finite number, got {bandwidth!r}")
    return s


def median_bandwidth(x, y=None, *, seed: int = 0, max_points: int = MEDIAN_SUBSAMPLE) -> float:
    """Median heuristic σ: the median distance between distinct points of the pooled sample.

    At most ``max_points`` pooled points (a seeded subsample) enter. Falls back to the mean non-zero
    distance when the median is 0, and to 1.0 when all points coincide.
    """
    pooled = _as_samples(x, "x") if y is None else np.concatenate(_check_pair(x, y))
    if len(pooled) > max_points:
        rng = np.random.default_rng(seed)
        pooled = pooled[rng.choice(len(pooled), max_points, replace=False)]
    if len(pooled) < 2:
        return 1.0
    sq = np.sum(pooled * pooled, axis=1)
    d2 = sq[:, None] + sq[None, :] - 2.0 * pooled @ pooled.T
    iu = np.triu_indices(len(pooled), k=1)
    dist = np.sqrt(np.maximum(d2[iu], 0.0))
    med = float(np.median(dist))
    if med > 0:
        return med
    nz = dist[dist > 0]
    return float(nz.mean()) if nz.size else 1.0


def _sqdist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Batched squared distances: a [k, B, d], b [k, B, d] -> [k, B, B]."""
    sa = np.einsum("kbd,kbd->kb", a, a)
    sb = np.einsum("kbd,kbd->kb", b, b)
    d2 = sa[:, :, None] + sb[:, None, :] - 2.0 * np.matmul(a, b.transpose(0, 2, 1))
    return np.maximum(d2, 0.0)


def _block_mmd2(xb: np.ndarray, yb: np.ndarray, bandwidth: float) -> np.ndarray:
    """η_b for blocks xb, yb [n_blocks, B, d] (paired h-statistic, i ≠ j), vectorised over blocks."""
    n_blocks, bsz, _ = xb.shape
    gamma = 1.0 / (2.0 * bandwidth * bandwidth)
    out = np.empty(n_blocks)
    per_chunk = max(1, _CHUNK_ELEMENTS // (bsz * bsz))
    for start in range(0, n_blocks, per_chunk):
        a = xb[start : start + per_chunk]
        b = yb[start : start + per_chunk]
        kxx = np.exp(-gamma * _sqdist(a, a))
        kyy = np.exp(-gamma * _sqdist(b, b))
        kxy = np.exp(-gamma * _sqdist(a, b))
        # Σ_{i≠j} h = (ΣKxx - tr) + (ΣKyy - tr) - 2 (ΣKxy - tr Kxy)   (Σ_{i≠j} k(x_j, y_i) = Σ_{i≠j} Kxy)
        total = kxx.sum(axis=(1, 2)) + kyy.sum(axis=(1, 2)) - 2.0 * kxy.sum(axis=(1, 2))
        diag = (
            np.einsum("kii->k", kxx) + np.einsum("kii->k", kyy) - 2.0 * np.einsum("kii->k", kxy)
        )
        out[start : start + len(a)] = (total - diag) / (bsz * (bsz - 1))
    return out


def mmd2_unbiased(x, y, bandwidth) -> float:
    """Quadratic-time unbiased MMD² in the paired form (the h-statistic of the B-test).

    ``x`` and ``y`` are ``[n, d]`` with the same ``n ≥ 2``; the value is
    ``1/(n(n-1)) Σ_{i≠j} [k(x_i,x_j) + k(y_i,y_j) - k(x_i,y_j) - k(x_j,y_i)]`` with the Gaussian kernel of
    width ``bandwidth``. It depends on the pairing only through the diagonal terms ``k(x_i, y_i)``.
    """
    x, y = _check_pair(x, y)
    if len(x) != len(y):
        raise ValueError(f"the paired MMD²_u needs as many x as y samples, got {len(x)} and {len(y)}")
    if len(x) < 2:
        raise ValueError(f"MMD²_u needs at least 2 samples per side, got {len(x)}")
    return float(_block_mmd2(x[None], y[None], _check_bandwidth(bandwidth))[0])


def block_statistics(x, y, block_size: int, bandwidth) -> np.ndarray:
    """The block values η_b of consecutive blocks of ``block_size`` pairs (no trimming, no shuffling).

    ``len(x) == len(y)`` must be a multiple of ``block_size``.
    """
    x, y = _check_pair(x, y)
    n = len(x)
    if len(y) != n or block_size < 2 or n % block_size:
        raise ValueError(
            f"block_statistics needs len(x) == len(y) a multiple of block_size ≥ 2, "
            f"got {len(x)}, {len(y)}, block_size {block_size}"
        )
    d = x.shape[1]
    nb = n // block_size
    return _block_mmd2(
        x.reshape(nb, block_size, d), y.reshape(nb, block_size, d), _check_bandwidth(bandwidth)
    )


def b_test(x, y, *, block_size=None, alpha=0.05, bandwidth=None, seed=0) -> BTestResult:
    """B-test of ``H0: P = Q`` from samples ``x [n, d] ~ P`` and ``y [m, d] ~ Q`` (see the module doc).

    ``block_size`` defaults to ``floor(sqrt(min(n, m)))``; ``bandwidth`` to the median heuristic on the
    pooled sample. With a single block (``block_size == min(n, m)``) only the statistic is returned:
    ``p_value`` and ``std_error`` are NaN and ``reject`` is False.
    """
    x, y = _check_pair(x, y)
    if not (0.0 < float(alpha) < 1.0):
        raise ValueError(f"alpha must lie in (0, 1), got {alpha!r}")
    n_full = min(len(x), len(y))
    if n_full < 2:
        raise ValueError(f"the B-test needs at least 2 samples per side, got {len(x)} and {len(y)}")
    if block_size is None:
        bsz = max(2, int(math.isqrt(n_full)))
    else:
        bsz = int(block_size)
        if bsz != block_size or bsz < 2:
            raise ValueError(f"block_size must be an integer ≥ 2, got {block_size!r}")
    if bsz != n_full and n_full < 2 * bsz:
        raise ValueError(
            f"too few samples for block size {bsz}: {n_full} per side gives fewer than 2 blocks "
            f"(need at least {2 * bsz}, or block_size = {n_full} for the statistic alone)"
        )
    rng = np.random.default_rng(seed)
    if len(x) > n_full:
        x = x[rng.choice(len(x), n_full, replace=False)]
    if len(y) > n_full:
        y = y[rng.choice(len(y), n_full, replace=False)]
    sigma = median_bandwidth(x, y, seed=seed) if bandwidth is None else _check_bandwidth(bandwidth)
    nb = n_full // bsz
    n_used = nb * bsz
    if nb > 1:
        perm = rng.permutation(n_full)[:n_used]
        x, y = x[perm], y[perm]
    eta = block_statistics(x[:n_used], y[:n_used], bsz, sigma)
    stat = float(eta.mean())
    if nb == 1:
        se, p = math.nan, math.nan
    else:
        se = float(math.sqrt(np.var(eta, ddof=1) / nb))
        if se > 0:
            p = float(norm.sf(stat / se))
        else:
            p = 0.0 if stat > 0 else 1.0
    reject = bool(p < alpha) if math.isfinite(p) else False
    return BTestResult(
        statistic=stat,
        std_error=se,
        p_value=p,
        reject=reject,
        alpha=float(alpha),
        block_size=bsz,
        n_blocks=nb,
        n=n_used,
        bandwidth=sigma,
    )


def bh_adjust(p_values) -> np.ndarray:
    """Benjamini-Hochberg adjusted p-values: ``min_{j ≥ i} (m / j) p_(j)``, capped at 1.

    NaN entries stay NaN and do not count in ``m``.
    """
    p = np.asarray(p_values, dtype=np.float64).ravel()
    out = np.full(p.shape, np.nan)
    ok = np.isfinite(p)
    if np.any((p[ok] < 0) | (p[ok] > 1)):
        raise ValueError("p-values must lie in [0, 1]")
    pv = p[ok]
    m = pv.size
    if m == 0:
        return out
    order = np.argsort(pv, kind="stable")
    scaled = pv[order] * m / np.arange(1, m + 1)
    adj = np.minimum.accumulate(scaled[::-1])[::-1]
    res = np.empty(m)
    res[order] = np.minimum(adj, 1.0)
    out[ok] = res
    return out


def benjamini_hochberg(p_values, q=0.05) -> np.ndarray:
    """Decisions of the Benjamini-Hochberg step-up procedure at false discovery rate ``q``.

    Sort the ``m`` finite p-values, find the largest ``k`` with ``p_(k) ≤ k q / m`` and reject the
    ``k`` smallest. NaN p-values are never rejected and do not count in ``m``.
    """
    if not (0.0 < float(q) < 1.0):
        raise ValueError(f"q must lie in (0, 1), got {q!r}")
    adj = bh_adjust(p_values)
    return np.where(np.isfinite(adj), adj <= q, False)
