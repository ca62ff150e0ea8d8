"""One probe opened: its confusion matrix, accuracy per class, and the units it weighs most per class.

``ProbeDetail`` shows one ``ProbeResult`` of a ``ProbeReport`` (chosen in its "Probe" list, or by a
click on the chart):

- a sentence: held-out accuracy with its interval, the control probe and the selectivity, the
  baselines, the chosen L2 strength and the number of test positions;
- the confusion matrix as a heat map (rows: true class, columns: predicted class; cells coloured by
  the share of the row, showing that share or the count) with two more columns: the class's test
  positions and its accuracy (the diagonal share);
- the units with the largest weights per class (``probes.top_units``: weights act on z-scored
  units, so they compare across units). Clicking a unit (or Enter on it) emits
  ``unit_activated(tap, unit)``; the panel then selects that unit in the Select view.

The view computes nothing beyond reading the result's arrays.
"""

from __future__ import annotations

import math

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from lstmviz.qt.model_reset import resetting
from lstmviz.qt.palette import FOREGROUND, SELECTION
from lstmviz.qt.plain_text import escape, literal
from lstmviz.qt.probes.chart import percent, points
from lstmviz.qt.widget_export import FullRowsOnVectorExport

_Role = QtCore.Qt.ItemDataRole
#: white -> blue ramp of a row share (ColorBrewer Blues)
BLUES = [(247, 251, 255), (198, 219, 239), (107, 174, 214), (33, 113, 181), (8, 48, 107)]
TOP_UNITS = 8
INPUT_TAP_TEXT = "input tokens (baseline)"
HINT = "Click a unit to select it in the Select view."
BASELINE_HINT = "The input-token baseline predicts each token type's most frequent training label; it has no units."


def _ramp(t: float) -> tuple[int, int, int]:
    t = min(1.0, max(0.0, float(t))) * (len(BLUES) - 1)
    i = min(int(t), len(BLUES) - 2)
    f = t - i
    a, b = BLUES[i], BLUES[i + 1]
    return tuple(round(a[k] + (b[k] - a[k]) * f) for k in range(3))


def _text_on(rgb) -> QtGui.QColor:
    luminance = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
    return QtGui.QColor(255, 255, 255) if luminance < 140 else QtGui.QColor(*FOREGROUND)


class _TableView(FullRowsOnVectorExport, QtWidgets.QTableView):
    pass


