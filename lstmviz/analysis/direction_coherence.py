"""Are single units more "semantically coherent" than random directions? (Szegedy et al. 2014, sec. 3)

Szegedy et al. ("Intriguing properties of neural networks") collect, for a layer phi and a direction v,
the held-out inputs that maximise <phi(x), v>, and find the sets for a natural basis unit v = e_u and for
a random v on the unit sphere equally coherent. Here the inputs are the positions of a recording, the
layer is a tap, and coherence is measured against a categorical position annotation (POS tag, nesting
depth, ...):

    score_v(t)   = <h_t, v>                         (h_t: the tap's values at position t, float32)
    top_k(v)     = the k positions t with the largest score_v(t) (ties: the earlier position first)
    purity(v)    = max_c #{t in top_k(v): label(t) = c} / k
    base rate    = max_c #{t: label(t) = c} / N     (the largest class share over the candidate positions)
    corrected(v) = (purity(v) - base rate) / (1 - base rate)

``corrected`` is 0 when the top-k are no purer than always guessing the largest class and 1 when they
are pure; it can be negative. A second baseline, ``chance_purity``, is the mean purity of k positions
drawn uniformly at random (without replacement, Monte Carlo): for small k even random positions are
purer than the base rate (with 5 balanced classes, k = 10 random positions share a label at ~0.37, not 0.2).

**Context purity** (``context=w``): the label of a position is replaced by the tuple of labels at
positions ``t-w .. t`` of the same item (positions before the item's start count as one extra "before
the item" label), so ``w = 1`` asks whether the top contexts share (previous tag, tag). ``w = 0`` is the
plain label. Candidate positions are those whose own label is not missing (-1).

Units are the directions e_u (u = 0 .. units-1, or a chosen subset); random directions are
``g / ||g||`` with ``g ~ N(0, I)`` from ``numpy.random.default_rng(seed)``. All directions are scored
in one streaming pass over the tap (``chunk_rows`` positions at a time; float16 taps are read as float32
per chunk), so a recording is never loaded whole and never written to.

The comparison reports per-direction purities, their means with percentile-bootstrap 95% intervals
(resampling directions), and a two-sided Mann-Whitney U test (scipy) of unit against random purities.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from lstmviz.errors import ExpectedError

DEFAULT_CHUNK_ROWS = 16384


class CoherenceError(ExpectedError, ValueError):
    """A direction-coherence request the recording cannot answer (one sentence)."""


# --------------------------------------------------------------------------------------------- top-k


def _directions_matrix(directions, n_units: int, tap: str) -> np.ndarray:
    d = np.asarray(directions, dtype=np.float64)
    if d.ndim == 1:
        d = d[None, :]
    if d.ndim != 2 or d.shape[1] != n_units:
        raise CoherenceError(f"a direction for tap {tap!r} needs {n_units} values (one per unit), "
                             f"got shape {tuple(np.shape(directions))}")
    if not np.isfinite(d).all():
        raise CoherenceError("directions must be finite numbers")
    return d


def top_positions_many(recording, tap: str, directions, k: int, *, candidates: np.ndarray | None = None,
                       chunk_rows: int = DEFAULT_CHUNK_ROWS) -> np.ndarray:
    """int64 ``[D, k]``: for each direction (rows of ``directions`` ``[D, units]``), the ``k`` positions
    with the largest ``<h_t, v>``, best first (ties: the earlier position first).

    ``candidates``: an optional boolean mask ``[n_positions]``; other positions are never chosen.
    Reads the tap in chunks of ``chunk_rows`` positions (a NaN score never ranks).
    """
    if tap not in recording.taps:
        raise CoherenceError(f"the recording has no tap {tap!r} (taps: {', '.join(recording.taps)})")
    info = recording.taps[tap]
    if info.axis != "positions":
        raise CoherenceError(f"tap {tap!r} is on axis {info.axis!r}; only token-position taps have annotations")
    d = _directions_matrix(directions, info.units, tap).astype(np.float32)
    n = recording.n_positions
    if candidates is not None:
        candidates = np.asarray(candidates, dtype=bool)
        if candidates.shape != (n,):
            raise CoherenceError(f"the candidate mask needs one value per position ({n}), got {candidates.shape}")
    n_candidates = n if candidates is None else int(candidates.sum())
    k = int(k)
    if k < 1 or k > n_candidates:
        raise CoherenceError(f"k must be between 1 and the {n_candidates} candidate positions, got {k}")
    n_dir = d.shape[0]
    best_score = np.full((n_dir, 0), -np.inf, dtype=np.float32)
    best_pos = np.zeros((n_dir, 0), dtype=np.int64)
    for a in range(0, n, chunk_rows):
        b = min(n, a + chunk_rows)
        scores = recording.states(tap, a, b) @ d.T  # [rows, D] float32
        scores[np.isnan(scores)] = -np.inf
        if candidates is not None:
            scores[~candidates[a:b]] = -np.inf
        rows = b - a
        # the k-th largest score per direction (O(rows)); every score >= it may be among the k best
        kth = np.partition(scores, rows - k, axis=0)[rows - k] if rows > k else np.full(n_dir, -np.inf)
        new_score = np.empty((n_dir, min(k, rows + best_score.shape[1])), dtype=np.float32)
        new_pos = np.empty(new_score.shape, dtype=np.int64)
        for j in range(n_dir):
            keep = np.flatnonzero(scores[:, j] >= kth[j])
            s = np.concatenate([best_score[j], scores[keep, j]])
            p = np.concatenate([best_pos[j], a + keep])
            order = np.lexsort((p, -s))[:new_score.shape[1]]  # score descending, then the earlier position
            new_score[j], new_pos[j] = s[order], p[order]
        best_score, best_pos = new_score, new_pos
    if np.isneginf(best_score).any():
        raise CoherenceError(f"tap {tap!r} has fewer than k = {k} candidate positions with a finite value")
    return best_pos


def top_positions(recording, tap: str, direction, k: int, *, candidates: np.ndarray | None = None,
                  chunk_rows: int = DEFAULT_CHUNK_ROWS) -> np.ndarray:
    """int64 ``[k]``: the ``k`` positions with the largest ``<h_t, direction>``, best first."""
    d = np.asarray(direction, dtype=np.float64)
    if d.ndim != 1:
        raise CoherenceError(f"expected one direction (a vector of units), got shape {d.shape}")
    return top_positions_many(recording, tap, d, k, candidates=candidates, chunk_rows=chunk_rows)[0]


def unit_directions(n_units: int, units=None) -> np.ndarray:
    """float64 ``[len(units), n_units]``: the natural basis vectors e_u (all units when ``units`` is None)."""
    units = np.arange(n_units) if units is None else np.asarray(units, dtype=np.int64).reshape(-1)
    if units.size == 0 or units.min() < 0 or units.max() >= n_units:
        raise CoherenceError(f"units must lie in 0..{n_units - 1}, got {units.tolist()}")
    return np.eye(n_units)[units]


def random_directions(n_units: int, n: int, seed: int = 0) -> np.ndarray:
    """float64 ``[n, n_units]``: directions uniform on the unit sphere (normalised Gaussian vectors)."""
    g = np.random.default_rng(seed).standard_normal((int(n), int(n_units)))
    return g / np.linalg.norm(g, axis=1, keepdims=True)


# --------------------------------------------------------------------------------------------- purity


def purity(labels, *, missing: int = -1) -> np.ndarray | float:
    """The share of ``labels`` equal to their most common label.

    ``labels``: int ``[k]`` (returns a float) or ``[D, k]`` (returns float64 ``[D]``, one per row).
    Values equal to ``missing`` count in ``k`` but never as the most common label.
    """
    a = np.asarray(labels)
    if a.ndim not in (1, 2) or a.shape[-1] == 0:
        raise CoherenceError(f"expected labels [k] or [directions, k] with k >= 1, got shape {a.shape}")
    if a.dtype.kind not in "iu":
        raise CoherenceError(f"labels must be integer ids, got dtype {a.dtype}")
    rows = a.reshape(-1, a.shape[-1])
    out = np.empty(rows.shape[0], dtype=np.float64)
    for i, row in enumerate(rows):
        values, counts = np.unique(row[row != missing], return_counts=True)
        out[i] = (counts.max() if values.size else 0) / row.size
    return float(out[0]) if a.ndim == 1 else out


def base_rate(labels, *, missing: int = -1) -> float:
    """The largest class share among ``labels`` (``missing`` values are left out)."""
    a = np.asarray(labels).reshape(-1)
    a = a[a != missing]
    if a.size == 0:
        raise CoherenceError("no labelled positions")
    return float(np.unique(a, return_counts=True)[1].max() / a.size)


def corrected_purity(p, base: float):
    """``(p - base) / (1 - base)``: 0 at the base rate, 1 for pure sets (nan when base == 1)."""
    p = np.asarray(p, dtype=np.float64)
    if base >= 1.0:
        return np.full_like(p, np.nan)
    return (p - base) / (1.0 - base)


def chance_purity(labels, k: int, *, n_draws: int = 2000, seed: int = 0) -> float:
    """Mean purity of ``k`` positions drawn uniformly without replacement from ``labels`` (Monte Carlo)."""
    a = np.asarray(labels).reshape(-1)
    rng = np.random.default_rng(seed)
    draws = np.stack([rng.choice(a, size=int(k), replace=False) for _ in range(int(n_draws))])
    return float(purity(draws).mean())


def context_labels(labels: np.ndarray, item_offsets: np.ndarray, context: int, *, missing: int = -1) -> np.ndarray:
    """int64 ``[n]``: one id per position for the tuple of labels at ``t - context .. t`` in its item.

    ``context = 0`` returns the labels. Positions before an item's start take the label ``n_labels``
    ("before the item"); a missing (-1) label inside the window stays its own value. The ids are
    ``np.unique`` codes of the tuples, except that a position whose own label is missing keeps ``missing``.
    """
    labels = np.asarray(labels, dtype=np.int64)
    context = int(context)
    if context < 0:
        raise CoherenceError(f"context must be >= 0 tokens, got {context}")
    if context == 0:
        return labels.copy()
    n = labels.size
    offsets = np.asarray(item_offsets, dtype=np.int64)
    start = offsets[np.searchsorted(offsets, np.arange(n), side="right") - 1]
    before = int(labels.max(initial=0)) + 1
    cols = []
    for lag in range(context, -1, -1):
        src = np.arange(n) - lag
        col = np.where(src >= start, labels[np.clip(src, 0, None)], before)
        cols.append(col)
    window = np.stack(cols, axis=1)
    _, codes = np.unique(window, axis=0, return_inverse=True)
    codes = codes.reshape(-1).astype(np.int64)
    codes[labels == missing] = missing
    return codes


# --------------------------------------------------------------------------------------------- statistics


def bootstrap_mean_ci(values, *, n_boot: int = 10000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (resampled with replacement).

    NaN values are left out; fewer than 2 values give ``(mean, mean)``.
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    v = v[~np.isnan(v)]
    if v.size == 0:
        return (float("nan"), float("nan"))
    if v.size < 2:
        return (float(v.mean()), float(v.mean()))
    rng = np.random.default_rng(seed)
    means = np.empty(int(n_boot))
    for lo in range(0, int(n_boot), 1000):  # bounded memory for many values
        hi = min(int(n_boot), lo + 1000)
        means[lo:hi] = v[rng.integers(0, v.size, size=(hi - lo, v.size))].mean(axis=1)
    alpha = (1.0 - level) / 2.0
    return (float(np.quantile(means, alpha)), float(np.quantile(means, 1.0 - alpha)))


def mann_whitney_p(a, b) -> float:
    """Two-sided Mann-Whitney U p-value (scipy); 1.0 when every value of both samples is the same."""
    from scipy.stats import mannwhitneyu

    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if np.unique(np.concatenate([a, b])).size < 2:
        return 1.0
    return float(mannwhitneyu(a, b, alternative="two-sided").pvalue)


# --------------------------------------------------------------------------------------------- comparison


@dataclass
class CoherenceComparison:
    """Purity of the top-k positions of units vs random directions for one tap and one annotation."""

    tap: str
    annotation: str
    k: int
    context: int
    seed: int
    n_candidates: int                  # positions with a label (the pool the top-k come from)
    units: np.ndarray                  # int64 [U] the units compared
    unit_purity: np.ndarray            # float64 [U]
    random_purity: np.ndarray          # float64 [R]
    base_rate: float                   # largest class share among the candidates
    chance_purity: float               # mean purity of k random candidate positions
    unit_mean: float
    unit_ci: tuple[float, float]
    random_mean: float
    random_ci: tuple[float, float]
    unit_corrected_mean: float         # mean of (purity - base) / (1 - base)
    unit_corrected_ci: tuple[float, float]
    random_corrected_mean: float
    random_corrected_ci: tuple[float, float]
    mann_whitney_p: float              # two-sided, units vs random directions
    unit_top: np.ndarray = field(repr=False)    # int64 [U, k] top positions per unit
    random_top: np.ndarray = field(repr=False)  # int64 [R, k]

    @property
    def difference(self) -> float:
        """Mean unit purity minus mean random-direction purity."""
        return self.unit_mean - self.random_mean

    def summary(self) -> dict:
        """The scalar results (JSON-friendly)."""
        d = asdict(self)
        for key in ("units", "unit_purity", "random_purity", "unit_top", "random_top"):
            d.pop(key)
        d["n_units"] = int(self.units.size)
        d["n_random"] = int(self.random_purity.size)
        d["difference"] = self.difference
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in d.items()}


def coherence_comparison(recording, tap: str, annotation: str, k: int = 10, n_random: int = 100, seed: int = 0,
                         *, units=None, context: int = 0, n_boot: int = 10000,
                         chunk_rows: int = DEFAULT_CHUNK_ROWS) -> CoherenceComparison:
    """Compare the annotation purity of the top-``k`` positions of each unit (``units``: all when None)
    with that of ``n_random`` random unit-norm directions (see the module docstring for the equations).

    Candidate positions are those where ``annotation`` (categorical, per position) is not missing.
    """
    if annotation not in recording.annotations:
        raise CoherenceError(f"the recording has no annotation {annotation!r} "
                             f"(annotations: {', '.join(recording.annotations) or 'none'})")
    info = recording.annotations[annotation]
    if info.kind != "categorical" or info.level != "position":
        raise CoherenceError(f"annotation {annotation!r} is {info.kind} per {info.level}; purity needs a "
                             f"categorical annotation per position")
    if tap not in recording.taps:
        raise CoherenceError(f"the recording has no tap {tap!r} (taps: {', '.join(recording.taps)})")
    if int(n_random) < 1:
        raise CoherenceError(f"n_random must be at least 1, got {n_random}")
    n_units = recording.taps[tap].units
    raw = np.asarray(recording.annotation(annotation), dtype=np.int64)
    labels = context_labels(raw, recording.item_offsets, context)
    candidates = raw != -1
    n_candidates = int(candidates.sum())
    if n_candidates == 0:
        raise CoherenceError(f"annotation {annotation!r} labels no position")

    e = unit_directions(n_units, units)
    unit_ids = np.arange(n_units) if units is None else np.asarray(units, dtype=np.int64).reshape(-1)
    r = random_directions(n_units, n_random, seed)
    top = top_positions_many(recording, tap, np.concatenate([e, r]), k, candidates=candidates,
                             chunk_rows=chunk_rows)
    unit_top, random_top = top[:e.shape[0]], top[e.shape[0]:]
    p_unit = purity(labels[unit_top])
    p_rand = purity(labels[random_top])
    base = base_rate(labels[candidates])
    c_unit = corrected_purity(p_unit, base)
    c_rand = corrected_purity(p_rand, base)

    def mean(v):
        return float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")

    return CoherenceComparison(
        tap=tap, annotation=annotation, k=int(k), context=int(context), seed=int(seed),
        n_candidates=n_candidates, units=unit_ids, unit_purity=p_unit, random_purity=p_rand,
        base_rate=base, chance_purity=chance_purity(labels[candidates], k, seed=seed),
        unit_mean=mean(p_unit), unit_ci=bootstrap_mean_ci(p_unit, n_boot=n_boot, seed=seed),
        random_mean=mean(p_rand), random_ci=bootstrap_mean_ci(p_rand, n_boot=n_boot, seed=seed + 1),
        unit_corrected_mean=mean(c_unit), unit_corrected_ci=bootstrap_mean_ci(c_unit, n_boot=n_boot, seed=seed),
        random_corrected_mean=mean(c_rand),
        random_corrected_ci=bootstrap_mean_ci(c_rand, n_boot=n_boot, seed=seed + 1),
        mann_whitney_p=mann_whitney_p(p_unit, p_rand), unit_top=unit_top, random_top=random_top,
    )
