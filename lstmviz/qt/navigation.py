"""Navigation controls: item stepper, window width, jump-to-position, find and add-pane.

Every control mirrors one workspace setting: user input asks the workspace to change, and the
workspace's signals set the control (with its own signals blocked, so nothing loops). The tap and
value transform are chosen per pane, in each pane's control strip.
"""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

from lstmviz.qt.workspace import MAX_WINDOW_WIDTH, MIN_WINDOW_WIDTH, Workspace


class NavigationBar(QtWidgets.QWidget):
    """A row of controls bound to a workspace."""

    def __init__(self, workspace: Workspace, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.workspace = workspace
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(6, 2, 6, 2)
        layout.setSpacing(6)

        self.prev_item = QtWidgets.QToolButton(text="◀")
        self.prev_item.setToolTip("Previous item (Page Up)")
        self.item_spin = QtWidgets.QSpinBox()
        self.item_spin.setKeyboardTracking(False)
        self.item_spin.setMinimumWidth(70)
        self.item_count = QtWidgets.QLabel("of 0")
        self.next_item = QtWidgets.QToolButton(text="▶")
        self.next_item.setToolTip("Next item (Page Down)")

        self.width_spin = QtWidgets.QSpinBox()
        self.width_spin.setRange(MIN_WINDOW_WIDTH, MAX_WINDOW_WIDTH)
        self.width_spin.setSingleStep(10)
        self.width_spin.setSuffix(" positions")
        self.width_spin.setKeyboardTracking(False)
        self.width_spin.setToolTip("How many positions the plot shows (Ctrl + wheel over the plot)")

        self.jump_edit = QtWidgets.QLineEdit()
        self.jump_edit.setPlaceholderText("position")
        self.jump_edit.setMaximumWidth(110)
        self.jump_edit.setValidator(QtGui.QIntValidator(0, 2**31 - 1, self.jump_edit))
        self.jump_edit.setToolTip("Type a corpus position and press Enter")
        self.find_button = QtWidgets.QToolButton(text="Find…")
        self.find_button.setToolTip("Find a phrase or a regular expression in the tokens (Ctrl+F)")
        self.add_pane_button = QtWidgets.QToolButton(text="+ Pane")
        self.add_pane_button.setToolTip("Add a pane under the others: another tap over the same positions, "
                                        "with its own threshold and selection")

        def label(text: str) -> QtWidgets.QLabel:
            return QtWidgets.QLabel(text)

        for widget in (
            label("Item"), self.prev_item, self.item_spin, self.item_count, self.next_item, _separator(),
            label("Window"), self.width_spin, _separator(), label("Go to"), self.jump_edit, self.find_button,
            _separator(), self.add_pane_button,
        ):
            layout.addWidget(widget)
        layout.addStretch(1)

        self.add_pane_button.clicked.connect(lambda: workspace.add_pane())
        self.prev_item.clicked.connect(lambda: workspace.go_to_item(workspace.item - 1))
        self.next_item.clicked.connect(lambda: workspace.go_to_item(workspace.item + 1))
        self.item_spin.valueChanged.connect(workspace.go_to_item)
        self.width_spin.valueChanged.connect(workspace.set_window_width)
        self.jump_edit.returnPressed.connect(self._jump)

        workspace.recording_changed.connect(self._recording_changed)
        workspace.item_changed.connect(self._item_changed)
        workspace.window_changed.connect(self._window_changed)
        self._recording_changed(workspace.recording)

    # ------------------------------------------------------------------ user input -> workspace
    def _jump(self) -> None:
        text = self.jump_edit.text().strip()
        if text:
            self.workspace.go_to_position(int(text))

    # ------------------------------------------------------------------ workspace -> controls
    def _recording_changed(self, recording) -> None:
        ws = self.workspace
        with QtCore.QSignalBlocker(self.item_spin):
            self.item_spin.setRange(0, max(0, ws.n_items - 1))
        self.item_count.setText(f"of {ws.n_items:,}")
        self.jump_edit.setValidator(QtGui.QIntValidator(0, max(0, ws.n_positions - 1), self.jump_edit))
        self.jump_edit.setToolTip(f"Type a corpus position (0–{max(0, ws.n_positions - 1):,}) and press Enter")
        self.setEnabled(recording is not None)
        self._item_changed(ws.item)
        self._window_changed(ws.window_start, ws.window_width)

    def _item_changed(self, item: int) -> None:
        with QtCore.QSignalBlocker(self.item_spin):
            self.item_spin.setValue(item)
        self.prev_item.setEnabled(item > 0)
        self.next_item.setEnabled(item < self.workspace.n_items - 1)

    def _window_changed(self, start: int, width: int) -> None:
        with QtCore.QSignalBlocker(self.width_spin):
            self.width_spin.setValue(width)


def _separator() -> QtWidgets.QFrame:
    line = QtWidgets.QFrame()
    line.setFrameShape(QtWidgets.QFrame.Shape.VLine)
    line.setFrameShadow(QtWidgets.QFrame.Shadow.Sunken)
    return line
