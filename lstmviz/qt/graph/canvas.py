"""The graph drawing of the Graph panel: edges, nodes coloured per node, the brushed nodes, labels, and
the brush gestures (click, shift-click, lasso drag) and hover.

Drawing cost is what a redraw of a large graph pays: the edges are one ``PlotCurveItem`` with
``connect="pairs"`` (one path), the nodes one ``NodeDots`` (every disc drawn from a pixmap atlas in one call; a colour
change sets an index array into a colour table), the brushed nodes a scatter of outlines. Names are drawn for small graphs only (``LABEL_MAX_NODES``).

Gestures (on the plot's view box): a left click picks the nearest node within ``PICK_PIXELS`` (shift adds
it to the brushed set; a click on empty space clears); a left drag draws a lasso whose polygon goes to
``lasso_finished`` (shift adds); the right button and the wheel zoom, as in every pyqtgraph plot.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from lstmviz.qt.graph.node_dots import NodeDots

PICK_PIXELS = 12.0
LABEL_MAX_NODES = 80
NODE_SIZE = 13
EDGE_PEN = (185, 185, 185)
MARK_PEN = (230, 60, 20)
FILLER_HIDDEN = True


def colour_table(name: str = "viridis", n: int = 256) -> list[QtGui.QColor]:
    """``n`` colours along a pyqtgraph colour map."""
    cmap = pg.colormap.get(name)
    colours = cmap.getLookupTable(0.0, 1.0, n, alpha=False)
    return [QtGui.QColor(int(r), int(g), int(b)) for r, g, b in colours[:, :3]]


class _Nodes(pg.ScatterPlotItem):
    """A scatter that leaves clicks to the view box (which picks the nearest node itself)."""

    def mouseClickEvent(self, ev) -> None:
        ev.ignore()


class _BrushViewBox(pg.ViewBox):
    """A view box whose left button brushes nodes instead of panning."""

    clicked = QtCore.Signal(object, bool)  # view point (QPointF), shift held
    lasso_moved = QtCore.Signal(object)  # float [m, 2]: the polygon so far
    lasso_finished = QtCore.Signal(object, bool)  # float [m, 2], shift held

    def __init__(self):
        super().__init__(lockAspect=True, enableMenu=False)
        self._polygon: list[tuple[float, float]] = []

    def mouseClickEvent(self, ev) -> None:
        if ev.button() == QtCore.Qt.MouseButton.LeftButton:
            ev.accept()
            shift = bool(ev.modifiers() & QtCore.Qt.KeyboardModifier.ShiftModifier)
            self.clicked.emit(self.mapSceneToView(ev.scenePos()), shift)
        else:
            super().mouseClickEvent(ev)

    def mouseDragEvent(self, ev, axis=None) -> None:
        if ev.button() != QtCore.Qt.MouseButton.LeftButton:
            super().mouseDragEvent(ev, axis)
            return
        ev.accept()
        if ev.isStart():
            p0 = self.mapSceneToView(ev.buttonDownScenePos())
            self._polygon = [(p0.x(), p0.y())]
        p = self.mapSceneToView(ev.scenePos())
        self._polygon.append((p.x(), p.y()))
        polygon = np.array(self._polygon, dtype=np.float64)
        if ev.isFinish():
            shift = bool(ev.modifiers() & QtCore.Qt.KeyboardModifier.ShiftModifier)
            self._polygon = []
            self.lasso_finished.emit(polygon, shift)
        else:
            self.lasso_moved.emit(polygon)


class GraphCanvas(QtWidgets.QWidget):
    """Draws one graph (see the module docstring); node indices are the item's node indices."""

    #: a node was clicked (index), with shift held; -1: empty space
    node_clicked = QtCore.Signal(int, bool)
    #: a lasso was drawn (polygon float [m, 2] in layout coordinates), with shift held
    lasso_finished = QtCore.Signal(object, bool)
    #: the mouse is over a node (index), or -1
    node_hovered = QtCore.Signal(int)

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.view_box = _BrushViewBox()
        self.plot = pg.PlotWidget(viewBox=self.view_box, background="w")
        self.plot.hideAxis("left")
        self.plot.hideAxis("bottom")
        self.plot.setMinimumSize(200, 160)
        # one path of pairs, opaque and not antialiased: measured fastest (drawLines of QLineF, a translucent
        # pen, and a device-pixel cache, which doubles the cost of drawing a new graph, were all slower)
        self.edges = pg.PlotCurveItem(pen=pg.mkPen(EDGE_PEN, width=1), antialias=False)
        self.nodes = NodeDots(size=NODE_SIZE)
        self.marks = _Nodes(size=NODE_SIZE + 8, pen=pg.mkPen(MARK_PEN, width=2.5), brush=None, pxMode=True)
        self.lasso = pg.PlotCurveItem(pen=pg.mkPen(MARK_PEN, width=1.5, style=QtCore.Qt.PenStyle.DashLine))
        for item in (self.edges, self.marks, self.nodes, self.lasso):
            item.setAcceptedMouseButtons(QtCore.Qt.MouseButton.NoButton)  # clicks and drags go to the view box
            self.plot.addItem(item)
        self.marks.setZValue(-1)
        self._labels: list[pg.TextItem] = []
        self.coords = np.zeros((0, 2))
        self.shown = np.zeros(0, np.int64)  # node indices drawn (filler hidden)
        self._hovered = -1
        self.view_box.clicked.connect(self._clicked)
        self.view_box.lasso_moved.connect(self._lasso_moved)
        self.view_box.lasso_finished.connect(self._lasso_finished)
        self.plot.scene().sigMouseMoved.connect(self._mouse_moved)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot)

    # ------------------------------------------------------------------ drawing
    def set_graph(self, coords, edges, *, hidden=None, names=None) -> None:
        """Draw a graph: ``coords`` float [n, 2], ``edges`` int [E, 2] node indices, ``hidden`` bool [n]
        (filler nodes, not drawn, nor their edges), ``names`` (drawn next to the nodes of small graphs)."""
        coords = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
        edges = np.asarray(edges, dtype=np.int64).reshape(-1, 2)
        n = len(coords)
        visible = np.ones(n, bool) if hidden is None else ~np.asarray(hidden, dtype=bool)
        self.coords = coords
        self.shown = np.flatnonzero(visible)
        if len(edges):
            edges = edges[visible[edges[:, 0]] & visible[edges[:, 1]] & (edges[:, 0] != edges[:, 1])]
        ends = coords[edges.reshape(-1)]
        self.edges.setData(ends[:, 0], ends[:, 1], connect="pairs")
        self.nodes.set_positions(coords[self.shown])
        self.marks.setData(pos=np.zeros((0, 2)))
        for label in self._labels:
            self.plot.removeItem(label)
        self._labels = []
        if names is not None and len(self.shown) <= LABEL_MAX_NODES:
            for node in self.shown:
                label = pg.TextItem(str(names[node]), color=(30, 30, 30), anchor=(0.5, 1.35))
                label.setPos(*coords[node])
                label.setAcceptedMouseButtons(QtCore.Qt.MouseButton.NoButton)
                self.plot.addItem(label)
                self._labels.append(label)
        self.plot.autoRange(padding=0.08)

    def set_node_colours(self, colours) -> None:
        """One colour (QColor, QBrush or an RGB tuple) per node of the graph; the drawn ones are taken."""
        colours = [c.color() if isinstance(c, QtGui.QBrush) else c for c in colours]
        table, index = [], []
        seen: dict = {}
        for i in self.shown:
            c = colours[i] if isinstance(colours[i], QtGui.QColor) else QtGui.QColor(*colours[i])
            key = c.rgba()
            if key not in seen:
                seen[key] = len(table)
                table.append(c)
            index.append(seen[key])
        self.nodes.set_colours(index, table)

    def set_colour_index(self, index, table) -> None:
        """Colour node i with ``table[index[i]]`` (``index`` int [n], clipped to the table)."""
        index = np.asarray(index, dtype=np.int64)
        self.nodes.set_colours(index[self.shown], table)

    def node_colours(self) -> list[QtGui.QColor]:
        """The colour of each drawn node (``shown`` order)."""
        return self.nodes.colours()

    def set_marked(self, nodes) -> None:
        """Outline these nodes (the brushed set)."""
        nodes = np.asarray(nodes, dtype=np.int64).reshape(-1)
        nodes = nodes[(nodes >= 0) & (nodes < len(self.coords))]
        self.marks.setData(pos=self.coords[nodes] if len(nodes) else np.zeros((0, 2)))

    # ------------------------------------------------------------------ gestures
    def nearest_node(self, x: float, y: float, pixels: float = PICK_PIXELS) -> int:
        """The drawn node nearest to view point (x, y) within ``pixels`` on screen, or -1."""
        if not len(self.shown):
            return -1
        pw, ph = self.view_box.viewPixelSize()
        pw, ph = pw or 1.0, ph or 1.0
        d = np.hypot((self.coords[self.shown, 0] - x) / pw, (self.coords[self.shown, 1] - y) / ph)
        i = int(np.argmin(d))
        return int(self.shown[i]) if d[i] <= pixels else -1

    def node_point(self, node: int) -> QtCore.QPoint:
        """Where node ``node`` is drawn, in the plot widget's viewport pixels (tests, tooltips)."""
        scene = self.view_box.mapViewToScene(QtCore.QPointF(*self.coords[node]))
        return self.plot.mapFromScene(scene)

    def _clicked(self, point, shift: bool) -> None:
        self.node_clicked.emit(self.nearest_node(point.x(), point.y()), shift)

    def _lasso_moved(self, polygon) -> None:
        closed = np.vstack([polygon, polygon[:1]])
        self.lasso.setData(closed[:, 0], closed[:, 1])

    def _lasso_finished(self, polygon, shift: bool) -> None:
        self.lasso.setData([], [])
        self.lasso_finished.emit(polygon, shift)

    def _mouse_moved(self, scene_pos) -> None:
        if not self.view_box.sceneBoundingRect().contains(scene_pos):
            node = -1
        else:
            p = self.view_box.mapSceneToView(scene_pos)
            node = self.nearest_node(p.x(), p.y())
        if node != self._hovered:
            self._hovered = node
            self.node_hovered.emit(node)
