"""The Attention panel's widget: the current item's attention matrix, the selected decoder step's row, and
the decoder's states beside the matrix.

Top: the matrix ``[T_dec, S]`` of the chosen attention tap for the workspace's current item, decoder steps
top to bottom (labelled with the tokens they emit), source positions left to right (labelled with the
source tokens), one fixed colour scale 0–1 (attention weights are probabilities), the selected decoder step
framed. Bottom: that step's distribution over the source as bars, its arg-max in another colour. Clicking a
row of the matrix, the step box, or Up/Down choose the step; hovering a source token in the main window
marks its column. Right of the matrix, on the same rows, the states of a chosen tap of the decoder's axis
(``decoder/layer1/h`` ...: the window's panes show only the source axis) as a heat map over units, on a
scale symmetric around 0 for the item. Reading one item is a few kilobytes, so it runs on the GUI thread.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from lstmviz.analysis.attention import attention_matrix
from lstmviz.qt.plain_text import escape
from lstmviz.recording import RecordingError

NO_RECORDING = "No recording is open."
NO_ATTENTION = ("This recording has no attention tap (a tap whose units are the item's source positions, "
                "as a sequence-to-sequence model writes: `lstmviz record` of a seq2seq-attn checkpoint).")

_FRAME = QtGui.QColor(255, 64, 64)
_BAR = QtGui.QColor(90, 120, 190)
_BAR_TOP = QtGui.QColor(230, 120, 30)
_HOVER = QtGui.QColor(40, 170, 90)


def attention_taps(recording) -> list[str]:
    """The taps of ``recording`` whose units are source positions, in the recording's order."""
    if recording is None:
        return []
    return [name for name, info in recording.taps.items() if getattr(info, "units_are", "") == "positions"]


def _ticks(labels: list[str]) -> list[list[tuple[float, str]]]:
    return [[(i + 0.5, str(label)) for i, label in enumerate(labels)]]


