"""The brushed range and its off-padding drawn over a pane's plot.

The brush is a translucent blue band with solid edges, drawn over the grey all-units curve; each padding is a grey band hatched with
diagonal lines (spaced in pixels, drawn in data coordinates so PNG, SVG and PDF exports look the same).
The bands span the whole height of the view.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui

from lstmviz.qt.palette import BRUSH, PADDING

HATCH_SPACING_PX = 7.0


class SelectionBands(pg.GraphicsObject):
    """Brush and padding bands in data x; set with ``set_bands``."""

    def __init__(self):
        super().__init__()
        self._brush: tuple[int, int] | None = None
        self._pads: list[tuple[int, int]] = []
        self._rect: QtCore.QRectF | None = None
        self.setZValue(-10)  # over the all-units curve (-20), under the selected lines

    def set_bands(self, brush: tuple[int, int] | None, pad_left: int = 0, pad_right: int = 0) -> None:
        """Show positions ``[start, stop)`` brushed and ``pad_left`` / ``pad_right`` positions padded."""
        pads = []
        if brush is not None:
            start, stop = brush
            pads = [(a, b) for a, b in ((start - pad_left, start), (stop, stop + pad_right)) if b > a]
        if brush == self._brush and pads == self._pads:
            return
        self.prepareGeometryChange()
        self._brush, self._pads, self._rect = brush, pads, None
        self.update()

    def bands(self) -> tuple[tuple[int, int] | None, list[tuple[int, int]]]:
        return self._brush, list(self._pads)

    def viewTransformChanged(self):
        self.prepareGeometryChange()
        self._rect = None

    def _y_span(self) -> tuple[float, float]:
        view = self.getViewBox()
        if view is None:
            return 0.0, 0.0
        rect = view.viewRect()
        return rect.top(), rect.bottom()

    def boundingRect(self) -> QtCore.QRectF:
        if self._rect is None:
            if self._brush is None:
                self._rect = QtCore.QRectF()
            else:
                xs = [self._brush[0], self._brush[1], *(v for pad in self._pads for v in pad)]
                low, high = self._y_span()
                self._rect = QtCore.QRectF(min(xs) - 0.5, low, max(xs) - min(xs), high - low)
        return self._rect

    def paint(self, p: QtGui.QPainter, *args) -> None:
        if self._brush is None:
            return
        low, high = self._y_span()
        px, py = self.pixelWidth(), self.pixelHeight()
        if px <= 0 or py <= 0:
            return
        p.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing, False)
        pen = pg.mkPen((*PADDING, 150), width=1)
        pen.setCosmetic(True)
        for a, b in self._pads:
            rect = QtCore.QRectF(a - 0.5, low, b - a, high - low)
            p.fillRect(rect, QtGui.QColor(*PADDING, 45))
            p.setPen(pen)
            p.drawLines(hatch_lines(rect.left(), rect.right(), low, high, px, py))
        start, stop = self._brush
        rect = QtCore.QRectF(start - 0.5, low, stop - start, high - low)
        p.fillRect(rect, QtGui.QColor(*BRUSH, 38))
        edge = pg.mkPen((*BRUSH, 200), width=1.5)
        edge.setCosmetic(True)
        p.setPen(edge)
        p.drawLine(QtCore.QPointF(rect.left(), low), QtCore.QPointF(rect.left(), high))
        p.drawLine(QtCore.QPointF(rect.right(), low), QtCore.QPointF(rect.right(), high))


def hatch_lines(left: float, right: float, low: float, high: float, px: float, py: float) -> list[QtCore.QLineF]:
    """45° lines (on screen) every ``HATCH_SPACING_PX`` pixels across ``[left, right] x [low, high]``.

    ``px`` / ``py``: data units per pixel. The lines are cut to the rectangle here (a clip region in
    the flipped data frame would make Qt clip every line against a path, which is slow).
    """
    height = high - low
    run = height / py * px  # data x covered by one line going from the bottom to the top
    if run <= 0 or right <= left:
        return []
    starts = np.arange(left - run, right, HATCH_SPACING_PX * px)
    x0 = np.maximum(starts, left)
    x1 = np.minimum(starts + run, right)
    keep = x1 > x0
    x0, x1, s0 = x0[keep], x1[keep], starts[keep]
    y0 = low + (x0 - s0) / run * height
    y1 = low + (x1 - s0) / run * height
    return [QtCore.QLineF(a, b, c, d) for a, b, c, d in zip(x0.tolist(), y0.tolist(), x1.tolist(), y1.tolist())]
