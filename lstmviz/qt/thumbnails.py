"""What the panels' thumbnail grids share: a clickable framed thumbnail with a caption under its
drawing, and a wrapping grid of them (``ThumbnailGrid.activated(index)`` when one is clicked). The
Graph panel draws graphs in them, the Image panel images."""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets


class CaptionedThumbnail(QtWidgets.QFrame):
    """A ``size × size`` drawing (a subclass paints it) over a one-line caption; a left click emits
    ``clicked(index)``."""

    clicked = QtCore.Signal(int)

    def __init__(self, index: int, caption: str, tip: str, size: int, parent=None):
        super().__init__(parent)
        self.index = index
        self.caption = caption
        self.size_px = int(size)
        self.setFixedSize(self.size_px, self.size_px + 18)
        self.setFrameShape(QtWidgets.QFrame.Shape.StyledPanel)
        self.setCursor(QtCore.Qt.CursorShape.PointingHandCursor)
        self.setToolTip(f"{caption}\n{tip}")

    def mousePressEvent(self, event) -> None:
        if event.button() == QtCore.Qt.MouseButton.LeftButton:
            self.clicked.emit(self.index)
            event.accept()
        else:
            super().mousePressEvent(event)

    def draw_caption(self, painter: QtGui.QPainter) -> None:
        """The caption under the drawing, in a smaller font, elided to the width."""
        painter.setPen(QtGui.QColor(40, 40, 40))
        font = painter.font()
        font.setPointSizeF(max(6.0, font.pointSizeF() - 1.5))
        painter.setFont(font)
        size = self.size_px
        text = QtGui.QFontMetrics(font).elidedText(self.caption, QtCore.Qt.TextElideMode.ElideRight, size - 4)
        painter.drawText(QtCore.QRectF(2, size, size - 4, 16), QtCore.Qt.AlignmentFlag.AlignCenter, text)


class ThumbnailGrid(QtWidgets.QScrollArea):
    """A wrapping grid of :class:`CaptionedThumbnail`; ``activated(index)`` when one is clicked."""

    activated = QtCore.Signal(int)

    def __init__(self, thumb_size: int, parent=None):
        super().__init__(parent)
        self.thumb_size = int(thumb_size)
        self.setWidgetResizable(True)
        self._inner = QtWidgets.QWidget()
        self._grid = QtWidgets.QGridLayout(self._inner)
        self._grid.setContentsMargins(4, 4, 4, 4)
        self._grid.setSpacing(6)
        self._grid.setAlignment(QtCore.Qt.AlignmentFlag.AlignTop | QtCore.Qt.AlignmentFlag.AlignLeft)
        self.setWidget(self._inner)
        self.thumbnails: list[CaptionedThumbnail] = []

    def clear(self) -> None:
        for t in self.thumbnails:
            self._grid.removeWidget(t)
            t.deleteLater()
        self.thumbnails = []

    def place(self, thumbnails) -> None:
        """Replace the grid's thumbnails by ``thumbnails`` (best first), as many per row as fit."""
        self.clear()
        columns = max(1, (self.viewport().width() - 8) // (self.thumb_size + 6))
        for i, t in enumerate(thumbnails):
            t.clicked.connect(self.activated.emit)
            self._grid.addWidget(t, i // columns, i % columns)
            self.thumbnails.append(t)
