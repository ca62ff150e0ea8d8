"""One pane's plot: every unit of its tap over the window, its selection, threshold and token row.

All units are ONE ``PlotCurveItem`` with a NaN after each unit's line (``connect="finite"``; one item
per unit costs 6-13x more per frame, see perf_limits L17/L18), dark grey with opacity 1/sqrt(D),
antialiasing off, its pixels kept (``CachedCurve``) so that changing the selection does not redraw it. The selected
units are a second single curve item in red (2 px while few are selected, else 1 px: thick lines cost
Qt's software raster several times more), the units asked for with View > Highlight Units a
third; the units of both are numbered at the right end of their lines, and a legend card says what
the colours mean (``UnitLabels``). The brushed range and its padding are bands over the plot (``SelectionBands``); the threshold
is a draggable horizontal line (mirrored at -θ for the negative direction). The bottom axis is the
token row (``TokenAxis``) where the brush is drawn (``BrushGesture``).

The plot only draws what its pane and the workspace give it; redrawing re-sets the big curve only
when the window's values changed.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore

from lstmviz.qt.brush_gesture import BrushGesture
from lstmviz.qt.cached_curve import CachedCurve
from lstmviz.qt.hover_text import describe_hover
from lstmviz.qt.palette import (
    AXIS,
    BACKGROUND,
    FOREGROUND,
    HIGHLIGHT,
    HIGHLIGHTED_UNITS,
    HOVER_LINE,
    ITEM_BOUNDARY,
    SELECTION,
    THRESHOLD,
    UNIT_LINE,
    ZERO_LINE,
    unit_line_alpha,
)
from lstmviz.qt.pane import TRANSFORM_NAMES, Pane
from lstmviz.qt.plain_text import escape
from lstmviz.qt.selection_bands import SelectionBands
from lstmviz.qt.token_axis import TokenAxis
from lstmviz.qt.unit_labels import UnitLabels
from lstmviz.qt.workspace import Workspace
from lstmviz.workspace.hover import Hover

LEFT_AXIS_WIDTH = 92
#: the title row (covered on screen by the pane's control strip; shown in exports)
TITLE_HEIGHT = 30
#: pen width of the selected units' lines while at most THICK_SELECTION_MAX units are selected (else 1)
SELECTED_WIDTH = 2
THICK_SELECTION_MAX = 12
PROBLEM_TEXT = (180, 40, 40)
THRESHOLD_TIP = "Threshold θ: drag the line (or type it in the pane's θ box); units above it count as on"


class WindowViewBox(pg.ViewBox):
    """A ViewBox that does not pan or zoom itself: the wheel asks to scroll the window instead."""

    #: wheel steps (positive = towards later positions) and whether Ctrl was held
    wheel_scrolled = QtCore.Signal(int, bool)

    def __init__(self):
        super().__init__(enableMenu=False, defaultPadding=0.0)
        self.setMouseEnabled(x=False, y=False)

    def wheelEvent(self, ev, axis=None):
        steps = -round(ev.delta() / 120) or (-1 if ev.delta() > 0 else 1)
        ctrl = bool(ev.modifiers() & QtCore.Qt.KeyboardModifier.ControlModifier)
        self.wheel_scrolled.emit(steps, ctrl)
        ev.accept()


def _styled_axis(axis: pg.AxisItem) -> None:
    axis.setPen(pg.mkPen(AXIS))
    axis.setTextPen(pg.mkPen(FOREGROUND))


def _threshold_line() -> pg.InfiniteLine:
    line = pg.InfiniteLine(
        angle=0, movable=True,
        pen=pg.mkPen(THRESHOLD, width=1.5, style=QtCore.Qt.PenStyle.DashLine),
        hoverPen=pg.mkPen(THRESHOLD, width=3),
        label="θ {value:.3f}",
        labelOpts={"position": 0.95, "color": THRESHOLD, "anchors": [(1, 1), (1, 1)],
                   "fill": pg.mkBrush(*BACKGROUND, 200)},
    )
    line.setToolTip(THRESHOLD_TIP)
    line.setZValue(30)
    return line


class PanePlot(pg.PlotItem):
    """The plot of one pane, with its token row as the bottom axis."""

    def __init__(self, workspace: Workspace, pane: Pane, index: int):
        self.token_axis = TokenAxis()
        self.view_box = WindowViewBox()
        super().__init__(viewBox=self.view_box, axisItems={"bottom": self.token_axis})
        self.workspace, self.pane, self.index = workspace, pane, index
        self.hideButtons()
        self.setMenuEnabled(False)
        self.showAxis("top")
        for name in ("left", "top"):
            _styled_axis(self.getAxis(name))
        self.getAxis("left").setWidth(LEFT_AXIS_WIDTH)
        # ticks in the values' own units, the units θ is typed and labelled in (no "(x0.001)" rescaling)
        self.getAxis("left").enableAutoSIPrefix(False)
        self.getAxis("top").setStyle(tickLength=-4)
        self.getAxis("left").setStyle(tickLength=-4)

        self.zero_line = pg.InfiniteLine(pos=0.0, angle=0, pen=pg.mkPen(ZERO_LINE, width=1, style=QtCore.Qt.PenStyle.DashLine))
        self.boundary_lines = pg.PlotCurveItem(
            pen=pg.mkPen(ITEM_BOUNDARY, width=1.5, style=QtCore.Qt.PenStyle.DashLine), connect="pairs", antialias=False
        )
        self.bands = SelectionBands()
        # the grey lines change only with the window: their pixels are kept while the selection changes
        # (an opaque image, so the curve is the lowest item and the bands lie over it)
        self.curve = CachedCurve(antialias=False)
        self.curve.setZValue(-20)
        self.units_curve = pg.PlotCurveItem(pen=pg.mkPen(HIGHLIGHTED_UNITS, width=1.8), antialias=True)
        self.selected_curve = pg.PlotCurveItem(pen=pg.mkPen(SELECTION, width=2), antialias=False)
        self.highlight_curve = pg.PlotCurveItem(pen=pg.mkPen(HIGHLIGHT, width=2.5), antialias=True)
        self.hover_line = pg.InfiniteLine(angle=90, pen=pg.mkPen(HOVER_LINE, width=1))
        self.hover_line.hide()
        self.threshold_line = _threshold_line()
        self.mirror_line = _threshold_line()
        for item in (self.bands, self.zero_line, self.boundary_lines, self.curve, self.units_curve,
                     self.selected_curve, self.highlight_curve, self.hover_line, self.threshold_line,
                     self.mirror_line):
            self.addItem(item, ignoreBounds=True)
        self.threshold_line.sigDragged.connect(lambda line: self._threshold_dragged(line.value()))
        self.mirror_line.sigDragged.connect(lambda line: self._threshold_dragged(-line.value()))
        # the read-out sits in the view box's pixel frame (not the data frame), on an opaque card
        self.hover_label = pg.TextItem(
            anchor=(0, 0), color=FOREGROUND, fill=pg.mkBrush(*BACKGROUND, 225), border=pg.mkPen(AXIS)
        )
        self.hover_label.setParentItem(self.view_box)
        self.hover_label.setPos(6, 4)
        self.hover_label.setZValue(40)
        self.hover_label.hide()
        # why part of the window is blank: a read of the recording failed (plain text, see GuardedRecording)
        self.problem_label = pg.TextItem(anchor=(0, 0), color=PROBLEM_TEXT, fill=pg.mkBrush(*BACKGROUND, 235),
                                         border=pg.mkPen(PROBLEM_TEXT))
        self.problem_label.setParentItem(self.view_box)
        self.problem_label.setPos(6, 4)
        self.problem_label.setZValue(35)
        self.problem_label.hide()
        self.setTitle("")
        self.gesture = BrushGesture(pane, self.token_axis)
        self._drawn_values: np.ndarray | None = None
        self._ranges: tuple | None = None
        self._drawn_selected: tuple | None = None
        self._labelled: tuple | None = None
        self.unit_labels = UnitLabels(self)
        self._tokens_key: tuple | None = None
        self._title = self._left_label = None
        pane.changed.connect(self.redraw)
        pane.emphasis_changed.connect(self._emphasis_changed)

    def detach(self) -> None:
        """Stop following the pane (the plot is being taken out of the view)."""
        self.pane.changed.disconnect(self.redraw)
        self.pane.emphasis_changed.disconnect(self._emphasis_changed)

    def _emphasis_changed(self, _unit) -> None:
        self.show_hover(self.workspace.hover)

    # ------------------------------------------------------------------ drawing
    def redraw(self) -> None:
        """Draw the pane over the workspace's current window."""
        ws, pane = self.workspace, self.pane
        if ws.recording is None:
            return
        values = pane.values()
        start, _ = ws.window_range()
        n, units = values.shape
        if values is not self._drawn_values:
            if n == 0 or units == 0:
                self.curve.setData([], [])
            else:
                self.curve.setPen(pg.mkPen((*UNIT_LINE, unit_line_alpha(units)), width=1))
                self.curve.setData(*unit_lines(start, values), connect="finite")
            self._drawn_values = values
        active = pane is ws.active_pane
        chosen = [u for u in ws.highlighted_units if u < units] if active else []
        _set_lines(self.units_curve, start, values, chosen)
        selection = pane.selection
        selected = [] if selection is None else sorted(set(selection.units.tolist()))
        if (id(values), selected) != self._drawn_selected:
            # a thick pen costs Qt's software raster ~3x a 1-pixel one: thick only while few are selected
            width = SELECTED_WIDTH if len(selected) <= THICK_SELECTION_MAX else 1
            self.selected_curve.setPen(pg.mkPen(SELECTION, width=width))
            _set_lines(self.selected_curve, start, values, selected)
            self._drawn_selected = (id(values), selected)
        self.bands.set_bands(pane.brush, pane.pad_left, pane.pad_right)
        self.token_axis.set_selection_marks(pane.brush, pane.pad_left, pane.pad_right)
        self.token_axis.set_shading(pane.active_counts() if selected else None, len(selection or ()))

        low, high = pane.value_range()
        ranges = ((ws.window_start - 0.5, ws.window_start + ws.window_width - 0.5), (low, high))
        if ranges != self._ranges:  # setting even an equal range would drop the grey curve's pixmap cache
            self.setXRange(*ranges[0], padding=0)
            self.setYRange(low, high, padding=0.03)
            self._ranges = ranges
        labelled = (id(values), selected, chosen, ws.window_range())
        if labelled != self._labelled:  # placed in the new value range (and again when it is resized)
            self.unit_labels.set_units(start, values, [(SELECTION, "selected", selected),
                                                       (HIGHLIGHTED_UNITS, "highlighted", chosen)])
            self._labelled = labelled
        self.zero_line.setVisible(low < 0 < high)
        theta = pane.threshold
        self.threshold_line.setValue(theta)
        self.mirror_line.setValue(-theta)
        self.threshold_line.setVisible(pane.direction in ("positive", "both"))
        self.mirror_line.setVisible(pane.direction in ("negative", "both"))
        starts = ws.item_starts()
        if starts:
            bx = np.repeat(np.asarray(starts, dtype=np.float64) - 0.5, 2)
            by = np.tile([low - abs(high - low), high + abs(high - low)], len(starts))
            self.boundary_lines.setData(bx, by)
        else:
            self.boundary_lines.setData([], [])
        if (ws.window_start, ws.window_range(), starts) != self._tokens_key:
            self.token_axis.set_tokens(ws.window_start, ws.tokens(), starts)
            self._tokens_key = (ws.window_start, ws.window_range(), starts)
        self._update_title()
        self._show_problems()
        self.show_hover(ws.hover)

    def _show_problems(self) -> None:
        problems = self.workspace.read_problems(self.pane.tap)
        if not problems:
            self.problem_label.hide()
            return
        self.problem_label.setText("Cannot read this part of the recording: " + " ".join(problems))
        self.problem_label.setTextWidth(max(200.0, self.view_box.width() - 12))
        self.problem_label.show()

    def _update_title(self) -> None:
        """The title (shown in exports; the strip covers it on screen) names the pane, tap and transform.

        It leaves out what changes while dragging (θ is on its line, the brush is drawn): a new title
        re-lays out the plot, which would drop the grey curve's pixmap cache on every move.
        """
        pane = self.pane
        info = pane.tap_info()
        transform = TRANSFORM_NAMES[pane.effective_transform]
        if pane.effective_transform != pane.transform:
            transform += " (z-scores are being computed)"
        title = " · ".join([f"Pane {self.index + 1}", info.name, f"{info.units} units", transform])
        if title != self._title:
            self.setTitle(escape(title), color=FOREGROUND, size="10pt")
            self._title = title
        label = {"raw": "value", "tanh": "tanh(value)", "zscore": "z-score"}[pane.effective_transform]
        if label != self._left_label:
            self.setLabel("left", label, color=FOREGROUND)
            self._left_label = label

    def _threshold_dragged(self, value: float) -> None:
        self.workspace.set_active_pane(self.workspace.panes.index(self.pane))
        self.pane.set_threshold(round(abs(float(value)), 3))

    # ------------------------------------------------------------------ hover
    def show_hover(self, hover: Hover | None) -> None:
        """Mark the hovered position; in the hovered pane also the unit and the read-out card."""
        self.token_axis.set_highlight(None if hover is None else hover.position)
        mine = hover is not None and hover.pane == self.index
        unit = hover.unit if mine and hover.unit is not None else self.pane.emphasized
        values = self.pane.values() if self.workspace.recording is not None else None
        if unit is not None and values is not None and unit < values.shape[1]:
            start, stop = self.workspace.window_range()
            self.highlight_curve.setData(np.arange(start, stop, dtype=np.float64), values[:, unit])
        else:
            self.highlight_curve.setData([], [])
        if hover is None:
            self.hover_line.hide()
            self.hover_label.hide()
            self.unit_labels.set_legend_visible(True)
            return
        self.hover_line.setPos(hover.position)
        self.hover_line.show()
        if mine:
            self.hover_label.setHtml(describe_hover(hover))
            self.hover_label.show()
        else:
            self.hover_label.hide()
        self.unit_labels.set_legend_visible(not mine)


def _set_lines(curve: pg.PlotCurveItem, start: int, values: np.ndarray, units: list[int]) -> None:
    if values.shape[0] and units:
        curve.setData(*unit_lines(start, values[:, units]), connect="finite")
    else:
        curve.setData([], [])


def unit_lines(start: int, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """x and y of every unit's line, one after another, each followed by a NaN that breaks the line.

    ``values`` is ``[positions, units]``; the result has ``units * (positions + 1)`` points, for one
    ``PlotCurveItem`` with ``connect="finite"`` (2-3x faster to path than a boolean connect array).
    """
    n, units = values.shape
    x = np.empty((units, n + 1), dtype=np.float64)
    x[:, :n] = np.arange(start, start + n, dtype=np.float64)
    x[:, n] = np.nan
    y = np.empty((units, n + 1), dtype=np.float64)
    y[:, :n] = values.T
    y[:, n] = np.nan
    return x.ravel(), y.ravel()
