"""What the token row marks besides the tokens: active-count shading, the brush, its padding, the hover.

A graphics item behind the ``TokenAxis`` labels (a child drawn before its parent), in the axis's own
pixel coordinates, so shading and brush changes repaint only these marks and never re-lay out the
token text: token backgrounds white to blue by how many selected units are on, the brushed positions
outlined, the off-padding hatched grey with a ◀ / ▶ handle at each outer end, and the hovered token.
"""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from lstmviz.qt.palette import ACTIVE_SHADE, BACKGROUND, BRUSH, HIGHLIGHT, PADDING

#: opacity of the blue behind a token where one / all selected units are on (the text stays readable)
SHADE_MIN_ALPHA, SHADE_MAX_ALPHA = 30, 135


class TokenRowMarks(QtWidgets.QGraphicsObject):
    """Shading, brush, padding and hover marks of one token row (a child of its ``TokenAxis``)."""

    def __init__(self, axis):
        super().__init__(axis)
        self.axis = axis
        self.setFlag(QtWidgets.QGraphicsItem.GraphicsItemFlag.ItemStacksBehindParent)
        self.setAcceptedMouseButtons(QtCore.Qt.MouseButton.NoButton)
        self.start = 0
        self.shading: np.ndarray | None = None
        self.maximum = 0
        #: ((start, stop), pad_left, pad_right) or None
        self.selection: tuple[tuple[int, int], int, int] | None = None
        self.highlight: int | None = None

    # ------------------------------------------------------------------ state
    def set_start(self, start: int) -> None:
        if start != self.start:
            self.start = start
            self.update()

    def set_shading(self, start: int, counts, maximum: int) -> None:
        shading = None if counts is None or maximum <= 0 else np.asarray(counts)
        same = (shading is None and self.shading is None) or (
            shading is not None and self.shading is not None and int(maximum) == self.maximum
            and start == self.start and np.array_equal(shading, self.shading))
        if not same:
            self.start, self.shading, self.maximum = start, shading, int(maximum)
            self.update()

    def set_selection(self, brush, pad_left: int, pad_right: int) -> None:
        selection = None if brush is None else ((int(brush[0]), int(brush[1])), int(pad_left), int(pad_right))
        if selection != self.selection:
            self.selection = selection
            self.update()

    def set_highlight(self, position: int | None) -> None:
        if position != self.highlight:
            self.highlight = position
            self.update()

    def geometry_changed(self) -> None:
        self.prepareGeometryChange()
        self.update()

    # ------------------------------------------------------------------ drawing
    def boundingRect(self) -> QtCore.QRectF:
        return self.axis.mapRectFromParent(self.axis.geometry())

    def paint(self, p: QtGui.QPainter, *args) -> None:
        bounds = self.boundingRect()
        low, high = self.axis.range
        if high <= low or bounds.width() <= 0:
            return
        scale = bounds.width() / (high - low)

        def px(x: float) -> float:
            return bounds.left() + (x - low) * scale

        top, height = bounds.top(), bounds.height()
        p.setClipRect(bounds)
        p.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing, False)
        if self.shading is not None:
            for i in np.flatnonzero(self.shading > 0).tolist():
                alpha = round(SHADE_MIN_ALPHA + (SHADE_MAX_ALPHA - SHADE_MIN_ALPHA) * min(1.0, float(self.shading[i]) / self.maximum))
                p.fillRect(QtCore.QRectF(px(self.start + i - 0.5), top, scale, height), QtGui.QColor(*ACTIVE_SHADE, alpha))
        if self.selection is not None:
            (start, stop), left, right = self.selection
            for a, b in ((start - left, start), (stop, stop + right)):
                if b > a:
                    _hatch(p, QtCore.QRectF(px(a - 0.5), top, (b - a) * scale, height))
        if self.highlight is not None:
            p.fillRect(QtCore.QRectF(px(self.highlight - 0.5), top, scale, height), QtGui.QColor(*HIGHLIGHT, 45))
        if self.selection is not None:
            (start, stop), left, right = self.selection
            pen = QtGui.QPen(QtGui.QColor(*BRUSH))
            pen.setWidthF(2.0)
            p.setPen(pen)
            p.setBrush(QtCore.Qt.BrushStyle.NoBrush)
            a, b = px(start - 0.5), px(stop - 0.5)
            p.drawRect(QtCore.QRectF(a + 1, top + 1, b - a - 2, height - 2))
            _handle(p, px(start - left - 0.5), top + height / 2, pointing_left=True)
            _handle(p, px(stop + right - 0.5), top + height / 2, pointing_left=False)


def _hatch(p: QtGui.QPainter, rect: QtCore.QRectF, spacing: float = 6.0) -> None:
    """Grey background with diagonal lines over ``rect`` (pixel coordinates)."""
    p.save()
    p.setClipRect(rect, QtCore.Qt.ClipOperation.IntersectClip)
    p.fillRect(rect, QtGui.QColor(*PADDING, 60))
    pen = QtGui.QPen(QtGui.QColor(*PADDING, 200))
    pen.setWidthF(1.0)
    p.setPen(pen)
    height = rect.height()
    x = rect.left() - height
    while x < rect.right():
        p.drawLine(QtCore.QPointF(x, rect.bottom()), QtCore.QPointF(x + height, rect.top()))
        x += spacing
    p.restore()


def _handle(p: QtGui.QPainter, x: float, y: float, *, pointing_left: bool) -> None:
    """A small grey triangle at ``x`` pointing outwards: the grip of a padding edge."""
    w, h = 7.0, 12.0
    tip = x - w if pointing_left else x + w
    polygon = QtGui.QPolygonF([QtCore.QPointF(x, y - h / 2), QtCore.QPointF(tip, y), QtCore.QPointF(x, y + h / 2)])
    p.save()
    p.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing, True)
    p.setPen(QtGui.QPen(QtGui.QColor(*BACKGROUND)))
    p.setBrush(QtGui.QColor(*PADDING))
    p.drawPolygon(polygon)
    pen = QtGui.QPen(QtGui.QColor(*PADDING))
    pen.setWidthF(2.0)
    p.setPen(pen)
    p.drawLine(QtCore.QPointF(x, y - h), QtCore.QPointF(x, y + h))
    p.restore()
