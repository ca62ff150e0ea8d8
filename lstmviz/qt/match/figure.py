"""The Match panel's results as a figure for a paper: the whole result, not the widgets as scrolled.

``match_figure`` builds an offscreen widget that ``widget_export.export_widget`` renders to PNG, SVG or
PDF: a title that says what was matched (pane, units, tap, transform, threshold) and how many matches
there are; the strips' legend; the first ``FIGURE_ROWS`` result rows (best first, a note says how
many there are: the data export has them all) drawn by the same delegate as the dock, every column
wide enough; and beside them the whole aggregate table with every enrichment sentence. Nothing has a
scroll bar and nothing is cut.
"""

from __future__ import annotations

import html

from PySide6 import QtCore, QtWidgets

from lstmviz.qt.match.view import MatchView, legend_html
from lstmviz.qt.palette import FOREGROUND
from lstmviz.qt.widget_export import figure_widget, fit_table, settle_figure

#: result rows a figure shows at most (the best ones)
FIGURE_ROWS = 50
#: the aggregate column's width in the figure (the table may be wider)
SIDE_WIDTH = 420
PARTS = ("views", "results", "aggregate")


def _label(text: str, width: int | None = None, rich: bool = True) -> QtWidgets.QLabel:
    label = QtWidgets.QLabel()
    label.setTextFormat(QtCore.Qt.TextFormat.RichText if rich else QtCore.Qt.TextFormat.PlainText)
    label.setText(text)
    label.setWordWrap(True)
    label.setStyleSheet(f"color: rgb{FOREGROUND}")
    if width is not None:
        label.setFixedWidth(width)
    return label


def title_html(panel, shown: int) -> str:
    """What the figure shows, in words: the pane, units, tap and settings, and how many matches."""
    results, context = panel.results, panel.context
    query = results.query
    units = ", ".join(f"{'−' if int(s) < 0 else ''}{int(u)}" for u, s in zip(query.units, query.signs))
    key = context.key
    pane = f"{panel.pane_name(context.pane)}: " if context.pane is not None else ""
    n = len(results)
    noun = "unit" if len(query.units) == 1 else "units"
    head = (f"<b>{html.escape(pane)}matches of {noun} {html.escape(units)} of {html.escape(key.tap)}</b> "
            f"({html.escape(key.transform)}, threshold {key.threshold:g}; {panel.mode_combo.currentText()} "
            f"ranking, padding {query.pad_left} before, {query.pad_right} after)")
    count = f"{n:,} match{'es' if n != 1 else ''}"
    if shown < n:
        count += f"; the best {shown:,} are shown (Match &gt; Export Match Data saves all {n:,})"
    return f"{head}<br>{count}"


def _results_block(panel, max_rows: int) -> tuple[QtWidgets.QWidget, int]:
    source = panel.view
    view = MatchView(panel.model)
    view.set_paint_strip(source.paint_strip)
    view.set_mask(source.mask)
    view.setFont(source.font())
    for column in range(panel.model.columnCount()):
        view.horizontalHeader().resizeSection(column, source.horizontalHeader().sectionSize(column))
    shown = min(max_rows, panel.model.rowCount())
    return view, shown


def _aggregate_block(panel) -> QtWidgets.QWidget | None:
    from lstmviz.qt.match.aggregate_view import _TableView

    source = panel.aggregate_view
    if source.model.table is None:
        return None
    box = QtWidgets.QWidget()
    layout = QtWidgets.QVBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(6)
    table = _TableView()
    table.setModel(source.model)
    table.setWordWrap(False)
    table.setShowGrid(True)
    table.setStyleSheet(source.table_view.styleSheet())
    vertical = table.verticalHeader()
    vertical.setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.Fixed)
    vertical.setDefaultSectionSize(source.table_view.verticalHeader().defaultSectionSize())
    vertical.setDefaultAlignment(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)
    table.horizontalHeader().setMinimumSectionSize(34)
    box.table = table
    width = SIDE_WIDTH
    layout.addWidget(_label(source.summary.text(), width))
    layout.addWidget(table)
    sentences = source.sentences() if source.enrichments.isVisible() or source.enrichments.count() else []
    if sentences:
        layout.addWidget(_label("<b>Top enrichments</b>", width))
        layout.addWidget(_label("<br>".join(f"• {html.escape(s)}" for s in sentences), width))
    layout.addStretch(1)
    return box


def match_figure(panel, part: str = "views", max_rows: int = FIGURE_ROWS) -> QtWidgets.QWidget:
    """A laid-out, offscreen widget with the panel's results (see the module docstring); the caller
    renders it and then calls ``close_figure``. ValueError when there is nothing to draw."""
    if part not in PARTS:
        raise ValueError(f"unknown part {part!r}; choose one of {', '.join(PARTS)}")
    if panel.results is None or panel.context is None:
        raise ValueError("There are no matches to export yet: press Match first.")
    figure, outer = figure_widget("lstmviz match results")
    results_view, shown = (None, 0)
    if part in ("views", "results"):
        results_view, shown = _results_block(panel, max_rows)
    aggregate = _aggregate_block(panel) if part in ("views", "aggregate") else None
    if part == "aggregate" and aggregate is None:
        figure.deleteLater()
        raise ValueError("There is no aggregated table to export yet: match, then choose an annotation.")
    title = _label(title_html(panel, shown if results_view is not None else len(panel.results)))
    outer.addWidget(title)
    if results_view is not None:
        outer.addWidget(_label(legend_html(panel.model, results_view.paint_strip,
                                           results_view.mask and results_view.paint_strip not in (None,
                                                                                                  "match count"))))
    row = QtWidgets.QHBoxLayout()
    row.setSpacing(16)
    if results_view is not None:
        row.addWidget(results_view, 0, QtCore.Qt.AlignmentFlag.AlignTop)
    if aggregate is not None:
        row.addWidget(aggregate, 0, QtCore.Qt.AlignmentFlag.AlignTop)
    row.addStretch(1)
    outer.addLayout(row)
    figure.show()  # offscreen (WA_DontShowOnScreen): lays out the views so that they know their sizes
    if results_view is not None:
        fit_table(results_view, shown)
    if aggregate is not None:
        aggregate.table.resizeColumnsToContents()
        fit_table(aggregate.table, aggregate.table.model().rowCount())
        # the column's own layout places the sentences under the table's new height (it was laid out
        # for the table's first size, so a wide table of many labels had the sentences drawn over it)
        aggregate.layout().invalidate()
        aggregate.layout().activate()
        aggregate.setFixedSize(aggregate.layout().sizeHint())
    return settle_figure(figure, outer, row, title)


def close_figure(figure: QtWidgets.QWidget) -> None:
    figure.close()
    figure.deleteLater()
