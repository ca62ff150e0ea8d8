"""A colour track: one per-position annotation as a row of coloured cells under the tokens.

Categorical annotations get one colour per label (an ordered ramp for integer labels such as depth;
beyond ``palette.MAX_DISTINCT`` labels, such as 45 POS tags, the frequent ones keep a colour and the
rare ones share a grey "other": the tooltip names the hovered label);
numeric ones a sequential colour ramp between the lowest and highest value seen (missing values are
transparent). The row is one RGBA ``ImageItem``, x-linked to the pane plots so each cell sits under its
token. ``set_values(..., mask=)`` scales each cell's opacity (LSTMVis's "mask": faded where few
selected units are on). The left axis names the annotation; the tooltip names the hovered label.
"""

from __future__ import annotations

import weakref

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui

from lstmviz.qt.palette import AXIS, FOREGROUND, MAX_DISTINCT, categorical_lut, ramp_lut
from lstmviz.qt.plain_text import escape

#: opacity of a cell where no selected unit is on, when masked (LSTMVis: 0.2)
MASK_FLOOR = 0.2
#: positions read to find a numeric annotation's colour range (plus every window shown)
RANGE_SAMPLE = 200_000
#: the widest left axis the tracks' names may ask for, in pixels (longer names are elided)
MAX_LABEL_WIDTH = 180
#: room beside a track's name on its axis, in pixels
LABEL_PADDING = 12


class AnnotationTrack(pg.PlotItem):
    """A thin plot row showing one annotation over the window's positions."""

    HEIGHT = 20

    def __init__(self, name: str, labels: list[str] | None, description: str = "", kind: str = "categorical",
                 value_range: tuple[float, float] | None = None, frequencies=None):
        super().__init__()
        self.name = name
        self.kind = kind
        self.labels = list(labels or [])
        self.description = description
        self.value_range = value_range
        self.hideAxis("bottom")
        self.hideButtons()
        self.setMenuEnabled(False)
        self.setMouseEnabled(x=False, y=False)
        self.vb.setMouseEnabled(x=False, y=False)
        self.vb.setDefaultPadding(0.0)
        self.setYRange(0, 1, padding=0)
        self.setMinimumHeight(self.HEIGHT)
        self.setMaximumHeight(self.HEIGHT)
        left = self.getAxis("left")
        left.setPen(pg.mkPen(AXIS))
        left.setTextPen(pg.mkPen(FOREGROUND))
        left.setStyle(tickLength=0)
        self.set_label_width(None)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.addItem(self.image)
        self._lut = categorical_lut(self.labels, frequencies) if kind == "categorical" else ramp_lut()
        #: the label ids (categorical) or values (numeric) shown, one per position
        self.values = np.zeros(0)
        self.setToolTip(self._tooltip(None))

    def set_label_width(self, width: int | None) -> None:
        """Fit the name into ``width`` pixels of the left axis (elided with "…"; the tooltip has it whole)."""
        name = self.name
        if width is not None:
            metrics = QtGui.QFontMetrics(QtGui.QFont())
            name = metrics.elidedText(self.name, QtCore.Qt.TextElideMode.ElideRight, max(20, width - LABEL_PADDING))
            self.getAxis("left").setWidth(width)
        self.getAxis("left").setTicks([[(0.5, name)], []])

    def set_values(self, start: int, values: np.ndarray, mask: np.ndarray | None = None) -> None:
        """Show label ids (``-1`` = missing) or numbers (NaN = missing) for positions ``start, ...``.

        ``mask``: one opacity factor in [0, 1] per position (None: fully opaque).
        """
        self.values = np.asarray(values)
        if self.values.size == 0:
            self.image.clear()
            return
        rgba = self._colors(self.values)
        if mask is not None:
            rgba[:, 3] = np.round(rgba[:, 3] * np.clip(np.asarray(mask, dtype=np.float64), 0.0, 1.0)).astype(np.ubyte)
        self.image.setImage(rgba[None, :, :], autoLevels=False, levels=None)
        self.image.setRect(QtCore.QRectF(start - 0.5, 0.0, rgba.shape[0], 1.0))

    def rgba(self) -> np.ndarray:
        """The colours shown, ``[positions, 4]`` (for tests and exports)."""
        image = self.image.image
        return np.zeros((0, 4), np.ubyte) if image is None else image[0]

    def _colors(self, values: np.ndarray) -> np.ndarray:
        if self.kind == "categorical":
            ids = values.astype(np.int64)
            if ids.size and int(ids.max()) >= len(self.labels):
                self.labels += [str(i) for i in range(len(self.labels), int(ids.max()) + 1)]
                self._lut = categorical_lut(self.labels)
            return self._lut[np.clip(ids + 1, 0, len(self._lut) - 1)].copy()
        values = values.astype(np.float64)
        finite = np.isfinite(values)
        low, high = self.value_range if self.value_range is not None else (np.nan, np.nan)
        if finite.any():
            low = np.nanmin([low, values[finite].min()])
            high = np.nanmax([high, values[finite].max()])
            self.value_range = (float(low), float(high))
        t = (values - low) / (high - low) if finite.any() and high > low else np.zeros_like(values)
        index = np.clip(np.nan_to_num(t * (len(self._lut) - 1), nan=0.0), 0, len(self._lut) - 1).astype(np.int64)
        rgba = self._lut[index].copy()
        rgba[~finite, 3] = 0
        return rgba

    def show_label(self, label: str | None) -> None:
        """Name the hovered position's label in the tooltip."""
        self.setToolTip(self._tooltip(label))

    def _tooltip(self, label: str | None) -> str:
        head = f"<b>{escape(self.name)}</b>" + (f": {escape(label)}" if label is not None else "")
        if self.kind == "numeric" and self.value_range is not None:
            head += f"<br>colour ramp from {self.value_range[0]:.4g} (light) to {self.value_range[1]:.4g} (dark)"
        return head + (f"<br>{escape(self.description)}" if self.description else "")


