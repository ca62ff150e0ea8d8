"""One opened probe as a figure for a paper: the whole result, not the dock as scrolled.

``detail_figure`` builds an offscreen widget that ``widget_export.export_widget`` renders to PNG, SVG or
PDF: the probe's sentence (accuracy, interval, control task, selectivity, baselines), then the whole
confusion matrix (every class, with n and the class accuracy) beside the whole list of top units of
the class chosen in the dock (or of every class), drawn by the same models as the dock. Nothing has
a scroll bar and nothing is cut; the dock's detail showed 12 rows of the units and a part of the
matrix of PTB's 45 tags.
"""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from lstmviz.qt.palette import FOREGROUND
from lstmviz.qt.plain_text import escape
from lstmviz.qt.widget_export import figure_widget, fit_table, settle_figure

def _label(text: str) -> QtWidgets.QLabel:
    label = QtWidgets.QLabel()
    label.setTextFormat(QtCore.Qt.TextFormat.RichText)  # the dock's texts, names escaped there
    label.setText(text)
    label.setWordWrap(True)
    label.setStyleSheet(f"color: rgb{FOREGROUND}")
    return label


def _copy_table(source: QtWidgets.QTableView) -> QtWidgets.QTableView:
    """A table view over ``source``'s model with its column widths, row heights and headers."""
    view = type(source)()
    view.setModel(source.model())
    view.setFont(source.font())
    view.setShowGrid(source.showGrid())
    view.setWordWrap(source.wordWrap())
    view.setAlternatingRowColors(source.alternatingRowColors())
    view.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.NoSelection)
    view.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
    view.verticalHeader().setVisible(source.verticalHeader().isVisible())
    vertical = view.verticalHeader()
    vertical.setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.Fixed)
    vertical.setDefaultSectionSize(source.verticalHeader().defaultSectionSize())
    header = view.horizontalHeader()
    header.setStretchLastSection(False)
    for column in range(source.model().columnCount()):
        header.resizeSection(column, source.horizontalHeader().sectionSize(column))
    return view


def detail_figure(detail) -> QtWidgets.QWidget:
    """A laid-out, offscreen widget with ``detail``'s open probe (see the module docstring); the caller
    renders it and then calls ``close_figure``. ValueError when no probe is open."""
    if detail.result is None:
        raise ValueError("There is no probe open to export: run the probes, then click a tap in the chart.")
    figure, outer = figure_widget("lstmviz probe")
    title = _label(detail.header.text())
    outer.addWidget(title)

    confusion = _copy_table(detail.confusion_view)
    left = QtWidgets.QVBoxLayout()
    left.setSpacing(2)
    left.addWidget(_label(f"<span style='color:#555'>{detail.confusion_caption.text()}</span>"))
    left.addWidget(confusion)
    left.addStretch(1)
    row = QtWidgets.QHBoxLayout()
    row.setSpacing(16)
    row.addLayout(left)
    units = None
    if detail.units_model.rowCount():
        units = _copy_table(detail.units_view)
        right = QtWidgets.QVBoxLayout()
        right.setSpacing(2)
        right.addWidget(_label(f"Top units of {_chosen_html(detail.class_combo.currentText())}"))
        right.addWidget(units)
        right.addStretch(1)
        row.addLayout(right)
    row.addStretch(1)
    outer.addLayout(row)
    figure.show()  # offscreen (WA_DontShowOnScreen): lays the views out so that they know their sizes
    fit_table(confusion, confusion.model().rowCount())
    if units is not None:
        metrics = units.fontMetrics()
        weights = [str(units.model().index(r, 3).data() or "") for r in range(units.model().rowCount())]
        units.horizontalHeader().resizeSection(3, max(metrics.horizontalAdvance(w) for w in weights + ["weight"]) + 24)
        fit_table(units, units.model().rowCount())
    return settle_figure(figure, outer, row, title)


def _chosen_html(text: str) -> str:
    """The units table's class choice, as the figure names it (``every class`` or a class in bold)."""
    return "every class" if text == "every class" else f"class <b>{escape(text)}</b>"


def close_figure(figure: QtWidgets.QWidget) -> None:
    figure.close()
    figure.deleteLater()
