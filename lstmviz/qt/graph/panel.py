"""The Graph panel: the current item's graph, node-set brushing with the Select rule, and graph match.

What it shows: the graph of the item at the window's position (the item box and the window's item
navigation move it) on a graph level (the input graph, or a pooled level), laid out from stored
coordinates or a cached force-directed layout, its nodes coloured by the mean of the selected units
(sign times the value, in the active pane's transform) or by a node annotation, with a legend; the
hovered node's name, annotation values and unit values underneath.

Brushing: a click picks a node (shift adds), a left drag draws a lasso (shift adds), and with "k-hop
ball" a click picks the ball of k hops around the node. The node-set Select rule
(``graph_selection.select_node_units``: on at ``ceil(tolerance·|S|)`` nodes of the set, off on the
``ring``-hop boundary; threshold, tolerance and direction are the active pane's) runs on every brush;
its units become the workspace's highlighted units, so the unit-lines view draws them.

Match: ``graph_match`` over every graph of the recording in a worker (progress, Cancel), the top
matches drawn as thumbnails (a click shows that graph with the match brushed), and the aggregate table
of a node annotation over the matched nodes.

Perturb (the tab beside the matches): the recording's model (its checkpoint, with the graph rebuilt from
the provenance's dataset and checked against the recording; ``lstmviz.perturb.graph_live``) re-runs this
graph with the selected units of the brushed nodes ablated, clamped or pushed, in a worker; the canvas
colours nodes by ‖Δ‖ of the chosen tap and the box draws the largest ‖Δ‖ per hop distance from the
edited nodes against the engine's bound (ChebNet: K − 1 hops per layer). The panel only reads the workspace and its own state
(``GraphSettings`` in ``state.py``); a recording whose positions are not graph nodes gets a sentence.
"""

from __future__ import annotations

import threading
import time

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from lstmviz.errors import describe, expected_errors
from lstmviz.qt.binding import StateBinding
from lstmviz.qt.checkpoint_dialog import LocatesCheckpoint
from lstmviz.qt.graph import data
from lstmviz.qt.graph.canvas import GraphCanvas, colour_table
from lstmviz.qt.graph.perturb_box import GraphPerturbBox
from lstmviz.qt.graph.state import GRAPH_RANGES, GraphSettings
from lstmviz.qt.graph.thumbnails import ThumbnailGrid
from lstmviz.qt.palette import CATEGORICAL
from lstmviz.qt.task_panel import TaskPanel, duration, labelled

NO_GRAPH = ("This recording has no graph: its positions are {kind}, not the nodes of a graph. The Graph "
            "view draws recordings of graph models (format v3, a graph axis); the unit-lines view above "
            "shows every recording.")
NO_RECORDING = "Open a recording of a graph model to see its graphs here."
MATCH_LIMIT = 200
UNITS_COLOUR = "selected units (mean)"
MISSING_COLOUR = QtGui.QColor(235, 235, 235)


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def _hex(rgb) -> str:
    return "#%02x%02x%02x" % tuple(int(c) for c in rgb[:3])


