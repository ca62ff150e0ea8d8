"""The token axis: the tokens of the window written under a pane's plot, one per x position.

A pyqtgraph ``AxisItem`` whose labels are the token strings at integer positions. Tokens are written
horizontally when every one fits in its column, vertically (reading upwards, elided to the axis
height, in a smaller font) when the columns are narrow, and only every k-th token when even a
vertical label in the smallest font does not fit. Item boundaries are drawn as orange separators and the hovered position gets a light background.

It is also the pane's *token row*, where the hypothesis is brushed (as in LSTMVis): token
backgrounds are shaded white to blue by how many selected units are on (``set_shading``), the brushed
range is outlined, the off-padding is hatched grey with a handle at each outer end
(``set_selection_marks``), and mouse drags and clicks are reported in data x (``dragged``,
``clicked``; ``handle_at`` tells whether a drag starts on a padding handle). What a gesture means is
decided by ``lstmviz.qt.brush_gesture``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui

from lstmviz.qt.palette import AXIS, FOREGROUND, ITEM_BOUNDARY
from lstmviz.qt.token_marks import TokenRowMarks
from lstmviz.qt.token_text import display_token

#: how far (pixels) outside / inside its edge a padding handle can be grabbed
HANDLE_GRAB_PX = 9
HANDLE_INSIDE_PX = 2
TOKEN_ROW_TIP = (
    "<b>Token row</b><br>Drag across tokens to brush a hypothesis range (a click brushes one token).<br>"
    "Drag the grey ◀ ▶ handles at the outer ends of the hatched bands to set how many positions "
    "before / after the brush must be <i>off</i>.<br>Blue backgrounds: how many selected units are on."
)


def fit_prefix(metrics, text: str, room: float) -> str:
    """``text`` if it fits ``room`` pixels, else its longest beginning that does, ending in "…" when that
    leaves at least one character (else the bare first character): a rare long token among short ones
    (``odd`` among ``0``/``1`` in a column sized for the digits) reads as its start, not as its clipped
    middle over the neighbouring columns."""
    if metrics.horizontalAdvance(text) <= room or len(text) <= 1:
        return text
    for end in range(len(text) - 1, 0, -1):
        candidate = text[:end] + "\u2026"
        if metrics.horizontalAdvance(candidate) <= room:
            return candidate
    return text[0]


@dataclass(frozen=True)
class TokenDrag:
    """A drag over the token row: where it started and where the pointer is, in data x."""

    start_x: float
    x: float
    is_start: bool
    is_finish: bool


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
    font_scale: float = 1.0


class TokenAxis(pg.AxisItem):
    """Bottom axis of a pane's plot whose tick labels are the window's tokens; also the brushing row."""

    #: a TokenDrag while the left button drags over the row
    dragged = QtCore.Signal(object)
    #: data x of a left click on the row
    clicked = QtCore.Signal(float)

    PADDING = 4
    MAX_VERTICAL_HEIGHT = 72
    MIN_FONT_SCALE = 0.72
    #: pixels a horizontal label may overhang its column before it is cut to its beginning
    OVERHANG = 3.0
    #: vertical labels shrink to this share of the font before tokens are left out (about 6.3 pt)
    MIN_VERTICAL_SCALE = 0.7

    def __init__(self, point_size: float = 9.0):
        super().__init__("bottom", pen=pg.mkPen(AXIS), textPen=pg.mkPen(FOREGROUND))
        font = QtGui.QFont()
        font.setPointSizeF(point_size)
        self.setTickFont(font)
        self._metrics = QtGui.QFontMetricsF(font)
        self._start = 0
        self._tokens: list[str] = []
        self._item_starts: list[int] = []
        #: the token labels of the last paint, left to right (fewer than the tokens when thinned)
        self.drawn_labels: list[str] = []
        self.marks = TokenRowMarks(self)
        self.setHeight(self._height_for(vertical=False))
        self.setToolTip(TOKEN_ROW_TIP)

    # ------------------------------------------------------------------ what to show
    def set_tokens(self, start: int, tokens: list[str], item_starts: list[int] = ()) -> None:
        """Show ``tokens`` at positions ``start, start + 1, ...`` and separators before ``item_starts``."""
        self._start = int(start)
        self.marks.set_start(self._start)
        self._tokens = [display_token(t) for t in tokens]
        self._item_starts = list(item_starts)
        self._fit_height()
        self._invalidate()

    def set_highlight(self, position: int | None) -> None:
        """Give the token at ``position`` a background (None: no highlight)."""
        self.marks.set_highlight(position)

    def set_shading(self, counts: np.ndarray | None, maximum: int) -> None:
        """Shade token backgrounds by ``counts`` (one per window position) out of ``maximum`` units."""
        self.marks.set_shading(self._start, counts, maximum)

    def set_selection_marks(self, brush: tuple[int, int] | None, pad_left: int = 0, pad_right: int = 0) -> None:
        """Outline the brushed positions ``[start, stop)`` and hatch the padding (None: no brush)."""
        self.marks.set_selection(brush, pad_left, pad_right)

    def handle_boundaries(self) -> tuple[float, float] | None:
        """Data x of the left and right padding handles (the outer edges of the padding), or None."""
        if self.marks.selection is None:
            return None
        (start, stop), left, right = self.marks.selection
        return start - left - 0.5, stop + right - 0.5

    def handle_at(self, x: float) -> str | None:
        """"left" or "right" when data x is on a padding handle, else None.

        A handle is grabbed on its outer side (where its triangle is drawn), so a drag that starts
        inside the brush always brushes anew, even when there is no padding on that side.
        """
        bounds = self.handle_boundaries()
        scale = self._pixels_per_position()
        if bounds is None or scale <= 0:
            return None
        left, right = ((x - b) * scale for b in bounds)  # pixels right of each handle
        if -HANDLE_GRAB_PX <= left <= HANDLE_INSIDE_PX:
            return "left"
        if -HANDLE_INSIDE_PX <= right <= HANDLE_GRAB_PX:
            return "right"
        return None

    # ------------------------------------------------------------------ gestures
    def _data_x(self, ev) -> float:
        view = self.linkedView()
        return float(view.mapSceneToView(ev.scenePos()).x()) if view is not None else float(ev.pos().x())

    def mouseDragEvent(self, ev):
        if ev.button() != QtCore.Qt.MouseButton.LeftButton:
            ev.ignore()
            return
        ev.accept()
        view = self.linkedView()
        start = float(view.mapSceneToView(ev.buttonDownScenePos()).x()) if view is not None else 0.0
        self.dragged.emit(TokenDrag(start, self._data_x(ev), ev.isStart(), ev.isFinish()))

    def mouseClickEvent(self, ev):
        if ev.button() != QtCore.Qt.MouseButton.LeftButton:
            ev.ignore()
            return
        ev.accept()
        self.clicked.emit(self._data_x(ev))

    def hoverEvent(self, ev):
        if ev.isExit():
            self.unsetCursor()
            return
        view = self.linkedView()
        if view is None:
            return
        x = float(view.mapSceneToView(ev.scenePos()).x())
        if self.handle_at(x) is not None:
            self.setCursor(QtCore.Qt.CursorShape.SizeHorCursor)
        else:
            self.setCursor(QtCore.Qt.CursorShape.IBeamCursor)

    def tokens(self) -> list[str]:
        """The displayed token texts (after whitespace glyphs)."""
        return list(self._tokens)

    def resizeEvent(self, ev=None):
        super().resizeEvent(ev)
        if hasattr(self, "_metrics"):
            self._fit_height()
            self.marks.geometry_changed()

    def linkedViewChanged(self, view, newRange=None):
        super().linkedViewChanged(view, newRange)
        if hasattr(self, "_metrics"):
            self._fit_height()
            self.marks.geometry_changed()

    def _pixels_per_position(self) -> float:
        low, high = self.range
        width = self.geometry().width()
        return width / (high - low) if high > low and width > 0 else 0.0

    def _label_mode(self, scale: float) -> tuple[bool, int, float]:
        """(vertical, stride, font scale) for columns ``scale`` pixels wide.

        Horizontal when the tokens fit their columns, if need be in a font shrunk to no less than
        ``MIN_FONT_SCALE`` (so character models stay upright; the widest tenth, such as "m", may
        overhang a pixel or two); else vertical, in a font shrunk (to no less than
        ``MIN_VERTICAL_SCALE``) until one line of text fits a column, so that every word of a sentence
        is drawn at the default window; only columns narrower than that get every k-th token.
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
        font_scale = max(self.MIN_VERTICAL_SCALE, min(1.0, scale / ascent))
        line = ascent * font_scale
        return True, (1 if scale >= line else math.ceil(line / scale)), font_scale

    def _height_for(self, vertical: bool, font_scale: float = 1.0) -> int:
        if not vertical:
            return math.ceil(self._metrics.height() + 2 * self.PADDING + 4)
        widest = max((self._metrics.horizontalAdvance(t) for t in self._tokens), default=0.0) * font_scale
        return int(min(self.MAX_VERTICAL_HEIGHT, max(30, math.ceil(widest + 2 * self.PADDING + 6))))

    def _fit_height(self) -> None:
        """Make the axis as tall as its labels need: one text line, or the longest vertical label."""
        vertical, _, font_scale = self._label_mode(self._pixels_per_position())
        height = self._height_for(vertical, font_scale)
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
        return (layout,)

    def drawPicture(self, p, layout: TokenAxisLayout):
        """Draw the axis line, column separators, item boundaries and token labels (the marks of the
        selection and the hover are the ``TokenRowMarks`` child, so they change without re-laying out text)."""
        bounds = layout.bounds
        top = bounds.top()
        self.drawn_labels = [label.text for label in layout.labels]
        self.drawn_text: list[str] = []  # what the horizontal labels show (a long rare token: its beginning)
        p.setRenderHint(p.RenderHint.Antialiasing, False)
        p.setRenderHint(p.RenderHint.TextAntialiasing, True)
        p.setClipRect(bounds)
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
                text = fit_prefix(metrics, label.text, layout.cell + self.OVERHANG)
                self.drawn_text.append(text)
                p.drawText(
                    QtCore.QRectF(label.x - layout.cell / 2, top + self.PADDING + 2, layout.cell, line),
                    int(QtCore.Qt.AlignmentFlag.AlignHCenter | QtCore.Qt.AlignmentFlag.AlignTop),
                    text,
                )

