"""Annotations aggregated over the matches: what LSTMVis left to the eye, as a table with statistics.

For one chosen annotation, ``AggregateView`` shows the result of ``lstmviz.analysis.aggregate.aggregate``
over the match anchors: one row per offset from the anchor (the same offsets as the result columns),
preceded by a "corpus" row with the baseline.

- categorical (``LabelTable``): one column per label with the fraction of matches carrying that label at
  that offset; the cell colour compares the count with the count expected from the corpus baseline,
  log2((count + ½) / (n × baseline + ½)), on a diverging scale (red: more often than in the corpus,
  blue: less; ±3 = 8× saturates). The half counts keep tiny expected counts from looking significant
  (0 of 18 where 0.2 are expected stays nearly white). A list under the table gives the top
  enrichments as sentences (``describe_enrichment``).
- numeric (``NumericTable``): n, mean and std per offset, coloured by how far the mean is from the
  corpus mean in corpus standard deviations.

The view computes nothing: the panel runs ``aggregate`` on a worker and hands the table over.
"""

from __future__ import annotations

import math

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from lstmviz.qt.model_reset import resetting
from lstmviz.qt.palette import FOREGROUND
from lstmviz.qt.plain_text import escape, literal, set_plain
from lstmviz.qt.widget_export import FullRowsOnVectorExport

#: enrichment colours saturate at this |log2 ratio| (8x over- or under-represented)
LOG2_SATURATION = 3.0
#: numeric: colours saturate at this many corpus standard deviations
Z_SATURATION = 2.0
DIVERGING = [(33, 102, 172), (146, 197, 222), (247, 247, 247), (244, 165, 130), (178, 24, 43)]
BASELINE_FILL = (236, 236, 236)
#: at this width or more the enrichment sentences sit beside the table instead of under it
SIDE_BY_SIDE_WIDTH = 600
MIN_SENTENCES_WIDTH = 260
EMPTY_FILL = (250, 250, 250)


def _ramp(anchors, t: float) -> tuple[int, int, int]:
    t = min(1.0, max(0.0, float(t))) * (len(anchors) - 1)
    i = min(int(t), len(anchors) - 2)
    f = t - i
    a, b = anchors[i], anchors[i + 1]
    return tuple(round(a[k] + (b[k] - a[k]) * f) for k in range(3))


def shrunk_log2_ratio(count: float, n: float, baseline: float) -> float:
    """log2 of observed over expected counts with half a count added to both:
    ``log2((count + 0.5) / (n * baseline + 0.5))``. Close to log2(fraction / baseline) when counts are
    large, near 0 when they are too small to say anything (0 of 18 where 0.2 are expected is not 8x
    fewer)."""
    if not (np.isfinite(count) and np.isfinite(n) and np.isfinite(baseline)):
        return math.nan
    return math.log2((count + 0.5) / (n * baseline + 0.5))


def enrichment_rgb(log2_ratio: float) -> tuple[int, int, int] | None:
    """Diverging colour of a log2 ratio (clamped at ±LOG2_SATURATION; red above 0); None when undefined."""
    if log2_ratio is None or math.isnan(log2_ratio):
        return None
    return _ramp(DIVERGING, 0.5 + 0.5 * max(-LOG2_SATURATION, min(LOG2_SATURATION, log2_ratio)) / LOG2_SATURATION)


def _percent(x: float) -> str:
    if not np.isfinite(x):
        return ""
    if x == 0:
        return "0%"
    if x >= 0.095:
        return f"{100 * x:.0f}%"
    if x >= 0.0095:
        return f"{100 * x:.1f}%"
    return f"{100 * x:.2g}%"


def _offset_text(offset: int) -> str:
    return "0" if offset == 0 else f"{offset:+d}".replace("-", "−")


class _TableView(FullRowsOnVectorExport, QtWidgets.QTableView):
    pass


class _ListWidget(FullRowsOnVectorExport, QtWidgets.QListWidget):
    pass