class GraphPanel(LocatesCheckpoint, TaskPanel):
    """See the module docstring."""

    #: the panel has something to show: its dock should open
    wants_dock = QtCore.Signal()
    #: the brushed node set changed (int64 array of item-local nodes)
    brushed_changed = QtCore.Signal(object)
    #: the node-set selection changed (a ``Selection``, or None)
    selection_changed = QtCore.Signal(object)
    #: match results arrived (``GraphMatchResults``)
    matches_ready = QtCore.Signal(object)
    #: the drawn graph changed (item, level)
    graph_shown = QtCore.Signal(int, str)
    #: a perturbation's effect arrived (``lstmviz.perturb.graph.GraphEffect``)
    perturbed = QtCore.Signal(object)

    SUPERSEDED = "The match was superseded by another request; press Match again."

    def __init__(self, workspace, parent: QtWidgets.QWidget | None = None):
        super().__init__(workspace, parent)
        self.layouts = data.LayoutCache()
        self.corpora = data.CorpusCache()
        self._layout_lock = threading.Lock()
        self.item = 0
        self.level = data.MAIN_AXIS
        self.geometry = None
        self.brushed = np.zeros(0, np.int64)
        self.selection = None
        self.results = None
        self.aggregate_table = None
        self._values_key = None
        self._values = None
        self._colours = colour_table()
        self._effect_colours = [QtGui.QColor(int(255 - 55 * t), int(255 - 215 * t), int(255 - 225 * t))
                                for t in np.linspace(0.0, 1.0, 64)]
        self._axes: list[str] = []
        self._index_cache: dict = {}
        self._live = None  # (recording, LiveGraph) of the last perturbation
        self._checkpoint = None  # the checkpoint file the user located (None: the recording's own)
        self.effect = None

        self.settings_binding = StateBinding(self.settings_from_controls, self._show_settings, self._store_settings)
        self._build_controls()
        self._build_layout()
        self.match_action = self.make_action("Match node set", self.match, None,
                                             "Find connected node sets where the selected units are on, in every graph")
        ws = workspace
        ws.recording_changed.connect(self._recording_changed)
        ws.item_changed.connect(self._workspace_item_changed)
        ws.view_changed.connect(self._view_changed)
        ws.units_changed.connect(self._recolour)
        ws.panel_state_changed.connect(self._panel_state_changed)
        self.settings_binding.model_changed(self.settings)
        self._recording_changed(ws.recording)

    # ------------------------------------------------------------------ building
    def _build_controls(self) -> None:
        self.item_spin = QtWidgets.QSpinBox()
        self.item_spin.setToolTip("The graph shown (an item of the recording); the window's item navigation moves it too")
        self.item_spin.valueChanged.connect(self._item_chosen)
        self.level_combo = QtWidgets.QComboBox()
        self.level_combo.setToolTip("The graph level drawn: the input graph or a pooled (coarsened) level")
        self.colour_combo = QtWidgets.QComboBox()
        self.colour_combo.setToolTip("Colour nodes by the mean of the selected units, or by a node annotation")
        self.ball_check = QtWidgets.QCheckBox("k-hop ball")
        self.ball_check.setToolTip("A click brushes every node within k hops of the clicked node")
        self.k_spin = QtWidgets.QSpinBox()
        self.k_spin.setRange(*GRAPH_RANGES["k"])
        self.k_spin.setToolTip("k: the hops of the ball around a clicked node")
        self.ring_spin = QtWidgets.QSpinBox()
        self.ring_spin.setRange(*GRAPH_RANGES["ring"])
        self.ring_spin.setToolTip("Selected units must be off on every node within this many hops of the brushed "
                                  "set (the graph's off-padding; 0: no ring). Match scores use the same ring.")
        self.min_size_spin = QtWidgets.QSpinBox()
        self.min_size_spin.setRange(*GRAPH_RANGES["min_size"])
        self.min_size_spin.setToolTip("The smallest node set a match may be")
        self.match_button = QtWidgets.QPushButton("Match")
        self.match_button.setToolTip("Find, in every graph, connected node sets where all selected units are on")
        self.match_button.clicked.connect(self.match)
        self.status_label = QtWidgets.QLabel()
        self.status_label.setWordWrap(True)
        self.build_task_controls("Cancel graph match", "Stop the running graph match")
        for signal in (self.level_combo.currentIndexChanged, self.colour_combo.currentIndexChanged,
                       self.ball_check.toggled, self.k_spin.valueChanged, self.ring_spin.valueChanged,
                       self.min_size_spin.valueChanged):
            signal.connect(self.settings_binding.push)

    def _build_layout(self) -> None:
        self.canvas = GraphCanvas()
        self.canvas.node_clicked.connect(self._node_clicked)
        self.canvas.lasso_finished.connect(self._lasso_finished)
        self.canvas.node_hovered.connect(self._node_hovered)
        self.legend_label = QtWidgets.QLabel()
        self.legend_label.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.hover_label = QtWidgets.QLabel(" ")
        self.hover_label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.units_label = QtWidgets.QLabel()
        self.units_label.setWordWrap(True)
        self.thumbnails = ThumbnailGrid()
        self.thumbnails.activated.connect(self.show_match)
        self.aggregate_view = QtWidgets.QTableWidget(0, 6)
        self.aggregate_view.setHorizontalHeaderLabels(["label", "matched nodes", "share", "corpus share",
                                                       "enrichment", "p"])
        self.aggregate_view.verticalHeader().setVisible(False)
        self.aggregate_view.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.aggregate_title = QtWidgets.QLabel()

        row = QtWidgets.QHBoxLayout()
        for widget in (labelled("Graph", self.item_spin), labelled("Level", self.level_combo),
                       labelled("Colour", self.colour_combo), self.ball_check, labelled("k", self.k_spin),
                       labelled("Ring", self.ring_spin), labelled("Min. nodes", self.min_size_spin),
                       self.match_button, self.progress, self.cancel_button):
            row.addWidget(widget)
        row.addStretch(1)

        left = QtWidgets.QWidget()
        lv = QtWidgets.QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        lv.addWidget(self.canvas, 1)
        lv.addWidget(self.legend_label)
        lv.addWidget(self.hover_label)
        lv.addWidget(self.units_label)
        matches = QtWidgets.QWidget()
        rv = QtWidgets.QVBoxLayout(matches)
        rv.setContentsMargins(0, 0, 0, 0)
        rv.addWidget(self.thumbnails, 3)
        rv.addWidget(self.aggregate_title)
        rv.addWidget(self.aggregate_view, 2)
        self.perturb_box = GraphPerturbBox()
        self.perturb_box.run_requested.connect(self.perturb)
        self.perturb_box.locate_requested.connect(self.locate_checkpoint)
        self.perturb_box.shown_tap_changed.connect(lambda _tap: self._recolour())
        right = self.tabs = QtWidgets.QTabWidget()
        right.addTab(matches, "Matches")
        right.addTab(self.perturb_box, "Perturb")
        self.splitter = QtWidgets.QSplitter()
        self.splitter.addWidget(left)
        self.splitter.addWidget(right)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)

        self.build_page((row,), self.splitter, NO_RECORDING)

    def menu_actions(self) -> list:
        return [self.match_action, self.cancel_action]

    # ------------------------------------------------------------------ settings (the workspace's)
    @property
    def settings(self) -> GraphSettings:
        state = self.workspace.panel_state("graph")
        return state if state is not None else GraphSettings()

    def settings_from_controls(self) -> GraphSettings:
        return GraphSettings(level=self.level_combo.currentData() or data.MAIN_AXIS,
                             color=self.colour_combo.currentData(), ring=self.ring_spin.value(),
                             ball=self.ball_check.isChecked(), k=self.k_spin.value(),
                             min_size=self.min_size_spin.value(), thumbnails=self.settings.thumbnails)

    def _show_settings(self, s: GraphSettings) -> None:
        with self.settings_binding.batch():
            i = self.level_combo.findData(s.level)
            self.level_combo.setCurrentIndex(max(0, i))
            i = self.colour_combo.findData(s.color)
            self.colour_combo.setCurrentIndex(max(0, i))
            self.ball_check.setChecked(s.ball)
            self.k_spin.setValue(s.k)
            self.ring_spin.setValue(s.ring)
            self.min_size_spin.setValue(s.min_size)
        self._settings_taken()

    def _store_settings(self, s: GraphSettings) -> None:
        self.workspace.set_panel_state("graph", s)
        self._settings_taken()

    def _panel_state_changed(self, name: str, state) -> None:
        if name == "graph":
            self.settings_binding.model_changed(state if state is not None else GraphSettings())

    def _settings_taken(self) -> None:
        """Follow the settings: the level drawn, the colouring, the rule's ring."""
        level = self.level_combo.currentData() or data.MAIN_AXIS
        if level != self.level and level in self._axes:
            self.level = level
            self.brushed = np.zeros(0, np.int64)
            self._draw()
        else:
            self._reselect()
            self._recolour()

    # ------------------------------------------------------------------ the recording and the item
    @property
    def has_graph(self) -> bool:
        return bool(self._axes)

    def _recording_changed(self, recording=None) -> None:
        recording = self.workspace.recording
        self.abandon()
        self._live = None
        self._checkpoint = None
        self._forget_effect()
        self.layouts.clear()
        self.corpora.clear()
        self._index_cache.clear()
        self._values_key = None
        self.results = None
        self.thumbnails.clear()
        self._show_aggregate(None)
        self.brushed = np.zeros(0, np.int64)
        self.selection = None
        self._axes = data.graph_axes(recording)
        if recording is None:
            self.message_label.setText(NO_RECORDING)
            self.stack.setCurrentIndex(0)
            return
        if not self._axes:
            kind = "tokens"
            if data.has_geometry(recording):
                try:
                    kind = {"image": "image locations", "set": "set members", "scalar": "whole items"}.get(
                        recording.axis_geometry(data.MAIN_AXIS).kind, "tokens")
                except (KeyError, ValueError):
                    pass
            self.message_label.setText(NO_GRAPH.format(kind=kind))
            self.stack.setCurrentIndex(0)
            return
        self.stack.setCurrentIndex(1)
        self.item = int(self.workspace.item)
        self.level = data.MAIN_AXIS
        with self.settings_binding.batch():
            self.level_combo.clear()
            for axis in self._axes:
                pooled = recording.axis_geometry(axis).pooled_from
                self.level_combo.addItem(axis if not pooled else f"{axis} (pooled from {pooled})", axis)
            self.item_spin.setRange(0, max(0, int(recording.n_items) - 1))
        self._fill_colours()
        self.settings_binding.model_changed(self.settings)
        self.level = self.level_combo.currentData() or data.MAIN_AXIS
        with QtCore.QSignalBlocker(self.item_spin):
            self.item_spin.setValue(self.item)
        self._draw()
        self.wants_dock.emit()  # a graph recording: the view opens

    def _fill_colours(self) -> None:
        recording = self.workspace.recording
        with self.settings_binding.batch():
            self.colour_combo.clear()
            self.colour_combo.addItem(UNITS_COLOUR, None)
            if self.level == data.MAIN_AXIS:
                for name, info in recording.annotations.items():
                    if info.level == "position":
                        self.colour_combo.addItem(f"annotation: {name}", name)

    def _workspace_item_changed(self, item: int) -> None:
        if self.has_graph and int(item) != self.item:
            self.set_item(int(item))

    def _item_chosen(self, item: int) -> None:
        if not self.has_graph or int(item) == self.item:
            return
        self.set_item(int(item))
        self.workspace.go_to_item(int(item))

    def set_item(self, item: int) -> None:
        """Draw graph ``item`` (the brushed set is dropped)."""
        self.item = int(item)
        with QtCore.QSignalBlocker(self.item_spin):
            self.item_spin.setValue(self.item)
        self.brushed = np.zeros(0, np.int64)
        self._forget_effect()
        self._draw()

    def _view_changed(self) -> None:
        """Tap, transform, threshold or selection rule of the active pane may have changed."""
        if self.has_graph:
            self._values_key = None
            self._reselect()
            self._recolour()

    # ------------------------------------------------------------------ values
    def tap(self) -> str | None:
        """The tap whose units the panel selects and colours: the active pane's on the input graph, the
        first tap of a pooled level."""
        recording = self.workspace.recording
        pane = self.workspace.active_pane
        if self.level == data.MAIN_AXIS:
            return None if pane is None else pane.tap
        taps = data.axis_taps(recording, self.level)
        return taps[0] if taps else None

    def item_values(self) -> np.ndarray | None:
        """The tap's values at the item's nodes, in the active pane's transform: float32 [nodes, units]."""
        recording, pane, tap = self.workspace.recording, self.workspace.active_pane, self.tap()
        if recording is None or tap is None:
            return None
        transform = pane.effective_transform if pane is not None else "raw"
        stats = None
        if transform == "zscore":
            stats = pane.stats() if pane.tap == tap else self.workspace.tap_stats(pane.recording_id, tap)
            if stats is None:
                transform = "raw"
        key = (id(recording), tap, self.level, self.item, transform, id(stats))
        if key != self._values_key:
            from lstmviz.workspace.pane import transform_values

            a, b = data.item_rows(recording, self.item, self.level)
            self._values = transform_values(recording.states(tap, a, b), transform, stats)
            self._values_key = key
        return self._values

    # ------------------------------------------------------------------ drawing
    def _draw(self) -> None:
        recording = self.workspace.recording
        if recording is None or not self.has_graph:
            return
        try:
            self.geometry = data.item_graph(recording, self.item, self.level)
            with self._layout_lock:
                coords = self.layouts.layout(recording, self.item, self.level)
        except expected_errors() as exc:  # a damaged or odd file: said, not raised from a slot
            self.geometry = None
            self.canvas.set_graph(np.zeros((0, 2)), np.zeros((0, 2)))
            self.set_status(f"Cannot draw graph {self.item}: {describe(exc)}", problem=True)
            return
        g = self.geometry
        names = g.node_names if g.node_names is not None else [str(i) for i in range(g.num_nodes)]
        self.canvas.set_graph(coords, g.edges, hidden=g.filler, names=names)
        self.canvas.set_marked(self.brushed)
        self._values_key = None
        self._reselect()
        self._recolour()
        self.graph_shown.emit(self.item, self.level)

    def colour_units(self) -> tuple[np.ndarray, np.ndarray]:
        """The signed units the nodes are coloured by: the node-set selection, else the highlighted units."""
        if self.selection is not None and len(self.selection):
            return np.asarray(self.selection.units), np.asarray(self.selection.signs, np.int64)
        units = np.asarray(self.workspace.highlighted_units, dtype=np.int64)
        return units, np.ones(len(units), np.int64)

    def _recolour(self, *_) -> None:
        if self.geometry is None or not self.has_graph:
            return
        if self._effect_shown():
            self._colour_by_effect()
            return
        name = self.colour_combo.currentData()
        if name is not None and self.level == data.MAIN_AXIS:
            self._colour_by_annotation(name)
        else:
            self._colour_by_units()

    def _colour_by_units(self) -> None:
        values = self.item_values()
        units, signs = self.colour_units()
        n = self.geometry.num_nodes
        if values is None or not len(units) or units.max() >= values.shape[1]:
            self.canvas.set_node_colours([MISSING_COLOUR] * n)
            self.legend_label.setText("Nodes are grey: brush nodes (click, shift-click, lasso) to select units, "
                                      "or highlight units in the unit-lines view.")
            return
        mean = (values[:, units] * signs).mean(axis=1)
        finite = np.isfinite(mean)
        lo, hi = (float(mean[finite].min()), float(mean[finite].max())) if finite.any() else (0.0, 1.0)
        t = (mean - lo) / (hi - lo) if hi > lo else np.full(n, 0.5)
        index = np.where(finite, np.rint(np.nan_to_num(t) * (len(self._colours) - 1)), 0).astype(np.int64)
        self.canvas.set_colour_index(index, self._colours)
        shown = ", ".join(f"{u}{'−' if s < 0 else ''}" for u, s in zip(units[:8], signs[:8]))
        more = f" and {len(units) - 8} more" if len(units) > 8 else ""
        pane = self.workspace.active_pane
        transform = pane.effective_transform if pane is not None else "raw"
        stops = "".join(f'<span style="background:{_hex(self._colours[int(i)].getRgb())}">&nbsp;&nbsp;&nbsp;</span>'
                        for i in np.linspace(0, len(self._colours) - 1, 8))
        self.legend_label.setText(f"Colour: mean of unit{'s' if len(units) > 1 else ''} {shown}{more} "
                                  f"({self.tap()}, {transform}) &nbsp; {lo:.2f} {stops} {hi:.2f}")

    def _colour_by_annotation(self, name: str) -> None:
        recording = self.workspace.recording
        info = recording.annotations[name]
        a, b = data.item_rows(recording, self.item, self.level)
        values = np.asarray(recording.annotation(name, a, b))
        if info.kind == "categorical":
            labels = list(info.labels or [])
            table = [QtGui.QColor(*CATEGORICAL[i % len(CATEGORICAL)]) for i in range(len(labels))]
            brushes = [table[int(v)] if 0 <= v < len(table) else MISSING_COLOUR for v in values]
            self.canvas.set_node_colours(brushes)
            present = sorted({int(v) for v in values if 0 <= v < len(labels)})
            keys = " &nbsp; ".join(f'<span style="color:{_hex(CATEGORICAL[i % len(CATEGORICAL)])}">●</span> '
                                   f"{labels[i]}" for i in present)
            self.legend_label.setText(f"Colour: {name} &nbsp; {keys}")
        else:
            finite = np.isfinite(values)
            lo, hi = (float(values[finite].min()), float(values[finite].max())) if finite.any() else (0.0, 1.0)
            t = (values - lo) / (hi - lo) if hi > lo else np.full(len(values), 0.5)
            index = np.rint(np.nan_to_num(t) * (len(self._colours) - 1)).astype(np.int64)
            brushes = [self._colours[i] if ok else MISSING_COLOUR for i, ok in zip(index, finite)]
            self.canvas.set_node_colours(brushes)
            self.legend_label.setText(f"Colour: {name} (numeric) &nbsp; {lo:.3g} … {hi:.3g}; grey: missing")

    # ------------------------------------------------------------------ brushing and the Select rule
    def set_brushed(self, nodes, *, add: bool = False) -> None:
        """Brush these nodes of the drawn graph (``add``: to the brushed set); the Select rule runs."""
        self._forget_effect()
        nodes = np.asarray(nodes, dtype=np.int64).reshape(-1)
        if add:
            nodes = np.union1d(self.brushed, nodes)
        self.brushed = np.unique(nodes)
        self.canvas.set_marked(self.brushed)
        self.brushed_changed.emit(self.brushed)
        self._reselect()
        self._recolour()

    def _node_clicked(self, node: int, shift: bool) -> None:
        if self.geometry is None:
            return
        if node < 0:
            if not shift:
                self.set_brushed([])
            return
        if self.ball_check.isChecked():
            from lstmviz.analysis.graph_selection import k_hop_ball

            self.set_brushed(k_hop_ball(self.geometry, node, self.k_spin.value()), add=shift)
        elif shift and node in self.brushed:
            self.set_brushed(np.setdiff1d(self.brushed, [node]))
        else:
            self.set_brushed([node], add=shift)

    def _lasso_finished(self, polygon, shift: bool) -> None:
        from lstmviz.analysis.graph_selection import lasso_nodes

        if self.geometry is None:
            return
        self.set_brushed(lasso_nodes(self.canvas.coords, polygon, filler=self.geometry.filler), add=shift)

    def _reselect(self) -> None:
        """Run the node-set Select rule on the brushed set; its units become the highlighted units."""
        from lstmviz.analysis.graph_selection import NodeSetSpec, select_node_units

        previous = self.selection
        pane = self.workspace.active_pane
        values = self.item_values() if len(self.brushed) else None
        self.selection = None
        if values is not None and pane is not None and self.geometry is not None:
            try:
                spec = NodeSetSpec(tuple(self.brushed), threshold=float(pane.threshold), ring=self.ring_spin.value(),
                                   tolerance=float(pane.tolerance), direction=pane.direction)
                self.selection = select_node_units(values, self.geometry, spec)
            except ValueError as exc:
                self.units_label.setText(describe(exc))
        self._show_selection()
        same = (previous is None and self.selection is None) or (
            previous is not None and self.selection is not None and previous.pairs() == self.selection.pairs()
            and np.array_equal(previous.extra["nodes"], self.selection.extra["nodes"]))
        if not same:
            self.selection_changed.emit(self.selection)
            if self.selection is not None and self.level == data.MAIN_AXIS and pane is not None:
                try:
                    self.workspace.set_highlighted_units(sorted({int(u) for u in self.selection.units}))
                except ValueError as exc:
                    self.set_status(describe(exc), problem=True)

    def _show_selection(self) -> None:
        sel = self.selection
        if not len(self.brushed):
            self.units_label.setText("Brush nodes: click (shift adds), drag a lasso, or tick k-hop ball and click.")
            return
        if sel is None:
            return
        ring = len(sel.extra["ring"])
        pairs = ", ".join(f"{u}{'−' if s < 0 else ''}" for u, s in sel.pairs()[:24])
        more = f" … ({len(sel)} in all)" if len(sel) > 24 else ""
        self.units_label.setText(
            f"{len(sel.extra['nodes'])} nodes brushed, ring of {ring} node{'s' if ring != 1 else ''}: "
            + (f"{len(sel)} unit{'s' if len(sel) != 1 else ''} on inside and off on the ring: {pairs}{more}"
               if len(sel) else "no unit is on inside and off on the ring (lower the threshold or the ring)"))

    def _node_hovered(self, node: int) -> None:
        if node < 0 or self.geometry is None:
            self.hover_label.setText(" ")
            return
        recording = self.workspace.recording
        g = self.geometry
        parts = [f"node {node}" + (f" «{g.node_names[node]}»" if g.node_names is not None else "")]
        if self.level == data.MAIN_AXIS:
            a, _ = data.item_rows(recording, self.item, self.level)
            for name, info in recording.annotations.items():
                if info.level != "position":
                    continue
                v = recording.annotation(name, a + node, a + node + 1)[0]
                if info.kind == "categorical":
                    labels = info.labels or []
                    parts.append(f"{name}: {labels[int(v)] if 0 <= v < len(labels) else 'missing'}")
                else:
                    parts.append(f"{name}: {v:.3g}")
        values = self.item_values()
        units, _ = self.colour_units()
        if values is not None and len(units) and units.max() < values.shape[1]:
            parts.append("units " + ", ".join(f"{u}: {values[node, u]:.2f}" for u in units[:8]))
        self.hover_label.setText(" · ".join(parts))

    # ------------------------------------------------------------------ perturb
    def perturb(self) -> bool:
        """Perturb the selected units of the brushed nodes on this graph (a worker); False, with a sentence,
        when there is nothing to perturb."""
        from lstmviz.perturb import Perturbation, PerturbError

        recording = self.workspace.recording
        if recording is None or not self.has_graph:
            self.set_status("Open a recording of a graph model to perturb its nodes.", problem=True)
            return False
        units, _ = self.colour_units()
        tap = self.tap()
        if not len(self.brushed) or not len(units):
            self.perturb_box.clear_effect("Brush nodes and select units first: the perturbation edits the selected "
                                          "units at the brushed nodes.")
            return False
        try:
            spec = Perturbation(tap=tap, units=tuple(int(u) for u in units),
                                positions=tuple(int(n) for n in self.brushed), **self.perturb_box.perturbation_fields())
        except PerturbError as exc:
            self.perturb_box.clear_effect(describe(exc))
            return False
        item, level = self.item, self.level
        live = self._live[1] if self._live is not None and self._live[0] is recording else None
        checkpoint = self._checkpoint

        def job(task):
            from lstmviz.perturb import resolve
            from lstmviz.perturb.graph_live import load_graph_model, perturb_recorded

            model = live if live is not None else load_graph_model(recording, checkpoint)
            task.progress(1, 3, "model loaded")
            edits = resolve([spec], model, recording, item)
            task.progress(2, 3, "perturbing")
            return model, perturb_recorded(model, recording, item, edits)

        def finished(result) -> None:
            model, effect = result
            if recording is not self.workspace.recording or (item, level) != (self.item, self.level):
                return
            self._live = (recording, model)
            self.effect = (item, level, effect)
            self.perturb_box.show_effect(effect, spec.describe())
            self.set_status(f"Perturbed {_count(len(spec.units), 'unit')} at {_count(len(spec.positions), 'node')} "
                            f"of graph {item}: the Perturb tab shows the change.")
            self.tabs.setCurrentWidget(self.perturb_box)
            self._recolour()
            self.perturbed.emit(effect)

        self.submit("graph-perturb", job, on_finished=finished, what="perturb the nodes",
                    title="Cannot perturb the nodes", stage="perturb",
                    on_failed=self._perturb_failed,
                    on_cancelled=lambda: self.set_status("Perturbation cancelled."))
        self.set_status(f"Perturbing {len(units)} unit{'s' if len(units) != 1 else ''} at "
                        f"{_count(len(self.brushed), 'node')}…")
        return True


    def _effect_shown(self) -> bool:
        if self.effect is None:
            return False
        item, level, effect = self.effect
        tap = self.perturb_box.shown_tap
        return (item, level) == (self.item, self.level) and tap is not None and effect.axes.get(tap) == level

    def _forget_effect(self) -> None:
        if self.effect is not None:
            self.effect = None
            self.perturb_box.clear_effect()

    def _colour_by_effect(self) -> None:
        _, _, effect = self.effect
        tap = self.perturb_box.shown_tap
        norm = effect.delta_norm(tap)
        top = float(norm.max()) if len(norm) else 0.0
        t = norm / top if top > 0 else np.zeros_like(norm)
        index = np.rint(np.sqrt(t) * (len(self._effect_colours) - 1)).astype(np.int64)
        self.canvas.set_colour_index(index, self._effect_colours)
        self.legend_label.setText(f"Colour: ‖Δ‖ of {tap} after the perturbation (square-root scale) &nbsp; 0 "
                                  + "".join(f'<span style="background:{_hex(self._effect_colours[int(i)].getRgb())}">'
                                            "&nbsp;&nbsp;&nbsp;</span>"
                                            for i in np.linspace(0, len(self._effect_colours) - 1, 8))
                                  + f" {top:.3g}; brushed nodes outlined")

    # ------------------------------------------------------------------ match
    def match(self) -> bool:
        """Match the node-set selection in every graph (a worker). False, with a sentence, when there is
        nothing to match."""
        from lstmviz.analysis.bitindex import IndexKey
        from lstmviz.analysis.graph_match import GraphMatchQuery

        recording, pane = self.workspace.recording, self.workspace.active_pane
        if recording is None or not self.has_graph:
            self.set_status("Open a recording of a graph model to match node sets.", problem=True)
            return False
        units, signs = self.colour_units()
        if not len(units):
            self.set_status("Select units first: brush nodes so that some units are on inside and off on the ring.",
                            problem=True)
            return False
        try:
            query = GraphMatchQuery(tuple(int(u) for u in units), tuple(int(s) for s in signs),
                                    ring=self.ring_spin.value(), min_size=self.min_size_spin.value(),
                                    limit=MATCH_LIMIT)
        except ValueError as exc:
            self.set_status(describe(exc), problem=True)
            return False
        tap = self.tap()
        transform = pane.transform if pane is not None else "raw"
        key = IndexKey(tap, transform, float(pane.threshold if pane is not None else 0.3))
        level, settings = self.level, self.settings
        annotation = self._aggregate_annotation()
        cached = self._index_cache.get((id(recording), key))
        layouts, corpora, lock = self.layouts, self.corpora, self._layout_lock

        def job(task):
            from lstmviz.analysis.bitindex import open_index
            from lstmviz.analysis.graph_match import aggregate_nodes, graph_match

            t0 = time.perf_counter()
            index = cached if cached is not None else open_index(recording, key, task=task)
            corpus = corpora.corpus(recording, level)
            t1 = time.perf_counter()
            results = graph_match(index, corpus, query, task=task)
            table = None
            if annotation is not None and len(results):
                table = aggregate_nodes(recording, annotation, results, task=task)
            entries = []
            for i in range(min(len(results), settings.thumbnails)):
                item = int(results.items[i])
                g = data.item_graph(recording, item, level)
                with lock:
                    coords = layouts.layout(recording, item, level)
                caption = f"graph {item}: {int(results.sizes[i])} nodes, {results.score[i]:.1f}"
                entries.append((coords, g.edges, results.match_nodes(i), caption, g.filler))
                task.progress(i + 1, settings.thumbnails, "drawing thumbnails")
            return index, results, table, entries, t1 - t0, time.perf_counter() - t1

        self.submit("graph-match", job, on_finished=lambda result: self._matched(recording, key, result),
                    what="match the node set", title="Cannot match the node set", stage="match",
                    on_cancelled=lambda: self.set_status("Graph match cancelled."))
        self.set_status(f"Matching {query.k} unit{'s' if query.k != 1 else ''} in every graph…")
        self.wants_dock.emit()
        return True

    def _aggregate_annotation(self) -> str | None:
        """The node annotation the aggregate table summarises: the colouring one, else the first
        categorical one (input graph only)."""
        recording = self.workspace.recording
        if self.level != data.MAIN_AXIS:
            return None
        chosen = self.colour_combo.currentData()
        if chosen is not None:
            return chosen
        for name, info in recording.annotations.items():
            if info.level == "position" and info.kind == "categorical":
                return name
        return None

    def _matched(self, recording, key, result) -> None:
        index, results, table, entries, prepare_s, match_s = result
        if recording is not self.workspace.recording:
            return
        self._index_cache = {(id(recording), key): index}
        self.results = results
        self.aggregate_table = table
        self.thumbnails.set_thumbnails(entries)
        self._show_aggregate(table)
        more = "" if results.exact else " (candidates capped: the ranking may miss some)"
        k = results.query.k
        self.set_status(f"{_count(len(results), 'match', 'matches')} of {_count(results.n_components, 'node set')} "
                        f"where {'the unit is' if k == 1 else f'the {k} units are'} on "
                        f"({_count(results.n_on, 'node')}) in {duration(match_s)} (index and graph "
                        f"{duration(prepare_s)}){more}.")
        self.matches_ready.emit(results)

    def _show_aggregate(self, table) -> None:
        from lstmviz.analysis.aggregate import LabelTable

        view = self.aggregate_view
        view.setRowCount(0)
        view.setVisible(table is not None)
        self.aggregate_title.setVisible(table is not None)
        if table is None:
            self.aggregate_title.setText("")
            return
        if isinstance(table, LabelTable):
            self.aggregate_title.setText(f"{table.annotation} on the matched nodes against all nodes")
            view.setColumnCount(6)
            view.setHorizontalHeaderLabels(["label", "matched nodes", "share", "corpus share", "enrichment", "p"])
            order = np.argsort(-table.counts[0], kind="stable")
            rows = [(table.labels[j], f"{table.counts[0, j]:,}", f"{table.fraction[0, j]:.1%}",
                     f"{table.baseline[j]:.1%}", f"{table.enrichment[0, j]:.2f}", f"{table.p_value[0, j]:.2g}")
                    for j in order if table.counts[0, j] > 0 or table.baseline[j] > 0]
        else:
            self.aggregate_title.setText(f"{table.annotation} on the matched nodes against all nodes")
            view.setColumnCount(4)
            view.setHorizontalHeaderLabels(["matched nodes", "mean", "std", "corpus mean ± std"])
            rows = [(f"{table.n[0]:,}", f"{table.mean[0]:.3g}", f"{table.std[0]:.3g}",
                     f"{table.baseline_mean:.3g} ± {table.baseline_std:.3g}")]
        view.setRowCount(len(rows))
        for r, row in enumerate(rows):
            for c, text in enumerate(row):
                view.setItem(r, c, QtWidgets.QTableWidgetItem(text))
        view.resizeColumnsToContents()

    def show_match(self, i: int) -> None:
        """Go to match ``i``'s graph and brush its nodes (a thumbnail's click)."""
        if self.results is None or not 0 <= i < len(self.results):
            return
        item = int(self.results.items[i])
        if item != self.item:
            self.set_item(item)
            if self.level == data.MAIN_AXIS:
                self.workspace.go_to_item(item)
        self.set_brushed(self.results.match_nodes(i))

    def restore_work(self) -> None:
        """Nothing runs by itself: a match is asked for."""

    def shutdown(self) -> None:
        self.abandon()
