"""A pane's control strip: tap, transform, threshold, tolerance, direction, off-padding, clear, remove.

Every control mirrors one setting of its ``Pane``: input asks the pane to change, and ``Pane.changed``
sets the controls (with their signals blocked, so nothing loops). Using any control makes the pane
active. The strip lies over the pane plot's title row (the title shows in exports instead).
"""

from __future__ import annotations

from PySide6 import QtCore, QtWidgets

from lstmviz.analysis.selection_types import DIRECTIONS
from lstmviz.qt.pane import TRANSFORM_NAMES, TRANSFORMS, Pane
from lstmviz.qt.plain_text import literal
from lstmviz.qt.workspace import Workspace

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


_DIRECTION_NAMES = {"positive": "≥ θ", "negative": "≤ −θ", "both": "≥ θ or ≤ −θ"}
_TRANSFORM_SHORT = {"raw": "raw", "tanh": "tanh", "zscore": "z-score"}
_ACTIVE_STYLE = "QLabel { background: rgb(31,119,180); color: white; border-radius: 3px; padding: 1px 6px; font-weight: bold; }"
_INACTIVE_STYLE = "QLabel { background: rgb(215,215,215); color: rgb(60,60,60); border-radius: 3px; padding: 1px 6px; }"


def _label(text: str, tip: str = "") -> QtWidgets.QLabel:
    label = QtWidgets.QLabel(text)
    label.setToolTip(tip)
    return label


