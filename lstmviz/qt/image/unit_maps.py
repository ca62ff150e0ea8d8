"""The Unit maps tab of the Image panel: one image's maps of every unit of the taps of one signal, a row per tap
ordered by layer — for an iterative model, a row per iteration (Tagger: the group masks ``iter0/mask`` ..
``iterT/mask``, one column per group) — all on one colour scale (:class:`~lstmviz.qt.image.data.UnitMaps`).

Each map is drawn cell by cell (nearest pixels, no smoothing) with the Sets tab's dark-blue -> yellow ramp; the
row's tap name on the left, ``unit k`` over each column. Hovering a map says its tap, unit and value range.
"""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from lstmviz.qt.image.set_view import ramp_colour

MAP_SIZE = 84
_LUT = np.array([ramp_colour(t).getRgb()[:3] for t in np.linspace(0.0, 1.0, 256)], dtype=np.uint8)


def ramp_qimage(values: np.ndarray, levels: tuple[float, float]) -> QtGui.QImage:
    """float ``[h, w]`` through the ramp on ``levels`` as an owned RGB888 ``QImage`` (NaN: grey)."""
    lo, hi = levels
    v = np.asarray(values, dtype=np.float64)
    t = np.clip((np.nan_to_num(v, nan=lo) - lo) / (hi - lo if hi > lo else 1.0), 0.0, 1.0)
    rgb = np.ascontiguousarray(_LUT[np.rint(t * 255).astype(np.int64)])
    rgb[~np.isfinite(v)] = 205
    h, w = v.shape
    return QtGui.QImage(rgb.data, w, h, 3 * w, QtGui.QImage.Format.Format_RGB888).copy()


class MapCell(QtWidgets.QWidget):
    """One unit's map, scaled up with nearest pixels to fit ``MAP_SIZE``."""

    def __init__(self, values: np.ndarray, levels, tip: str, parent=None):
        super().__init__(parent)
        self.values = values
        self.image = ramp_qimage(values, levels)
        self.setFixedSize(MAP_SIZE, MAP_SIZE)
        finite = values[np.isfinite(values)]
        span = f"{finite.min():.3g} .. {finite.max():.3g}" if finite.size else "no finite value"
        self.setToolTip(f"{tip}: {span}")

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt)
        painter = QtGui.QPainter(self)
        h, w = self.image.height(), self.image.width()
        scale = (MAP_SIZE - 2) / max(h, w)
        target = QtCore.QRectF(1 + (MAP_SIZE - 2 - w * scale) / 2, 1 + (MAP_SIZE - 2 - h * scale) / 2, w * scale,
                               h * scale)
        painter.drawImage(target, self.image)  # no smoothing: cells stay cells
        painter.end()


class UnitMapsView(QtWidgets.QWidget):
    """The grid: a header row of unit numbers, then one row per tap (its name, then its units' maps)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self._grid = QtWidgets.QGridLayout(self)
        self._grid.setContentsMargins(4, 4, 4, 4)
        self._grid.setSpacing(4)
        self._grid.setAlignment(QtCore.Qt.AlignmentFlag.AlignTop | QtCore.Qt.AlignmentFlag.AlignLeft)
        self.cells: list[list[MapCell]] = []
        self.levels = (0.0, 1.0)

    def clear(self) -> None:
        while self._grid.count():
            widget = self._grid.takeAt(0).widget()
            if widget is not None:
                widget.setParent(None)  # off the view now, not at the next event-loop turn
                widget.deleteLater()
        self.cells = []

    def show_maps(self, maps) -> None:
        """Show a :class:`~lstmviz.qt.image.data.UnitMaps`."""
        self.clear()
        self.levels = maps.levels
        units = max((m.shape[0] for _, m in maps.rows), default=0)
        for u in range(units):
            head = QtWidgets.QLabel(f"unit {u}")
            head.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
            self._grid.addWidget(head, 0, 1 + u)
        for r, (tap, values) in enumerate(maps.rows):
            name = QtWidgets.QLabel(tap)
            name.setTextFormat(QtCore.Qt.TextFormat.PlainText)
            self._grid.addWidget(name, 1 + r, 0)
            row = []
            for u in range(values.shape[0]):
                cell = MapCell(values[u], maps.levels, f"{tap}, unit {u}")
                self._grid.addWidget(cell, 1 + r, 1 + u)
                row.append(cell)
            self.cells.append(row)


class RampLegend(QtWidgets.QWidget):
    """The colour ramp with its two ends written under it."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.levels = (0.0, 1.0)
        self.setFixedHeight(30)
        self.setMinimumWidth(160)

    def set_levels(self, levels) -> None:
        self.levels = levels
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt)
        painter = QtGui.QPainter(self)
        bar = ramp_qimage(np.linspace(0.0, 1.0, 128)[None], (0.0, 1.0))
        painter.drawImage(QtCore.QRectF(0, 0, 160, 12), bar)
        painter.setPen(QtGui.QColor(40, 40, 40))
        lo, hi = self.levels
        painter.drawText(QtCore.QRectF(0, 13, 80, 16), QtCore.Qt.AlignmentFlag.AlignLeft, f"{lo:.3g}")
        painter.drawText(QtCore.QRectF(80, 13, 80, 16), QtCore.Qt.AlignmentFlag.AlignRight, f"{hi:.3g}")
        painter.end()
