"""Annotations around a set of anchor positions (match starts), against the whole corpus.

For every offset ``o`` (position ``anchor + o``) and label ``l`` of a categorical annotation:

- ``counts[o, l]``: anchors whose position ``anchor + o`` lies inside the anchor's item and has label ``l``;
  ``n[o]``: those with any label (missing labels, id -1, are left out);
- ``fraction = counts / n``; ``baseline[l]``: the fraction of all labelled positions of the corpus with
  label ``l``; ``enrichment = fraction / baseline``;
- ``p_value``: the one-sided binomial probability ``P(X >= counts)`` for ``X ~ Binomial(n, baseline)``, how
  likely that many anchors would carry the label if they were positions drawn at random from the corpus.
  Exact (a log-space sum of the binomial terms) for ``n <= EXACT_MAX_N``, the normal approximation with
  continuity correction beyond.

An item-level annotation gives every position its item's value (the baseline weighs items by length).
A numeric annotation gives the mean and population standard deviation per offset (NaN = missing is left
out) and the corpus mean / std. Corpus baselines take one streaming pass over the annotation and are
cached per (file, annotation) in a small module-level LRU.
"""

from __future__ import annotations

import math
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from lstmviz.tasks import Task, ensure_task

EXACT_MAX_N = 5000
BLOCK_POSITIONS = 1 << 20
_CACHE_SIZE = 16
_baseline_cache: OrderedDict[tuple, object] = OrderedDict()
_cache_lock = threading.Lock()
_log_factorial: np.ndarray | None = None


@dataclass(frozen=True)
class LabelTable:
    """Label distribution of a categorical annotation at each offset from the anchors, and its enrichment."""

    annotation: str
    offsets: np.ndarray  # int64 [O]
    labels: list[str]  # [L]
    counts: np.ndarray  # int64 [O, L]
    n: np.ndarray  # int64 [O]: anchors with a label at that offset inside their item
    fraction: np.ndarray  # float64 [O, L]: counts / n (NaN where n == 0)
    baseline: np.ndarray  # float64 [L]: fraction of all labelled corpus positions
    enrichment: np.ndarray  # float64 [O, L]: fraction / baseline
    p_value: np.ndarray  # float64 [O, L]: one-sided binomial P(X >= count) (NaN where n == 0)
    level: str = "position"
    n_anchors: int = 0


@dataclass(frozen=True)
class NumericTable:
    """Mean and standard deviation of a numeric annotation at each offset from the anchors, and the corpus's."""

    annotation: str
    offsets: np.ndarray  # int64 [O]
    n: np.ndarray  # int64 [O]: anchors with a value at that offset inside their item
    mean: np.ndarray  # float64 [O] (NaN where n == 0)
    std: np.ndarray  # float64 [O], population std (ddof 0)
    baseline_mean: float
    baseline_std: float
    level: str = "position"
    n_anchors: int = 0


class EnrichmentRow(NamedTuple):
    """One (offset, label) cell of a ``LabelTable``; ``n`` is the number of labelled anchors at the offset."""

    offset: int
    label: str
    count: int
    fraction: float
    baseline: float
    enrichment: float
    p: float
    n: int


# ---------------------------------------------------------------------------------------- statistics

def _log_factorials(n: int) -> np.ndarray:
    global _log_factorial
    if _log_factorial is None or len(_log_factorial) <= n:
        _log_factorial = np.array([math.lgamma(i + 1.0) for i in range(max(n, EXACT_MAX_N) + 1)])
    return _log_factorial


def binomial_tail(k: int, n: int, p: float) -> float:
    """``P(X >= k)`` for ``X ~ Binomial(n, p)``: exact in log space for ``n <= EXACT_MAX_N``, else normal.

    Terms far below the largest one underflow to 0 and are dropped; a tail below ~1e-308 returns 0.0.
    """
    k, n, p = int(k), int(n), float(p)
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    if n <= EXACT_MAX_N:
        lf = _log_factorials(n)
        i = np.arange(k, n + 1)
        log_terms = lf[n] - lf[i] - lf[n - i] + i * math.log(p) + (n - i) * math.log1p(-p)
        top = float(log_terms.max())
        return min(1.0, math.exp(top) * float(np.exp(log_terms - top).sum()))
    mean, sd = n * p, math.sqrt(n * p * (1.0 - p))
    z = (k - 0.5 - mean) / sd
    return 0.5 * math.erfc(z / math.sqrt(2.0))


# ---------------------------------------------------------------------------------------- reading

def _info(recording, annotation: str):
    info = recording.annotations.get(annotation)
    if info is None:
        names = ", ".join(recording.annotations) or "none"
        raise ValueError(f"{recording.path} has no annotation {annotation!r} (annotations: {names})")
    return info


