"""Image thumbnails (top-activating images, matches): each input image scaled up with nearest pixels,
optionally a heatmap of a feature map over it, one box outlined on it (the peak cell's receptive
field, a match's region) and a caption; a click
activates it (``ImageThumbnailGrid.activated(index)``)."""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtGui

from lstmviz.qt.thumbnails import CaptionedThumbnail
from lstmviz.qt.thumbnails import ThumbnailGrid as BaseGrid

THUMB_SIZE = 112
_OUTLINE = QtGui.QColor(40, 200, 255)


def to_qimage(image: np.ndarray) -> QtGui.QImage:
    """float ``[H, W]`` (grey) or ``[H, W, 3]`` (RGB) in [0, 1] as an owned RGB888 ``QImage``."""
    rgb = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
    if rgb.ndim == 2:
        rgb = np.repeat(rgb[:, :, None], 3, axis=2)
    data = np.ascontiguousarray((rgb * 255 + 0.5).astype(np.uint8))
    h, w = data.shape[:2]
    return QtGui.QImage(data.data, w, h, 3 * w, QtGui.QImage.Format.Format_RGB888).copy()


def heat_qimage(values: np.ndarray, lut: np.ndarray) -> QtGui.QImage:
    """float ``[h, w]`` in [0, 1] (NaN: transparent) through an RGBA lookup table ``[n, 4]`` as an
    owned RGBA8888 ``QImage``."""
    v = np.asarray(values, dtype=np.float64)
    index = np.rint(np.clip(np.nan_to_num(v), 0.0, 1.0) * (len(lut) - 1)).astype(np.int64)
    rgba = np.ascontiguousarray(lut[index].astype(np.uint8))
    rgba[~np.isfinite(v), 3] = 0
    h, w = v.shape
    return QtGui.QImage(rgba.data, w, h, 4 * w, QtGui.QImage.Format.Format_RGBA8888).copy()


class ImageThumbnail(CaptionedThumbnail):
    """One image with a box ``(y0, x0, y1, x1)`` in its pixels outlined, and a caption; optionally a
    heatmap ``(values [h', w'] in [0, 1], rect (x, y, width, height) in pixels, lut)`` over it."""

    def __init__(self, index: int, image: np.ndarray, box, caption: str, heat=None, parent=None):
        super().__init__(index, caption, "click: show this image", THUMB_SIZE, parent)
        self.image = to_qimage(image)
        self.heat = None
        if heat is not None:
            values, rect, lut = heat
            self.heat = (heat_qimage(values, lut), rect)
        self.box = box

    def paintEvent(self, event) -> None:
        super().paintEvent(event)
        painter = QtGui.QPainter(self)
        h, w = self.image.height(), self.image.width()
        side = THUMB_SIZE - 8
        scale = side / max(h, w)
        target = QtCore.QRectF(4 + (side - w * scale) / 2, 4 + (side - h * scale) / 2, w * scale, h * scale)
        painter.drawImage(target, self.image)  # no smoothing: pixels stay pixels
        if self.heat is not None:
            heat, (x, y, hw, hh) = self.heat
            painter.setClipRect(target)
            painter.drawImage(QtCore.QRectF(target.x() + x * scale, target.y() + y * scale, hw * scale, hh * scale), heat)
            painter.setClipping(False)
        if self.box is not None:
            y0, x0, y1, x1 = self.box
            painter.setClipRect(target)
            painter.setPen(QtGui.QPen(_OUTLINE, 2))
            painter.setBrush(QtCore.Qt.BrushStyle.NoBrush)
            painter.drawRect(QtCore.QRectF(target.x() + x0 * scale, target.y() + y0 * scale,
                                           (x1 - x0) * scale, (y1 - y0) * scale))
            painter.setClipping(False)
        self.draw_caption(painter)
        painter.end()


class ImageThumbnailGrid(BaseGrid):
    """A wrapping grid of ``ImageThumbnail``; ``activated(index)`` when one is clicked."""

    def __init__(self, parent=None):
        super().__init__(THUMB_SIZE, parent)

    def set_thumbnails(self, entries) -> None:
        """``entries``: (image, box or None, caption[, heat]) per thumbnail, best first (``heat`` as
        ``ImageThumbnail`` takes it, or None)."""
        self.place([ImageThumbnail(i, image, box, caption, heat[0] if heat else None)
                    for i, (image, box, caption, *heat) in enumerate(entries)])
