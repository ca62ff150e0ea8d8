"""Many nodes, each one of a few colours, drawn fast: one ``drawPixmapFragments`` call from an atlas.

``NodeDots`` keeps the node positions (view coordinates) and, per node, an index into a colour table;
each colour is one pre-drawn disc (outlined) in a pixmap atlas. Painting maps every position to device
pixels at once (numpy), then draws every disc from the atlas in one call — the same technique as
pyqtgraph's ``ScatterPlotItem``, without its per-spot bookkeeping, so a colour change is setting an
integer array (no QBrush per node) and costs only the repaint.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from pyqtgraph import functions as fn
from pyqtgraph.Qt import internals
from PySide6 import QtCore, QtGui


class NodeDots(pg.GraphicsObject):
    """Discs of ``size`` pixels at ``pos`` [n, 2], coloured ``table[index[i]]`` (see the module docstring)."""

    def __init__(self, size: int = 13, outline=(60, 60, 60, 200)):
        super().__init__()
        self.size = int(size)
        self.cell = self.size + 3  # room for the outline and antialiasing
        self.outline = QtGui.QColor(*outline)
        self.pos = np.zeros((0, 2))
        self.index = np.zeros(0, np.int64)
        self.table: list[QtGui.QColor] = [QtGui.QColor(200, 200, 200)]
        self._table_key: tuple = ()
        self._atlas: QtGui.QPixmap | None = None
        self._atlas_dpr = 0.0
        self._bounds = None
        self._fragments = internals.PrimitiveArray(QtGui.QPainter.PixmapFragment, 10)

    # ------------------------------------------------------------------ data
    def set_positions(self, pos) -> None:
        self.prepareGeometryChange()
        self.pos = np.asarray(pos, dtype=np.float64).reshape(-1, 2)
        self.index = np.zeros(len(self.pos), np.int64)
        self._bounds = (self.pos.min(0), self.pos.max(0)) if len(self.pos) else None
        self.informViewBoundsChanged()
        self.update()

    def set_colours(self, index, table) -> None:
        """Node i gets ``table[index[i]]`` (QColor or anything ``QColor`` takes); clipped to the table."""
        table = [c if isinstance(c, QtGui.QColor) else QtGui.QColor(*c) for c in table] or [QtGui.QColor(200, 200, 200)]
        key = tuple(c.rgba() for c in table)
        if key != self._table_key:
            self.table, self._table_key, self._atlas = table, key, None
        self.index = np.clip(np.asarray(index, dtype=np.int64).reshape(-1), 0, len(table) - 1)
        self.update()

    def colours(self) -> list[QtGui.QColor]:
        """Each node's colour (tests, exports)."""
        return [self.table[i] for i in self.index]

    # ------------------------------------------------------------------ the atlas
    def _atlas_for(self, dpr: float) -> QtGui.QPixmap:
        if self._atlas is None or self._atlas_dpr != dpr:
            cell = self.cell
            pixmap = QtGui.QPixmap(int(np.ceil(cell * len(self.table) * dpr)), int(np.ceil(cell * dpr)))
            pixmap.setDevicePixelRatio(dpr)
            pixmap.fill(QtCore.Qt.GlobalColor.transparent)
            painter = QtGui.QPainter(pixmap)
            painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
            painter.setPen(QtGui.QPen(self.outline, 1.0))
            r = self.size / 2
            for i, colour in enumerate(self.table):
                painter.setBrush(colour)
                painter.drawEllipse(QtCore.QPointF(i * cell + cell / 2, cell / 2), r, r)
            painter.end()
            self._atlas, self._atlas_dpr = pixmap, dpr
        return self._atlas

    # ------------------------------------------------------------------ GraphicsObject
    def dataBounds(self, ax, frac=1.0, orthoRange=None):
        if self._bounds is None:
            return (None, None)
        return (float(self._bounds[0][ax]), float(self._bounds[1][ax]))

    def pixelPadding(self):
        return self.cell / 2

    def boundingRect(self):
        if self._bounds is None:
            return QtCore.QRectF()
        (x0, y0), (x1, y1) = self._bounds
        px, py = self.pixelVectors()
        px = 0.0 if px is None else px.length() * self.cell
        py = 0.0 if py is None else py.length() * self.cell
        return QtCore.QRectF(x0 - px, y0 - py, x1 - x0 + 2 * px, y1 - y0 + 2 * py)

    def viewTransformChanged(self):
        self.prepareGeometryChange()
        super().viewTransformChanged()

    def paint(self, p, option, widget=None):
        n = len(self.pos)
        if not n:
            return
        dpr = widget.devicePixelRatioF() if widget is not None else p.device().devicePixelRatioF()
        atlas = self._atlas_for(dpr)
        pts = fn.transformCoordinates(p.transform(), self.pos.T)
        pts = fn.clip_array(pts, -2 ** 30, 2 ** 30)
        p.resetTransform()
        self._fragments.resize(n)
        frags = self._fragments.ndarray()
        frags[:, 0:2] = pts.T
        frags[:, 2] = self.index * self.cell * dpr
        frags[:, 3] = 0.0
        frags[:, 4:6] = self.cell * dpr
        frags[:, 6:10] = [1 / dpr, 1 / dpr, 0.0, 1.0]
        p.drawPixmapFragments(*self._fragments.drawargs(), atlas)
