"""Render pen trajectories (``(Δx, Δy, pen_up)`` steps, e.g. characters drawn by ``char-rnn-mdn``) to a PNG.

``render_strokes_png(samples, path)`` draws each sample in its own square cell of a grid (``cols`` per row),
scaled to fit the cell with its aspect kept, y pointing up, one polyline per stroke (the pen lifts after a
step whose ``pen_up`` is 1), the first point marked with a dot, an optional label per cell. Qt offscreen
(``QGuiApplication`` is created when none exists); no window.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numpy as np
from PySide6 import QtCore, QtGui


def _app():
    app = QtGui.QGuiApplication.instance()
    if app is None:
        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
        app = QtGui.QGuiApplication([])
    return app


def strokes_of(steps: np.ndarray) -> list[np.ndarray]:
    """Absolute polylines, one per stroke, from ``[T, 3]`` steps."""
    steps = np.asarray(steps, np.float64)
    points = np.cumsum(steps[:, :2], 0)
    ends = list(np.flatnonzero(steps[:, 2] > 0.5)) + [len(steps) - 1]
    out, start = [], 0
    for end in ends:
        if end >= start:
            out.append(points[start:end + 1])
            start = end + 1
    return out


def render_strokes_png(samples: Sequence[np.ndarray], path: str | os.PathLike, *, cols: int = 10, cell: int = 72,
                       labels: Sequence[str] | None = None, pen_width: float = 2.0) -> Path:
    """Draw every sample in a grid and save it as a PNG at ``path`` (module docstring). Returns the path."""
    _app()
    n = len(samples)
    if n == 0:
        raise ValueError("no samples to draw")
    cols = max(1, min(cols, n))
    rows = (n + cols - 1) // cols
    label_h = 14 if labels is not None else 0
    image = QtGui.QImage(cols * cell, rows * (cell + label_h), QtGui.QImage.Format.Format_RGB32)
    image.fill(QtGui.QColor("white"))
    painter = QtGui.QPainter(image)
    try:
        painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing)
        pen = QtGui.QPen(QtGui.QColor(30, 60, 140), pen_width)
        pen.setCapStyle(QtCore.Qt.PenCapStyle.RoundCap)
        for k, steps in enumerate(samples):
            x0, y0 = (k % cols) * cell, (k // cols) * (cell + label_h)
            strokes = strokes_of(steps)
            pts = np.concatenate(strokes)
            lo, hi = pts.min(0), pts.max(0)
            scale = (cell - 12) / max(float((hi - lo).max()), 1e-9)
            centre = (lo + hi) / 2

            def at(p):
                return QtCore.QPointF(x0 + cell / 2 + (p[0] - centre[0]) * scale,
                                      y0 + cell / 2 - (p[1] - centre[1]) * scale)

            painter.setPen(pen)
            for s in strokes:
                if len(s) == 1:
                    painter.drawPoint(at(s[0]))
                else:
                    painter.drawPolyline(QtGui.QPolygonF([at(p) for p in s]))
            painter.setPen(QtGui.QPen(QtGui.QColor(200, 40, 40), pen_width * 2))
            painter.drawPoint(at(strokes[0][0]))
            if labels is not None:
                painter.setPen(QtGui.QColor("black"))
                painter.drawText(QtCore.QRectF(x0, y0 + cell, cell, label_h), QtCore.Qt.AlignmentFlag.AlignCenter,
                                 str(labels[k]))
    finally:
        painter.end()
    path = Path(path)
    if not image.save(str(path), "PNG"):
        raise OSError(f"could not write the PNG {str(path)!r}")
    return path
