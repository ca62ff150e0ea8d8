"""Probes on image recordings (format v3): which rows of a tap a probe reads, and their labels.

An image recording has the input's pixels on the main axis (``positions``, an image axis), one image
axis per feature map (its cells, ``axis_geometry``: stride, receptive field, offset) and a scalar axis
of one row per image. ``probes.fit_probe`` reads a tap whose rows are the positions the labels
describe; :func:`probe_rows` gives it, per tap and label, a :class:`RowView`: a recording-like object
whose "positions" are the rows the probe is fitted on, grouped into the recording's items (so the item
split, the control task and the item bootstrap work unchanged).

**Item labels** (an item-level annotation such as ``class``), one row per image:

- a tap on a **scalar axis** (``pooled``, ``logits``): its one row per image, as stored;
- a **feature map** (a tap on a non-main image axis): the map averaged over its cells (``pool="mean"``,
  NaN cells left out; the global average pooling of the probed layer) or its maximum (``pool="max"``);
- the **input** (a tap on the main axis): the pixels *flattened* (``H·W·channels`` values per image, in
  raster order) when every image has the same size: the linear classifier on the raw input, the honest
  baseline of Alain & Bengio's probes (the average of the pixels would be a strawman: one number per
  channel). When image sizes differ the input is pooled like a feature map, and the row says so.

**Position labels** (a per-pixel annotation such as ``stroke``): a main-axis tap is probed at its
positions as on any recording; a feature-map tap at its *cells*, each cell carrying the label of the
input pixels under its centre (:func:`cell_labels`); a scalar-axis tap has no row per pixel and is
skipped.

The control task (Hewitt & Liang) gives each *type* one random label; the type of an image row is the
image itself (so control labels are random per image: a probe cannot carry them to test images), the
type of a cell the token of the input pixel under its centre (as the main axis's pixels).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lstmviz.analysis._index_stream import SlabReader, slab_rows
from lstmviz.analysis.image_match import cell_pixels
from lstmviz.analysis.transforms import UnitStats, tap_stats
from lstmviz.recording.format import TapInfo

POOLS = ("mean", "max")
MAIN = "positions"


def is_image_recording(recording) -> bool:
    """True when the main axis is an image's pixels (format v3 image recording)."""
    try:
        return recording.axis_geometry(MAIN).kind == "image"
    except Exception:  # a v1/v2 file or a stand-in without geometry
        return False


def axis_kind(recording, axis: str) -> str:
    try:
        return recording.axis_geometry(axis).kind
    except Exception:
        return "tokens"


# ------------------------------------------------------------------------------------- cell labels


def cell_label_of(pixel_labels: np.ndarray) -> int:
    """The label of a cell from the labels of the 1, 2 or 4 pixels under its centre: the most frequent
    one (a missing pixel label -1 counts as a value of its own); a tie, or no pixel, gives -1."""
    values, counts = np.unique(np.asarray(pixel_labels), return_counts=True)
    if not len(values):
        return -1
    top = counts.max()
    if np.count_nonzero(counts == top) > 1:
        return -1
    return int(values[np.argmax(counts)])


def cell_pixel_map(recording, axis: str) -> tuple[np.ndarray, np.ndarray]:
    """For every cell of image axis ``axis``: ``(offsets [cells + 1], pixels)``, the absolute main-axis
    positions of the pixels under its centre (``image_match.cell_pixels`` rule ``"centre"``) are
    ``pixels[offsets[c]:offsets[c + 1]]`` (0 to 4 of them)."""
    geometry = recording.axis_geometry(axis)
    cells_off = recording.axis_offsets(axis)
    main_off = recording.axis_offsets(MAIN)
    counts, pixels = [], []
    shapes: dict = {}
    for item in range(recording.n_items):
        size = recording.item_geometry(item, axis)
        inp = recording.item_geometry(item, MAIN)
        key = (size.height, size.width, inp.height, inp.width)
        if key not in shapes:
            per = [cell_pixels(geometry, size, [c], inp) for c in range(size.height * size.width)]
            shapes[key] = (np.array([len(p) for p in per], np.int64),
                           np.concatenate(per) if per else np.zeros(0, np.int64))
        n, px = shapes[key]
        if len(n) != cells_off[item + 1] - cells_off[item]:
            raise ValueError(f"item {item}'s map on axis {axis!r} is {size.height}x{size.width} but has "
                             f"{cells_off[item + 1] - cells_off[item]} rows")
        counts.append(n)
        pixels.append(px + main_off[item])
    counts = np.concatenate(counts) if counts else np.zeros(0, np.int64)
    offsets = np.concatenate(([0], np.cumsum(counts))).astype(np.int64)
    return offsets, (np.concatenate(pixels) if pixels else np.zeros(0, np.int64))


