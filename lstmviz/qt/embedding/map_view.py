"""The 2-D map of an embedding table: one dot per row, names written beside the marked rows.

Every row is labelled when the table has at most ``LABEL_ALL`` rows; otherwise only the marked rows (the
token whose neighbours are shown and its neighbours, the words of the analogy and its answers), drawn in
another colour, so a 10,000-word vocabulary stays readable. Names are set as plain text (``TextItem.setText``),
never as HTML.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from lstmviz.qt.plain_text import escape

LABEL_ALL = 60
_DOT = QtGui.QColor(90, 120, 190, 150)
_MARK = QtGui.QColor(230, 120, 30)
_TEXT = QtGui.QColor(30, 30, 30)


class EmbeddingMap(QtWidgets.QWidget):
    """A scatter of ``xy`` with ``names``; ``mark(names)`` labels and colours those rows."""

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.plot = pg.PlotWidget(background="w")
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        for side in ("bottom", "left"):
            self.plot.getAxis(side).enableAutoSIPrefix(False)  # coordinates have no unit to scale
        self.scatter = pg.ScatterPlotItem(size=5, pen=None, brush=pg.mkBrush(_DOT))
        self.marked_scatter = pg.ScatterPlotItem(size=8, pen=pg.mkPen("k", width=0.5), brush=pg.mkBrush(_MARK))
        self.plot.addItem(self.scatter)
        self.plot.addItem(self.marked_scatter)
        self.labels: list[pg.TextItem] = []
        self.names: tuple[str, ...] = ()
        self.xy = np.zeros((0, 2))
        self.marked: list[int] = []
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot)

    def set_points(self, xy: np.ndarray, names, axis_titles=("1", "2"), title: str = "") -> None:
        self.xy = np.asarray(xy, np.float64)
        self.names = tuple(names)
        self.scatter.setData(x=self.xy[:, 0], y=self.xy[:, 1])
        self.plot.setLabel("bottom", escape(axis_titles[0]))
        self.plot.setLabel("left", escape(axis_titles[1]))
        self.plot.setTitle(escape(title) if title else None)
        self.plot.enableAutoRange()
        self._draw_labels()

    def clear(self) -> None:
        self.xy = np.zeros((0, 2))
        self.names = ()
        self.marked = []
        self.scatter.clear()
        self.marked_scatter.clear()
        self._draw_labels()

    def mark(self, names) -> None:
        """Colour and label the rows named ``names`` (unknown names are ignored)."""
        index = {n: i for i, n in enumerate(self.names)}
        self.marked = list(dict.fromkeys(index[n] for n in names if n in index))
        self._draw_labels()

    def labelled(self) -> list[str]:
        """The names written on the map now."""
        return [label.toPlainText() for label in self.labels]

    def _draw_labels(self) -> None:
        for label in self.labels:
            self.plot.removeItem(label)
        self.labels = []
        if not len(self.xy):
            self.marked_scatter.clear()
            return
        rows = list(range(len(self.xy))) if len(self.xy) <= LABEL_ALL else []
        rows += [r for r in self.marked if r not in rows]
        marked = np.array(self.marked, np.int64)
        self.marked_scatter.setData(x=self.xy[marked, 0], y=self.xy[marked, 1]) if len(marked) else \
            self.marked_scatter.clear()
        for r in rows:
            colour = _MARK.darker(130) if r in self.marked else _TEXT
            label = pg.TextItem(anchor=(0, 0.5), color=colour)
            label.setText(self.names[r])  # plain text
            label.setPos(float(self.xy[r, 0]), float(self.xy[r, 1]))
            self.plot.addItem(label)
            self.labels.append(label)

    def sizeHint(self) -> QtCore.QSize:  # noqa: N802 (Qt's name)
        return QtCore.QSize(480, 360)