class ConfusionModel(QtCore.QAbstractTableModel):
    """A probe's confusion matrix: rows true classes, columns predicted classes, then n and accuracy."""

    def __init__(self, parent: QtCore.QObject | None = None):
        super().__init__(parent)
        self.result = None
        self.show_counts = False
        self._confusion = np.zeros((0, 0), np.int64)
        self._totals = np.zeros(0, np.int64)

    def set_result(self, result) -> None:
        with resetting(self):
            self.result = result
            if result is None:
                self._confusion = np.zeros((0, 0), np.int64)
            else:
                self._confusion = np.asarray(result.confusion, dtype=np.int64)
            self._totals = self._confusion.sum(1)

    def set_show_counts(self, on: bool) -> None:
        self.show_counts = bool(on)
        if self.rowCount():
            self.dataChanged.emit(self.index(0, 0), self.index(self.rowCount() - 1, self.columnCount() - 1))

    @property
    def k(self) -> int:
        return len(self._confusion)

    def rowCount(self, parent=QtCore.QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else self.k

    def columnCount(self, parent=QtCore.QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() or self.k == 0 else self.k + 2

    def share(self, row: int, column: int) -> float:
        total = self._totals[row]
        return float(self._confusion[row, column] / total) if total else math.nan

    def class_accuracy(self, row: int) -> float:
        acc = self.result.per_class_accuracy
        return float(acc[row]) if row < len(acc) else math.nan

    def headerData(self, section: int, orientation, role: int = _Role.DisplayRole):
        if self.result is None:
            return None
        labels = self.result.labels
        horizontal = orientation == QtCore.Qt.Orientation.Horizontal
        if role == _Role.DisplayRole:
            if horizontal and section == self.k:
                return "n"
            if horizontal and section == self.k + 1:
                return "class acc."
            return labels[section] if section < len(labels) else str(section)
        if role == _Role.ToolTipRole:
            if horizontal and section == self.k:
                return "Test positions of this true class"
            if horizontal and section == self.k + 1:
                return "Accuracy on this class: the share of its test positions predicted right"
            name = labels[section] if section < len(labels) else str(section)
            return literal(f"predicted: {name}" if horizontal else f"true class: {name}")
        if role == _Role.FontRole and not horizontal:
            font = QtGui.QFont()
            font.setBold(True)
            return font
        return None

    def data(self, index: QtCore.QModelIndex, role: int = _Role.DisplayRole):
        if not index.isValid() or self.result is None:
            return None
        row, column = index.row(), index.column()
        k = self.k
        if column == k:  # n
            if role == _Role.DisplayRole:
                return f"{int(self._totals[row]):,}"
            if role == _Role.TextAlignmentRole:
                return int(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)
            return None
        value = self.class_accuracy(row) if column == k + 1 else self.share(row, column)
        if role == _Role.DisplayRole:
            if column == k + 1:
                return percent(value, 0)
            if self.show_counts:
                return f"{int(self._confusion[row, column]):,}"
            return percent(value, 0)
        if role in (_Role.BackgroundRole, _Role.ForegroundRole):
            if not math.isfinite(value):
                return None
            rgb = _ramp(value)
            return QtGui.QBrush(QtGui.QColor(*rgb)) if role == _Role.BackgroundRole else QtGui.QBrush(_text_on(rgb))
        if role == _Role.FontRole and column == row:
            font = QtGui.QFont()
            font.setBold(True)
            return font
        if role == _Role.TextAlignmentRole:
            return int(QtCore.Qt.AlignmentFlag.AlignCenter)
        if role == _Role.ToolTipRole:
            labels = self.result.labels
            if column == k + 1:
                return literal(f"{labels[row]}: {percent(value)} of {int(self._totals[row]):,} test positions predicted right")
            count = int(self._confusion[row, column])
            return literal(f"true {labels[row]}, predicted {labels[column]}: {count:,} of {int(self._totals[row]):,} "
                           f"({percent(value)} of the row)")
        return None


class UnitsModel(QtCore.QAbstractTableModel):
    """The top units per class: class, rank, unit, weight (one row each)."""

    HEADERS = ("class", "rank", "unit", "weight")
    TIPS = (
        "The class whose probe row this weight is in",
        "1 = the largest weight of this class",
        "Unit index in the tap (click to select it in the Select view)",
        "Weight on the z-scored unit: how much one standard deviation of the unit raises this class's score",
    )

    def __init__(self, parent: QtCore.QObject | None = None):
        super().__init__(parent)
        self.rows: list[tuple[str, int, int, float]] = []

    def set_rows(self, rows) -> None:
        with resetting(self):
            self.rows = list(rows)

    def rowCount(self, parent=QtCore.QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent=QtCore.QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(self, section: int, orientation, role: int = _Role.DisplayRole):
        if orientation != QtCore.Qt.Orientation.Horizontal:
            return None
        if role == _Role.DisplayRole:
            return self.HEADERS[section]
        if role == _Role.ToolTipRole:
            return self.TIPS[section]
        return None

    def data(self, index: QtCore.QModelIndex, role: int = _Role.DisplayRole):
        if not index.isValid():
            return None
        name, rank, unit, weight = self.rows[index.row()]
        column = index.column()
        if role == _Role.DisplayRole:
            return (name, str(rank), str(unit), f"{weight:+.3f}".replace("-", "−"))[column]
        if role == _Role.TextAlignmentRole:
            if column == 0:
                return int(QtCore.Qt.AlignmentFlag.AlignLeft | QtCore.Qt.AlignmentFlag.AlignVCenter)
            return int(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)
        if role == _Role.ForegroundRole and column == 2:
            return QtGui.QBrush(QtGui.QColor(*SELECTION))
        if role == _Role.ToolTipRole:
            return literal(f"unit {unit}: weight {weight:+.3f} for class {name}; click to select it in the Select view")
        return None

    def unit_at(self, row: int) -> int:
        return int(self.rows[row][2])


class ProbeDetail(QtWidgets.QWidget):
    """One probe of a report: sentence, confusion matrix with per-class accuracy, top units per class."""

    #: a unit was clicked / activated: tap, unit
    unit_activated = QtCore.Signal(str, int)
    #: another probe was chosen in the list (a tap name, or probes.INPUT_TAP for the baseline)
    tap_chosen = QtCore.Signal(str)

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.report = None
        self.tap: str | None = None
        self.result = None
        self._note = ""

        self.probe_combo = QtWidgets.QComboBox()
        self.probe_combo.setToolTip("The probe shown here (clicking a tap in the chart opens it too)")
        self.probe_combo.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.probe_combo.currentIndexChanged.connect(self._combo_changed)
        self.cells_combo = QtWidgets.QComboBox()
        self.cells_combo.addItem("% of the row", False)
        self.cells_combo.addItem("counts", True)
        self.cells_combo.setToolTip("What the confusion matrix cells show (the colour is always the row share)")
        self.cells_combo.currentIndexChanged.connect(
            lambda _: self.confusion_model.set_show_counts(self.cells_combo.currentData()))
        self.header = QtWidgets.QLabel()
        self.header.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.header.setWordWrap(True)
        self.header.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)

        self.confusion_model = ConfusionModel(self)
        self.confusion_view = _TableView()
        self.confusion_view.setModel(self.confusion_model)
        self.confusion_view.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.confusion_view.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.NoSelection)
        self.confusion_view.setFocusPolicy(QtCore.Qt.FocusPolicy.NoFocus)
        self.confusion_view.horizontalHeader().setDefaultSectionSize(50)
        self.confusion_view.horizontalHeader().setMinimumSectionSize(30)
        self.confusion_view.verticalHeader().setDefaultSectionSize(22)
        self.confusion_view.verticalHeader().setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.Fixed)
        self.confusion_view.setShowGrid(True)
        self.confusion_view.setWordWrap(False)
        self.confusion_caption = QtWidgets.QLabel("rows: true class · columns: predicted class")
        self.confusion_caption.setStyleSheet("color: #555")

        self.class_combo = QtWidgets.QComboBox()
        self.class_combo.setToolTip("Show the top units of every class or of one")
        self.class_combo.currentIndexChanged.connect(lambda _: self._fill_units())
        self.units_model = UnitsModel(self)
        self.units_view = _TableView()
        self.units_view.setModel(self.units_model)
        self.units_view.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.units_view.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.units_view.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self.units_view.verticalHeader().hide()
        self.units_view.verticalHeader().setDefaultSectionSize(20)
        self.units_view.setAlternatingRowColors(True)
        header = self.units_view.horizontalHeader()
        metrics = self.fontMetrics()
        for column, sample in enumerate(("class", "rank", "unit", "−0.000")):
            header.resizeSection(column, metrics.horizontalAdvance(sample) + 14)
        header.setStretchLastSection(True)
        self.units_view.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.units_view.clicked.connect(self._unit_clicked)
        self.units_view.activated.connect(self._unit_clicked)
        #: how to use the units table, then what the last click did
        self.hint = QtWidgets.QLabel(HINT)
        self.hint.setWordWrap(True)
        self.hint.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.hint.setToolTip("The active pane switches to this probe's tap first if it shows another one.")

        top = QtWidgets.QHBoxLayout()
        top.setSpacing(6)
        top.addWidget(QtWidgets.QLabel("Probe"))
        top.addWidget(self.probe_combo)
        top.addSpacing(10)
        top.addWidget(QtWidgets.QLabel("Cells"))
        top.addWidget(self.cells_combo)
        top.addStretch(1)

        confusion = QtWidgets.QWidget()
        c_layout = QtWidgets.QVBoxLayout(confusion)
        c_layout.setContentsMargins(0, 0, 0, 0)
        c_layout.setSpacing(2)
        c_layout.addWidget(self.confusion_caption)
        c_layout.addWidget(self.confusion_view, 1)
        self.confusion_box = confusion

        units = QtWidgets.QWidget()
        u_layout = QtWidgets.QVBoxLayout(units)
        u_layout.setContentsMargins(0, 0, 0, 0)
        u_layout.setSpacing(2)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(QtWidgets.QLabel("Top units of"))
        row.addWidget(self.class_combo, 1)
        u_layout.addLayout(row)
        u_layout.addWidget(self.units_view, 1)
        u_layout.addWidget(self.hint)
        self.units_box = units

        self.splitter = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        self.splitter.addWidget(confusion)
        self.splitter.addWidget(units)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setChildrenCollapsible(False)
        units.setMinimumWidth(230)
        confusion.setMinimumWidth(200)

        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 0, 0, 0)
        layout.setSpacing(3)
        layout.addLayout(top)
        layout.addWidget(self.header)
        layout.addWidget(self.splitter, 1)
        self.set_probe(None, None)

    # ------------------------------------------------------------------ data
    def set_probe(self, report, tap: str | None, message: str = "") -> None:
        """Show the probe of ``tap`` (a tap of ``report``, or ``probes.INPUT_TAP`` for its baseline);
        ``report=None`` clears the view (showing ``message``)."""
        from lstmviz.analysis.probes import INPUT_TAP

        if report is not None and tap is None:
            tap = report.best_tap()
        result = None
        if report is not None:
            if tap == INPUT_TAP and report.baseline is not None:
                result = report.baseline
            elif tap in report.probes:
                result = report.probes[tap]
            else:
                raise KeyError(f"the report has no probe on {tap!r}; it has {', '.join(report.taps)}")
        self.report, self.tap, self.result = report, (tap if report is not None else None), result
        self._fill_combo()
        self.confusion_model.set_result(result)
        self._fit_columns()
        self._fill_classes()
        self._fill_units()
        self.header.setText(self._sentence() if result is not None else
                            f"<span style='color:#666'>{escape(message or 'No probe open: run the probes, then click a tap in the chart.')}</span>")
        baseline = result is not None and result.tap == INPUT_TAP
        self.units_view.setEnabled(result is not None and not baseline)
        self.class_combo.setEnabled(result is not None and not baseline)
        self._note = ""
        self.hint.setText(f"<span style='color:#555'>{escape(BASELINE_HINT if baseline else HINT)}</span>")

    def set_note(self, text: str) -> None:
        """A sentence (rich text) under the units table in place of the hint, e.g. which unit was just
        selected; it stays until another probe is opened."""
        self._note = text
        self.hint.setText(text)

    def note_text(self) -> str:
        """The note as plain text ("" when the hint is shown)."""
        return QtGui.QTextDocumentFragment.fromHtml(self._note).toPlainText() if self._note else ""

    def top_units(self, label: str | None = None) -> list[tuple[str, int, float]]:
        """(class, unit, weight) rows the units table lists (of one class, or of every class)."""
        rows = self._unit_rows()
        return [(c, u, w) for c, _, u, w in rows if label is None or c == label]

    def unit_row(self, label: str, unit: int) -> int:
        """The row of ``(label, unit)`` in the units table (ValueError when it is not listed)."""
        for i, (c, _, u, _) in enumerate(self.units_model.rows):
            if c == label and u == int(unit):
                return i
        raise ValueError(f"unit {unit} is not among the top units of class {label!r}")

    def activate_row(self, row: int) -> None:
        """Select the unit of a row of the units table in the Select view (as a click does)."""
        self._unit_clicked(self.units_model.index(row, 2))

    # ------------------------------------------------------------------ building
    def _fill_combo(self) -> None:
        from lstmviz.analysis.probes import INPUT_TAP

        self.probe_combo.blockSignals(True)
        try:
            self.probe_combo.clear()
            report = self.report
            if report is not None:
                for t in report.taps:
                    layer = report.layers.get(t)
                    text = t if layer is None or layer < 0 else f"{t}  (layer {layer})"
                    self.probe_combo.addItem(text, t)
                if report.baseline is not None:
                    self.probe_combo.addItem(INPUT_TAP_TEXT, INPUT_TAP)
                self.probe_combo.setCurrentIndex(max(0, self.probe_combo.findData(self.tap)))
            self.probe_combo.setEnabled(report is not None)
        finally:
            self.probe_combo.blockSignals(False)

    def _combo_changed(self, _index: int) -> None:
        tap = self.probe_combo.currentData()
        if tap is not None and self.report is not None and tap != self.tap:
            self.set_probe(self.report, tap)
            self.tap_chosen.emit(tap)

    def _fit_columns(self) -> None:
        k = self.confusion_model.k
        if k == 0:
            return
        metrics = self.confusion_view.fontMetrics()
        labels = self.result.labels
        widest = max([metrics.horizontalAdvance(str(x)) for x in labels] + [metrics.horizontalAdvance("100%")])
        width = min(max(widest + 14, 40), 90)
        header = self.confusion_view.horizontalHeader()
        for c in range(k):
            header.resizeSection(c, width)
        header.resizeSection(k, max(width, metrics.horizontalAdvance("00,000") + 14))
        header.resizeSection(k + 1, metrics.horizontalAdvance("class acc.") + 16)
        # the matrix gets the width it needs (up to a limit, then it scrolls); the units table the rest
        view = self.confusion_view
        labels_width = max(metrics.horizontalAdvance(str(x)) for x in labels) + 16
        needed = (labels_width + sum(header.sectionSize(c) for c in range(k + 2)) + 2 * view.frameWidth()
                  + view.verticalScrollBar().sizeHint().width() + 4)
        self.confusion_box.setMinimumWidth(max(200, min(needed, 460)))

    def _fill_classes(self) -> None:
        current = self.class_combo.currentData()
        self.class_combo.blockSignals(True)
        try:
            self.class_combo.clear()
            self.class_combo.addItem("every class", None)
            if self.result is not None:
                for name in self.result.labels:
                    self.class_combo.addItem(name, name)
            self.class_combo.setCurrentIndex(max(0, self.class_combo.findData(current)) if current else 0)
        finally:
            self.class_combo.blockSignals(False)

    def _unit_rows(self) -> list[tuple[str, int, int, float]]:
        from lstmviz.analysis.probes import INPUT_TAP, top_units

        result = self.result
        if result is None or result.tap == INPUT_TAP:
            return []
        rows = []
        for name, units in top_units(result, k=min(TOP_UNITS, result.weights.shape[1])).items():
            rows.extend((name, rank + 1, unit, weight) for rank, (unit, weight) in enumerate(units))
        return rows

    def _fill_units(self) -> None:
        chosen = self.class_combo.currentData()
        rows = [r for r in self._unit_rows() if chosen is None or r[0] == chosen]
        self.units_model.set_rows(rows)
        if rows:
            metrics = self.units_view.fontMetrics()
            widest = max(metrics.horizontalAdvance(r[0]) for r in rows)
            self.units_view.horizontalHeader().resizeSection(0, min(max(widest, metrics.horizontalAdvance("class")) + 14, 140))

    def _unit_clicked(self, index: QtCore.QModelIndex) -> None:
        if not index.isValid() or self.result is None:
            return
        self.unit_activated.emit(self.result.tap, self.units_model.unit_at(index.row()))

    def _sentence(self) -> str:
        from lstmviz.analysis.probes import INPUT_TAP

        r = self.result
        report = self.report
        interval = f"[{percent(r.ci_low)}–{percent(r.ci_high)}]"
        if r.tap == INPUT_TAP:
            text = (f"<b>Input tokens</b> (baseline): {percent(r.accuracy)} {interval} held-out accuracy on "
                    f"{r.n_test:,} test positions, predicting each token type's most frequent label.")
        else:
            layer = report.layers.get(r.tap)
            where = f"layer {layer}, " if layer is not None and layer >= 0 else ""
            units = int(np.asarray(r.weights).shape[1])
            rows = report.short_rows(r.tap)
            on = f"{r.n_test:,} test {report.row_unit(r.tap)}"
            if rows:  # an image recording: say which rows of which axis the probe read
                on += f" ({escape(report.axis_of(r.tap))}: {escape(report.rows_of(r.tap))})"
            text = (f"<b>{escape(r.tap)}</b> ({where}{units} units): <b>{percent(r.accuracy)}</b> {interval} "
                    f"held-out accuracy on {on}")
            control = report.controls.get(r.tap)
            if control is not None:
                text += (f"; control task {percent(control.accuracy)}, selectivity "
                         f"<b>{points(r.accuracy - control.accuracy)}</b> points")
            text += f"; L2 {r.l2:g}."
        mixed = report.mixed_rows() and r.tap != INPUT_TAP  # this tap's rows have their own majority
        extras = [f"majority class {percent(r.majority_accuracy if mixed else report.majority_accuracy)}"]
        if report.baseline is not None and r.tap != INPUT_TAP:
            extras.append(f"input tokens {percent(report.baseline.accuracy)}")
        return text + " <span style='color:#555'>Baselines: " + ", ".join(extras) + ".</span>"
