"""Export any widget (a table, a panel, a whole view) to PNG, SVG or PDF, and result tables to CSV/NPY.

``export_widget`` picks the format by suffix:

- PNG: the widget rendered into an image at ``scale`` times its size (2 by default, so text stays sharp
  in a paper); with ``scale=1`` this is exactly ``QWidget.grab()``.
- SVG: ``QSvgGenerator`` + ``QWidget.render``: vector output, text stays text.
- PDF: ``QPdfWriter`` + ``QWidget.render`` on one page of the widget's size (1 px = 1 pt): vector.

Widgets are rendered with their children as they are laid out now (for an item view: the rows on
screen). See NOTES.md for the PySide6 range these are tested with (tests/qt/test_match_export.py).

``export_table`` writes a table (``dict`` of columns) to CSV or NPY through
``lstmviz.analysis.export_data.write_table``.
"""

from __future__ import annotations

from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from lstmviz.errors import describe, expected_errors
from lstmviz.qt.errors import show_error
from lstmviz.qt.export import pdf_page
from lstmviz.qt.palette import BACKGROUND

VIEW_FORMATS = {
    ".png": "PNG image (*.png)",
    ".svg": "SVG vector image (*.svg)",
    ".pdf": "PDF document (*.pdf)",
}
DATA_FORMATS = {
    ".csv": "CSV table (*.csv)",
    ".npy": "NumPy array (*.npy)",
}


#: True while a widget is rendered to a device that cannot clip (SVG)
_unclipped_export = False


class FullRowsOnVectorExport:
    """Mixin for item views (before the Qt class in the bases): while a widget is exported to SVG,
    which cannot clip, paint only the rows and columns that lie wholly inside the viewport."""

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:
        if _unclipped_export:
            rect = _fully_visible_rect(self)
            if rect is not None:
                region = event.region().intersected(QtGui.QRegion(rect))
                if region.isEmpty():
                    return
                event = QtGui.QPaintEvent(region)
        super().paintEvent(event)


def _fully_visible_rect(view: QtWidgets.QAbstractItemView) -> QtCore.QRect | None:
    """The part of the viewport covered by rows (and table columns) that are wholly visible."""
    model = view.model()
    viewport = view.viewport()
    width, height = viewport.width(), viewport.height()
    if model is None or model.rowCount() == 0:
        return None
    bottom = 0
    first = view.indexAt(QtCore.QPoint(1, 1))
    row = first.row() if first.isValid() else 0
    while row < model.rowCount():
        r = view.visualRect(model.index(row, 0))
        if r.bottom() >= height:
            break
        bottom = r.bottom() + 1
        row += 1
    if bottom == 0:
        return None  # one row taller than the viewport: paint it, clipped by nothing
    right = width
    if isinstance(view, QtWidgets.QTableView):
        header = view.horizontalHeader()
        right = 0
        for logical in range(model.columnCount()):
            if header.isSectionHidden(logical):
                continue
            x = header.sectionViewportPosition(logical)
            w = header.sectionSize(logical)
            if x + w <= width:
                right = max(right, x + w)
        right = right or width
    return QtCore.QRect(0, 0, right, bottom)


def figure_widget(title: str) -> tuple[QtWidgets.QWidget, QtWidgets.QVBoxLayout]:
    """An offscreen widget on the figure background with a vertical layout, for a laid-out export."""
    figure = QtWidgets.QWidget()
    figure.setAttribute(QtCore.Qt.WidgetAttribute.WA_DontShowOnScreen, True)
    figure.setAutoFillBackground(True)
    palette = figure.palette()
    palette.setColor(QtGui.QPalette.ColorRole.Window, QtGui.QColor(*BACKGROUND))
    figure.setPalette(palette)
    figure.setWindowTitle(title)
    outer = QtWidgets.QVBoxLayout(figure)
    outer.setContentsMargins(12, 10, 12, 12)
    outer.setSpacing(6)
    return figure, outer


def settle_figure(figure, outer, row, title) -> QtWidgets.QWidget:
    """Size a ``figure_widget`` to its content: the width of ``row`` (at least 480 px), the ``title``
    wrapped to it, the height of everything; returns the figure."""
    row.invalidate()  # the views' new fixed sizes
    width = max(row.sizeHint().width(), 480) + 24
    title.setFixedWidth(width - 24)
    outer.invalidate()
    outer.activate()
    figure.resize(width, figure.sizeHint().height())
    outer.activate()
    return figure


def fit_table(view: QtWidgets.QTableView, rows: int) -> None:
    """Size a table view to show its header, every column and ``rows`` rows, with no scroll bars (for
    figures laid out in full)."""
    off = QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff
    view.setHorizontalScrollBarPolicy(off)
    view.setVerticalScrollBarPolicy(off)
    header = view.horizontalHeader()
    vertical = view.verticalHeader()
    width = header.length() + (vertical.width() if vertical.isVisible() else 0) + 2 * view.frameWidth()
    heights = sum(vertical.sectionSize(r) for r in range(rows))
    view.setFixedSize(width, (header.height() if header.isVisible() else 0) + heights + 2 * view.frameWidth())


def _check_suffix(path: Path, formats: dict, what: str) -> str:
    suffix = path.suffix.lower()
    if suffix not in formats:
        names = "/".join(s[1:].upper() for s in formats)
        raise ValueError(f"cannot export {what} to {path.name!r}: use a file name ending in "
                         f"{', '.join(formats)} ({names})")
    return suffix


