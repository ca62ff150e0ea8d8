"""The status bar: file name, corpus size, the window's range, what is under the pointer, and the
progress of background work (z-score statistics, searches, ...) on the workspace's runner."""

from __future__ import annotations

from pathlib import Path

from PySide6 import QtCore, QtWidgets

from lstmviz.qt.hover_text import describe_hover
from lstmviz.qt.plain_text import escape, set_plain
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
        self.hover_label.setTextFormat(QtCore.Qt.TextFormat.RichText)  # describe_hover escapes what it quotes
        for label in (self.file_label, self.size_label, self.range_label):
            label.setContentsMargins(4, 0, 12, 0)
        self.addWidget(self.file_label)
        self.addWidget(self.size_label)
        self.addWidget(self.range_label)
        self.addWidget(self.hover_label, 1)
        self.progress_label = QtWidgets.QLabel()
        self.progress = QtWidgets.QProgressBar()
        self.progress.setMaximumWidth(140)
        self.progress.setTextVisible(False)
        self.addPermanentWidget(self.progress_label)
        self.addPermanentWidget(self.progress)
        self.progress_label.hide()
        self.progress.hide()
        self._busy: set[str] = set()
        workspace.runner.progress.connect(self._progress)
        workspace.runner.busy_changed.connect(self._busy_changed)
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
        self.file_label.setText(f"<b>{escape(Path(ws.recording.path).name)}</b>")
        self.size_label.setText(f"{ws.n_items:,} items · {ws.n_positions:,} positions")
        start, stop = ws.window_range()
        item_start, item_stop = ws.item_range()
        self.range_label.setText(
            f"positions {start:,}–{max(start, stop - 1):,} · item {ws.item:,} ({item_start:,}–{item_stop - 1:,})"
        )

    def _progress(self, channel: str, request_id: int, done: int, total, message: str) -> None:
        what = channel.replace("stats:", "z-score statistics of ")
        set_plain(self.progress_label, f"{what}: {message}" if message else what)
        if total:
            self.progress.setRange(0, int(total))
            self.progress.setValue(int(done))
        else:
            self.progress.setRange(0, 0)

    def _busy_changed(self, channel: str, busy: bool) -> None:
        (self._busy.add if busy else self._busy.discard)(channel)
        self.progress_label.setVisible(bool(self._busy))
        self.progress.setVisible(bool(self._busy))
        if busy:
            self.progress.setRange(0, 0)