def cell_labels(recording, annotation: str, axis: str, pixel_labels: np.ndarray | None = None) -> np.ndarray:
    """int32 per cell of image axis ``axis``: the label of the input pixels under the cell's centre
    (:func:`cell_label_of` of the 1, 2 or 4 pixels; -1 when tied, missing or in the padding).
    ``pixel_labels``: the per-position label ids (default: the annotation's, ``probe_labels``)."""
    from lstmviz.analysis.probes import probe_labels

    if pixel_labels is None:
        pixel_labels = probe_labels(recording, annotation)
    offsets, pixels = cell_pixel_map(recording, axis)
    counts = np.diff(offsets)
    out = np.full(len(counts), -1, np.int32)
    lab = np.asarray(pixel_labels, np.int64)[pixels]
    one = counts == 1
    out[one] = lab[offsets[:-1][one]]
    for c in np.flatnonzero(counts > 1):
        out[c] = cell_label_of(lab[offsets[c]:offsets[c + 1]])
    return out


# ------------------------------------------------------------------------------------------ row views


@dataclass
class RowPlan:
    """How one tap is probed for one label: ``axis`` whose rows (or pooled rows) are read, ``rows`` in
    words (``"positions"``, ``"one row per image"``, ``"mean over cells"``, ``"max over cells"``,
    ``"pixels flattened"``, ``"cells (label under the centre)"``), and ``view``: the recording-like
    object ``fit_probe`` reads (``None``: the recording itself, the main axis as always)."""

    tap: str
    axis: str
    rows: str
    view: object | None = None


class RowView:
    """A recording as ``fit_probe`` sees it: ``rows[i]`` of one tap as "positions", grouped into the
    recording's items by ``offsets``. Either the rows are in memory (``matrix``: pooled per image), or
    they are a non-main axis of the recording, read through it (``axis``)."""

    def __init__(self, recording, tap: str, offsets, *, matrix=None, axis: str | None = None, tokens=None,
                 kind: str = ""):
        self.recording = recording
        self.path = recording.path
        self.checkpoint = getattr(recording, "checkpoint", None)
        self.item_offsets = np.asarray(offsets, np.int64)
        self.n_items = len(self.item_offsets) - 1
        self.n_positions = int(self.item_offsets[-1])
        self._matrix = None if matrix is None else np.ascontiguousarray(matrix, np.float32)
        self._axis = axis
        self._tokens = np.asarray(tokens, np.int64) if tokens is not None else np.zeros(self.n_positions, np.int64)
        self.vocab: list[str] = []
        self.view_key = (kind, axis)
        info = recording.taps[tap]
        units = info.units if matrix is None else self._matrix.shape[1]
        dtype = info.dtype if matrix is None else "float32"
        self.taps = {tap: TapInfo(tap, units, dtype, MAIN, info.layer, info.signal, info.description)}
        self._tap = tap

    def axis_length(self, axis: str = MAIN) -> int:
        return self.n_positions

    def axis_offsets(self, axis: str = MAIN) -> np.ndarray:
        return self.item_offsets

    def item_of(self, position):
        scalar = np.ndim(position) == 0
        items = np.searchsorted(self.item_offsets, np.asarray(position), side="right") - 1
        return int(items) if scalar else items.astype(np.int64)

    def token_ids(self, start: int, stop: int) -> np.ndarray:
        return self._tokens[start:stop].copy()

    def raw_states(self, tap: str, start=None, stop=None, out=None):
        a = 0 if start is None else int(start)
        b = self.n_positions if stop is None else int(stop)
        if self._matrix is not None:
            x = self._matrix[a:b]
            if out is not None:
                out[...] = x
                return out
            return x.copy()
        return self.recording.raw_states(tap, a, b, out=out) if out is not None else \
            self.recording.raw_states(tap, a, b)

    def probe_stats(self, tap: str, task=None) -> UnitStats:
        """Per-unit statistics of the rows (those of the axis tap itself when read through it)."""
        if self._matrix is None:
            return tap_stats(self.recording, tap, task=task)
        return matrix_stats(self._matrix)


def matrix_stats(x: np.ndarray) -> UnitStats:
    x = np.asarray(x, np.float64)
    finite = np.isfinite(x)
    n = finite.sum(0)
    z = np.where(finite, x, 0.0)
    mean = np.where(n > 0, z.sum(0) / np.maximum(n, 1), 0.0)
    var = np.where(n > 0, (np.where(finite, x - mean, 0.0) ** 2).sum(0) / np.maximum(n, 1), 0.0)
    with np.errstate(invalid="ignore"):
        lo = np.where(np.isnan(x), np.inf, x).min(0) if len(x) else np.full(x.shape[1], np.nan)
        hi = np.where(np.isnan(x), -np.inf, x).max(0) if len(x) else np.full(x.shape[1], np.nan)
    return UnitStats(mean=mean, std=np.sqrt(var), minimum=lo, maximum=hi, count=len(x), finite=n.astype(np.int64))


