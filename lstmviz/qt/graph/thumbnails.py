"""Small graph thumbnails of the top matches: each graph drawn with its matched nodes highlighted, its
item and score underneath; a click goes to that graph (``ThumbnailGrid.activated``)."""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

THUMB_SIZE = 132
_EDGE = QtGui.QColor(170, 170, 170)
_NODE = QtGui.QColor(120, 120, 120)
_MATCHED = QtGui.QColor(230, 60, 20)


class Thumbnail(QtWidgets.QFrame):
    """One match: a graph (coords [-1, 1], edges), the matched nodes, a caption."""

    clicked = QtCore.Signal(int)

    def __init__(self, index: int, coords, edges, matched, caption: str, hidden=None, parent=None):
        super().__init__(parent)
        self.index = index
        self.coords = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
        self.edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
        self.visible = np.ones(len(self.coords), bool) if hidden is None else ~np.asarray(hidden, bool)
        self.matched = np.zeros(len(self.coords), bool)
        self.matched[np.asarray(matched, dtype=np.int64)] = True
        self.caption = caption
        self.setFixedSize(THUMB_SIZE, THUMB_SIZE + 18)
        self.setFrameShape(QtWidgets.QFrame.Shape.StyledPanel)
        self.setCursor(QtCore.Qt.CursorShape.PointingHandCursor)
        self.setToolTip(caption + "\nclick: show this graph with the match brushed")

    def mousePressEvent(self, event) -> None:
        if event.button() == QtCore.Qt.MouseButton.LeftButton:
            self.clicked.emit(self.index)
            event.accept()
        else:
            super().mousePressEvent(event)

    def paintEvent(self, event) -> None:
        super().paintEvent(event)
        painter = QtGui.QPainter(self)
        painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        half = (THUMB_SIZE - 16) / 2
        xy = self.coords * np.array([half, -half]) + np.array([THUMB_SIZE / 2, THUMB_SIZE / 2])
        painter.setPen(QtGui.QPen(_EDGE, 1))
        lines = [QtCore.QLineF(*xy[a], *xy[b]) for a, b in self.edges
                 if a != b and self.visible[a] and self.visible[b]]
        painter.drawLines(lines)
        radius = 3.5 if len(xy) <= 100 else 2.0
        for matched, colour, r in ((False, _NODE, radius * 0.8), (True, _MATCHED, radius * 1.3)):
            painter.setPen(QtCore.Qt.PenStyle.NoPen)
            painter.setBrush(colour)
            for i in np.flatnonzero((self.matched == matched) & self.visible):
                painter.drawEllipse(QtCore.QPointF(*xy[i]), r, r)
        painter.setPen(QtGui.QColor(40, 40, 40))
        font = painter.font()
        font.setPointSizeF(max(6.0, font.pointSizeF() - 1.5))
        painter.setFont(font)
        text = QtGui.QFontMetrics(font).elidedText(self.caption, QtCore.Qt.TextElideMode.ElideRight, THUMB_SIZE - 4)
        painter.drawText(QtCore.QRectF(2, THUMB_SIZE, THUMB_SIZE - 4, 16), QtCore.Qt.AlignmentFlag.AlignCenter, text)
        painter.end()


class ThumbnailGrid(QtWidgets.QScrollArea):
    """A wrapping grid of ``Thumbnail``; ``activated(index)`` when one is clicked."""

    activated = QtCore.Signal(int)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWidgetResizable(True)
        self._inner = QtWidgets.QWidget()
        self._grid = QtWidgets.QGridLayout(self._inner)
        self._grid.setContentsMargins(4, 4, 4, 4)
        self._grid.setSpacing(6)
        self._grid.setAlignment(QtCore.Qt.AlignmentFlag.AlignTop | QtCore.Qt.AlignmentFlag.AlignLeft)
        self.setWidget(self._inner)
        self.thumbnails: list[Thumbnail] = []

    def clear(self) -> None:
        for t in self.thumbnails:
            self._grid.removeWidget(t)
            t.deleteLater()
        self.thumbnails = []

    def set_thumbnails(self, entries) -> None:
        """``entries``: (coords, edges, matched nodes, caption, hidden) per match, best first."""
        self.clear()
        columns = max(1, (self.viewport().width() - 8) // (THUMB_SIZE + 6))
        for i, (coords, edges, matched, caption, hidden) in enumerate(entries):
            t = Thumbnail(i, coords, edges, matched, caption, hidden)
            t.clicked.connect(self.activated.emit)
            self._grid.addWidget(t, i // columns, i % columns)
            self.thumbnails.append(t)