def check_view_suffix(path: str | Path) -> str:
    """The suffix of ``path`` when it is one of PNG/SVG/PDF; else ValueError naming them."""
    return _check_suffix(Path(path), VIEW_FORMATS, "a view")


def export_widget(widget: QtWidgets.QWidget, path: str | Path, *, scale: float = 2.0) -> Path:
    """Write ``widget`` (with its children) to ``path`` as PNG, SVG or PDF, chosen by the suffix.

    Raises ``ValueError`` for another suffix (naming PNG/SVG/PDF) and ``OSError`` when nothing could be
    written there.
    """
    path = Path(path)
    suffix = _check_suffix(path, VIEW_FORMATS, "a view")
    widget.ensurePolished()
    size = widget.size()
    if size.width() <= 0 or size.height() <= 0:
        raise ValueError("the view has no size yet; show it before exporting")
    if suffix == ".png":
        _export_png(widget, path, scale)
    elif suffix == ".svg":
        _export_svg(widget, path)
    else:
        _export_pdf(widget, path)
    if not path.exists() or path.stat().st_size == 0:
        raise OSError(f"{path}: the {suffix[1:].upper()} export wrote nothing")
    return path


def render_image(widget: QtWidgets.QWidget, scale: float = 2.0) -> QtGui.QImage:
    """The widget rendered into an RGB image ``scale`` times its size, on the app's background colour."""
    if scale == 1.0:
        return widget.grab().toImage()
    size = widget.size()
    image = QtGui.QImage(round(size.width() * scale), round(size.height() * scale),
                         QtGui.QImage.Format.Format_ARGB32)
    image.setDevicePixelRatio(scale)
    image.fill(QtGui.QColor(*BACKGROUND))
    painter = QtGui.QPainter(image)
    try:
        painter.setRenderHint(QtGui.QPainter.RenderHint.TextAntialiasing)
        widget.render(painter, QtCore.QPoint(0, 0))
    finally:
        painter.end()
    return image


def _export_png(widget: QtWidgets.QWidget, path: Path, scale: float) -> None:
    image = render_image(widget, scale)
    if not image.save(str(path), "PNG"):
        raise OSError(f"{path}: cannot write a PNG there")


def _export_svg(widget: QtWidgets.QWidget, path: Path) -> None:
    from PySide6.QtSvg import QSvgGenerator

    size = widget.size()
    # SVG Tiny 1.2 (the default) has no clipping. SVG 1.1 output would have it, but with PySide6 6.10
    # the clip paths of child widgets are written without the child's offset, so a browser clips
    # whole widgets away; without clipping, item views that derive from ``FullRowsOnVectorExport``
    # paint only their fully visible rows and columns instead of spilling over their neighbours.
    generator = QSvgGenerator()
    generator.setFileName(str(path))
    generator.setSize(size)
    generator.setViewBox(QtCore.QRect(0, 0, size.width(), size.height()))
    generator.setResolution(96)
    generator.setTitle(widget.windowTitle() or "lstmviz")
    generator.setDescription("Exported by lstmviz")
    painter = QtGui.QPainter()
    if not painter.begin(generator):
        raise OSError(f"{path}: cannot write an SVG there")
    global _unclipped_export
    _unclipped_export = True
    try:
        painter.fillRect(QtCore.QRect(0, 0, size.width(), size.height()), QtGui.QColor(*BACKGROUND))
        widget.render(painter, QtCore.QPoint(0, 0))
    finally:
        _unclipped_export = False
        painter.end()


def _export_pdf(widget: QtWidgets.QWidget, path: Path) -> None:
    size = widget.size()
    with pdf_page(path, size.width(), size.height(), widget.windowTitle() or "lstmviz") as painter:
        widget.render(painter, QtCore.QPoint(0, 0))


def export_table(path: str | Path, columns: dict) -> Path:
    """Write a table (column name -> 1-D values) to ``path`` as CSV or NPY, chosen by the suffix."""
    from lstmviz.analysis.export_data import write_table

    path = Path(path)
    _check_suffix(path, DATA_FORMATS, "a table")
    return write_table(path, columns)


def with_suffix(path: str, chosen_filter: str, formats: dict) -> str:
    """``path`` with the suffix of the chosen file-dialog filter when it has none of ``formats``."""
    if Path(path).suffix.lower() in formats:
        return path
    suffix = next((s for s, f in formats.items() if f == chosen_filter), next(iter(formats)))
    return path + suffix


def ask_table_path(parent: QtWidgets.QWidget, title: str, default: str,
                   choices: dict[str, tuple[str, str]]) -> tuple[str, str] | None:
    """Ask where to write one of several tables; ``choices`` maps a file-dialog filter to ``(what,
    suffix)``. Returns ``(path, what)`` — the path gets the chosen filter's suffix when it has no table
    suffix — or ``None`` when the dialog was cancelled."""
    path, chosen = QtWidgets.QFileDialog.getSaveFileName(parent, title, default, ";;".join(choices))
    if not path:
        return None
    what, suffix = choices.get(chosen, next(iter(choices.values())))
    if Path(path).suffix.lower() not in DATA_FORMATS:
        path += suffix
    return path, what


def export_reporting(parent: QtWidgets.QWidget, title: str, export, on_written) -> bool:
    """Run ``export()`` (it returns the path written); a failure is shown in a dialog titled ``title``,
    a success is passed to ``on_written(path)``. Returns whether it worked."""
    try:
        written = export()
    except expected_errors() as exc:  # also a RecordingError: a part of the file is damaged
        show_error(parent, title, describe(exc))
        return False
    on_written(written)
    return True
