"""Small graph thumbnails of the top matches: each graph drawn with its matched nodes highlighted, its
item and score underneath; a click goes to that graph (``ThumbnailGrid.activated``)."""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtGui

from lstmviz.qt.thumbnails import CaptionedThumbnail
from lstmviz.qt.thumbnails import ThumbnailGrid as BaseGrid

THUMB_SIZE = 132
_EDGE = QtGui.QColor(170, 170, 170)
_NODE = QtGui.QColor(120, 120, 120)
_MATCHED = QtGui.QColor(230, 60, 20)


class Thumbnail(CaptionedThumbnail):
    """One match: a graph (coords [-1, 1], edges), the matched nodes, a caption."""

    def __init__(self, index: int, coords, edges, matched, caption: str, hidden=None, parent=None):
        super().__init__(index, caption, "click: show this graph with the match brushed", THUMB_SIZE, parent)
        self.coords = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
        self.edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
        self.visible = np.ones(len(self.coords), bool) if hidden is None else ~np.asarray(hidden, bool)
        self.matched = np.zeros(len(self.coords), bool)
        self.matched[np.asarray(matched, dtype=np.int64)] = True

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
        self.draw_caption(painter)
        painter.end()


class ThumbnailGrid(BaseGrid):
    """A wrapping grid of ``Thumbnail``; ``activated(index)`` when one is clicked."""

    def __init__(self, parent=None):
        super().__init__(THUMB_SIZE, parent)

    def set_thumbnails(self, entries) -> None:
        """``entries``: (coords, edges, matched nodes, caption, hidden) per match, best first."""
        self.place([Thumbnail(i, coords, edges, matched, caption, hidden)
                    for i, (coords, edges, matched, caption, hidden) in enumerate(entries)])
