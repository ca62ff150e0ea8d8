"""The status bar: file name, corpus size, the window's range and what is under the pointer."""

from __future__ import annotations

from pathlib import Path

from PySide6 import QtWidgets

from lstmviz.qt.hover_text import describe_hover
from lstmviz.qt.workspace import Workspace


class StatusBar(QtWidgets.QStatusBar):
    """Permanent read-outs bound to a workspace."""

    def __init__(self, workspace: Workspace, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.workspace = workspace
        self.file_label = QtWidgets.QLabel()
        self.size_label = QtWidgets.QLabel()
        self.range_label = QtWidgets.QLabel()
        self.hover_label = QtWidgets.QLabel()
        for label in (self.file_label, self.size_label, self.range_label):
            label.setContentsMargins(4, 0, 12, 0)
        self.addWidget(self.file_label)
        self.addWidget(self.size_label)
        self.addWidget(self.range_label)
        self.addWidget(self.hover_label, 1)
        workspace.recording_changed.connect(self._update)
        workspace.view_changed.connect(self._update)
        workspace.hover_changed.connect(lambda hover: self.hover_label.setText("" if hover is None else describe_hover(hover)))
        self._update()

    def _update(self, *_):
        ws = self.workspace
        if ws.recording is None:
            self.file_label.setText("No recording open")
            self.size_label.setText("")
            self.range_label.setText("")
            return
        self.file_label.setText(f"<b>{Path(ws.recording.path).name}</b>")
        self.size_label.setText(f"{ws.n_items:,} items · {ws.n_positions:,} positions")
        start, stop = ws.window_range()
        item_start, item_stop = ws.item_range()
        self.range_label.setText(
            f"positions {start:,}–{max(start, stop - 1):,} · item {ws.item:,} ({item_start:,}–{item_stop - 1:,})"
        )