def label_width(names, minimum: int) -> int:
    """The left-axis width, in pixels, that shows every one of ``names`` whole: at least ``minimum``
    (the panes' own axis), at most ``MAX_LABEL_WIDTH``."""
    metrics = QtGui.QFontMetrics(QtGui.QFont())
    widest = max((metrics.horizontalAdvance(str(name)) for name in names), default=0)
    return int(min(MAX_LABEL_WIDTH, max(minimum, widest + LABEL_PADDING + 2)))


_frequencies: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def label_frequencies(recording, name: str) -> np.ndarray | None:
    """How often each label of a categorical annotation occurs (over its first ``RANGE_SAMPLE`` positions
    or items), for annotations with more labels than distinct colours (``palette.label_colors`` keeps a
    colour for the frequent ones); None when every label gets its own colour anyway."""
    info = recording.annotations[name]
    labels = info.labels or []
    if info.kind != "categorical" or len(labels) <= MAX_DISTINCT:
        return None
    try:
        cache = _frequencies.setdefault(recording, {})
    except TypeError:  # a recording that cannot be weakly referenced: count again
        cache = {}
    if name not in cache:
        n = int(recording.n_positions if info.level == "position" else recording.n_items)
        ids = np.asarray(recording.annotation(name, 0, min(RANGE_SAMPLE, n)), dtype=np.int64)
        ids = ids[(ids >= 0) & (ids < len(labels))]
        cache[name] = np.bincount(ids, minlength=len(labels))
    return cache[name]


def numeric_range(recording, name: str) -> tuple[float, float] | None:
    """The lowest and highest value of a numeric annotation over its first ``RANGE_SAMPLE`` positions."""
    values = np.asarray(recording.annotation(name, 0, min(RANGE_SAMPLE, int(recording.n_positions))), dtype=np.float64)
    finite = values[np.isfinite(values)]
    return (float(finite.min()), float(finite.max())) if finite.size else None


def activity_mask(counts: np.ndarray, maximum: int) -> np.ndarray:
    """Opacity per position from active counts: ``MASK_FLOOR`` where none is on, 1 where all are."""
    if maximum <= 0:
        return np.ones(len(counts))
    return MASK_FLOOR + (1.0 - MASK_FLOOR) * np.clip(np.asarray(counts, dtype=np.float64) / maximum, 0.0, 1.0)
