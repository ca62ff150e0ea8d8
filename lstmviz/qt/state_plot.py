"""The select view (LSTMVis's "Select view"): the workspace's panes stacked over one window of positions.

One ``GraphicsLayoutWidget`` holds a ``PanePlot`` per pane (each with its token row) and, under them,
the visible annotation tracks (``AnnotationTrack``), all x-linked, so one export draws every pane.
Each pane's control strip (``PaneStrip``) is a real widget laid over its plot's title row (exports
show the title instead). Hovering shows the position in every pane and the nearest unit of the pane
under the pointer; the wheel scrolls the window (Ctrl: wider / narrower); clicking a pane makes it
active. With "mask annotations by activity" on, track colours fade where few of the active pane's
selected units are on.
"""

from __future__ import annotations

import math

import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from lstmviz.qt.annotation_track import (AnnotationTrack, activity_mask, label_frequencies, label_width,
                                         numeric_range)
from lstmviz.qt.palette import BACKGROUND, FOREGROUND
from lstmviz.qt.pane_plot import LEFT_AXIS_WIDTH, TITLE_HEIGHT, PanePlot, unit_lines
from lstmviz.qt.pane_strip import PaneStrip
from lstmviz.qt.plain_text import escape
from lstmviz.qt.workspace import Workspace
from lstmviz.workspace.hover import Hover

__all__ = ["StatePlot", "unit_lines"]

NO_TAPS = ("This recording has no tap over its positions, so there are no states to draw. "
           "The Recording dock lists what the file holds.")
#: the pointer picks a selected unit over a nearer grey one within this many pixels
HOVER_TOLERANCE_PX = 6
#: the lines of a pane get at least this many pixels (the view asks the window for the room, taking it
#: from the docks), for the first PANES_KEPT_READABLE panes; beyond them, panes share what there is
PANE_DATA_MIN_HEIGHT = 70
PANES_KEPT_READABLE = 3