class AggregateModel(QtCore.QAbstractTableModel):
    """A ``LabelTable`` or ``NumericTable`` as rows (corpus baseline, then offsets) × columns."""

    def __init__(self, parent: QtCore.QObject | None = None):
        super().__init__(parent)
        self.table = None
        self.anchor_word = "start"

    def set_table(self, table, anchor_word: str = "start") -> None:
        with resetting(self):
            self.table = table
            self.anchor_word = anchor_word

    @property
    def categorical(self) -> bool:
        return self.table is not None and hasattr(self.table, "labels")

    def rowCount(self, parent=QtCore.QModelIndex()) -> int:  # noqa: B008
        if parent.isValid() or self.table is None:
            return 0
        return len(self.table.offsets) + 1

    def columnCount(self, parent=QtCore.QModelIndex()) -> int:  # noqa: B008
        if parent.isValid() or self.table is None:
            return 0
        return 1 + (len(self.table.labels) if self.categorical else 2)

    def headerData(self, section: int, orientation, role: int = QtCore.Qt.ItemDataRole.DisplayRole):
        if self.table is None:
            return None
        t = self.table
        if orientation == QtCore.Qt.Orientation.Horizontal:
            if role == QtCore.Qt.ItemDataRole.DisplayRole:
                if section == 0:
                    return "n"
                if self.categorical:
                    return str(t.labels[section - 1])
                return ("mean", "std")[section - 1]
            if role == QtCore.Qt.ItemDataRole.ToolTipRole:
                if section == 0:
                    return "Matches with a value at this offset (inside their item, label not missing)"
                if self.categorical:
                    return literal(f"Fraction of matches labelled “{t.labels[section - 1]}” in {t.annotation}")
                return literal(f"{('Mean', 'Standard deviation')[section - 1]} of {t.annotation}")
            return None
        if role == QtCore.Qt.ItemDataRole.DisplayRole:
            return "corpus" if section == 0 else _offset_text(int(t.offsets[section - 1]))
        if role == QtCore.Qt.ItemDataRole.ToolTipRole:
            if section == 0:
                return "The whole corpus (the baseline every row is compared with)"
            return f"Offset {int(t.offsets[section - 1]):+d} from the match {self.anchor_word}"
        if role == QtCore.Qt.ItemDataRole.FontRole and section > 0 and int(t.offsets[section - 1]) == 0:
            font = QtGui.QFont()
            font.setBold(True)
            return font
        return None

    def data(self, index: QtCore.QModelIndex, role: int = QtCore.Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or self.table is None:
            return None
        row, column = index.row(), index.column()
        if self.categorical:
            return self._label_data(row, column, role)
        return self._numeric_data(row, column, role)

    # ------------------------------------------------------------------ categorical
    def _label_data(self, row: int, column: int, role: int):
        t = self.table
        R = QtCore.Qt.ItemDataRole
        if role == R.TextAlignmentRole:
            return int(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)
        if row == 0:  # the corpus baseline
            if role == R.DisplayRole:
                return "" if column == 0 else _percent(float(t.baseline[column - 1]))
            if role == R.BackgroundRole:
                return QtGui.QBrush(QtGui.QColor(*BASELINE_FILL))
            if role == R.ToolTipRole and column > 0:
                return literal(f"{_percent(float(t.baseline[column - 1]))} of all labelled positions are “{t.labels[column - 1]}”")
            return None
        o = row - 1
        n = int(t.n[o])
        if column == 0:
            if role == R.DisplayRole:
                return f"{n:,}"
            return None
        label = column - 1
        fraction = float(t.fraction[o, label])
        enrichment = float(t.enrichment[o, label])
        if role == R.DisplayRole:
            return _percent(fraction) if n > 0 else ""
        if role in (R.BackgroundRole, R.ForegroundRole):
            rgb = enrichment_rgb(self.log2_ratio(o, label)) if n > 0 else None
        if role == R.BackgroundRole:
            return QtGui.QBrush(QtGui.QColor(*(rgb or EMPTY_FILL)))
        if role == R.ForegroundRole:
            dark = rgb is not None and (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]) < 120
            return QtGui.QBrush(QtGui.QColor(*((255, 255, 255) if dark else FOREGROUND)))
        if role == R.ToolTipRole:
            if n == 0:
                return "no match has a labelled position here"
            p = float(t.p_value[o, label])
            return (f"offset {int(t.offsets[o]):+d}, “{escape(t.labels[label])}”: {int(t.counts[o, label]):,} of {n:,} "
                    f"matches ({_percent(fraction)}) against {_percent(float(t.baseline[label]))} of the corpus"
                    f"<br>enrichment {enrichment:.3g}×, one-sided binomial p = {p:.2g}"
                    f"<br>colour: log2((count + ½) / (expected + ½)) = {self.log2_ratio(o, label):+.2f}")
        return None

    def log2_ratio(self, o: int, label: int) -> float:
        """The colour value of a cell: ``shrunk_log2_ratio`` of its count against the corpus baseline."""
        t = self.table
        return shrunk_log2_ratio(float(t.counts[o, label]), float(t.n[o]), float(t.baseline[label]))

    # ------------------------------------------------------------------ numeric
    def _numeric_data(self, row: int, column: int, role: int):
        t = self.table
        R = QtCore.Qt.ItemDataRole
        if role == R.TextAlignmentRole:
            return int(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)
        if row == 0:
            if role == R.DisplayRole:
                return ("", f"{t.baseline_mean:.4g}", f"{t.baseline_std:.4g}")[column]
            if role == R.BackgroundRole:
                return QtGui.QBrush(QtGui.QColor(*BASELINE_FILL))
            return None
        o = row - 1
        n = int(t.n[o])
        if role == R.DisplayRole:
            if column == 0:
                return f"{n:,}"
            if n == 0:
                return ""
            return f"{float((t.mean, t.std)[column - 1][o]):.4g}"
        if role == R.BackgroundRole and column == 1 and n > 0:
            z = self._z(o)
            return QtGui.QBrush(QtGui.QColor(*_ramp(DIVERGING, 0.5 + 0.5 * z / Z_SATURATION)))
        if role == R.ToolTipRole and n > 0:
            return (f"offset {int(t.offsets[o]):+d}: mean {float(t.mean[o]):.4g} (std {float(t.std[o]):.4g}) over "
                    f"{n:,} matches; corpus mean {t.baseline_mean:.4g} (std {t.baseline_std:.4g}); "
                    f"{self._z(o):+.2f} corpus std from the corpus mean")
        return None

    def _z(self, o: int) -> float:
        t = self.table
        if not (np.isfinite(t.baseline_std) and t.baseline_std > 0):
            return 0.0
        z = (float(t.mean[o]) - t.baseline_mean) / t.baseline_std
        return z if np.isfinite(z) else 0.0


