"""Export a view's graphics to PNG, SVG or PDF.

PNG and SVG use pyqtgraph's exporters; PDF renders the item's part of the scene into a ``QPdfWriter``
page of the same size, so it stays vector. The pinned PySide6 range matters here (see NOTES.md and
tests/qt/test_export_formats.py, which exports every format).
"""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path

import pyqtgraph as pg
import pyqtgraph.exporters
from PySide6 import QtCore, QtGui, QtWidgets

from lstmviz.qt.palette import BACKGROUND

FORMATS = {
    ".png": "PNG image (*.png)",
    ".svg": "SVG vector image (*.svg)",
    ".pdf": "PDF document (*.pdf)",
}


def export_graphics(item: QtWidgets.QGraphicsItem, path: str | Path, *, scale: float = 2.0) -> Path:
    """Write ``item`` (e.g. a GraphicsLayout) to ``path``; the suffix picks the format.

    Raises ValueError for an unknown suffix and OSError when nothing could be written.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"cannot export to {path.name!r}: use one of {', '.join(FORMATS)}")
    if suffix == ".png":
        exporter = pg.exporters.ImageExporter(item)
        rect = item.sceneBoundingRect()
        exporter.parameters()["width"] = round(rect.width() * scale)
        exporter.parameters()["background"] = pg.mkColor(BACKGROUND)
        exporter.export(str(path))
    elif suffix == ".svg":
        exporter = pg.exporters.SVGExporter(item)
        exporter.parameters()["background"] = pg.mkColor(BACKGROUND)
        exporter.export(str(path))
    else:
        _export_pdf(item, path)
    if not path.exists() or path.stat().st_size == 0:
        raise OSError(f"{path}: the {suffix[1:].upper()} exporter wrote nothing")
    return path


def _export_pdf(item: QtWidgets.QGraphicsItem, path: Path) -> None:
    """Render the item's scene rectangle onto one PDF page of the same size (1 px = 1 pt)."""
    source = item.sceneBoundingRect()
    with pdf_page(path, source.width(), source.height()) as painter:
        item.scene().render(painter, QtCore.QRectF(0, 0, source.width(), source.height()), source)


@contextmanager
def pdf_page(path: Path, width: float, height: float, title: str = "lstmviz"):
    """A painter on a one-page PDF of ``width`` x ``height`` points, background already filled."""
    writer = QtGui.QPdfWriter(str(path))
    writer.setResolution(72)
    writer.setPageSize(QtGui.QPageSize(QtCore.QSizeF(width, height), QtGui.QPageSize.Unit.Point))
    writer.setPageMargins(QtCore.QMarginsF(0, 0, 0, 0))
    writer.setCreator("lstmviz")
    writer.setTitle(title)
    painter = QtGui.QPainter()
    if not painter.begin(writer):
        raise OSError(f"{path}: cannot write a PDF there")
    try:
        painter.fillRect(QtCore.QRectF(0, 0, width, height), QtGui.QColor(*BACKGROUND))
        yield painter
    finally:
        painter.end()
