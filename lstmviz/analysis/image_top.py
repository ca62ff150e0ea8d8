"""Top-activating images (NetDissect style): the items where the selected units respond most.

For a tap on an image axis (one row per feature-map cell, ``[cells, units]`` per item) and signed
units ``u`` with signs ``s``, every cell gets the score ``mean_k s_k · x[cell, u_k]`` (one unit: its
signed value). An item's score is the **max** of its cells' scores (``reduce="max"``, the default; the
NetDissect ranking) or their **mean** (``reduce="mean"``); either way the item's *peak cell* is the
arg-max cell (the first one on ties), whose receptive field the view outlines. NaN cells never win a
max and are left out of a mean (an item of NaN only scores NaN and ranks last).

Items are ranked by score, highest first, ties by item index; ``top_activating`` streams the tap in
slabs of whole items (only the selected units are kept from each slab, never the whole tap), reports
progress as rows done and is cancelled through ``task`` like every long computation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lstmviz.tasks import ensure_task

REDUCE = ("max", "mean")
#: rows read per slab (whole items are kept together; an item larger than this is one slab)
SLAB_ROWS = 1 << 16


@dataclass(frozen=True)
class TopImages:
    """The ranked items: ``items`` int64 [n], ``scores`` float64 [n], ``cells`` int64 [n] (the peak
    cell of each, item-local raster index), ``peaks`` float64 [n] (the peak cell's score)."""

    tap: str
    units: tuple[int, ...]
    signs: tuple[int, ...]
    reduce: str
    items: np.ndarray
    scores: np.ndarray
    cells: np.ndarray
    peaks: np.ndarray

    def __len__(self) -> int:
        return len(self.items)


def cell_scores(values: np.ndarray, signs) -> np.ndarray:
    """float64 [rows]: the signed mean over the columns of ``values`` (``[rows, k]``, the selected units)."""
    values = np.asarray(values, dtype=np.float64)
    signs = np.asarray(signs, dtype=np.float64)
    return (values * signs).mean(axis=1) if values.shape[1] else np.full(len(values), np.nan)


def item_reduce(scores: np.ndarray, offsets: np.ndarray, reduce: str = "max"):
    """Per item (``offsets`` int [m + 1], local to ``scores``): (score, peak cell, peak score).

    Empty items score NaN with peak cell -1."""
    if reduce not in REDUCE:
        raise ValueError(f"reduce must be one of {', '.join(REDUCE)}, got {reduce!r}")
    offsets = np.asarray(offsets, dtype=np.int64)
    m = len(offsets) - 1
    sizes = np.diff(offsets)
    out_score = np.full(m, np.nan)
    out_cell = np.full(m, -1, np.int64)
    out_peak = np.full(m, np.nan)
    full = sizes > 0
    if not full.any() or not len(scores):
        return out_score, out_cell, out_peak
    starts = offsets[:-1][full]
    finite = np.isfinite(scores)
    s = np.where(finite, scores, -np.inf)
    peak = np.maximum.reduceat(s, starts)
    peak_of_item = np.full(m, -np.inf)
    peak_of_item[full] = peak
    local = np.arange(len(scores)) - np.repeat(offsets[:-1], sizes)
    hit = s == np.repeat(peak_of_item, sizes)
    first = np.minimum.reduceat(np.where(hit, local, np.iinfo(np.int64).max), starts)
    any_finite = np.logical_or.reduceat(finite, starts)
    out_cell[full] = np.where(any_finite, first, -1)
    out_peak[full] = np.where(any_finite, peak, np.nan)
    if reduce == "max":
        out_score[full] = out_peak[full]
    else:
        total = np.add.reduceat(np.where(finite, scores, 0.0), starts)
        count = np.add.reduceat(finite.astype(np.int64), starts)
        with np.errstate(invalid="ignore", divide="ignore"):
            out_score[full] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return out_score, out_cell, out_peak


def rank(scores: np.ndarray, limit: int | None = None) -> np.ndarray:
    """Item indices by score, highest first, ties by index, NaN last (then dropped)."""
    scores = np.asarray(scores, dtype=np.float64)
    keep = np.flatnonzero(np.isfinite(scores))
    order = keep[np.lexsort((keep, -scores[keep]))]
    return order if limit is None else order[:int(limit)]


def top_activating(recording, tap: str, units, signs=None, *, limit: int = 24, reduce: str = "max",
                   task=None) -> TopImages:
    """The ``limit`` items of ``recording`` where the signed ``units`` of ``tap`` respond most (module
    docstring). Raises ``ValueError`` (a sentence) for no units, a unit the tap lacks or a bad reduce."""
    task = ensure_task(task)
    if reduce not in REDUCE:
        raise ValueError(f"reduce must be one of {', '.join(REDUCE)}, got {reduce!r}")
    units = [int(u) for u in np.asarray(units, dtype=np.int64).reshape(-1)]
    if not units:
        raise ValueError("Select units first: the top-activating images are ranked by the selected units.")
    signs = [1] * len(units) if signs is None else [int(s) for s in np.asarray(signs).reshape(-1)]
    if len(signs) != len(units) or any(s not in (1, -1) for s in signs):
        raise ValueError("every selected unit needs a sign of +1 or -1")
    info = recording.taps[tap]
    bad = [u for u in units if not 0 <= u < info.units]
    if bad:
        raise ValueError(f"tap {tap} has units 0-{info.units - 1}; no unit {', '.join(map(str, bad))}")
    offsets = np.asarray(recording.axis_offsets(info.axis), dtype=np.int64)
    n_items = len(offsets) - 1
    scores = np.full(n_items, np.nan)
    cells = np.full(n_items, -1, np.int64)
    peaks = np.full(n_items, np.nan)
    for i, j, a, b in item_slabs(offsets, task, f"Top-activating images of {tap}"):
        values = recording.states(tap, a, b, units=units)
        s, c, p = item_reduce(cell_scores(values, signs), offsets[i:j + 1] - a, reduce)
        scores[i:j], cells[i:j], peaks[i:j] = s, c, p
    order = rank(scores, limit)
    return TopImages(tap, tuple(units), tuple(signs), reduce, order.astype(np.int64), scores[order],
                     cells[order], peaks[order])


def item_slabs(offsets: np.ndarray, task, message: str):
    """``(i, j, a, b)``: items ``i .. j-1`` (rows ``a .. b-1``) in slabs of whole items of about
    :data:`SLAB_ROWS` rows (at least one item each), checking for a cancel before and reporting rows after
    each slab."""
    n_items, total = len(offsets) - 1, int(offsets[-1])
    task.progress(0, total, message)
    i = 0
    while i < n_items:
        task.check()
        j = int(np.searchsorted(offsets, offsets[i] + SLAB_ROWS, side="right")) - 1
        j = min(max(j, i + 1), n_items)
        a, b = int(offsets[i]), int(offsets[j])
        yield i, j, a, b
        task.progress(b, total, message)
        i = j


__all__ = ["REDUCE", "TopImages", "cell_scores", "item_reduce", "item_slabs", "rank", "top_activating"]