class AggregateView(QtWidgets.QWidget):
    """An annotation chooser, the aggregated table, and the top enrichments as sentences."""

    #: the user chose another annotation to aggregate (its name)
    annotation_chosen = QtCore.Signal(str)

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.model = AggregateModel(self)
        self.combo = QtWidgets.QComboBox()
        self.combo.setToolTip("The annotation to aggregate over the matches")
        self.combo.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.combo.currentIndexChanged.connect(self._combo_changed)
        self.summary = QtWidgets.QLabel()
        self.summary.setWordWrap(True)
        self.summary.setStyleSheet("color: #555")
        self.table_view = _TableView()
        self.table_view.setModel(self.model)
        self.table_view.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table_view.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.NoSelection)
        self.table_view.setWordWrap(False)
        self.table_view.setShowGrid(True)
        self.table_view.setStyleSheet("QTableView { background: white; gridline-color: #e4e4e4; }")
        vertical = self.table_view.verticalHeader()
        vertical.setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.Fixed)
        vertical.setDefaultSectionSize(self.fontMetrics().height() + 5)
        vertical.setDefaultAlignment(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)
        self.table_view.horizontalHeader().setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        self.table_view.horizontalHeader().setMinimumSectionSize(34)
        self.enrichments = _ListWidget()
        self.enrichments.setWordWrap(True)
        self.enrichments.setAlternatingRowColors(True)
        self.enrichments.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.NoSelection)
        self.enrichments.setToolTip("The most significant over-representations (one-sided binomial test "
                                    "against the corpus)")
        self.enrichments.setVerticalScrollMode(QtWidgets.QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.enrichments.setMinimumHeight(7 * self.fontMetrics().lineSpacing())

        top = QtWidgets.QHBoxLayout()
        top.setContentsMargins(0, 0, 0, 0)
        top.addWidget(QtWidgets.QLabel("Aggregate"))
        top.addWidget(self.combo)
        top.addStretch(1)
        self.enrichment_title = QtWidgets.QLabel("<b>Top enrichments</b>")
        splitter = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        splitter.addWidget(self.table_view)
        lower = QtWidgets.QWidget()
        lower_layout = QtWidgets.QVBoxLayout(lower)
        lower_layout.setContentsMargins(0, 4, 0, 0)
        lower_layout.addWidget(self.enrichment_title)
        lower_layout.addWidget(self.enrichments, 1)
        splitter.addWidget(lower)
        splitter.setStretchFactor(0, 3)
        splitter.setStretchFactor(1, 2)
        self.splitter = splitter
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(top)
        layout.addWidget(self.summary)
        layout.addWidget(splitter, 1)
        self.set_table(None)

    # ------------------------------------------------------------------ what to show
    def set_annotations(self, names: list[str], current: str | None = None) -> None:
        """The annotations the user can choose from, and the chosen one (no signal)."""
        self.combo.blockSignals(True)
        self.combo.clear()
        self.combo.addItems(list(names))
        if current is not None and current in names:
            self.combo.setCurrentIndex(names.index(current))
        self.combo.blockSignals(False)

    def annotation(self) -> str | None:
        text = self.combo.currentText()
        return text or None

    def set_annotation(self, name: str) -> None:
        """Choose ``name`` (emits ``annotation_chosen`` when it changes)."""
        i = self.combo.findText(name)
        if i >= 0:
            self.combo.setCurrentIndex(i)

    def _combo_changed(self, _index: int) -> None:
        name = self.annotation()
        if name:
            self.annotation_chosen.emit(name)

    def set_message(self, text: str) -> None:
        set_plain(self.summary, text)

    def set_table(self, table, sentences: list[str] | None = None, anchor_word: str = "start") -> None:
        """Show an aggregated table (None to clear) and its enrichment sentences."""
        self.model.set_table(table, anchor_word)
        self.enrichments.clear()
        categorical = table is not None and hasattr(table, "labels")
        self.enrichment_title.setVisible(categorical)
        self.enrichments.setVisible(categorical)
        if table is None:
            set_plain(self.summary, "Match to aggregate annotations over the results.")
            return
        self.summary.setTextFormat(QtCore.Qt.TextFormat.RichText)
        n = int(getattr(table, "n_anchors", 0))
        if categorical:
            self.summary.setText(
                f"<b>{escape(table.annotation)}</b> around {n:,} matches (rows: offset from the match {anchor_word}). "
                "Columns: its labels. Cells: fraction of matches with the label; colour: observed vs expected "
                "from the corpus (<span style='color:#b2182b'>■</span> more, "
                "<span style='color:#2166ac'>■</span> fewer; log2, saturating at 8×)."
            )
            for sentence in sentences or []:
                self.enrichments.addItem(sentence)
            if not sentences:
                self.enrichments.addItem("No label is clearly over-represented (at least 5 matches and more "
                                         "often than in the corpus).")
        else:
            self.summary.setText(
                f"<b>{escape(table.annotation)}</b> around {n:,} matches (rows: offset from the match {anchor_word}): "
                "mean and std per offset; colour: mean against the corpus mean in corpus std."
            )
        self.table_view.resizeColumnsToContents()
        self._fit()

    def _fit(self) -> None:
        """Sentences beside the table when the view is wide enough (``SIDE_BY_SIDE_WIDTH``), else under
        it; under it, the table gets the height of its rows (when there is room) and the rest goes to the
        sentences."""
        wide = self.width() >= SIDE_BY_SIDE_WIDTH
        orientation = QtCore.Qt.Orientation.Horizontal if wide else QtCore.Qt.Orientation.Vertical
        if self.splitter.orientation() != orientation:
            self.splitter.setOrientation(orientation)
        total = sum(self.splitter.sizes())
        if total <= 0 or not self.enrichments.isVisible():
            return
        if wide:
            view = self.table_view
            wanted = (view.verticalHeader().width() + view.horizontalHeader().length() + 2 * view.frameWidth()
                      + view.verticalScrollBar().sizeHint().width() + 2)
            table = max(min(wanted, total - MIN_SENTENCES_WIDTH), total // 3)
            self.splitter.setSizes([table, total - table])
            return
        view = self.table_view
        rows = self.model.rowCount()
        wanted = (view.horizontalHeader().height() + rows * view.verticalHeader().defaultSectionSize()
                  + 2 * view.frameWidth() + view.horizontalScrollBar().sizeHint().height())
        room = total - self.enrichments.minimumHeight() - self.enrichment_title.sizeHint().height() - 8
        table = max(min(wanted, room), total // 3)
        self.splitter.setSizes([table, total - table])

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit()

    def sentences(self) -> list[str]:
        return [self.enrichments.item(i).text() for i in range(self.enrichments.count())]
