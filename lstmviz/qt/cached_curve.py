"""A curve item that keeps its on-screen pixels, for the big all-units curve of a pane.

Drawing 1024 units x 200 positions (~200k segments) costs Qt's software raster ~25-40 ms, so it must not
be drawn again when only the selection, the threshold line or the token shading change. Qt's own
``DeviceCoordinateCache`` was tried: re-rendering into its transparent pixmap costs ~6x a direct
draw (150-220 ms on every scroll). This item instead renders into an opaque image (white, like the
plot background) whenever its data, pen or view transform change, and otherwise blits it. Being
opaque, it must be the lowest item of its view: anything meant to show through (brush bands) sits
above it. Exports (``widget`` None: PNG/SVG/PDF exporters render the scene) get the vector path.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6 import QtCore, QtGui

from lstmviz.qt.palette import BACKGROUND


class CachedCurve(pg.PlotCurveItem):
    """A ``PlotCurveItem`` blitted from an image on screen while nothing about it changes."""

    def __init__(self, *args, **kwargs):
        self.cache_enabled = True
        self._version = 0
        self._image: QtGui.QImage | None = None
        self._key: tuple | None = None
        #: times the image was rendered (for tests and benchmarks)
        self.renders = 0
        super().__init__(*args, **kwargs)

    def updateData(self, *args, **kwargs):
        self._version += 1
        return super().updateData(*args, **kwargs)

    def setPen(self, *args, **kwargs):
        self._version += 1
        return super().setPen(*args, **kwargs)

    def paint(self, p: QtGui.QPainter, opt, widget):
        view = self.getViewBox()
        if widget is None or not self.cache_enabled or view is None:
            return super().paint(p, opt, widget)
        transform = p.transform()
        view_rect = view.viewRect()
        area = transform.mapRect(view_rect).toAlignedRect()
        if area.isEmpty():
            return None
        key = (self._version, area.x(), area.y(), area.width(), area.height(), transform.m11(), transform.m22(),
               transform.dx(), transform.dy(), p.device().devicePixelRatioF())
        if key != self._key:
            self._render(transform, area, p.device().devicePixelRatioF(), opt, view_rect)
            self._key = key
        p.save()
        p.resetTransform()
        p.drawImage(area.topLeft(), self._image)
        p.restore()
        return None

    def _render(self, transform: QtGui.QTransform, area: QtCore.QRect, ratio: float, opt, view_rect) -> None:
        image = QtGui.QImage(round(area.width() * ratio), round(area.height() * ratio), QtGui.QImage.Format.Format_RGB32)
        image.setDevicePixelRatio(ratio)
        image.fill(QtGui.QColor(*BACKGROUND))
        painter = QtGui.QPainter(image)
        try:
            painter.setTransform(transform * QtGui.QTransform.fromTranslate(-area.x(), -area.y()))
            # a clip makes Qt's raster stroke the cosmetic path ~7x faster (as the view's own clip does)
            painter.setClipRect(view_rect)
            super().paint(painter, opt, None)
        finally:
            painter.end()
        self._image = image
        self.renders += 1
