"""Navigation controls: tap chooser, value transform, item stepper, window width and jump-to-position.

Every control mirrors one workspace setting: user input asks the workspace to change, and the
workspace's signals set the control (with its own signals blocked, so nothing loops).
"""

from __future__ import annotations

from PySide6 import QtCore, QtGui, QtWidgets

from lstmviz.qt.workspace import (
    MAX_WINDOW_WIDTH,
    MIN_WINDOW_WIDTH,
    TRANSFORMS,
    Workspace,
)

_SIGNAL_NAMES = {"h": "hidden state", "c": "cell state", "i": "input gate", "f": "forget gate",
                 "g": "cell input", "o": "output gate", "r": "reset gate", "z": "update gate", "n": "new gate"}


def tap_label(info) -> str:
    """How a tap is listed: name, units, layer and signal."""
    parts = [f"{info.units} units"]
    if info.layer is not None:
        parts.append(f"layer {info.layer}")
    signal = info.signal or info.name.rsplit("/", 1)[-1]
    if signal in _SIGNAL_NAMES:
        parts.append(_SIGNAL_NAMES[signal])
    elif info.signal:
        parts.append(info.signal)
    return f"{info.name}  ({', '.join(parts)})"


class NavigationBar(QtWidgets.QWidget):
    """A row of controls bound to a workspace."""

    def __init__(self, workspace: Workspace, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.workspace = workspace
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(6, 2, 6, 2)
        layout.setSpacing(6)

        self.tap_combo = QtWidgets.QComboBox()
        self.tap_combo.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.tap_combo.setToolTip("The recorded signal whose units are drawn")
        self.transform_combo = QtWidgets.QComboBox()
        self.transform_combo.addItems(list(TRANSFORMS))
        self.transform_combo.setToolTip("Values as recorded, or squashed with tanh (as LSTMVis shows them)")

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

        def label(text: str) -> QtWidgets.QLabel:
            return QtWidgets.QLabel(text)

        for widget in (
            label("Tap"), self.tap_combo, label("Values"), self.transform_combo, _separator(),
            label("Item"), self.prev_item, self.item_spin, self.item_count, self.next_item, _separator(),
            label("Window"), self.width_spin, _separator(), label("Go to"), self.jump_edit,
        ):
            layout.addWidget(widget)
        layout.addStretch(1)

        self.tap_combo.activated.connect(self._tap_chosen)
        self.transform_combo.activated.connect(lambda i: workspace.set_transform(TRANSFORMS[i]))
        self.prev_item.clicked.connect(lambda: workspace.go_to_item(workspace.item - 1))
        self.next_item.clicked.connect(lambda: workspace.go_to_item(workspace.item + 1))
        self.item_spin.valueChanged.connect(workspace.go_to_item)
        self.width_spin.valueChanged.connect(workspace.set_window_width)
        self.jump_edit.returnPressed.connect(self._jump)

        workspace.recording_changed.connect(self._recording_changed)
        workspace.tap_changed.connect(self._tap_changed)
        workspace.transform_changed.connect(self._transform_changed)
        workspace.item_changed.connect(self._item_changed)
        workspace.window_changed.connect(self._window_changed)
        self._recording_changed(workspace.recording)

    # ------------------------------------------------------------------ user input -> workspace
    def _tap_chosen(self, index: int) -> None:
        name = self.tap_combo.itemData(index)
        if name:
            self.workspace.set_tap(name)

    def _jump(self) -> None:
        text = self.jump_edit.text().strip()
        if text:
            self.workspace.go_to_position(int(text))

    # ------------------------------------------------------------------ workspace -> controls
    def _recording_changed(self, recording) -> None:
        ws = self.workspace
        with QtCore.QSignalBlocker(self.tap_combo):
            self.tap_combo.clear()
            for name in ws.taps:
                self.tap_combo.addItem(tap_label(recording.taps[name]), name)
        with QtCore.QSignalBlocker(self.item_spin):
            self.item_spin.setRange(0, max(0, ws.n_items - 1))
        self.item_count.setText(f"of {ws.n_items:,}")
        self.jump_edit.setValidator(QtGui.QIntValidator(0, max(0, ws.n_positions - 1), self.jump_edit))
        self.jump_edit.setToolTip(f"Type a corpus position (0–{max(0, ws.n_positions - 1):,}) and press Enter")
        self.setEnabled(recording is not None)
        self._tap_changed(ws.tap or "")
        self._transform_changed(ws.transform)
        self._item_changed(ws.item)
        self._window_changed(ws.window_start, ws.window_width)

    def _tap_changed(self, name: str) -> None:
        with QtCore.QSignalBlocker(self.tap_combo):
            self.tap_combo.setCurrentIndex(max(0, self.tap_combo.findData(name)))

    def _transform_changed(self, name: str) -> None:
        with QtCore.QSignalBlocker(self.transform_combo):
            self.transform_combo.setCurrentIndex(TRANSFORMS.index(name))

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
