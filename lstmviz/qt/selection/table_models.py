"""Table models of a pane's selection: the selected units, and every candidate ranked by its margin.

Both read the pane when ``refresh`` is called (a model reset: the views ask only for visible rows, so a
ranking of thousands of signed units costs nothing until scrolled to).
"""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtGui

from lstmviz.qt.model_reset import resetting
from lstmviz.qt.palette import SELECTION
from lstmviz.qt.pane import Pane

_Role = QtCore.Qt.ItemDataRole
REMOVE_MARK = "✕"
#: the roles the models answer (views ask for many more per cell; those return None at once)
_ROLES = frozenset({_Role.DisplayRole, _Role.ForegroundRole, _Role.TextAlignmentRole, _Role.ToolTipRole})


def _sign(sign: int) -> str:
    return "+" if sign > 0 else "−"


def _percent(value: float) -> str:
    return "—" if not np.isfinite(value) else f"{100 * value:.0f} %"


def _margin(value: float | None) -> str:
    return "—" if value is None or not np.isfinite(value) else f"{value:+.3f}"


class _PaneTable(QtCore.QAbstractTableModel):
    HEADERS: tuple[str, ...] = ()
    TIPS: tuple[str, ...] = ()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.pane: Pane | None = None
        self.rows: list[tuple] = []

    def set_pane(self, pane: Pane | None) -> None:
        self.pane = pane
        self.refresh()

    def refresh(self) -> None:
        with resetting(self):
            self.rows = self._rows() if self.pane is not None else []

    def _rows(self) -> list[tuple]:
        raise NotImplementedError

    def rowCount(self, parent=None) -> int:
        return 0 if parent is not None and parent.isValid() else len(self.rows)

    def columnCount(self, parent=None) -> int:
        return 0 if parent is not None and parent.isValid() else len(self.HEADERS)

    def headerData(self, section, orientation, role=_Role.DisplayRole):
        if orientation == QtCore.Qt.Orientation.Horizontal:
            if role == _Role.DisplayRole:
                return self.HEADERS[section]
            if role == _Role.ToolTipRole:
                return self.TIPS[section]
        return None

    def pair(self, row: int) -> tuple[int, int]:
        """(unit, sign) of a row."""
        return self.rows[row][0], self.rows[row][1]


class SelectedUnitsModel(_PaneTable):
    """The pane's selected units: unit, sign, margin, on-fraction over the brush, how it got there."""

    HEADERS = ("unit", "±", "margin", "on", "by", REMOVE_MARK)
    TIPS = (
        "Unit index in the tap",
        "+: on when ≥ θ; −: on when ≤ −θ",
        "Worst brushed value minus the best padding value (signed); > 0: some threshold separates them",
        "on: share of the brushed positions where the unit is on",
        "rule: picked by brush and threshold; added: added by hand",
        "Click to remove the unit from the selection",
    )
    SAMPLES = ("1024", "±", "+0.000", "100 %", "added", REMOVE_MARK)
    REMOVE_COLUMN = 5

    def _rows(self) -> list[tuple]:
        pane = self.pane
        if pane.selection is None:
            return []
        margins = pane.margins()
        added = set(pane.added)
        rows = []
        for pair in pane.selection.pairs():
            margin, on_range, _ = margins.get(pair, (None, float("nan"), float("nan")))
            rows.append((*pair, margin, on_range, "added" if pair in added else "rule"))
        return rows

    def data(self, index, role=_Role.DisplayRole):
        if role not in _ROLES or not index.isValid():
            return None
        unit, sign, margin, on_range, by = self.rows[index.row()]
        column = index.column()
        if role == _Role.DisplayRole:
            return (str(unit), _sign(sign), _margin(margin), _percent(on_range), by, REMOVE_MARK)[column]
        if role == _Role.ForegroundRole and column in (0, self.REMOVE_COLUMN):
            return QtGui.QBrush(QtGui.QColor(*SELECTION))
        if role == _Role.TextAlignmentRole:
            return int(QtCore.Qt.AlignmentFlag.AlignCenter if column == self.REMOVE_COLUMN
                       else QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)
        if role == _Role.ToolTipRole:
            if column == self.REMOVE_COLUMN:
                return f"Remove unit {unit} ({_sign(sign)}) from the selection"
            return f"unit {unit} ({_sign(sign)}): hover to highlight its line"
        return None


class CandidatesModel(_PaneTable):
    """Every signed unit ranked by how cleanly it separates the brush from the padding."""

    HEADERS = ("unit", "±", "margin", "on", "on pad", "")
    TIPS = (
        "Unit index in the tap",
        "+: on when ≥ θ; −: on when ≤ −θ",
        "Worst brushed value minus the best padding value (signed); > 0: some threshold separates them",
        "on: share of the brushed positions where the unit is on at θ",
        "on pad: share of the padding positions where the unit is on at θ (0 for a clean unit)",
        "Whether the unit is selected; double-click a row to add it",
    )
    #: a typical longest text per column, to size the columns once
    SAMPLES = ("1024", "±", "+0.000", "100 %", "100 %", "selected")
    STATE_COLUMN = 5

    def _rows(self) -> list[tuple]:
        pane = self.pane
        ranking = pane.ranking
        if ranking is None:
            return []
        self._chosen = set() if pane.selection is None else set(pane.selection.pairs())
        r = ranking
        return list(zip(r.units.tolist(), r.signs.tolist(), r.margin.tolist(), r.on_fraction_range.tolist(),
                        r.on_fraction_padding.tolist()))

    def _row(self, row: int) -> tuple:
        unit, sign, margin, on_range, on_pad = self.rows[row]
        return unit, sign, margin, on_range, on_pad, (unit, sign) in self._chosen

    def data(self, index, role=_Role.DisplayRole):
        if role not in _ROLES or not index.isValid():
            return None
        unit, sign, margin, on_range, on_pad, chosen = self._row(index.row())
        column = index.column()
        if role == _Role.DisplayRole:
            state = "selected" if chosen else "add"
            return (str(unit), _sign(sign), _margin(margin), _percent(on_range), _percent(on_pad), state)[column]
        if role == _Role.ForegroundRole and chosen:
            return QtGui.QBrush(QtGui.QColor(*SELECTION))
        if role == _Role.TextAlignmentRole:
            return int(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)
        if role == _Role.ToolTipRole:
            return f"unit {unit} ({_sign(sign)})" + ("" if chosen else ": double-click to add it to the selection")
        return None