class PaneStrip(QtWidgets.QFrame):
    """A row of controls bound to one pane."""

    HEIGHT = 28

    def __init__(self, workspace: Workspace, pane: Pane, index: int, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.workspace, self.pane, self.index = workspace, pane, index
        self.setAutoFillBackground(True)
        self.setFixedHeight(self.HEIGHT)
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(4, 1, 4, 1)
        layout.setSpacing(4)

        self.name_label = _label(f"Pane {index + 1}", "Click a pane to make it active: the Selection list, "
                                 "exports and matching follow the active pane")
        self.tap_combo = QtWidgets.QComboBox()
        self.tap_combo.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.tap_combo.setToolTip("The recorded signal whose units this pane draws")
        for name in workspace.taps:
            self.tap_combo.addItem(name, name)
            info = workspace.recording.taps[name]
            tip = literal(tap_label(info) + (f"\n{info.description}" if info.description else ""))
            self.tap_combo.setItemData(self.tap_combo.count() - 1, tip, QtCore.Qt.ItemDataRole.ToolTipRole)
        self.transform_combo = QtWidgets.QComboBox()
        for name in TRANSFORMS:
            self.transform_combo.addItem(_TRANSFORM_SHORT[name], name)
        self.transform_combo.setToolTip("Values as recorded, squashed with tanh (as LSTMVis shows them), or "
                                        "z-scored per unit over the whole recording")
        self.threshold_spin = QtWidgets.QDoubleSpinBox()
        self.threshold_spin.setDecimals(3)
        self.threshold_spin.setSingleStep(0.001)
        self.threshold_spin.setRange(0.0, 10000.0)
        self.threshold_spin.setKeyboardTracking(False)
        self.threshold_spin.setToolTip("Threshold θ (step 0.001); or drag the dashed green line on the plot")
        self.tolerance_spin = QtWidgets.QSpinBox()
        self.tolerance_spin.setRange(1, 100)
        self.tolerance_spin.setSuffix(" %")
        self.tolerance_spin.setKeyboardTracking(False)
        self.tolerance_spin.setToolTip("Tolerance: a unit is selected when it is on at least at this share of "
                                       "the brushed positions (100 % = everywhere, LSTMVis's rule)")
        self.direction_combo = QtWidgets.QComboBox()
        for name in DIRECTIONS:
            self.direction_combo.addItem(_DIRECTION_NAMES[name], name)
        self.direction_combo.setToolTip("Which units count as on: above θ, below −θ (negative-going units), or either")
        self.pad_left_spin = self._pad_spin("Off-padding before the brush: positions where selected units must be off "
                                            "(or drag the left ◀ handle on the token row)")
        self.pad_right_spin = self._pad_spin("Off-padding after the brush: positions where selected units must be off "
                                             "(or drag the right ▶ handle on the token row)")
        self.clear_button = QtWidgets.QToolButton(text="Clear")
        self.clear_button.setToolTip("Clear the selection: drop the brush and the units added or removed by hand")
        self.remove_button = QtWidgets.QToolButton(text="✕")
        self.remove_button.setToolTip("Remove this pane")

        #: words between the controls, hidden when the strip is too narrow for them
        self.words = [_label("on for", "Tolerance"), _label("off", "Off-padding before / after the brush"), _label("|")]
        for widget in (
            self.name_label, self.tap_combo, self.transform_combo,
            _label("θ", "Threshold"), self.threshold_spin,
            self.words[0], self.tolerance_spin, self.direction_combo,
            self.words[1], self.pad_left_spin, self.words[2], self.pad_right_spin, self.clear_button,
        ):
            layout.addWidget(widget)
        # when the strip is narrow, the other controls give way before the pane's name and tap
        # (below their natural width, the strip is cut at the right; View > Remove Active Pane stays)
        self.name_label.setStyleSheet(_ACTIVE_STYLE)  # the wider style, to size the label
        for widget in (self.name_label, self.tap_combo):
            widget.ensurePolished()
            widget.setSizePolicy(QtWidgets.QSizePolicy.Policy.Fixed, QtWidgets.QSizePolicy.Policy.Fixed)
            widget.setMinimumWidth(widget.sizeHint().width())
        layout.addStretch(1)
        layout.addWidget(self.remove_button)

        self.tap_combo.activated.connect(lambda i: self._act(pane.set_tap, self.tap_combo.itemData(i)))
        self.transform_combo.activated.connect(lambda i: self._act(pane.set_transform, self.transform_combo.itemData(i)))
        self.threshold_spin.valueChanged.connect(lambda v: self._act(pane.set_threshold, round(v, 3)))
        self.tolerance_spin.valueChanged.connect(lambda v: self._act(pane.set_tolerance, v / 100.0))
        self.direction_combo.activated.connect(lambda i: self._act(pane.set_direction, self.direction_combo.itemData(i)))
        self.pad_left_spin.valueChanged.connect(lambda v: self._act(pane.set_padding, v, pane.pad_right))
        self.pad_right_spin.valueChanged.connect(lambda v: self._act(pane.set_padding, pane.pad_left, v))
        self.clear_button.clicked.connect(lambda: self._act(pane.clear_selection))
        self.remove_button.clicked.connect(self._remove)
        pane.changed.connect(self.sync)
        workspace.active_pane_changed.connect(self._active_changed)
        self.sync()

    def detach(self) -> None:
        """Stop following the pane and the workspace (the strip is being removed)."""
        self.pane.changed.disconnect(self.sync)
        self.workspace.active_pane_changed.disconnect(self._active_changed)

    def _active_changed(self, _pane) -> None:
        self._style()

    @staticmethod
    def _pad_spin(tip: str) -> QtWidgets.QSpinBox:
        spin = QtWidgets.QSpinBox()
        spin.setRange(0, 999)
        spin.setKeyboardTracking(False)
        spin.setToolTip(tip)
        return spin

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        words = sum(w.sizeHint().width() + self.layout().spacing() for w in self.words)
        roomy = event.size().width() >= self.layout().sizeHint().width() + (0 if self.words[0].isVisible() else words)
        for word in self.words:
            word.setVisible(roomy)

    def _act(self, setter, *args) -> None:
        self.activate()
        setter(*args)

    def activate(self) -> None:
        if self.pane in self.workspace.panes:
            self.workspace.set_active_pane(self.workspace.panes.index(self.pane))

    def mousePressEvent(self, event) -> None:
        self.activate()
        super().mousePressEvent(event)

    def _remove(self) -> None:
        if self.pane in self.workspace.panes and len(self.workspace.panes) > 1:
            self.workspace.remove_pane(self.workspace.panes.index(self.pane))

    def sync(self) -> None:
        """Show the pane's settings."""
        pane = self.pane
        pairs = (
            (self.tap_combo, lambda: self.tap_combo.setCurrentIndex(max(0, self.tap_combo.findData(pane.tap)))),
            (self.transform_combo, lambda: self.transform_combo.setCurrentIndex(TRANSFORMS.index(pane.transform))),
            (self.threshold_spin, lambda: self.threshold_spin.setValue(pane.threshold)),
            (self.tolerance_spin, lambda: self.tolerance_spin.setValue(round(pane.tolerance * 100))),
            (self.direction_combo, lambda: self.direction_combo.setCurrentIndex(DIRECTIONS.index(pane.direction))),
            (self.pad_left_spin, lambda: self.pad_left_spin.setValue(pane.pad_left)),
            (self.pad_right_spin, lambda: self.pad_right_spin.setValue(pane.pad_right)),
        )
        for widget, apply in pairs:
            with QtCore.QSignalBlocker(widget):
                apply()
        waiting = pane.transform == "zscore" and pane.effective_transform != "zscore"
        self.transform_combo.setToolTip("z-scores are being computed; raw values are shown until then" if waiting
                                        else TRANSFORM_NAMES[pane.transform])
        self.clear_button.setEnabled(pane.brush is not None or bool(pane.added) or bool(pane.removed))
        self.remove_button.setEnabled(len(self.workspace.panes) > 1)
        self._style()

    def _style(self) -> None:
        active = self.workspace.active_pane is self.pane
        self.name_label.setStyleSheet(_ACTIVE_STYLE if active else _INACTIVE_STYLE)