class AttentionPanel(QtWidgets.QWidget):
    """See the module docstring."""

    #: the panel has something to show: its dock should open
    wants_dock = QtCore.Signal()
    #: an item was drawn (item index)
    shown = QtCore.Signal(int)
    #: the selected decoder step changed (step index within the item)
    step_changed = QtCore.Signal(int)

    def __init__(self, workspace, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.workspace = workspace
        self.item = 0
        self.step = 0
        self.matrix = np.zeros((0, 0), np.float32)
        self.source: list[str] = []
        self.decoder: list[str] = []
        self.hover_column: int | None = None
        self._build()
        workspace.recording_changed.connect(self._recording_changed)
        workspace.item_changed.connect(self._workspace_item_changed)
        workspace.hover_changed.connect(self._hover_changed)
        self._recording_changed(workspace.recording)

    # ------------------------------------------------------------------ building
    def _build(self) -> None:
        self.tap_combo = QtWidgets.QComboBox()
        self.tap_combo.setToolTip("Which attention tap to show")
        self.tap_combo.currentIndexChanged.connect(lambda _i: self._tap_chosen())
        self.state_combo = QtWidgets.QComboBox()
        self.state_combo.setToolTip("A tap of the decoder's axis, drawn beside the matrix: one row per decoder step")
        self.state_combo.currentIndexChanged.connect(lambda _i: self._draw_states())
        self.item_spin = QtWidgets.QSpinBox()
        self.item_spin.setToolTip("The item shown (follows the main window's item)")
        self.item_spin.valueChanged.connect(self._item_chosen)
        self.step_spin = QtWidgets.QSpinBox()
        self.step_spin.setToolTip("The decoder step whose attention is drawn below (click a row, or Up/Down)")
        self.step_spin.valueChanged.connect(self.set_step)
        self.summary = QtWidgets.QLabel()
        self.summary.setTextFormat(QtCore.Qt.TextFormat.RichText)  # ours, with every token escaped
        self.summary.setTextInteractionFlags(QtCore.Qt.TextSelectableByMouse)

        controls = QtWidgets.QHBoxLayout()
        self.tap_label = QtWidgets.QLabel("Tap")
        controls.addWidget(self.tap_label)
        controls.addWidget(self.tap_combo)
        controls.addWidget(QtWidgets.QLabel("Item"))
        controls.addWidget(self.item_spin)
        controls.addWidget(QtWidgets.QLabel("Decoder step"))
        controls.addWidget(self.step_spin)
        controls.addWidget(QtWidgets.QLabel("Decoder states"))
        controls.addWidget(self.state_combo)
        controls.addWidget(self.summary, 1)

        self.plots = pg.GraphicsLayoutWidget()
        self.plots.setBackground("w")
        self.matrix_plot = self.plots.addPlot(row=0, col=0)
        self.matrix_plot.setMenuEnabled(False)
        self.matrix_plot.setMouseEnabled(x=False, y=False)
        self.matrix_plot.hideButtons()
        self.matrix_plot.invertY(True)
        self.matrix_plot.setLabel("left", "decoder step (emits)")
        self.matrix_plot.setLabel("bottom", "source")
        self.image = pg.ImageItem(axisOrder="row-major")
        self.matrix_plot.addItem(self.image)
        colours = pg.colormap.get("viridis")
        self.image.setLookupTable(colours.getLookupTable(0.0, 1.0, 256))
        self.image.setLevels((0.0, 1.0))
        self.colour_bar = pg.ColorBarItem(values=(0.0, 1.0), colorMap=colours, interactive=False, width=12,
                                          label="attention weight")
        self.colour_bar.setImageItem(self.image)
        self.plots.addItem(self.colour_bar, row=0, col=1)  # beside, not inside: both plots keep one width
        self.frame = QtWidgets.QGraphicsRectItem()
        self.frame.setPen(pg.mkPen(_FRAME, width=2))
        self.frame.setZValue(10)
        self.matrix_plot.addItem(self.frame)
        self.matrix_hover = pg.InfiniteLine(angle=90, pen=pg.mkPen(_HOVER, width=2, style=QtCore.Qt.DashLine))
        self.matrix_plot.addItem(self.matrix_hover)

        self.states_plot = self.plots.addPlot(row=0, col=2)
        self.states_plot.setMenuEnabled(False)
        self.states_plot.setMouseEnabled(x=False, y=False)
        self.states_plot.hideButtons()
        self.states_plot.invertY(True)
        self.states_plot.setYLink(self.matrix_plot)
        self.states_plot.getAxis("left").setStyle(showValues=False)
        self.states_plot.setLabel("bottom", "unit")
        self.states_image = pg.ImageItem(axisOrder="row-major")
        self.states_plot.addItem(self.states_image)
        diverging = pg.ColorMap([0.0, 0.5, 1.0], [(30, 70, 200), (255, 255, 255), (200, 30, 30)])
        self.states_image.setLookupTable(diverging.getLookupTable(0.0, 1.0, 256))
        self.states_bar = pg.ColorBarItem(values=(-1.0, 1.0), colorMap=diverging, interactive=False, width=12)
        self.states_bar.setImageItem(self.states_image)
        self.plots.addItem(self.states_bar, row=0, col=3)
        self.states_frame = QtWidgets.QGraphicsRectItem()
        self.states_frame.setPen(pg.mkPen(_FRAME, width=2))
        self.states_frame.setZValue(10)
        self.states_plot.addItem(self.states_frame)
        self.states = np.zeros((0, 0), np.float32)
        self.plots.ci.layout.setColumnStretchFactor(0, 3)
        self.plots.ci.layout.setColumnStretchFactor(2, 2)

        self.row_plot = self.plots.addPlot(row=1, col=0)
        self.row_plot.setMenuEnabled(False)
        self.row_plot.setMouseEnabled(x=False, y=False)
        self.row_plot.hideButtons()
        self.row_plot.setYRange(0.0, 1.0, padding=0.02)
        self.row_plot.setLabel("left", "weight")
        self.row_plot.setXLink(self.matrix_plot)
        self.bars = pg.BarGraphItem(x=[], height=[], width=0.8, brush=_BAR)
        self.row_plot.addItem(self.bars)
        self.row_hover = pg.InfiniteLine(angle=90, pen=pg.mkPen(_HOVER, width=2, style=QtCore.Qt.DashLine))
        self.row_plot.addItem(self.row_hover)
        for plot in (self.matrix_plot, self.row_plot):
            plot.getAxis("left").setWidth(72)
        self.plots.ci.layout.setRowStretchFactor(0, 3)
        self.plots.ci.layout.setRowStretchFactor(1, 1)
        self.plots.scene().sigMouseClicked.connect(self._clicked)

        self.message = QtWidgets.QLabel()
        self.message.setTextFormat(QtCore.Qt.TextFormat.PlainText)  # it may quote a tap name or an error
        self.message.setWordWrap(True)
        self.message.setAlignment(QtCore.Qt.AlignCenter)
        self.stack = QtWidgets.QStackedWidget()
        self.stack.addWidget(self.message)
        view = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(view)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(controls)
        layout.addWidget(self.plots, 1)
        self.stack.addWidget(view)
        outer = QtWidgets.QVBoxLayout(self)
        outer.setContentsMargins(4, 4, 4, 4)
        outer.addWidget(self.stack)
        self.setFocusPolicy(QtCore.Qt.StrongFocus)

    # ------------------------------------------------------------------ recording and item
    @property
    def tap(self) -> str | None:
        return self.tap_combo.currentText() or None

    def _recording_changed(self, recording=None) -> None:
        recording = self.workspace.recording
        taps = attention_taps(recording)
        with QtCore.QSignalBlocker(self.tap_combo):
            self.tap_combo.clear()
            self.tap_combo.addItems(taps)
        self.tap_combo.setVisible(len(taps) > 1)
        self.tap_label.setVisible(len(taps) > 1)
        if recording is None or not taps:
            self.message.setText(NO_RECORDING if recording is None else NO_ATTENTION)
            self.stack.setCurrentIndex(0)
            self.matrix = np.zeros((0, 0), np.float32)
            return
        self.stack.setCurrentIndex(1)
        self._fill_state_taps()
        with QtCore.QSignalBlocker(self.item_spin):
            self.item_spin.setRange(0, max(0, int(recording.n_items) - 1))
        self.item = min(int(self.workspace.item), int(recording.n_items) - 1)
        self.step = 0
        self._draw()
        self.wants_dock.emit()

    def _tap_chosen(self) -> None:
        self._fill_state_taps()
        self._draw()

    def _fill_state_taps(self) -> None:
        """The taps on the attention tap's axis, attention itself left out; the last layer's ``h`` first chosen."""
        recording, tap = self.workspace.recording, self.tap
        names = []
        if recording is not None and tap is not None:
            axis = recording.taps[tap].axis
            names = [name for name, info in recording.taps.items()
                     if info.axis == axis and getattr(info, "units_are", "") != "positions"]
        current = self.state_combo.currentText()
        with QtCore.QSignalBlocker(self.state_combo):
            self.state_combo.clear()
            self.state_combo.addItems(names)
            hidden = [name for name in names if name.endswith("/h")]
            choice = current if current in names else (hidden[-1] if hidden else (names[0] if names else ""))
            self.state_combo.setCurrentText(choice)
        self.state_combo.setEnabled(bool(names))

    def _workspace_item_changed(self, item: int) -> None:
        if attention_taps(self.workspace.recording) and int(item) != self.item:
            self.set_item(int(item))

    def _item_chosen(self, item: int) -> None:
        if int(item) == self.item:
            return
        self.set_item(int(item))
        self.workspace.go_to_item(int(item))

    def set_item(self, item: int) -> None:
        """Show ``item`` from its first decoder step."""
        self.item = int(item)
        self.step = 0
        self.hover_column = None
        self._draw()

    def set_step(self, step: int) -> None:
        """Select decoder step ``step`` (clamped to the item's steps)."""
        if not len(self.matrix):
            return
        step = int(min(max(step, 0), len(self.matrix) - 1))
        changed = step != self.step
        self.step = step
        self._draw_step()
        if changed:
            self.step_changed.emit(step)

    # ------------------------------------------------------------------ drawing
    def _draw(self) -> None:
        recording, tap = self.workspace.recording, self.tap
        if recording is None or tap is None:
            return
        try:
            self.matrix, self.source, decoder = attention_matrix(recording, self.item, tap)
        except (RecordingError, OSError, KeyError, ValueError) as error:
            self.message.setText(f"Cannot read the attention of item {self.item} from tap {tap!r}: {error}")
            self.stack.setCurrentIndex(0)
            return
        self.stack.setCurrentIndex(1)
        steps, width = self.matrix.shape
        self.decoder = list(decoder) if len(decoder) == steps else [f"#{t}" for t in range(steps)]
        with QtCore.QSignalBlocker(self.item_spin):
            self.item_spin.setValue(self.item)
        with QtCore.QSignalBlocker(self.step_spin):
            self.step_spin.setRange(0, max(0, steps - 1))
        self.image.setImage(self.matrix, autoLevels=False, levels=(0.0, 1.0))
        self.image.setRect(QtCore.QRectF(0, 0, width, steps))
        self.matrix_plot.getAxis("bottom").setTicks(_ticks(self.source))
        self.matrix_plot.getAxis("left").setTicks(_ticks(self.decoder))
        self.row_plot.getAxis("bottom").setTicks(_ticks(self.source))
        self.matrix_plot.setXRange(0, max(width, 1), padding=0)
        self.matrix_plot.setYRange(0, max(steps, 1), padding=0)
        self.step = min(self.step, max(0, steps - 1))
        self._draw_states()
        self._draw_step()
        self._draw_hover()
        self.shown.emit(self.item)

    def _draw_states(self) -> None:
        recording, name = self.workspace.recording, self.state_combo.currentText()
        steps = len(self.matrix)
        if recording is None or not name or name not in recording.taps:
            self.states = np.zeros((0, 0), np.float32)
            self.states_image.clear()
            return
        self.states = np.asarray(recording.item_states(name, self.item), np.float32)
        if len(self.states) != steps:  # not one row per decoder step: a tap of another axis
            self.states = np.zeros((0, 0), np.float32)
            self.states_image.clear()
            return
        finite = self.states[np.isfinite(self.states)]
        bound = float(np.abs(finite).max()) if finite.size else 1.0
        bound = bound if bound > 0 else 1.0
        self.states_image.setImage(self.states, autoLevels=False, levels=(-bound, bound))
        self.states_image.setRect(QtCore.QRectF(0, 0, self.states.shape[1], steps))
        self.states_bar.setLevels((-bound, bound))
        self.states_plot.setXRange(0, self.states.shape[1], padding=0)
        self.states_plot.setLabel("bottom", f"unit of {escape(name)}")

    def _draw_step(self) -> None:
        steps, width = self.matrix.shape
        if not steps:
            return
        with QtCore.QSignalBlocker(self.step_spin):
            self.step_spin.setValue(self.step)
        self.frame.setRect(QtCore.QRectF(0, self.step, width, 1))
        self.states_frame.setVisible(bool(self.states.size))
        if self.states.size:
            self.states_frame.setRect(QtCore.QRectF(0, self.step, self.states.shape[1], 1))
        row = self.matrix[self.step].astype(np.float64)
        top = int(np.argmax(row))
        brushes = [pg.mkBrush(_BAR_TOP if j == top else _BAR) for j in range(width)]
        self.bars.setOpts(x=np.arange(width) + 0.5, height=row, width=0.8, brushes=brushes)
        p = row[row > 0]
        entropy = float(-(p * np.log(p)).sum()) if len(p) else 0.0
        exact = self._item_label("exact")
        self.summary.setText(
            f"item {self.item}: step {self.step} emits <b>{escape(self.decoder[self.step])}</b> · most attention on "
            f"source {top} <b>{escape(self.source[top]) if top < len(self.source) else '?'}</b> ({row[top]:.2f}) · "
            f"entropy {entropy:.2f} nats (uniform {math.log(max(width, 1)):.2f})"
            + (f" · exact: {escape(exact)}" if exact else ""))

    def _item_label(self, name: str) -> str | None:
        recording = self.workspace.recording
        info = recording.annotations.get(name) if recording is not None else None
        if info is None or info.level != "item":
            return None
        try:
            value = recording.annotation(name, self.item, self.item + 1)[0]
        except (RecordingError, OSError, KeyError, IndexError, ValueError):
            return None
        if info.labels:
            return info.labels[int(value)] if 0 <= int(value) < len(info.labels) else None
        return f"{float(value):g}"

    def _hover_changed(self, hover) -> None:
        column = None
        if hover is not None and getattr(hover, "item", None) == self.item and self.workspace.recording is not None:
            start, _stop = self.workspace.recording.item_range(self.item)
            column = int(hover.position) - start
        self.hover_column = column
        self._draw_hover()

    def _draw_hover(self) -> None:
        shown = self.hover_column is not None and 0 <= self.hover_column < self.matrix.shape[1]
        for line in (self.matrix_hover, self.row_hover):
            line.setVisible(shown)
            if shown:
                line.setValue(self.hover_column + 0.5)

    # ------------------------------------------------------------------ gestures
    def step_at(self, scene_pos: QtCore.QPointF) -> int | None:
        """The decoder step under a scene point of the matrix, or None outside it."""
        if not self.matrix_plot.sceneBoundingRect().contains(scene_pos):
            return None
        point = self.matrix_plot.vb.mapSceneToView(scene_pos)
        steps, width = self.matrix.shape
        if not (0 <= point.x() < width and 0 <= point.y() < steps):
            return None
        return int(point.y())

    def _clicked(self, event) -> None:
        step = self.step_at(event.scenePos())
        if step is not None:
            self.set_step(step)

    def keyPressEvent(self, event: QtGui.QKeyEvent) -> None:  # noqa: N802 (Qt's name)
        if event.key() in (QtCore.Qt.Key_Up, QtCore.Qt.Key_Down) and len(self.matrix):
            self.set_step(self.step + (1 if event.key() == QtCore.Qt.Key_Down else -1))
            return
        super().keyPressEvent(event)
