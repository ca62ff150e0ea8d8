"""The state plot (LSTMVis's "Select view" line plot): every unit of one tap over the window.

All units are drawn as ONE ``PlotCurveItem`` with a NaN after each unit's line (``connect="finite"``)
(one item per unit costs 6-13x more per frame; see perf_limits L17/L18). Lines are dark grey with
opacity 1/sqrt(D), antialiasing off, over a dashed zero line; the y range is symmetric when any value
is negative. The window's tokens are the bottom axis (``TokenAxis``), categorical annotations are colour
tracks under it (``AnnotationTrack``), and hovering shows position, token and the nearest unit's value.

The view only draws what the workspace gives it and turns gestures (hover, wheel) into requests.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from lstmviz.qt.annotation_track import AnnotationTrack
from lstmviz.qt.hover_text import describe_hover
from lstmviz.qt.palette import (
    AXIS,
    BACKGROUND,
    FOREGROUND,
    HIGHLIGHT,
    HOVER_LINE,
    ITEM_BOUNDARY,
    SELECTED_UNITS,
    UNIT_LINE,
    ZERO_LINE,
    unit_line_alpha,
)
from lstmviz.qt.token_axis import TokenAxis
from lstmviz.qt.workspace import Hover, Workspace

LEFT_AXIS_WIDTH = 92


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


class StatePlot(pg.GraphicsLayoutWidget):
    """Line plot of all units of the workspace's tap over its window, with tokens and colour tracks."""

    def __init__(self, workspace: Workspace, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent, border=None)
        self.setBackground(BACKGROUND)
        self.setAntialiasing(False)
        self.workspace = workspace
        self.ci.layout.setContentsMargins(6, 6, 14, 6)
        self.ci.layout.setVerticalSpacing(3)

        self.token_axis = TokenAxis()
        self.view_box = WindowViewBox()
        self.plot: pg.PlotItem = self.addPlot(
            row=0, col=0, viewBox=self.view_box, axisItems={"bottom": self.token_axis}
        )
        self.plot.hideButtons()
        self.plot.setMenuEnabled(False)
        self.plot.showAxis("top")
        for name in ("left", "top"):
            _styled_axis(self.plot.getAxis(name))
        self.plot.getAxis("left").setWidth(LEFT_AXIS_WIDTH)
        self.plot.getAxis("top").setStyle(tickLength=-4)
        self.plot.getAxis("left").setStyle(tickLength=-4)

        self.zero_line = pg.InfiniteLine(pos=0.0, angle=0, pen=pg.mkPen(ZERO_LINE, width=1, style=QtCore.Qt.PenStyle.DashLine))
        self.boundary_lines = pg.PlotCurveItem(
            pen=pg.mkPen(ITEM_BOUNDARY, width=1.5, style=QtCore.Qt.PenStyle.DashLine), connect="pairs", antialias=False
        )
        self.curve = pg.PlotCurveItem(antialias=False)
        self.highlight_curve = pg.PlotCurveItem(pen=pg.mkPen(HIGHLIGHT, width=2), antialias=True)
        # the units the user asked to see, in colour over the grey lines (one item for all of them)
        self.units_curve = pg.PlotCurveItem(pen=pg.mkPen(SELECTED_UNITS, width=1.8), antialias=True)
        self.hover_line = pg.InfiniteLine(angle=90, pen=pg.mkPen(HOVER_LINE, width=1))
        self.hover_line.hide()
        for item in (self.zero_line, self.boundary_lines, self.curve, self.units_curve, self.highlight_curve,
                     self.hover_line):
            self.plot.addItem(item, ignoreBounds=True)
        # the read-out sits in the view box's pixel frame (not the data frame), on an opaque card
        self.hover_label = pg.TextItem(
            anchor=(0, 0), color=FOREGROUND, fill=pg.mkBrush(*BACKGROUND, 225), border=pg.mkPen(AXIS)
        )
        self.hover_label.setParentItem(self.view_box)
        self.hover_label.setPos(6, 4)
        self.hover_label.setZValue(20)
        self.hover_label.hide()

        self.tracks: list[AnnotationTrack] = []

        self.view_box.wheel_scrolled.connect(self._wheel_scrolled)
        self.scene().sigMouseMoved.connect(self._mouse_moved)
        workspace.recording_changed.connect(self._rebuild_tracks)
        workspace.view_changed.connect(self.redraw)
        workspace.hover_changed.connect(self._show_hover)
        self._rebuild_tracks()
        self.redraw()

    # ------------------------------------------------------------------ drawing
    def export_item(self) -> pg.GraphicsLayout:
        """The graphics item that exports draw: the plot with its tokens and colour tracks."""
        return self.ci

    def redraw(self) -> None:
        """Draw the workspace's current window."""
        ws = self.workspace
        values = ws.values()
        start, _ = ws.window_range()
        n, units = values.shape
        if n == 0 or units == 0:
            self.curve.setData([], [])
        else:
            self.curve.setPen(pg.mkPen((*UNIT_LINE, unit_line_alpha(units)), width=1))
            self.curve.setData(*unit_lines(start, values), connect="finite")
        chosen = [u for u in ws.highlighted_units if u < units]
        if n and chosen:
            self.units_curve.setData(*unit_lines(start, values[:, chosen]), connect="finite")
        else:
            self.units_curve.setData([], [])
        low, high = ws.value_range()
        self.plot.setXRange(ws.window_start - 0.5, ws.window_start + ws.window_width - 0.5, padding=0)
        self.plot.setYRange(low, high, padding=0.03)
        self.zero_line.setVisible(low < 0 < high)
        starts = ws.item_starts()
        if starts:
            bx = np.repeat(np.asarray(starts, dtype=np.float64) - 0.5, 2)
            by = np.tile([low - abs(high - low), high + abs(high - low)], len(starts))
            self.boundary_lines.setData(bx, by)
        else:
            self.boundary_lines.setData([], [])
        self.token_axis.set_tokens(ws.window_start, ws.tokens(), starts)
        for track in self.tracks:
            track.set_values(ws.window_start, ws.annotation_window(track.name))
        info = ws.tap_info()
        if info is None:
            self.plot.setTitle(None)
            self.plot.setLabel("left", "")
        else:
            layer = f" · layer {info.layer}" if info.layer is not None else ""
            self.plot.setTitle(
                f"{info.name} · {info.units} units{layer} · {'tanh of ' if ws.transform == 'tanh' else ''}recorded values",
                color=FOREGROUND,
                size="10pt",
            )
            self.plot.setLabel("left", "tanh(value)" if ws.transform == "tanh" else "value", color=FOREGROUND)
        self._show_hover(ws.hover)

    def _rebuild_tracks(self, *_):
        for track in self.tracks:
            self.ci.removeItem(track)
        self.tracks = []
        for row, info in enumerate(self.workspace.categorical_tracks(), start=1):
            track = AnnotationTrack(info.name, info.labels, info.description)
            track.getAxis("left").setWidth(LEFT_AXIS_WIDTH)
            track.setXLink(self.plot)
            self.ci.addItem(track, row=row, col=0)
            self.tracks.append(track)

    # ------------------------------------------------------------------ hover and wheel
    def _mouse_moved(self, scene_pos: QtCore.QPointF) -> None:
        ws = self.workspace
        if self.view_box.sceneBoundingRect().contains(scene_pos):
            point = self.view_box.mapSceneToView(scene_pos)
            ws.set_hover(point.x(), point.y())
            return
        for item in [self.token_axis, *(t.vb for t in self.tracks)]:
            if item.sceneBoundingRect().contains(scene_pos):
                ws.set_hover(self.view_box.mapSceneToView(scene_pos).x(), None)
                return
        ws.set_hover(None)

    def leaveEvent(self, event: QtCore.QEvent) -> None:
        self.workspace.set_hover(None)
        super().leaveEvent(event)

    def _show_hover(self, hover: Hover | None) -> None:
        self.token_axis.set_highlight(None if hover is None else hover.position)
        if hover is None:
            self.hover_line.hide()
            self.highlight_curve.setData([], [])
            self.hover_label.hide()
            for track in self.tracks:
                track.show_label(None)
            return
        self.hover_line.setPos(hover.position)
        self.hover_line.show()
        if hover.unit is not None:
            start, stop = self.workspace.window_range()
            self.highlight_curve.setData(
                np.arange(start, stop, dtype=np.float64), self.workspace.values()[:, hover.unit]
            )
        else:
            self.highlight_curve.setData([], [])
        self.hover_label.setHtml(describe_hover(hover))
        self.hover_label.show()
        for track in self.tracks:
            track.show_label(hover.labels.get(track.name))

    def _wheel_scrolled(self, steps: int, ctrl: bool) -> None:
        ws = self.workspace
        if ctrl:
            ws.set_window_width(ws.window_width + 10 * steps)
        else:
            ws.scroll_by(max(1, ws.window_width // 20) * steps)


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
