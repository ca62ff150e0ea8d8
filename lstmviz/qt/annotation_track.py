"""A colour track: one categorical per-position annotation as a row of coloured cells under the tokens.

One ``ImageItem`` row with a categorical lookup table, x-linked to the state plot so each cell sits
under its token. The left axis names the annotation; the tooltip and the hover read-out name the label.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore

from lstmviz.qt.palette import AXIS, FOREGROUND, categorical_lut


class AnnotationTrack(pg.PlotItem):
    """A thin plot row showing one categorical annotation over the window's positions."""

    HEIGHT = 20

    def __init__(self, name: str, labels: list[str] | None, description: str = ""):
        super().__init__()
        self.name = name
        self.labels = list(labels or [])
        self.description = description
        self.hideAxis("bottom")
        self.hideButtons()
        self.setMenuEnabled(False)
        self.setMouseEnabled(x=False, y=False)
        self.vb.setMouseEnabled(x=False, y=False)
        self.vb.setDefaultPadding(0.0)
        self.setYRange(0, 1, padding=0)
        self.setMinimumHeight(self.HEIGHT)
        self.setMaximumHeight(self.HEIGHT)
        left = self.getAxis("left")
        left.setPen(pg.mkPen(AXIS))
        left.setTextPen(pg.mkPen(FOREGROUND))
        left.setTicks([[(0.5, name)], []])
        left.setStyle(tickLength=0)
        self.image = pg.ImageItem(axisOrder="row-major")
        self.image.setLookupTable(categorical_lut(self.labels))
        self.addItem(self.image)
        self.setToolTip(self._tooltip(None))

    def set_values(self, start: int, label_ids: np.ndarray) -> None:
        """Show label ids (``-1`` = missing) for positions ``start, start + 1, ...``."""
        label_ids = np.asarray(label_ids, dtype=np.int64)
        n_colors = len(self.labels) + 1
        if label_ids.size and int(label_ids.max()) + 1 >= n_colors:
            self.labels += [str(i) for i in range(len(self.labels), int(label_ids.max()) + 1)]
            self.image.setLookupTable(categorical_lut(self.labels))
            n_colors = len(self.labels) + 1
        indices = np.clip(label_ids + 1, 0, n_colors - 1).astype(np.uint16)[None, :]
        if indices.shape[1] == 0:
            self.image.clear()
            return
        self.image.setImage(indices, levels=(0, n_colors), autoLevels=False)
        self.image.setRect(QtCore.QRectF(start - 0.5, 0.0, indices.shape[1], 1.0))

    def show_label(self, label: str | None) -> None:
        """Name the hovered position's label in the tooltip."""
        self.setToolTip(self._tooltip(label))

    def _tooltip(self, label: str | None) -> str:
        head = f"<b>{self.name}</b>" + (f": {label}" if label is not None else "")
        return head + (f"<br>{self.description}" if self.description else "")