def pooled_rows(recording, tap: str, *, pool: str = "mean", task=None) -> np.ndarray:
    """float32 ``[items, units]``: each item's rows of ``tap`` (on any axis) reduced by ``pool`` over
    its finite values (NaN when an item has none), read slab by slab."""
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {', '.join(POOLS)}, got {pool!r}.")
    info = recording.taps[tap]
    offsets = recording.axis_offsets(info.axis)
    n_items = len(offsets) - 1
    acc = np.zeros((n_items, info.units)) if pool == "mean" else np.full((n_items, info.units), -np.inf)
    cnt = np.zeros((n_items, info.units))
    rows = slab_rows(info.units, 4, 64)
    with SlabReader(recording, tap, rows) as slabs:
        for a, c, x in slabs:
            if c <= a:
                continue
            x = np.asarray(x, np.float64)
            # the items in this slab are contiguous runs of rows: reduce each run at once
            first, last = np.searchsorted(offsets, [a, c - 1], side="right") - 1
            items = np.arange(first, last + 1)
            starts = np.maximum(offsets[items], a) - a
            keep = offsets[items + 1] > offsets[items]  # an item without rows here reduces nothing
            items, starts = items[keep], starts[keep]
            ok = np.isfinite(x)
            cnt[items] += np.add.reduceat(ok, starts, axis=0)
            if pool == "mean":
                acc[items] += np.add.reduceat(np.where(ok, x, 0.0), starts, axis=0)
            else:
                acc[items] = np.maximum(acc[items], np.maximum.reduceat(np.where(ok, x, -np.inf), starts, axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        out = acc / cnt if pool == "mean" else acc
    return np.where(cnt > 0, out, np.nan).astype(np.float32)


def flattened_input(recording, tap: str) -> np.ndarray | None:
    """float32 ``[items, positions per item · units]``: each image's pixels of main-axis ``tap`` in raster
    order, or ``None`` when the images differ in size."""
    offsets = recording.axis_offsets(MAIN)
    lengths = np.diff(offsets)
    if not len(lengths) or np.any(lengths != lengths[0]):
        return None
    x = recording.raw_states(tap, 0, int(offsets[-1]))
    return np.asarray(x, np.float32).reshape(len(lengths), -1)


def probe_rows(recording, tap: str, annotation: str, *, pool: str = "mean") -> RowPlan | str:
    """How ``tap`` is probed for ``annotation`` (module docstring): a :class:`RowPlan`, or a sentence
    saying why it cannot be (a scalar-axis tap for a per-pixel label)."""
    if pool not in POOLS:
        raise ValueError(f"pool must be one of {', '.join(POOLS)}, got {pool!r}.")
    info = recording.taps[tap]
    level = recording.annotations[annotation].level
    image = is_image_recording(recording)
    items = np.arange(recording.n_items + 1, dtype=np.int64)
    kind = axis_kind(recording, info.axis)
    if level == "item" and image:
        per_image = np.arange(recording.n_items, dtype=np.int64)  # each image its own control type
        if kind == "scalar":
            if not np.array_equal(np.diff(recording.axis_offsets(info.axis)), np.ones(recording.n_items)):
                return f"{tap}: its axis {info.axis!r} does not hold exactly one row per image"
            x = recording.raw_states(tap, 0, recording.axis_length(info.axis))
            return RowPlan(tap, info.axis, "one row per image",
                           RowView(recording, tap, items, matrix=x, tokens=per_image, kind="row"))
        if info.axis == MAIN:
            x = flattened_input(recording, tap)
            if x is not None:
                return RowPlan(tap, info.axis, "pixels flattened",
                               RowView(recording, tap, items, matrix=x, tokens=per_image, kind="flat"))
        x = pooled_rows(recording, tap, pool=pool)
        return RowPlan(tap, info.axis, f"{pool} over {'pixels' if info.axis == MAIN else 'cells'}",
                       RowView(recording, tap, items, matrix=x, tokens=per_image, kind=pool))
    if info.axis == MAIN:
        return RowPlan(tap, MAIN, "positions")
    if level == "item":
        return f"{tap}: it lies on axis {info.axis!r}, not on the positions (only image recordings pool axes)"
    if kind == "image" and image:
        offsets, pixels = cell_pixel_map(recording, info.axis)
        counts = np.diff(offsets)
        tokens = np.zeros(len(counts), np.int64)
        has = counts > 0
        if len(pixels):
            tokens[has] = recording.token_ids(0, recording.n_positions)[pixels[offsets[:-1][has]]]
        return RowPlan(tap, info.axis, "cells (label under the centre)",
                       RowView(recording, tap, recording.axis_offsets(info.axis), axis=info.axis,
                               tokens=tokens, kind="cells"))
    return (f"{tap}: it lies on the {kind} axis {info.axis!r}, which has no row per position, so a "
            f"per-position label cannot be probed on it")
