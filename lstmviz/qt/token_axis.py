"""The token axis: the tokens of the window written under the state plot, one per x position.

A pyqtgraph ``AxisItem`` whose labels are the token strings at integer positions. Tokens are written
horizontally when every one fits in its column, vertically (reading upwards, elided to the axis
height) when the columns are narrow, and only every k-th token when even a vertical label does not
fit. Item boundaries are drawn as orange separators and the hovered position gets a light background.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui

from lstmviz.qt.palette import AXIS, FOREGROUND, HIGHLIGHT, ITEM_BOUNDARY
from lstmviz.qt.token_text import display_token


@dataclass
class TokenLabel:
    """One label to draw: its column centre, the text, and whether it is written vertically."""

    x: float
    text: str
    vertical: bool


@dataclass
class TokenAxisLayout:
    """Everything ``drawPicture`` needs, in the axis item's own pixel coordinates."""

    bounds: QtCore.QRectF
    cell: float
    labels: list[TokenLabel] = field(default_factory=list)
    separators: list[float] = field(default_factory=list)
    boundaries: list[float] = field(default_factory=list)
    highlight: tuple[float, float] | None = None
    font_scale: float = 1.0


class TokenAxis(pg.AxisItem):
    """Bottom axis of the state plot whose tick labels are the window's tokens."""

    PADDING = 4
    MAX_VERTICAL_HEIGHT = 72
    MIN_FONT_SCALE = 0.72

    def __init__(self, point_size: float = 9.0):
        super().__init__("bottom", pen=pg.mkPen(AXIS), textPen=pg.mkPen(FOREGROUND))
        font = QtGui.QFont()
        font.setPointSizeF(point_size)
        self.setTickFont(font)
        self._metrics = QtGui.QFontMetricsF(font)
        self._start = 0
        self._tokens: list[str] = []
        self._item_starts: list[int] = []
        self._highlight: int | None = None
        self.setHeight(self._height_for(vertical=False))

    # ------------------------------------------------------------------ what to show
    def set_tokens(self, start: int, tokens: list[str], item_starts: list[int] = ()) -> None:
        """Show ``tokens`` at positions ``start, start + 1, ...`` and separators before ``item_starts``."""
        self._start = int(start)
        self._tokens = [display_token(t) for t in tokens]
        self._item_starts = list(item_starts)
        self._fit_height()
        self._invalidate()

    def set_highlight(self, position: int | None) -> None:
        """Give the token at ``position`` a background (None: no highlight)."""
        if position != self._highlight:
            self._highlight = position
            self._invalidate()

    def tokens(self) -> list[str]:
        """The displayed token texts (after whitespace glyphs)."""
        return list(self._tokens)

    def resizeEvent(self, ev=None):
        super().resizeEvent(ev)
        if hasattr(self, "_metrics"):
            self._fit_height()

    def linkedViewChanged(self, view, newRange=None):
        super().linkedViewChanged(view, newRange)
        if hasattr(self, "_metrics"):
            self._fit_height()

    def _pixels_per_position(self) -> float:
        low, high = self.range
        width = self.geometry().width()
        return width / (high - low) if high > low and width > 0 else 0.0

    def _label_mode(self, scale: float) -> tuple[bool, int, float]:
        """(vertical, stride, font scale) for columns ``scale`` pixels wide.

        Horizontal when the tokens fit their columns, if need be in a font shrunk to no less than
        ``MIN_FONT_SCALE`` (so character models stay upright; the widest tenth, such as "m", may
        overhang a pixel or two); else vertical, every k-th token when even one line of text is
        wider than a column.
        """
        widths = [self._metrics.horizontalAdvance(t) for t in self._tokens]
        widest = max(widths, default=0.0)
        if scale <= 0 or widest <= scale - 1:
            return False, 1, 1.0
        typical = float(np.percentile(widths, 90))
        fit = min(1.0, (scale - 1) / typical)
        if fit >= self.MIN_FONT_SCALE:
            return False, 1, fit
        ascent = self._metrics.ascent()
        return True, (1 if scale >= ascent else math.ceil(ascent / scale)), 1.0

    def _height_for(self, vertical: bool) -> int:
        if not vertical:
            return math.ceil(self._metrics.height() + 2 * self.PADDING + 4)
        widest = max((self._metrics.horizontalAdvance(t) for t in self._tokens), default=0.0)
        return int(min(self.MAX_VERTICAL_HEIGHT, max(30, math.ceil(widest + 2 * self.PADDING + 6))))

    def _fit_height(self) -> None:
        """Make the axis as tall as its labels need: one text line, or the longest vertical label."""
        vertical, _, _ = self._label_mode(self._pixels_per_position())
        height = self._height_for(vertical)
        if height != self.fixedHeight:
            self.setHeight(height)

    def _invalidate(self) -> None:
        self.picture = None
        self.update()

    # ------------------------------------------------------------------ drawing
    def generateDrawSpecs(self, p):
        """Lay out the token labels for the current x range (pixel coordinates of this item)."""
        bounds = self.mapRectFromParent(self.geometry())
        low, high = self.range
        if high <= low or bounds.width() <= 0:
            return None
        scale = bounds.width() / (high - low)

        def px(x: float) -> float:
            return bounds.left() + (x - low) * scale

        vertical, stride, font_scale = self._label_mode(scale)
        layout = TokenAxisLayout(bounds=bounds, cell=scale, font_scale=font_scale)
        for i, text in enumerate(self._tokens):
            position = self._start + i
            if position % stride == 0:
                layout.labels.append(TokenLabel(px(position), text, vertical))
            if scale >= 6:
                layout.separators.append(px(position - 0.5))
        layout.boundaries = [px(b - 0.5) for b in self._item_starts]
        if self._highlight is not None and 0 <= self._highlight - self._start < len(self._tokens):
            layout.highlight = (px(self._highlight - 0.5), scale)
        return (layout,)

    def drawPicture(self, p, layout: TokenAxisLayout):
        """Draw the axis line, column separators, item boundaries, highlight and token labels."""
        bounds = layout.bounds
        top = bounds.top()
        p.setRenderHint(p.RenderHint.Antialiasing, False)
        p.setRenderHint(p.RenderHint.TextAntialiasing, True)
        p.setClipRect(bounds)
        if layout.highlight is not None:
            left, width = layout.highlight
            color = QtGui.QColor(*HIGHLIGHT)
            color.setAlpha(45)
            p.fillRect(QtCore.QRectF(left, top, width, bounds.height()), color)
        p.setPen(self.pen())
        p.drawLine(QtCore.QPointF(bounds.left(), top), QtCore.QPointF(bounds.right(), top))
        for x in layout.separators:
            p.drawLine(QtCore.QPointF(x, top), QtCore.QPointF(x, top + 4))
        boundary_pen = QtGui.QPen(QtGui.QColor(*ITEM_BOUNDARY))
        boundary_pen.setWidthF(2.0)
        p.setPen(boundary_pen)
        for x in layout.boundaries:
            p.drawLine(QtCore.QPointF(x, top), QtCore.QPointF(x, bounds.bottom()))

        font = QtGui.QFont(self.style["tickFont"])
        if layout.font_scale != 1.0:
            font.setPointSizeF(font.pointSizeF() * layout.font_scale)
        p.setFont(font)
        p.setPen(self.textPen())
        metrics = QtGui.QFontMetricsF(font)
        line = metrics.height()
        room = bounds.height() - 2 * self.PADDING
        for label in layout.labels:
            if label.vertical:
                text = metrics.elidedText(label.text, QtCore.Qt.TextElideMode.ElideRight, room)
                p.save()
                p.translate(label.x, top + self.PADDING + 2)
                p.rotate(-90)
                p.drawText(
                    QtCore.QRectF(-room, -line / 2, room, line),
                    int(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter),
                    text,
                )
                p.restore()
            else:
                p.drawText(
                    QtCore.QRectF(label.x - layout.cell / 2, top + self.PADDING + 2, layout.cell, line),
                    int(QtCore.Qt.AlignmentFlag.AlignHCenter | QtCore.Qt.AlignmentFlag.AlignTop),
                    label.text,
                )
