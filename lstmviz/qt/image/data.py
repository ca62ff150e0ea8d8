"""What the Image panel reads from a recording (Qt-free): its image axes and taps, an item's input image,
an item's ``[cells, units]`` block of a tap (cached), the overlay values and their fixed colour scale,
and where a feature map's cells lie over the input pixels.

A recording has images when its main axis ``positions`` is an ``image`` axis (format v3). The input
image is the tap ``input`` (or ``image``) on the main axis (one row per pixel, C units: 1 channel is grey, 3 are RGB,
any other number is shown as the mean over channels); without it the item's per-pixel token ids are
shown as a grey image. Pixel values in [0, 1] are shown as they are; others are stretched per image.

Pixel coordinates (as ``lstmviz.engines.families.image.api.cell_box``): pixel (y, x) covers
``[y, y + 1) × [x, x + 1)``; cell (i, j) of an image axis is centred on pixel ``offset + (i, j) · stride``
(its centre point is that plus 0.5) and is drawn as the ``stride × stride`` square around that point;
it sees the ``receptive_field`` box around the same point.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

MAIN_AXIS = "positions"
INPUT_TAP = "input"
#: main-axis taps that hold the input pixels, first found wins (``input``: what the recorder writes;
#: ``image``: the synthetic recordings of tests/analysis/image_recordings.py)
INPUT_TAPS = (INPUT_TAP, "image")
MODES = ("mean", "unit", "norm")
MODE_TITLES = {"mean": "selected units (mean)", "unit": "one unit", "norm": "channel L2 norm"}
_BLOCKS_KEPT = 8


def axis_kind(recording, axis: str) -> str | None:
    try:
        return recording.axis_geometry(axis).kind
    except (AttributeError, KeyError, ValueError):
        return None


def has_images(recording) -> bool:
    """Whether the recording's positions are image pixels (format v3, an image main axis)."""
    return recording is not None and hasattr(recording, "item_geometry") and axis_kind(recording, MAIN_AXIS) == "image"


def input_tap(recording) -> str | None:
    """The main-axis tap holding the input pixels (``INPUT_TAPS``), or None."""
    for name in INPUT_TAPS:
        info = recording.taps.get(name)
        if info is not None and info.axis == MAIN_AXIS:
            return name
    return None


def image_taps(recording) -> list[str]:
    """The taps on image axes (feature maps), in file order; the input pixels are not one."""
    pixels = input_tap(recording)
    return [name for name, info in recording.taps.items()
            if name != pixels and axis_kind(recording, info.axis) == "image"]


def scalar_taps(recording) -> list[str]:
    """The taps on scalar axes (one row per image: fully connected layers, logits)."""
    return [name for name, info in recording.taps.items() if axis_kind(recording, info.axis) == "scalar"]


def set_taps(recording) -> list[str]:
    """The taps on set axes (one row per named member: HeMIS's modalities, colourisation's branches)."""
    return [name for name, info in recording.taps.items() if axis_kind(recording, info.axis) == "set"]


class SetRows:
    """One image's rows of a set tap, as the Sets tab shows them: ``names[r]`` and ``values[r]`` (float32
    ``[units]``) for every row ``r`` in stored order, then every member of the axis that has no row in this
    image (values NaN); ``absent[r]``: no row, or a row of exact zeros (the recorders' convention for a member
    the input lacks, e.g. a HeMIS modality left out)."""

    def __init__(self, names: list[str], values: np.ndarray, absent: np.ndarray):
        self.names, self.values, self.absent = names, values, absent

    def __len__(self) -> int:
        return len(self.names)

    def scale(self) -> tuple[float, float]:
        """One colour scale for every member: the range of the present members' values (0 included)."""
        present = self.values[~self.absent]
        finite = present[np.isfinite(present)]
        if not finite.size:
            return (0.0, 1.0)
        lo, hi = min(0.0, float(finite.min())), max(0.0, float(finite.max()))
        return (lo, hi) if hi > lo else (lo - 0.5, lo + 0.5)


def set_rows(recording, tap: str, item: int) -> SetRows:
    """Image ``item``'s rows of set tap ``tap`` with their member names (:class:`SetRows`)."""
    axis = tap_axis(recording, tap)
    members = recording.axis_geometry(axis).members
    ids = np.asarray(recording.item_geometry(int(item), axis).member, dtype=np.int64)
    values = np.asarray(recording.item_states(tap, int(item)), dtype=np.float32)
    seen = [int(m) for m in ids]
    names = [members[m] if seen.count(m) == 1 else f"{members[m]} (row {r})" for r, m in enumerate(seen)]
    missing = [m for m in range(len(members)) if m not in seen]
    if missing:
        names += [members[m] for m in missing]
        values = np.concatenate([values, np.full((len(missing), values.shape[1]), np.nan, np.float32)])
    absent = np.array([not np.any(row) or not np.isfinite(row).any() for row in values], dtype=bool)
    return SetRows(names, values, absent)