def _gather(recording, annotation: str, positions: np.ndarray, task: Task) -> np.ndarray:
    """Values of a position-level annotation at ``positions``, read only in blocks that hold some of them."""
    uniq, inverse = np.unique(positions, return_inverse=True)
    out = None
    i = 0
    while i < uniq.size:
        a = int(uniq[i])
        j = int(np.searchsorted(uniq, a + BLOCK_POSITIONS, side="left"))
        block = recording.annotation(annotation, a, int(uniq[j - 1]) + 1)
        if out is None:
            out = np.empty(uniq.size, dtype=block.dtype)
        out[i:j] = block[uniq[i:j] - a]
        i = j
        task.progress(i, uniq.size, "reading annotations")
    if out is None:
        return np.zeros(0)
    return out[inverse]


def _cache_key(recording, annotation: str) -> tuple:
    path = Path(recording.path)
    try:
        st = os.stat(path)
        stamp = (st.st_size, st.st_mtime_ns)
    except OSError:
        stamp = None
    return str(path.resolve()), annotation, stamp


def _baseline(recording, annotation: str, info, task: Task):
    """Categorical: float64 label counts [L]; numeric: (count, mean, M2). Cached per file and annotation."""
    key = _cache_key(recording, annotation)
    with _cache_lock:
        if key in _baseline_cache:
            _baseline_cache.move_to_end(key)
            return _baseline_cache[key]
    categorical = info.kind == "categorical"
    n_labels = len(info.labels or [])
    if info.level == "item":
        values = recording.annotation(annotation)
        weights = np.diff(np.asarray(recording.item_offsets, dtype=np.int64)).astype(np.float64)
        result = _summarise(values, weights, categorical, n_labels)
    else:
        n = int(recording.n_positions)
        result = None
        for start in range(0, n, BLOCK_POSITIONS):
            stop = min(n, start + BLOCK_POSITIONS)
            part = _summarise(recording.annotation(annotation, start, stop), None, categorical, n_labels)
            result = part if result is None else _merge(result, part, categorical)
            task.progress(stop, n, "corpus baseline")
        if result is None:
            result = _summarise(np.zeros(0), None, categorical, n_labels)
    with _cache_lock:
        _baseline_cache[key] = result
        _baseline_cache.move_to_end(key)
        while len(_baseline_cache) > _CACHE_SIZE:
            _baseline_cache.popitem(last=False)
    return result


def _summarise(values, weights, categorical: bool, n_labels: int):
    values = np.asarray(values)
    if categorical:
        keep = (values >= 0) & (values < n_labels)
        w = None if weights is None else weights[keep]
        return np.bincount(values[keep].astype(np.int64), weights=w, minlength=n_labels).astype(np.float64)
    keep = ~np.isnan(values)
    v = values[keep].astype(np.float64)
    w = np.ones_like(v) if weights is None else weights[keep]
    total = float(w.sum())
    if total == 0:
        return 0.0, math.nan, 0.0
    mean = float((w * v).sum() / total)
    return total, mean, float((w * (v - mean) ** 2).sum())


def _merge(a, b, categorical: bool):
    if categorical:
        return a + b
    (na, ma, m2a), (nb, mb, m2b) = a, b
    if na == 0:
        return b
    if nb == 0:
        return a
    n = na + nb
    delta = mb - ma
    return n, ma + delta * nb / n, m2a + m2b + delta * delta * na * nb / n


def clear_cache() -> None:
    """Forget every cached corpus baseline."""
    with _cache_lock:
        _baseline_cache.clear()


# ---------------------------------------------------------------------------------------- aggregation

def aggregate(recording, annotation: str, anchors, *, offsets=range(-3, 21),
              task: Task | None = None) -> LabelTable | NumericTable:
    """The distribution of ``annotation`` at ``anchor + offset`` for every offset, against the corpus.

    ``anchors``: int positions (offset 0 is the anchor itself); an offset that leaves the anchor's item
    is not counted for that anchor. Categorical annotations give a ``LabelTable``, numeric ones a
    ``NumericTable``. Raises ``ValueError`` for an unknown annotation, ``IndexError`` for an anchor
    outside the corpus; ``Cancelled`` when ``task`` is cancelled.
    """
    task = ensure_task(task)
    info = _info(recording, annotation)
    anchors = np.asarray(anchors, dtype=np.int64).reshape(-1)
    offs = np.asarray(list(offsets), dtype=np.int64).reshape(-1)
    item_offsets = np.asarray(recording.item_offsets, dtype=np.int64)
    items = np.asarray(recording.item_of(anchors), dtype=np.int64).reshape(-1)
    where = anchors[None, :] + offs[:, None]  # [O, A]
    inside = (where >= item_offsets[items][None, :]) & (where < item_offsets[items + 1][None, :])
    if info.level == "item":
        item_values = recording.annotation(annotation)
        values = np.broadcast_to(item_values[items][None, :], where.shape)[inside]
    else:
        values = _gather(recording, annotation, where[inside], task)
    row = np.broadcast_to(np.arange(offs.size)[:, None], where.shape)[inside]
    baseline = _baseline(recording, annotation, info, task)
    if info.kind == "categorical":
        return _label_table(annotation, info, offs, row, values, baseline, anchors.size)
    return _numeric_table(annotation, info, offs, row, values, baseline, anchors.size)


