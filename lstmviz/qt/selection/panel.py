"""The "Selection" dock: the active pane's selected units and the ranked candidates.

Hovering a row highlights that unit's line in the pane; the ✕ cell (or "Remove", or Delete) takes a
unit out of the selection, a double-click on a candidate (or "Add") puts it in. Both are remembered
by the pane (``added`` / ``removed``), so they survive moving the brush or the threshold.
"""

from __future__ import annotations


from PySide6 import QtCore, QtGui, QtWidgets

from lstmviz.qt.pane import Pane
from lstmviz.qt.plain_text import escape, set_plain
from lstmviz.qt.selection.table_models import CandidatesModel, SelectedUnitsModel
from lstmviz.qt.workspace import Workspace


#: pixels beside the widest of a column's header and sample text (the cell margins take ~8)
COLUMN_PADDING = 10


class HoverTable(QtWidgets.QTableView):
    """A compact table that reports the row under the pointer (-1 when it leaves)."""

    hovered_row = QtCore.Signal(int)

    def __init__(self, model, parent=None):
        super().__init__(parent)
        self.setModel(model)
        self.setMouseTracking(True)
        self.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.verticalHeader().hide()
        self.verticalHeader().setDefaultSectionSize(20)
        self.verticalHeader().setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.Fixed)
        # fixed widths: sizing columns to their contents would read every row of a long ranking; the
        # padding leaves the candidates' six columns and a vertical scroll bar inside the dock's 330 px
        header = self.horizontalHeader()
        metrics = self.fontMetrics()
        for column, (text, sample) in enumerate(zip(model.HEADERS, model.SAMPLES)):
            header.resizeSection(column, max(metrics.horizontalAdvance(text), metrics.horizontalAdvance(sample))
                                 + COLUMN_PADDING)
        header.setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.Interactive)
        header.setStretchLastSection(True)
        self.setAlternatingRowColors(True)
        self.entered.connect(lambda index: self.hovered_row.emit(index.row()))

    def leaveEvent(self, event) -> None:
        self.hovered_row.emit(-1)
        super().leaveEvent(event)

    def selected_rows(self) -> list[int]:
        return sorted({index.row() for index in self.selectionModel().selectedRows()})