MAP_UNITS_MAX = 16
"""The Unit maps tab draws taps of at most this many units (a map per unit: groups, a few channels)."""


def map_signals(recording) -> dict[str, list[str]]:
    """``{signal: taps}``: the image taps (:func:`image_taps`) of at most :data:`MAP_UNITS_MAX` units grouped by
    their ``signal``, each list ordered by ``layer`` (Tagger's iterations ``iter0/mask``, ``iter1/mask`` ...; a
    tap without a layer first), then by name; signals in the order their first tap appears in the file."""
    out: dict[str, list[str]] = {}
    for name in image_taps(recording):
        info = recording.taps[name]
        if info.units <= MAP_UNITS_MAX:
            out.setdefault(info.signal or name, []).append(name)
    for taps in out.values():
        taps.sort(key=lambda t: (-1 if recording.taps[t].layer is None else recording.taps[t].layer, t))
    return out


def iterative_signal(recording) -> str | None:
    """The first signal of :func:`map_signals` with taps at two or more layers (an iterative model's state per
    iteration), or None."""
    for signal, taps in map_signals(recording).items():
        if len({recording.taps[t].layer for t in taps}) >= 2:
            return signal
    return None


class UnitMaps:
    """One image's maps of the taps of one signal: ``rows[r] = (tap, maps [units, h, w] float32)``, and one colour
    scale ``levels`` for all of them (the range over every shown value, this image; a constant range widened
    by 0.5 either side)."""

    def __init__(self, rows: list[tuple[str, np.ndarray]]):
        self.rows = rows
        values = np.concatenate([m.reshape(-1) for _, m in rows]) if rows else np.zeros(0, np.float32)
        finite = values[np.isfinite(values)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        self.levels = (lo, hi) if hi > lo else (lo - 0.5, lo + 0.5)


def unit_maps(recording, signal: str, item: int) -> UnitMaps:
    """Image ``item``'s maps, unit by unit, of every tap of ``signal`` (:func:`map_signals`)."""
    taps = map_signals(recording).get(signal)
    if not taps:
        raise ValueError(f"the recording has no image tap of signal {signal!r} with at most {MAP_UNITS_MAX} units")
    rows = []
    for tap in taps:
        size = recording.item_geometry(int(item), tap_axis(recording, tap))
        block = np.asarray(recording.item_states(tap, int(item)), dtype=np.float32)  # [cells, units]
        rows.append((tap, np.ascontiguousarray(block.T.reshape(block.shape[1], size.height, size.width))))
    return UnitMaps(rows)


def tap_axis(recording, tap: str) -> str:
    return recording.taps[tap].axis


def input_image(recording, item: int) -> tuple[np.ndarray, str]:
    """The item's input as float32 ``[H, W]`` (grey) or ``[H, W, 3]`` (RGB) in [0, 1], and what it is."""
    size = recording.item_geometry(int(item), MAIN_AXIS)
    a, b = recording.item_range(int(item), MAIN_AXIS)
    h, w = size.height, size.width
    tap = input_tap(recording)
    if tap is not None:
        pixels = recording.states(tap, a, b)
        c = pixels.shape[1]
        image = pixels.reshape(h, w, c)
        what = f"the input ({'RGB' if c == 3 else 'grey' if c == 1 else f'mean of {c} channels'})"
        image = image if c == 3 else image.mean(axis=2) if c != 1 else image[:, :, 0]
    else:
        image = recording.token_ids(a, b).astype(np.float32).reshape(h, w)
        what = "the pixels' token ids (the recording has no input tap)"
    image = np.nan_to_num(np.asarray(image, dtype=np.float32))
    lo, hi = float(image.min()), float(image.max())
    if lo < 0.0 or hi > 1.0:
        image = (image - lo) / (hi - lo) if hi > lo else np.zeros_like(image)
    return np.ascontiguousarray(image), what


def cell_rect(axis_geometry, size) -> tuple[float, float, float, float]:
    """``(x, y, width, height)`` in input pixels of the whole map drawn cell by cell (a cell = stride)."""
    sy, sx = axis_geometry.stride
    oy, ox = axis_geometry.offset
    return (ox + 0.5 - sx / 2, oy + 0.5 - sy / 2, size.width * sx, size.height * sy)


def cell_centre(axis_geometry, cell: int, size) -> tuple[float, float]:
    """``(y, x)``: the centre point of a cell in pixel coordinates."""
    i, j = divmod(int(cell), size.width)
    return (axis_geometry.offset[0] + i * axis_geometry.stride[0] + 0.5,
            axis_geometry.offset[1] + j * axis_geometry.stride[1] + 0.5)


def receptive_box(axis_geometry, cell: int, size) -> tuple[float, float, float, float]:
    """``(y0, x0, y1, x1)``: the input pixels one cell sees (may reach outside the image)."""
    cy, cx = cell_centre(axis_geometry, cell, size)
    hy, hx = axis_geometry.receptive_field[0] / 2, axis_geometry.receptive_field[1] / 2
    return (cy - hy, cx - hx, cy + hy, cx + hx)


def cell_at(axis_geometry, size, y: float, x: float) -> int:
    """The cell whose stride square holds pixel point (y, x), or -1 outside the map."""
    x0, y0, _, _ = cell_rect(axis_geometry, size)
    i = int(np.floor((y - y0) / axis_geometry.stride[0]))
    j = int(np.floor((x - x0) / axis_geometry.stride[1]))
    if 0 <= i < size.height and 0 <= j < size.width:
        return i * size.width + j
    return -1


def overlay_values(block: np.ndarray, mode: str, units, signs=None) -> np.ndarray | None:
    """float32 ``[cells]``: the signed mean of ``units`` (mode ``mean``), the first unit's value
    (``unit``) or the L2 norm over all channels (``norm``); None when a mode lacks its units."""
    if mode == "norm":
        return np.sqrt(np.einsum("ij,ij->i", block, block, dtype=np.float32))
    units = np.asarray(units, dtype=np.int64).reshape(-1)
    if not len(units) or units.max() >= block.shape[1] or units.min() < 0:
        return None
    if mode == "unit":
        return block[:, units[0]].copy()
    signs = np.ones(len(units), np.float32) if signs is None else np.asarray(signs, dtype=np.float32)
    if len(units) == 1:
        return block[:, units[0]] * signs[0]
    if 4 * len(units) >= block.shape[1]:  # many units: one pass over the rows (a column gather is slower)
        weights = np.zeros(block.shape[1], np.float32)
        np.add.at(weights, units, signs / len(units))
        # einsum, not BLAS: a BLAS call wakes its thread pool, which on a busy 2-core machine cost 8 ms
        return np.einsum("ij,j->i", block, weights)
    return np.einsum("ij,j->i", block[:, units], signs / len(units))


SCALE_STDS = 3.0
"""The overlay's colour scale spans each unit's mean ± this many standard deviations (within its range)."""


def overlay_scale(stats, mode: str, units, signs=None) -> tuple[float, float] | None:
    """The fixed colour scale of an overlay from the tap's per-unit statistics (the same for every image):
    ``mean``: from the mean over the units of ``max(minimum, mean − 3 std)`` to the mean of
    ``min(maximum, mean + 3 std)`` (signed units mirrored); ``unit``: the same for the one unit;
    ``norm``: 0 to twice the tap's root-mean-square norm (sqrt Σ mean² + std²). Larger values take the
    top colour: a unit's rare maximum (a ReLU map's peak is often 5-10 std above its mean) would
    otherwise leave every typical cell in the bottom colours. None without statistics."""
    if stats is None:
        return None
    lo_u, hi_u = np.asarray(stats.minimum, np.float64), np.asarray(stats.maximum, np.float64)
    mean_u, std_u = np.asarray(stats.mean, np.float64), np.asarray(stats.std, np.float64)
    if mode == "norm":
        rms = float(np.sqrt(np.nansum(mean_u ** 2 + std_u ** 2)))
        return (0.0, 2.0 * rms if rms > 0 else 1.0)
    units = np.asarray(units, dtype=np.int64).reshape(-1)
    if not len(units) or units.max() >= len(lo_u):
        return None
    if mode == "unit":
        units, signs = units[:1], np.ones(1)
    signs = np.ones(len(units)) if signs is None else np.asarray(signs, np.float64)
    band_lo = np.maximum(lo_u[units], mean_u[units] - SCALE_STDS * std_u[units])
    band_hi = np.minimum(hi_u[units], mean_u[units] + SCALE_STDS * std_u[units])
    lo = np.where(signs > 0, band_lo, -band_hi)
    hi = np.where(signs > 0, band_hi, -band_lo)
    lo, hi = float(np.nanmean(lo)), float(np.nanmean(hi))
    if not np.isfinite(lo) or not np.isfinite(hi):
        return None
    return (lo, hi) if hi > lo else (lo - 0.5, lo + 0.5)


def top_units(vector: np.ndarray, n: int = 8) -> list[tuple[int, float]]:
    """The ``n`` units with the largest values of one cell's unit vector (NaN last)."""
    v = np.where(np.isfinite(vector), vector, -np.inf)
    order = np.lexsort((np.arange(len(v)), -v))[:n]
    return [(int(u), float(vector[u])) for u in order]


class BlockCache:
    """An item's float32 ``[cells, units]`` block of a tap per (recording, tap, item), a few kept."""

    def __init__(self):
        self._blocks: OrderedDict[tuple, np.ndarray] = OrderedDict()

    def clear(self) -> None:
        self._blocks.clear()

    def block(self, recording, tap: str, item: int) -> np.ndarray:
        key = (id(recording), tap, int(item))
        if key in self._blocks:
            self._blocks.move_to_end(key)
            return self._blocks[key]
        values = np.ascontiguousarray(recording.item_states(tap, int(item)))
        self._blocks[key] = values
        while len(self._blocks) > _BLOCKS_KEPT:
            self._blocks.popitem(last=False)
        return values
