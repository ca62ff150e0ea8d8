"""The image drawing of the Image panel: the input image, the heatmap of a feature map over it, the
brushed box, the hovered cell's receptive field and the clicked cell, and the gestures.

Two ``pyqtgraph.ImageItem`` (row-major): the input at ``(0, 0, W, H)`` in pixel coordinates, and the
overlay ``[h', w']`` placed with ``setRect`` so that each cell covers the ``stride × stride`` pixels
around its centre (``data.cell_rect``). The overlay has a fixed lookup table (``inferno`` with an alpha
ramp: low values let the image show through) and fixed levels, so a redraw is one ``setImage`` of a
small array with no level search. y grows downwards (row 0 on top), as in an image.

Gestures on the view box: a left drag draws a box (``box_finished(y0, x0, y1, x1)`` in pixels), a left
click picks a point (``clicked(y, x)``), hovering reports the point (``hovered(y, x)``; NaN outside);
the right button and the wheel zoom, as in every pyqtgraph plot.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

BOX_PEN = (40, 200, 255)
FIELD_PEN = (255, 255, 255)
CELL_PEN = (0, 255, 120)
LUT_SIZE = 256
ALPHA_MIN, ALPHA_MAX = 30, 200


def overlay_lut(name: str = "inferno", n: int = LUT_SIZE) -> np.ndarray:
    """uint8 ``[n, 4]``: the colour map with alpha rising from ``ALPHA_MIN`` to ``ALPHA_MAX``."""
    cmap = pg.colormap.get(name)
    lut = np.array(cmap.getLookupTable(0.0, 1.0, n, alpha=True), dtype=np.uint8)
    lut[:, 3] = np.linspace(ALPHA_MIN, ALPHA_MAX, n).astype(np.uint8)
    return lut


def _box_path(y0, x0, y1, x1):
    return np.array([x0, x1, x1, x0, x0], float), np.array([y0, y0, y1, y1, y0], float)


class _BoxViewBox(pg.ViewBox):
    """A view box whose left button brushes a box instead of panning."""

    clicked = QtCore.Signal(float, float)  # y, x in pixels
    box_moved = QtCore.Signal(float, float, float, float)
    box_finished = QtCore.Signal(float, float, float, float)

    def __init__(self):
        super().__init__(lockAspect=True, enableMenu=False, invertY=True)
        self._start = None

    def mouseClickEvent(self, ev) -> None:
        if ev.button() == QtCore.Qt.MouseButton.LeftButton:
            ev.accept()
            p = self.mapSceneToView(ev.scenePos())
            self.clicked.emit(p.y(), p.x())
        else:
            super().mouseClickEvent(ev)

    def mouseDragEvent(self, ev, axis=None) -> None:
        if ev.button() != QtCore.Qt.MouseButton.LeftButton:
            super().mouseDragEvent(ev, axis)
            return
        ev.accept()
        if ev.isStart():
            self._start = self.mapSceneToView(ev.buttonDownScenePos())
        if self._start is None:
            return
        p = self.mapSceneToView(ev.scenePos())
        y0, y1 = sorted((self._start.y(), p.y()))
        x0, x1 = sorted((self._start.x(), p.x()))
        if ev.isFinish():
            self._start = None
            self.box_finished.emit(y0, x0, y1, x1)
        else:
            self.box_moved.emit(y0, x0, y1, x1)


class ImageCanvas(QtWidgets.QWidget):
    """See the module docstring."""

    clicked = QtCore.Signal(float, float)
    box_finished = QtCore.Signal(float, float, float, float)
    hovered = QtCore.Signal(float, float)

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.view_box = _BoxViewBox()
        self.plot = pg.PlotWidget(viewBox=self.view_box, background=(250, 250, 250))
        self.plot.hideAxis("left")
        self.plot.hideAxis("bottom")
        self.plot.setMinimumSize(220, 220)
        self.input_item = pg.ImageItem(axisOrder="row-major")
        self.overlay = pg.ImageItem(axisOrder="row-major")
        self.overlay.setLookupTable(overlay_lut())
        self.overlay.setZValue(1)
        self.box = pg.PlotCurveItem(pen=pg.mkPen(BOX_PEN, width=2))
        self.field = pg.PlotCurveItem(pen=pg.mkPen(FIELD_PEN, width=1.5, style=QtCore.Qt.PenStyle.DashLine))
        self.cell_mark = pg.PlotCurveItem(pen=pg.mkPen(CELL_PEN, width=2))
        for z, item in enumerate((self.input_item, self.overlay, self.box, self.field, self.cell_mark)):
            item.setAcceptedMouseButtons(QtCore.Qt.MouseButton.NoButton)
            item.setZValue(z)
            self.plot.addItem(item)
        self.levels = (0.0, 1.0)
        self._overlay_rect = QtCore.QRectF(0, 0, 1, 1)
        self.size = (1, 1)
        self.view_box.clicked.connect(self.clicked.emit)
        self.view_box.box_moved.connect(self.set_box)
        self.view_box.box_finished.connect(self._box_finished)
        self.plot.scene().sigMouseMoved.connect(self._mouse_moved)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.plot)

    # ------------------------------------------------------------------ drawing
    def set_input(self, image: np.ndarray) -> None:
        """The input image: float ``[H, W]`` or ``[H, W, 3]`` in [0, 1]."""
        h, w = image.shape[:2]
        self.input_item.setImage(image, levels=(0.0, 1.0), autoLevels=False)
        self.input_item.setRect(QtCore.QRectF(0, 0, w, h))
        if (h, w) != self.size:
            self.size = (h, w)
            self.fit()

    def fit(self) -> None:
        h, w = self.size
        self.view_box.setRange(QtCore.QRectF(0, 0, w, h), padding=0.02)

    def set_overlay_geometry(self, rect: tuple[float, float, float, float]) -> None:
        """Where the map lies over the input: ``(x, y, width, height)`` in pixels (``data.cell_rect``)."""
        self._overlay_rect = QtCore.QRectF(*rect)
        if self.overlay.image is not None:
            self.overlay.setRect(self._overlay_rect)

    def set_levels(self, lo: float, hi: float) -> None:
        self.levels = (float(lo), float(hi))
        self.overlay.setLevels(self.levels)

    def set_overlay(self, values: np.ndarray | None) -> None:
        """The heatmap ``[h', w']`` (None: none drawn); NaN cells are drawn at the bottom colour."""
        if values is None:
            self.overlay.setVisible(False)
            return
        self.overlay.setVisible(True)
        shape = None if self.overlay.image is None else self.overlay.image.shape
        self.overlay.setImage(values, levels=self.levels, autoLevels=False)
        if shape != values.shape:  # setRect scales by the image's size: set again when that changes
            self.overlay.setRect(self._overlay_rect)

    def overlay_image(self) -> np.ndarray | None:
        """What the overlay holds now (tests)."""
        return None if not self.overlay.isVisible() else self.overlay.image

    def set_box(self, y0: float, x0: float, y1: float, x1: float) -> None:
        self.box.setData(*_box_path(y0, x0, y1, x1))

    def clear_box(self) -> None:
        self.box.setData([], [])

    def set_field(self, box) -> None:
        """Outline a receptive field ``(y0, x0, y1, x1)`` (None: none)."""
        self.field.setData(*(_box_path(*box) if box is not None else ([], [])))

    def set_cell_mark(self, box) -> None:
        """Outline the clicked cell's square ``(y0, x0, y1, x1)`` (None: none)."""
        self.cell_mark.setData(*(_box_path(*box) if box is not None else ([], [])))

    # ------------------------------------------------------------------ gestures
    def view_point(self, y: float, x: float) -> QtCore.QPoint:
        """Where pixel point (y, x) is drawn, in the plot widget's viewport pixels (tests)."""
        scene = self.view_box.mapViewToScene(QtCore.QPointF(x, y))
        return self.plot.mapFromScene(scene)

    def _box_finished(self, y0, x0, y1, x1) -> None:
        self.set_box(y0, x0, y1, x1)
        self.box_finished.emit(y0, x0, y1, x1)

    def _mouse_moved(self, scene_pos) -> None:
        if not self.view_box.sceneBoundingRect().contains(scene_pos):
            self.hovered.emit(float("nan"), float("nan"))
            return
        p = self.view_box.mapSceneToView(scene_pos)
        self.hovered.emit(p.y(), p.x())