class SelectionPanel(QtWidgets.QWidget):
    """Selected units and candidates of the workspace's active pane."""

    def __init__(self, workspace: Workspace, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.workspace = workspace
        self.pane: Pane | None = None
        self.header = QtWidgets.QLabel()
        self.header.setTextFormat(QtCore.Qt.TextFormat.RichText)  # names in it are escaped
        self.header.setWordWrap(True)
        self.problem = QtWidgets.QLabel()
        self.problem.setWordWrap(True)
        self.problem.setStyleSheet("color: rgb(180,40,40)")
        self.selected_model = SelectedUnitsModel(self)
        self.candidates_model = CandidatesModel(self)
        self.selected_table = HoverTable(self.selected_model)
        self.candidates_table = HoverTable(self.candidates_model)
        self.remove_button = QtWidgets.QPushButton("Remove")
        self.remove_button.setToolTip("Take the chosen units out of the selection (Delete)")
        self.add_button = QtWidgets.QPushButton("Add")
        self.add_button.setToolTip("Put the chosen candidates into the selection (or double-click a row)")

        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.header)
        layout.addWidget(self.problem)
        layout.addWidget(self._titled("Selected units", self.remove_button))
        layout.addWidget(self.selected_table, 2)
        layout.addWidget(self._titled("Candidates, best separation first", self.add_button))
        layout.addWidget(self.candidates_table, 3)

        self.selected_table.clicked.connect(self._selected_clicked)
        self.selected_table.hovered_row.connect(lambda row: self._emphasize(self.selected_model, row))
        self.candidates_table.hovered_row.connect(lambda row: self._emphasize(self.candidates_model, row))
        self.candidates_table.doubleClicked.connect(lambda index: self.add_rows([index.row()]))
        self.remove_button.clicked.connect(lambda: self.remove_rows(self.selected_table.selected_rows()))
        self.add_button.clicked.connect(lambda: self.add_rows(self.candidates_table.selected_rows()))
        delete = QtGui.QShortcut(QtGui.QKeySequence(QtCore.Qt.Key.Key_Delete), self.selected_table)
        delete.setContext(QtCore.Qt.ShortcutContext.WidgetShortcut)
        delete.activated.connect(lambda: self.remove_rows(self.selected_table.selected_rows()))
        workspace.active_pane_changed.connect(self._follow)
        workspace.active_selection_changed.connect(lambda _: self.refresh())
        self._follow(workspace.active_pane)

    @staticmethod
    def _titled(text: str, button: QtWidgets.QPushButton) -> QtWidgets.QWidget:
        row = QtWidgets.QWidget()
        layout = QtWidgets.QHBoxLayout(row)
        layout.setContentsMargins(0, 4, 0, 0)
        layout.addWidget(QtWidgets.QLabel(f"<b>{text}</b>"), 1)
        layout.addWidget(button)
        return row

    def _follow(self, pane: Pane | None) -> None:
        if self.pane is not None and self.pane is not pane and self.pane in self.workspace.panes:
            self.pane.set_emphasized(None)
        self.pane = pane
        self.refresh()

    def refresh(self) -> None:
        """Show the active pane's selection and ranking."""
        pane = self.pane
        self.selected_model.set_pane(pane)
        self.candidates_model.set_pane(pane)
        if pane is None or self.workspace.recording is None:
            self.header.setText("<i>No recording is open.</i>" if self.workspace.recording is None
                                else "<i>This recording has no tap over its positions: nothing to select.</i>")
            self.problem.hide()
            return
        index = self.workspace.panes.index(pane) + 1 if pane in self.workspace.panes else 0
        parts = [f"<b>Pane {index}</b> · {escape(pane.tap)}"]
        if pane.brush is None:
            parts.append(self._no_brush_hint())
        else:
            parts.append(f"brush {pane.brush[0]}–{pane.brush[1] - 1}, off {pane.pad_left} before / "
                         f"{pane.pad_right} after, θ {pane.threshold:.3f}")
        count = 0 if pane.selection is None else len(pane.selection)
        parts.append(f"{count} unit{'s' if count != 1 else ''} selected")
        self.header.setText(" · ".join(parts))
        set_plain(self.problem, pane.problem or "")
        self.problem.setVisible(bool(pane.problem))

    def _no_brush_hint(self) -> str:
        recording = self.workspace.recording
        geometry = getattr(recording, "axis_geometry", None)
        if geometry is not None and geometry("positions").kind == "graph":
            # a node-set selection lives in the Graph panel (its rule has a ring, not padding)
            return ("no brush: drag over the nodes of a pane to brush a range, or brush nodes in the Graph "
                    "panel (it lists their units and highlights them here)")
        return "no brush: drag over the tokens of a pane to brush a range"

    def _emphasize(self, model, row: int) -> None:
        if self.pane is not None and self.pane in self.workspace.panes:
            self.pane.set_emphasized(model.pair(row)[0] if 0 <= row < len(model.rows) else None)

    def _selected_clicked(self, index: QtCore.QModelIndex) -> None:
        if index.column() == SelectedUnitsModel.REMOVE_COLUMN:
            self.remove_rows([index.row()])

    def remove_rows(self, rows: list[int]) -> None:
        """Take the units of these rows of the selected-units table out of the selection."""
        pairs = [self.selected_model.pair(r) for r in rows if 0 <= r < len(self.selected_model.rows)]
        for unit, sign in pairs:
            self.pane.remove_unit(unit, sign)

    def add_rows(self, rows: list[int]) -> None:
        """Put the units of these rows of the candidates table into the selection."""
        pairs = [self.candidates_model.pair(r) for r in rows if 0 <= r < len(self.candidates_model.rows)]
        for unit, sign in pairs:
            self.pane.add_unit(unit, sign)