def _label_table(annotation, info, offs, row, values, baseline_counts, n_anchors) -> LabelTable:
    labels = list(info.labels or [])
    n_labels = len(labels)
    keep = (values >= 0) & (values < n_labels)
    flat = row[keep] * n_labels + values[keep].astype(np.int64)
    counts = np.bincount(flat, minlength=offs.size * n_labels).reshape(offs.size, n_labels).astype(np.int64)
    n = counts.sum(axis=1)
    total = float(baseline_counts.sum())
    baseline = baseline_counts / total if total > 0 else np.full(n_labels, np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        fraction = counts / n[:, None]
        enrichment = fraction / baseline[None, :]
    p_value = np.full(counts.shape, np.nan)
    for o in range(offs.size):
        if n[o] == 0:
            continue
        for label in range(n_labels):
            p_value[o, label] = binomial_tail(counts[o, label], n[o], baseline[label])
    return LabelTable(annotation, offs, labels, counts, n.astype(np.int64), fraction, baseline, enrichment,
                      p_value, info.level, int(n_anchors))


def _numeric_table(annotation, info, offs, row, values, baseline, n_anchors) -> NumericTable:
    values = np.asarray(values, dtype=np.float64)
    keep = ~np.isnan(values)
    row, values = row[keep], values[keep]
    n = np.bincount(row, minlength=offs.size).astype(np.int64)
    total = np.bincount(row, weights=values, minlength=offs.size)
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = total / n
        sq = np.bincount(row, weights=(values - mean[row]) ** 2, minlength=offs.size)
        std = np.sqrt(sq / n)
    count, base_mean, m2 = baseline
    base_std = math.sqrt(m2 / count) if count > 0 else math.nan
    return NumericTable(annotation, offs, n, mean, std, float(base_mean), base_std, info.level, int(n_anchors))


# ---------------------------------------------------------------------------------------- reporting

def top_enrichments(table: LabelTable, *, min_count: int = 5, limit: int | None = 20) -> list[EnrichmentRow]:
    """The over-represented (offset, label) cells, most significant first.

    Only cells with ``count >= min_count`` and ``enrichment > 1`` are listed, sorted by p-value, then by
    larger enrichment, then offset and label order; at most ``limit`` rows (None: all).
    """
    if not isinstance(table, LabelTable):
        raise TypeError("enrichment needs a categorical annotation (a LabelTable)")
    o_idx, l_idx = np.nonzero((table.counts >= min_count) & (np.nan_to_num(table.enrichment, nan=0.0) > 1.0))
    p = table.p_value[o_idx, l_idx]
    e = table.enrichment[o_idx, l_idx]
    order = np.lexsort((l_idx, table.offsets[o_idx], -e, p))
    if limit is not None:
        order = order[:limit]
    return [EnrichmentRow(int(table.offsets[o_idx[i]]), table.labels[l_idx[i]], int(table.counts[o_idx[i], l_idx[i]]),
                          float(table.fraction[o_idx[i], l_idx[i]]), float(table.baseline[l_idx[i]]),
                          float(e[i]), float(p[i]), int(table.n[o_idx[i]]))
            for i in order]


def _percent(x: float) -> str:
    if x == 0 or x >= 0.1:
        return f"{100 * x:.0f}%"
    if x >= 0.001:
        return f"{100 * x:.1f}%"
    return f"{100 * x:.2g}%"


def _relation(offset: int, label: str) -> str:
    """What the matches do with respect to a position ``offset`` from their start that has ``label``."""
    if offset == 0:
        return f"start on a position {label}"
    if offset == -1:
        return f"start right after a position {label}"
    if offset < 0:
        return f"start {-offset} positions after a position {label}"
    if offset == 1:
        return f"have a position {label} one position after their start"
    return f"have a position {label} {offset} positions after their start"


def describe_enrichment(row: EnrichmentRow, annotation) -> str:
    """One sentence for a row of ``top_enrichments``, e.g.

    ``85% of matches start right after a position labelled "(" in depth (170 of 200), against 6% of all
    positions (14.2× the baseline, p = 3.1e-45).``

    ``annotation``: the annotation's name, or its ``AnnotationInfo`` (an item-level one reads "lie in").
    """
    name = getattr(annotation, "name", annotation)
    level = getattr(annotation, "level", "position")
    label = f'labelled "{row.label}" in {name}'
    what = f"lie in an item {label}" if level == "item" else _relation(row.offset, label)
    p = "p < 1e-300" if row.p < 1e-300 else f"p = {row.p:.2g}"  # below it, doubles lose their digits
    return (f"{_percent(row.fraction)} of matches {what} ({row.count} of {row.n}), against "
            f"{_percent(row.baseline)} of all positions ({row.enrichment:.3g}× the baseline, {p}).")
