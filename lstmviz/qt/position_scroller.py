"""The horizontal scroll bar over all positions of the corpus; its value is the window's left edge."""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from lstmviz.qt.workspace import Workspace


class PositionScroller(QtWidgets.QScrollBar):
    """Scrolls the workspace's window over the corpus (one step = one position, one page = one window)."""

    def __init__(self, workspace: Workspace, parent: QtWidgets.QWidget | None = None):
        super().__init__(QtCore.Qt.Orientation.Horizontal, parent)
        self.workspace = workspace
        self.setToolTip("Scroll through the positions of the corpus (← → keys, mouse wheel over the plot)")
        self.valueChanged.connect(workspace.set_window_start)
        workspace.recording_changed.connect(self._sync)
        workspace.window_changed.connect(self._sync)
        self._sync()

    def _sync(self, *_):
        ws = self.workspace
        with QtCore.QSignalBlocker(self):
            self.setRange(0, ws.max_window_start())
            self.setPageStep(max(1, ws.window_width))
            self.setSingleStep(1)
            self.setValue(ws.window_start)
        self.setEnabled(ws.recording is not None)