class StatePlot(pg.GraphicsLayoutWidget):
    """Every pane of the workspace over its window, with tokens and annotation tracks."""

    def __init__(self, workspace: Workspace, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent, border=None)
        self.setBackground(BACKGROUND)
        self.setAntialiasing(False)
        self.workspace = workspace
        self.ci.layout.setContentsMargins(6, 6, 14, 6)
        self.ci.layout.setVerticalSpacing(3)
        self.pane_plots: list[PanePlot] = []
        self.strips: list[PaneStrip] = []
        self.tracks: list[AnnotationTrack] = []
        self._track_ranges: dict[str, tuple[float, float] | None] = {}
        self._layout: tuple | None = None  # (recording, panes, annotation names) last laid out

        self.scene().sigMouseMoved.connect(self._mouse_moved)
        self.scene().sigMouseClicked.connect(self._mouse_clicked)
        workspace.panes_changed.connect(self._rebuild)
        workspace.recording_changed.connect(self._recording_changed)
        workspace.visible_annotations_changed.connect(lambda _: self._rebuild())
        workspace.view_changed.connect(self.redraw)
        workspace.hover_changed.connect(self._show_hover)
        workspace.active_pane_changed.connect(self._active_changed)
        workspace.mask_annotations_changed.connect(lambda _: self._draw_tracks())
        self._active_pane = None
        self._rebuild()

    # ------------------------------------------------------------------ the active pane's plot
    @property
    def active_plot(self) -> PanePlot | None:
        pane = self.workspace.active_pane
        return next((p for p in self.pane_plots if p.pane is pane), self.pane_plots[0] if self.pane_plots else None)

    @property
    def plot(self) -> PanePlot | None:
        return self.active_plot

    # ------------------------------------------------------------------ building
    def export_item(self) -> pg.GraphicsLayout:
        """The graphics item that exports draw: every pane with its tokens, and the tracks."""
        return self.ci

    def _recording_changed(self, recording) -> None:
        self._track_ranges = {}
        self._rebuild()

    def _rebuild(self, *_) -> None:
        """Lay out one plot per pane, then the visible annotation tracks (unless they are laid out already:
        opening a file or a workspace signals the same layout several times, and a plot costs ~20 ms)."""
        ws = self.workspace
        layout = (ws.recording, list(ws.panes), list(ws.visible_annotations))
        if self._layout is not None and _same_layout(layout, self._layout):
            return
        self._layout = layout
        for plot in self.pane_plots:
            plot.detach()
            plot.pane.changed.disconnect(self._pane_changed)
        for strip in self.strips:
            strip.detach()
            strip.hide()
            strip.deleteLater()
        self.ci.clear()
        self.pane_plots, self.strips, self.tracks = [], [], []
        if ws.recording is None:
            return
        for i, pane in enumerate(ws.panes):
            plot = PanePlot(ws, pane, i)
            plot.view_box.wheel_scrolled.connect(self._wheel_scrolled)
            plot.token_axis.dragged.connect(lambda drag, p=pane: self._activate(p))
            if self.pane_plots:
                plot.setXLink(self.pane_plots[0])
            self.ci.addItem(plot, row=i, col=0)
            self.pane_plots.append(plot)
            strip = PaneStrip(ws, pane, i, parent=self.viewport())
            strip.show()
            self.strips.append(strip)
            plot.geometryChanged.connect(lambda plot=plot, strip=strip: self._place_strip(plot, strip))
            pane.changed.connect(self._pane_changed)
        if not self.pane_plots:  # a recording without a tap over its positions: nothing to draw
            self.ci.addLabel(escape(NO_TAPS), row=0, col=0, color=FOREGROUND, size="11pt")
            return
        # one left-axis width for panes and tracks keeps their x aligned; wide enough for every track's name
        tracks = list(ws.annotation_tracks())
        axis_width = label_width([info.name for info in tracks], LEFT_AXIS_WIDTH)
        for plot in self.pane_plots:
            plot.getAxis("left").setWidth(axis_width)
        for row, info in enumerate(tracks, start=len(ws.panes)):
            value_range = None
            if info.kind == "numeric":
                if info.name not in self._track_ranges:
                    self._track_ranges[info.name] = numeric_range(ws.recording, info.name)
                value_range = self._track_ranges[info.name]
            annotation = info.name in ws.recording.annotations  # not a tap shown as a track (few labels)
            frequencies = label_frequencies(ws.recording, info.name) if info.kind == "categorical" and annotation else None
            track = AnnotationTrack(info.name, info.labels, info.description, info.kind, value_range, frequencies)
            track.set_label_width(axis_width)
            track.setXLink(self.pane_plots[0])
            self.ci.addItem(track, row=row, col=0)
            self.tracks.append(track)
        self._active_pane = ws.active_pane
        self.redraw()

    def _place_strip(self, plot: PanePlot, strip: PaneStrip) -> None:
        rect = self.mapFromScene(plot.sceneBoundingRect()).boundingRect()
        strip.setGeometry(rect.left() + 2, rect.top() + 1, rect.width() - 4, strip.HEIGHT)

    def resizeEvent(self, ev) -> None:
        super().resizeEvent(ev)
        for plot, strip in zip(getattr(self, "pane_plots", ()), getattr(self, "strips", ())):
            self._place_strip(plot, strip)
        if getattr(self, "workspace", None) is not None and self.workspace.recording is not None:
            self._keep_panes_readable()  # now measured on the laid-out plots

    # ------------------------------------------------------------------ drawing
    def redraw(self) -> None:
        """Draw every pane and track over the workspace's current window."""
        if self.workspace.recording is None:
            self.setMinimumHeight(0)
            return
        for plot in self.pane_plots:
            plot.redraw()
        self._draw_tracks()
        self._keep_panes_readable()

    def _keep_panes_readable(self) -> None:
        """Ask for the height that gives the first ``PANES_KEPT_READABLE`` panes ``PANE_DATA_MIN_HEIGHT``
        pixels of lines each (with their title row, value axis and token row) and every track its row:
        a Match or Probes dock opening under three panes squeezed them to a few pixels of overlapping
        tick labels."""
        layout = self.ci.layout
        spacing = layout.verticalSpacing()
        height = 0.0
        for plot in self.pane_plots[:PANES_KEPT_READABLE]:
            if plot.view_box.height() > 0:  # laid out: what the title, axes and token row take
                around = plot.geometry().height() - plot.view_box.height()
            else:
                around = TITLE_HEIGHT + plot.getAxis("top").height() + plot.token_axis.height()
            height += around + PANE_DATA_MIN_HEIGHT
        height += sum(track.HEIGHT for track in self.tracks)
        rows = min(len(self.pane_plots), PANES_KEPT_READABLE) + len(self.tracks)
        _, top, _, bottom = layout.getContentsMargins()
        height += spacing * max(0, rows - 1) + top + bottom + 2 * self.frameWidth()
        height = int(math.ceil(height)) if self.pane_plots else 0
        if height != self.minimumHeight():
            self.setMinimumHeight(height)

    def _pane_changed(self) -> None:
        if self.sender() is self.workspace.active_pane:
            self._draw_tracks()

    def _draw_tracks(self) -> None:
        ws = self.workspace
        if ws.recording is None or not self.tracks:
            return
        mask = None
        pane = ws.active_pane
        if ws.mask_annotations and pane is not None and pane.selection is not None and len(pane.selection):
            mask = activity_mask(pane.active_counts(), len(pane.selection))
        for track in self.tracks:
            track.set_values(ws.window_start, ws.annotation_window(track.name), mask)

    def _active_changed(self, pane) -> None:
        if pane is not self._active_pane:
            self._active_pane = pane
            for plot in self.pane_plots:
                plot.redraw()
            self._draw_tracks()

    # ------------------------------------------------------------------ hover, clicks and wheel
    def _plot_at(self, scene_pos: QtCore.QPointF) -> tuple[int, PanePlot] | None:
        for i, plot in enumerate(self.pane_plots):
            if plot.sceneBoundingRect().contains(scene_pos):
                return i, plot
        return None

    def _mouse_moved(self, scene_pos: QtCore.QPointF) -> None:
        ws = self.workspace
        for i, plot in enumerate(self.pane_plots):
            if plot.view_box.sceneBoundingRect().contains(scene_pos):
                point = plot.view_box.mapSceneToView(scene_pos)
                tolerance = HOVER_TOLERANCE_PX * plot.view_box.viewPixelSize()[1]
                ws.set_hover(point.x(), point.y(), pane=i, tolerance=tolerance)
                return
        if self.pane_plots:
            items = [p.token_axis for p in self.pane_plots] + [t.vb for t in self.tracks]
            if any(item.sceneBoundingRect().contains(scene_pos) for item in items):
                ws.set_hover(self.pane_plots[0].view_box.mapSceneToView(scene_pos).x(), None)
                return
        ws.set_hover(None)

    def _mouse_clicked(self, ev) -> None:
        found = self._plot_at(ev.scenePos())
        if found is not None:
            self.workspace.set_active_pane(found[0])

    def _activate(self, pane) -> None:
        if pane in self.workspace.panes:
            self.workspace.set_active_pane(self.workspace.panes.index(pane))

    def leaveEvent(self, event: QtCore.QEvent) -> None:
        self.workspace.set_hover(None)
        super().leaveEvent(event)

    def _show_hover(self, hover: Hover | None) -> None:
        for plot in self.pane_plots:
            plot.show_hover(hover)
        for track in self.tracks:
            track.show_label(None if hover is None else hover.labels.get(track.name))

    def _wheel_scrolled(self, steps: int, ctrl: bool) -> None:
        ws = self.workspace
        if ctrl:
            ws.set_window_width(ws.window_width + 10 * steps)
        else:
            ws.scroll_by(max(1, ws.window_width // 20) * steps)


def _same_layout(a: tuple, b: tuple) -> bool:
    """The same recording and pane objects (not equal ones: ids of dead objects are reused) and names."""
    return (a[0] is b[0] and len(a[1]) == len(b[1]) and all(x is y for x, y in zip(a[1], b[1]))
            and a[2] == b[2])


def _active_item(name: str) -> property:
    return property(lambda self: getattr(self.active_plot, name), doc=f"``{name}`` of the active pane's plot")


# the items of the active pane's plot, as a one-pane view had them
for _name in ("curve", "units_curve", "selected_curve", "highlight_curve", "token_axis", "view_box", "hover_label",
              "bands", "threshold_line", "mirror_line", "boundary_lines", "hover_line"):
    setattr(StatePlot, _name, _active_item(_name))
