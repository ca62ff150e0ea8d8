"""The Match panel: search the whole corpus for a pane's hypothesis and study the results.

LSTMVis's "Match view", built from a workspace. It follows one pane (``source_pane``): the active pane
while it has selected units; making a pane without any active (``+ Pane``) leaves the previous one, and
the header names the pane it shows. Pressing **Match** (Ctrl+M) turns that pane's
selection (units and signs, off-padding, brushed length) and the panel's settings (mode, result limit,
minimum length, length weight, candidate cap: ``MatchSettings``, the panel's state in the workspace,
``workspace.panel_state("match")``, saved with it)
into a ``MatchQuery``; the bit index of (tap, transform, threshold) is opened on the worker channel
"index" (it is cached on disk; building it can take seconds on a big file, with progress), then
``matching.match`` runs on channel "match". A newer request supersedes an older one; Cancel stops it.
The status line says how many matches were found and how long it took.

The results (``MatchView``: one row per match, tokens aligned at the match start, strips of match count
and chosen annotations under the tokens) sit beside the aggregate view (the distribution of one
annotation at each offset, against the corpus, computed on channel "aggregate"). Clicking a result (or
Enter) asks the workspace to show it (``workspace.show_match``).

Under the settings, the significance row (``BTestRow``) tests the shown matches against the background
(rows outside every match, one vector per item, on the matched tap and units: the B-test of
``analysis.btest_groups``) on channel "btest" whenever the results change, and **Test classes…** tests two
classes of a categorical annotation on the source pane's tap.

Exports: ``export_view`` (PNG/SVG/PDF: the results and the aggregate as a figure, in full), ``export_matches`` and
``export_aggregate`` (CSV/NPY); the actions ``export_view_action`` and ``export_data_action`` open a
file dialog. The main window puts ``menu_actions()`` in the Match menu and opens the dock on
``wants_dock`` (a match asked for, results shown).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from lstmviz.errors import describe
from lstmviz.qt.binding import StateBinding
from lstmviz.qt.errors import report_exception
from lstmviz.qt.match.aggregate_view import AggregateView
from lstmviz.qt.match.btest_row import BTestRow
from lstmviz.qt.match.figure import FIGURE_ROWS, close_figure, match_figure
from lstmviz.qt.match.figure import PARTS as FIGURE_PARTS
from lstmviz.qt.match.table_model import COUNT_STRIP, MatchTableModel
from lstmviz.qt.match.state import MATCH_STATE, MatchSettings
from lstmviz.qt.match.view import MatchView, legend_html
from lstmviz.qt.plain_text import escape, literal
from lstmviz.qt.task_panel import TaskPanel, duration, labelled
from lstmviz.qt.widget_export import (
    VIEW_FORMATS,
    ask_table_path,
    check_view_suffix,
    export_table,
    export_widget,
    with_suffix,
)

PANEL_NAME = MATCH_STATE.name
MODE_NAMES = {"lstmvis": "LSTMVis", "scored": "scored"}
#: index objects kept in memory per panel (most recent first out)
INDEX_CACHE_SIZE = 4
HOVER_HINT = "Hover a token for its labels and match count; click a row (or press Enter) to show it in the panes."
#: sentences listed under the aggregate table
ENRICHMENT_SENTENCES = 12


def _open_index(recording, key, task):
    from lstmviz.analysis.bitindex import open_index

    return open_index(recording, key, task=task)


def _match(index, query, task):
    from lstmviz.analysis.matching import match

    return match(index, query, task=task)


def _counter(index, units, signs):
    from lstmviz.analysis.matching import match_counts

    def count(start: int, stop: int):
        return match_counts(index, units, signs, start, stop)

    return count


def _aggregate(recording, name: str, anchors, offsets, task):
    from lstmviz.analysis.aggregate import (
        LabelTable,
        aggregate,
        describe_enrichment,
        top_enrichments,
    )

    table = aggregate(recording, name, anchors, offsets=offsets, task=task)
    sentences = []
    if isinstance(table, LabelTable):
        info = recording.annotations.get(name, name)
        sentences = [describe_enrichment(row, info) for row in top_enrichments(table, limit=ENRICHMENT_SENTENCES)]
    return table, sentences


@dataclass
class _MatchRun:
    """One press of Match: what it asks for, and what its index stage found."""

    recording: object
    key: object  # IndexKey
    query: object  # MatchQuery
    started: float = 0.0
    index_note: str = ""
    index_seconds: float = 0.0
    pane: object = None  # the pane whose selection is matched


@dataclass
class MatchContext:
    """What produced the shown results (the match count strip reads the same index)."""

    recording: object
    key: object
    query: object
    index: object
    index_note: str = ""
    pane: object = None  # the pane whose selection produced the results


def _units_text(units, signs, limit: int = 12) -> str:
    pairs = [f"{'−' if int(s) < 0 else ''}{int(u)}" for u, s in zip(units, signs)]
    text = ", ".join(pairs[:limit])
    return text + (f", … ({len(pairs)} units)" if len(pairs) > limit else "")


class _ElidedLabel(QtWidgets.QLabel):
    """A one-line plain-text label that gives way to its neighbours: elided in the middle when it is
    narrower than its text (the tooltip has it whole)."""

    def __init__(self, text: str = ""):
        super().__init__(text)
        self.setTextFormat(QtCore.Qt.TextFormat.PlainText)
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored, QtWidgets.QSizePolicy.Policy.Preferred)
        self.setAlignment(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)

    def setText(self, text: str) -> None:
        super().setText(text)
        self.setToolTip(text)

    def paintEvent(self, event) -> None:
        painter = QtGui.QPainter(self)
        rect = self.contentsRect()
        text = self.fontMetrics().elidedText(self.text(), QtCore.Qt.TextElideMode.ElideMiddle, rect.width())
        self.style().drawItemText(painter, rect, int(self.alignment()), self.palette(), self.isEnabled(), text,
                                  QtGui.QPalette.ColorRole.WindowText)


class MatchPanel(TaskPanel):
    """Controls, the match results and the aggregated annotations, over a workspace."""

    #: the results now shown (a MatchResults, or None when cleared)
    results_changed = QtCore.Signal(object)
    #: the aggregated table now shown (LabelTable / NumericTable, or None)
    aggregate_changed = QtCore.Signal(object)
    #: a result row was clicked / activated: start position and length (after workspace.show_match)
    result_activated = QtCore.Signal(int, int)
    #: the panel has something to show (a match was asked for, results arrived): its dock should open
    wants_dock = QtCore.Signal()

    SUPERSEDED = "The match was superseded by another request; press Match again."

    def __init__(self, workspace, parent: QtWidgets.QWidget | None = None):
        super().__init__(workspace, parent)
        self.results = None
        self.context: MatchContext | None = None
        self.aggregate_table = None
        self.align = "start"
        self._run: _MatchRun | None = None
        self._aggregate_request = None
        self._index_cache: list[tuple[tuple, object]] = []
        self._strip_names: list[str] = []
        #: the pane whose selection the panel shows and matches (see ``source_pane``)
        self._source = None
        self._pane_connections: list = []

        self.model = MatchTableModel(self)
        self.view = MatchView(self.model)
        self.view.result_activated.connect(self._activated)
        self.view.hovered.connect(self._hovered)
        self.aggregate_view = AggregateView()
        self.aggregate_view.annotation_chosen.connect(self._aggregate_chosen)
        self.btest_row = BTestRow(self.runner, workspace.notify)
        self.btest_row.source = self._btest_source

        # the controls show the panel's state in the workspace (MatchSettings) and change it
        self.settings_binding = StateBinding(self.settings_from_controls, self._show_settings, self._store_settings)
        self._build_controls()
        self._build_layout()
        self._build_actions()

        workspace.recording_changed.connect(self._recording_changed)
        workspace.active_pane_changed.connect(self._active_pane_changed)
        if hasattr(workspace, "panes_changed"):
            workspace.panes_changed.connect(self._active_pane_changed)
        workspace.panel_state_changed.connect(self._panel_state_changed)
        # optional part of the workspace: strips follow the visible tracks
        if hasattr(workspace, "visible_annotations_changed"):
            workspace.visible_annotations_changed.connect(self._visible_annotations_changed)
        self.settings_binding.model_changed(self.settings)
        self._recording_changed(workspace.recording)
        self._active_pane_changed()

    # ------------------------------------------------------------------ building
    def _build_controls(self) -> None:
        self.mode_combo = QtWidgets.QComboBox()
        for mode, name in MODE_NAMES.items():
            self.mode_combo.addItem(name, mode)
        self.mode_combo.setToolTip(
            "LSTMVis: rank as LSTMVis does (most selected units on, then fewest other units, then longest).\n"
            "scored: rank by Jaccard × a length factor against the brushed length."
        )
        self.limit_spin = QtWidgets.QSpinBox()
        self.limit_spin.setRange(0, 10_000_000)
        self.limit_spin.setSpecialValueText("all")
        self.limit_spin.setSingleStep(100)
        self.limit_spin.setToolTip("How many results to return, best first (all: every candidate)")
        self.min_length_spin = QtWidgets.QSpinBox()
        self.min_length_spin.setRange(1, 100_000)
        self.min_length_spin.setToolTip("Shortest matched run (LSTMVis itself never matches runs shorter than 2)")
        self.weight_spin = QtWidgets.QDoubleSpinBox()
        self.weight_spin.setRange(0.0, 10.0)
        self.weight_spin.setSingleStep(0.1)
        self.weight_spin.setDecimals(2)
        self.weight_spin.setToolTip("scored mode: exponent b of the length factor (min(L, Ls) / max(L, Ls)) ** b")
        self.cap_spin = QtWidgets.QSpinBox()
        self.cap_spin.setRange(0, 100_000_000)
        self.cap_spin.setSingleStep(1000)
        self.cap_spin.setSpecialValueText("none")
        self.cap_spin.setToolTip("Candidate runs scored at most (LSTMVis precise mode: 10,000; none: no cap)")
        self.left_spin = QtWidgets.QSpinBox()
        self.left_spin.setRange(0, 200)
        self.left_spin.setToolTip("Tokens shown before offset 0")
        self.right_spin = QtWidgets.QSpinBox()
        self.right_spin.setRange(0, 500)
        self.right_spin.setToolTip("Tokens shown after offset 0")
        self.align_combo = QtWidgets.QComboBox()
        self.align_combo.addItem("match start", "start")
        self.align_combo.addItem("match end", "end")
        self.align_combo.setToolTip("Offset 0 is the first matched token (as LSTMVis) or the last one")
        for widget, signal in (
            (self.mode_combo, self.mode_combo.currentIndexChanged),
            (self.limit_spin, self.limit_spin.valueChanged),
            (self.min_length_spin, self.min_length_spin.valueChanged),
            (self.weight_spin, self.weight_spin.valueChanged),
            (self.cap_spin, self.cap_spin.valueChanged),
            (self.left_spin, self.left_spin.valueChanged),
            (self.right_spin, self.right_spin.valueChanged),
        ):
            signal.connect(self.settings_binding.push)
        self.align_combo.currentIndexChanged.connect(self._align_changed)

        self.selection_label = QtWidgets.QLabel()
        self.selection_label.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.selection_label.setStyleSheet("color: #444")
        # a long selection wraps onto a second line rather than widening the dock or being cut (its end
        # says which pane is active when that is not the pane shown); the units list stops at 12 units
        self.selection_label.setWordWrap(True)
        self.selection_label.setSizePolicy(QtWidgets.QSizePolicy.Policy.Ignored,
                                           QtWidgets.QSizePolicy.Policy.Preferred)
        self.match_button = QtWidgets.QPushButton("Match")
        self.match_button.setToolTip("Search the whole corpus for the selected units (Ctrl+M)")
        self.match_button.clicked.connect(self.match)
        self.build_task_controls("Cancel Match", "Stop the running match")
        self.progress.setMaximumWidth(180)
        self.status_label = _ElidedLabel("Select units in a pane, then press Match (Ctrl+M).")
        self.status_label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)

        self.strips_button = QtWidgets.QToolButton()
        self.strips_button.setText("Strips")
        self.strips_button.setToolTip("Annotations shown as strips under the tokens")
        self.strips_button.setPopupMode(QtWidgets.QToolButton.ToolButtonPopupMode.InstantPopup)
        self.strips_menu = QtWidgets.QMenu(self.strips_button)
        self.strips_button.setMenu(self.strips_menu)
        self.paint_combo = QtWidgets.QComboBox()
        self.paint_combo.setToolTip("Paint one strip's colours onto the token backgrounds")
        self.paint_combo.currentIndexChanged.connect(self._paint_changed)
        self.mask_check = QtWidgets.QCheckBox("mask")
        self.mask_check.setChecked(True)
        self.mask_check.setToolTip("Fade the painted colours where few selected units are on (as LSTMVis)")
        self.mask_check.toggled.connect(self._mask_changed)
        self.legend_label = QtWidgets.QLabel()
        self.legend_label.setWordWrap(True)
        self.legend_label.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.hover_label = QtWidgets.QLabel(HOVER_HINT)
        self.hover_label.setStyleSheet("color: #444")
        self.hover_label.setTextFormat(QtCore.Qt.TextFormat.PlainText)

    def _build_layout(self) -> None:
        row1 = QtWidgets.QHBoxLayout()
        row1.setSpacing(10)
        row1.addWidget(labelled("Mode", self.mode_combo, spacing=3))
        row1.addWidget(labelled("Results", self.limit_spin, spacing=3))
        row1.addWidget(labelled("Min length", self.min_length_spin, spacing=3))
        row1.addWidget(labelled("Length weight", self.weight_spin, spacing=3))
        row1.addWidget(labelled("Candidates", self.cap_spin, spacing=3))
        # the status shares the first row (it wraps when the dock is narrow): more rows for the results
        row1.addWidget(self.status_label, 1)
        row1.addWidget(self.match_button)
        row1.addWidget(self.progress)
        row1.addWidget(self.cancel_button)
        row2 = QtWidgets.QHBoxLayout()
        row2.setSpacing(10)
        row2.addWidget(self.selection_label, 1)
        row2.addWidget(labelled("Context before", self.left_spin, spacing=3))
        row2.addWidget(labelled("after", self.right_spin, spacing=3))
        row2.addWidget(labelled("offset 0 at", self.align_combo, spacing=3))
        row2.addWidget(self.strips_button)
        row2.addWidget(labelled("Paint tokens", self.paint_combo, spacing=3))
        row2.addWidget(self.mask_check)

        results = QtWidgets.QWidget()
        results_layout = QtWidgets.QVBoxLayout(results)
        results_layout.setContentsMargins(0, 0, 0, 0)
        results_layout.setSpacing(3)
        results_layout.addWidget(self.legend_label)
        results_layout.addWidget(self.view, 1)
        results_layout.addWidget(self.hover_label)
        self.results_widget = results
        self.splitter = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        self.splitter.addWidget(results)
        self.splitter.addWidget(self.aggregate_view)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setChildrenCollapsible(False)
        self.aggregate_view.setMinimumWidth(360)  # the offset x label table stays readable beside the rows
        # the results get the width their columns need, the aggregate the rest (until the user moves it)
        self._splitter_moved = False
        self.splitter.splitterMoved.connect(self._splitter_moved_by_user)
        self.model.modelReset.connect(self._fit_splitter)
        self.model.strips_changed.connect(self._fit_splitter)

        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(4)
        layout.addLayout(row1)
        layout.addLayout(row2)
        layout.addWidget(self.btest_row)
        layout.addWidget(self.splitter, 1)

    def _build_actions(self) -> None:
        action = self.make_action
        self.match_action = action("&Match", self.match, "Ctrl+M", "Search the corpus for the selected units")
        self.export_view_action = action("Export Match &View…", self.choose_and_export_view, "Ctrl+Alt+E",
                                         "Save the best results and the whole aggregate table as a figure (PNG, SVG or PDF)")
        self.export_data_action = action("Export Match &Data…", self.choose_and_export_data, "Ctrl+Alt+D",
                                         "Save the matches or the aggregated table as CSV or NPY")
        self.match_action.triggered.connect(lambda: self.wants_dock.emit())

    def menu_actions(self) -> list:
        """The Match menu (None: a separator)."""
        return [self.match_action, self.cancel_action, None, self.export_view_action, self.export_data_action]

    def restore_work(self) -> None:
        """A restored workspace's selection is shown with its matches (``lstmviz --screenshot``)."""
        if _has_units(getattr(self.workspace, "active_pane", None)):
            self.match()

    def _splitter_moved_by_user(self, *_) -> None:
        self._splitter_moved = True

    def _fit_splitter(self) -> None:
        """Results as wide as their columns need (at most what leaves the aggregate its minimum)."""
        total = sum(self.splitter.sizes())
        if self._splitter_moved or total <= 0:
            return
        side = self.aggregate_view.minimumWidth()
        results = max(total // 2, min(self.view.content_width() + 4, total - side))
        self.splitter.setSizes([results, total - results])

    def resizeEvent(self, event) -> None:
        super().resizeEvent(event)
        self._fit_splitter()

    # ------------------------------------------------------------------ settings (the panel's state)
    @property
    def settings(self) -> MatchSettings:
        """The panel's state in the workspace (its defaults until it has one)."""
        state = self.workspace.panel_state(PANEL_NAME)
        return state if state is not None else MatchSettings()

    def _panel_state_changed(self, name: str, state) -> None:
        if name == PANEL_NAME:
            self.settings_binding.model_changed(state if state is not None else MatchSettings())

    def _show_settings(self, s) -> None:
        self.mode_combo.setCurrentIndex(max(0, self.mode_combo.findData(s.mode)))
        self.limit_spin.setValue(0 if s.limit is None else int(s.limit))
        self.min_length_spin.setValue(int(s.min_length))
        self.weight_spin.setValue(float(s.length_weight))
        self.cap_spin.setValue(0 if s.candidate_cap is None else int(s.candidate_cap))
        self.left_spin.setValue(int(s.left))
        self.right_spin.setValue(int(s.right))
        self.weight_spin.setEnabled(s.mode == "scored")
        self._apply_context()
        recording = self.workspace.recording
        name = s.aggregate_annotation
        if recording is not None and name is not None and name in recording.annotations \
                and name != self.aggregate_view.annotation():
            self.aggregate_view.set_annotations(list(recording.annotations), name)
            self._start_aggregate()

    def settings_from_controls(self):
        """The MatchSettings the controls show."""
        limit = self.limit_spin.value()
        cap = self.cap_spin.value()
        return replace(
            self.settings,
            mode=self.mode_combo.currentData(),
            limit=None if limit == 0 else int(limit),
            min_length=int(self.min_length_spin.value()),
            length_weight=float(self.weight_spin.value()),
            candidate_cap=None if cap == 0 else int(cap),
            left=int(self.left_spin.value()),
            right=int(self.right_spin.value()),
        )

    def _store_settings(self, settings) -> None:
        self.weight_spin.setEnabled(settings.mode == "scored")
        if settings != self.settings:
            self.workspace.set_panel_state(PANEL_NAME, settings)
        self._apply_context()

    def _apply_context(self) -> None:
        s = self.settings
        before = (self.model.left, self.model.right, self.model.align)
        self.model.set_context(int(s.left), int(s.right), self.align)
        if before != (self.model.left, self.model.right, self.model.align) and self.results is not None:
            self._start_aggregate()

    def _align_changed(self, _index: int) -> None:
        self.align = self.align_combo.currentData()
        self._apply_context()

    # ------------------------------------------------------------------ workspace changes
    def _recording_changed(self, recording=None) -> None:
        self.abandon()
        self.btest_row.reset()
        self._index_cache.clear()
        self._set_results(None, None)
        recording = self.workspace.recording
        names = [] if recording is None else list(recording.annotations)
        visible = [getattr(a, "name", a) for a in (getattr(self.workspace, "visible_annotations", None) or [])]
        strips = [n for n in visible if n in names]
        if not strips and recording is not None:
            strips = [n for n, info in recording.annotations.items()
                      if info.kind == "categorical" and info.level == "position"][:1]
        self._fill_strips_menu(names, strips)
        self.aggregate_view.set_annotations(names, self._aggregate_default())
        self.match_action.setEnabled(recording is not None)
        self.match_button.setEnabled(recording is not None)
        self._update_selection_label()

    def _aggregate_default(self) -> str | None:
        """The workspace's aggregated annotation, else the first categorical strip, else the first one."""
        recording = self.workspace.recording
        if recording is None:
            return None
        chosen = self.settings.aggregate_annotation
        if chosen in recording.annotations:
            return chosen
        categorical = [n for n in self._strip_names if recording.annotations[n].kind == "categorical"]
        categorical += [n for n, info in recording.annotations.items() if info.kind == "categorical"]
        return categorical[0] if categorical else next(iter(recording.annotations), None)

    def _aggregate_chosen(self, name: str) -> None:
        settings = self.settings
        if name != settings.aggregate_annotation:  # kept (and saved) as the panel's state
            self.workspace.set_panel_state(PANEL_NAME, replace(settings, aggregate_annotation=name))
        self._start_aggregate()

    def _visible_annotations_changed(self, names) -> None:
        """Strips follow the tracks shown in the state panes (the Strips menu can change them here)."""
        self.set_strips([getattr(n, "name", n) for n in names])

    # ------------------------------------------------------------------ the pane it matches from
    def _panes(self) -> list:
        panes = getattr(self.workspace, "panes", None)
        if panes is not None:
            return list(panes)
        pane = getattr(self.workspace, "active_pane", None)
        return [] if pane is None else [pane]

    @property
    def source_pane(self):
        """The pane whose selection the panel shows and matches: the active pane while it has selected
        units; a pane made active without any (``+ Pane``, a click) leaves the previous one in place,
        so the header, Match and the results stay with the pane they came from."""
        return self._source

    def pane_name(self, pane) -> str:
        panes = self._panes()
        return f"Pane {panes.index(pane) + 1}" if pane in panes else "a removed pane"

    def _active_pane_changed(self, *_) -> None:
        active = getattr(self.workspace, "active_pane", None)
        panes = self._panes()
        source = self._source
        if _has_units(active) or source is None or source not in panes:
            source = active if _has_units(active) or not any(_has_units(p) for p in panes) else next(
                p for p in panes if _has_units(p))
        self._follow(source, active)

    def _follow(self, source, active) -> None:
        """Show ``source``'s selection; listen to it and to the active pane (whose selection takes over)."""
        for signal, slot in self._pane_connections:
            try:
                signal.disconnect(slot)
            except (RuntimeError, TypeError):
                pass
        self._source = source
        self._pane_connections = []
        for pane in dict.fromkeys(p for p in (source, active) if p is not None):
            slot = self._selection_changed if pane is source else self._active_selection_changed
            self._pane_connections.append((pane.selection_changed, slot))
            changed = getattr(pane, "changed", None)  # padding, threshold ...: refresh the label
            if changed is not None:
                self._pane_connections.append((changed, self._update_selection_label))
        for signal, slot in self._pane_connections:
            signal.connect(slot)
        self._selection_changed(None if source is None else source.selection)

    def _active_selection_changed(self, selection=None, *_) -> None:
        """The active pane (not the one shown) selected units: it becomes the pane the panel follows."""
        active = getattr(self.workspace, "active_pane", None)
        if _has_units(active) and active is not self._source:
            self._follow(active, active)

    def _selection_changed(self, selection=None, *_) -> None:
        self._update_selection_label()
        if self.results is None or self.busy:
            return
        q = self.results.query
        pairs = set() if selection is None else {(int(u), int(x)) for u, x in zip(selection.units, selection.signs)}
        changed = pairs != set(zip(q.units, q.signs)) or (self.context is not None
                                                         and self.context.pane is not self._source)
        if changed:
            self.set_status(self._result_status() + " — the selection changed since; press Match to update")
        else:
            self.set_status(self._result_status())

    def _update_selection_label(self, *_) -> None:
        pane = self._source
        if self.workspace.recording is None or pane is None:
            self.selection_label.setText("<i>No pane to match from.</i>")
            return
        selection = pane.selection
        units = "" if selection is None or len(selection) == 0 else _units_text(selection.units, selection.signs)
        noun = "unit" if selection is not None and len(selection) == 1 else "units"
        what = f"{noun} <b>{units}</b>" if units else "<i>no units selected</i>"
        brush = pane.brush
        length = f" · brushed length {brush[1] - brush[0]}" if brush is not None else ""
        active = getattr(self.workspace, "active_pane", None)
        note = ""
        if active is not None and active is not pane:
            note = f" · <i>{self.pane_name(active)}, the active pane, has no selected units</i>"
        self.selection_label.setText(
            f"<b>{escape(self.pane_name(pane))}</b>: {what} of <b>{escape(pane.tap)}</b> ({pane.transform}, "
            f"threshold {pane.threshold:g}){length} · padding {pane.pad_left} before, {pane.pad_right} after{note}"
        )
        self.selection_label.setToolTip(self.selection_label.text())

    # ------------------------------------------------------------------ matching
    def build_query(self):
        """The MatchQuery for the source pane's selection and the panel's settings (ValueError with a
        sentence if none)."""
        from lstmviz.analysis.match_types import MatchQuery

        pane = self._source
        selection = pane.selection if pane is not None else None
        if selection is None or len(selection) == 0:
            raise ValueError("No units are selected: brush a range in a state pane (or add units by hand), "
                             "then press Match.")
        s = self.settings_from_controls()
        brush = pane.brush
        return MatchQuery(
            units=tuple(int(u) for u in selection.units),
            signs=tuple(int(x) for x in selection.signs),
            mode=s.mode,
            pad_left=int(pane.pad_left),
            pad_right=int(pane.pad_right),
            min_length=int(s.min_length),
            limit=s.limit,
            candidate_cap=s.candidate_cap,
            selection_length=None if brush is None else int(brush[1] - brush[0]),
            length_weight=float(s.length_weight),
        )

    def match(self) -> bool:
        """Start a match for the source pane's selection (``source_pane``). False (and a message in the
        status line) when there is nothing to match."""
        from lstmviz.analysis.bitindex import IndexKey

        ws = self.workspace
        recording = ws.recording
        if recording is None:
            self.set_status("Open a recording to match.", problem=True)
            return False
        pane = self._source
        try:
            query = self.build_query()
        except ValueError as exc:
            self.set_status(describe(exc), problem=True)
            return False
        key = IndexKey(pane.tap, pane.transform, float(pane.threshold))
        run = _MatchRun(recording, key, query, started=time.perf_counter(), pane=pane)
        index = self._cached_index(recording, key)
        if index is not None:
            run.index_note = "index in memory"
            self._submit_match(run, index)
            return True
        t0 = time.perf_counter()

        def open_job(task, recording=recording, key=key, t0=t0):
            index = _open_index(recording, key, task)
            # a cached index loads without reporting progress; building reports it
            how = "built in memory" if getattr(index, "path", None) is None else (
                "built" if task.total is not None or task.message else "loaded")
            return index, time.perf_counter() - t0, how

        self.submit("index", open_job, on_finished=lambda result: self._index_opened(run, result),
                    what="open the match index", title="Cannot open the match index", stage="index",
                    on_cancelled=self._match_cancelled, continues=True)
        self._run = run
        self.set_status(f"Opening the match index of {key.tap} ({key.transform} ≥ {key.threshold:g})…")
        return True

    def _index_opened(self, run: _MatchRun, result) -> None:
        index, seconds, how = result
        run.index_seconds = seconds
        run.index_note = f"index {how} in {duration(seconds)}"
        self._remember_index(run.recording, run.key, index)
        self._submit_match(run, index)

    def _submit_match(self, run: _MatchRun, index) -> None:
        query = run.query

        def match_job(task, index=index, query=query):
            t0 = time.perf_counter()
            results = _match(index, query, task)
            return results, index, time.perf_counter() - t0

        self.submit("match", match_job, on_finished=lambda result: self._matched(run, result), what="match",
                    title="Cannot match", stage="match", on_cancelled=self._match_cancelled)
        self._run = run
        self.set_status(f"Matching {query.k} units…")

    def _matched(self, run: _MatchRun, result) -> None:
        results, index, seconds = result
        self.context = MatchContext(run.recording, run.key, run.query, index, run.index_note, run.pane)
        self._set_results(results, self.context, seconds)

    def _match_cancelled(self) -> None:
        self.set_status("Match cancelled.")

    def request_over(self) -> None:
        self._run = None

    def _cached_index(self, recording, key):
        for (rec_id, k), index in self._index_cache:
            if rec_id == id(recording) and k == key:
                return index
        return None

    def _remember_index(self, recording, key, index) -> None:
        self._index_cache = [(rk, i) for rk, i in self._index_cache if rk != (id(recording), key)]
        self._index_cache.insert(0, ((id(recording), key), index))
        del self._index_cache[INDEX_CACHE_SIZE:]

    # ------------------------------------------------------------------ results
    def _set_results(self, results, context: MatchContext | None, seconds: float = 0.0) -> None:
        self.results = results
        self._match_seconds = seconds
        if results is None:
            self.context = None
            self._cancel_aggregate()
            self.model.set_results(None, self.workspace.recording)
            self._show_aggregate(None, [])
            self.btest_row.clear_badge()
        else:
            q = context.query
            counter = _counter(context.index, q.units, q.signs)
            self.model.set_annotations(self._strip_names)
            self.model.set_results(results, context.recording, counter=counter, units_total=q.k)
            self.set_status(self._result_status())
            self._start_aggregate()
            # significance of the matches: matched rows against the background, on the matched units
            self.btest_row.test_matches(context.recording, context.key.tap, results, q.units)
        self._refresh_paint_combo()
        self._update_legend()
        self.results_changed.emit(results)
        if results is not None:
            self.wants_dock.emit()

    def _result_status(self) -> str:
        results = self.results
        if results is None:
            return ""
        n = len(results)
        elapsed = results.elapsed_s if getattr(results, "elapsed_s", 0) else self._match_seconds
        q = results.query
        text = f"{n:,} match{'es' if n != 1 else ''} in {duration(elapsed)}"
        notes = [f"{self.pane_name(self.context.pane)}'s units"] if self.context and self.context.pane else []
        notes += [self.context.index_note] if self.context and self.context.index_note else []
        notes.append(f"{results.n_candidates:,} candidates scored")
        if q.limit is not None and n >= q.limit:
            notes.append(f"the best {q.limit:,}")
        if not results.exact:
            notes.append("candidate cap reached: the ranking is not proven complete")
        return f"{text} ({'; '.join(notes)})"

    def _activated(self, start: int, length: int) -> None:
        pane = self.context.pane if self.context is not None else None
        panes = self._panes()
        if pane in panes and pane is not getattr(self.workspace, "active_pane", None):
            self.workspace.set_active_pane(panes.index(pane))  # the match is brushed in its own pane
        try:
            self.workspace.show_match(int(start), int(length))
        except ValueError as exc:  # e.g. the recording changed under the results
            self.set_status(f"Cannot show that match: {describe(exc)}", problem=True)
            return
        self.result_activated.emit(int(start), int(length))

    def _hovered(self, text: str) -> None:
        self.hover_label.setText(text or HOVER_HINT)

    # ------------------------------------------------------------------ strips and painting
    def _fill_strips_menu(self, names: list[str], chosen: list[str]) -> None:
        self.strips_menu.clear()
        recording = self.workspace.recording
        for name in names:
            info = recording.annotations[name]
            kind = info.kind + (", per item" if info.level == "item" else "")
            action = self.strips_menu.addAction(f"{name} ({kind})")
            action.setCheckable(True)
            action.setChecked(name in chosen)
            action.setData(name)
            if info.description:
                action.setToolTip(literal(info.description))
            action.toggled.connect(lambda on, n=name: self._strip_toggled(n, on))
        if not names:
            self.strips_menu.addAction("(no annotations)").setEnabled(False)
        self.strips_button.setEnabled(bool(names))
        self.set_strips(chosen)

    def _strip_toggled(self, name: str, on: bool) -> None:
        names = [n for n in self._strip_names if n != name]
        if on:
            order = [a.data() for a in self.strips_menu.actions()]
            names.append(name)
            names.sort(key=lambda n: order.index(n) if n in order else len(order))
        self.set_strips(names)

    def set_strips(self, names) -> None:
        """Show strips for these annotations under the tokens (after the match count)."""
        recording = self.workspace.recording
        names = [n for n in names if recording is not None and n in recording.annotations]
        self._strip_names = names
        for action in self.strips_menu.actions():
            if action.isCheckable():
                action.blockSignals(True)
                action.setChecked(action.data() in names)
                action.blockSignals(False)
        self.strips_button.setText(f"Strips ({len(names)})" if names else "Strips")
        self.model.set_annotations(names)
        self._refresh_paint_combo()
        self._update_legend()

    @property
    def strips(self) -> list[str]:
        return list(self._strip_names)

    def _refresh_paint_combo(self) -> None:
        current = self.paint_combo.currentData()
        self.paint_combo.blockSignals(True)
        self.paint_combo.clear()
        self.paint_combo.addItem("none", None)
        for strip in self.model.strips:
            self.paint_combo.addItem(strip.name, strip.name)
        i = self.paint_combo.findData(current) if current else 0
        self.paint_combo.setCurrentIndex(max(0, i))
        self.paint_combo.blockSignals(False)
        self.view.set_paint_strip(self.paint_combo.currentData())
        self.mask_check.setEnabled(self.paint_combo.currentData() is not None)

    def set_paint_strip(self, name: str | None) -> None:
        """Paint this strip ("match count" or an annotation shown as a strip) onto the token backgrounds."""
        i = self.paint_combo.findData(name) if name else 0
        if i < 0:
            raise ValueError(f"no strip {name!r} to paint; strips: {', '.join(s.name for s in self.model.strips)}")
        self.paint_combo.setCurrentIndex(i)
        self._paint_changed(i)

    def _paint_changed(self, _index: int) -> None:
        name = self.paint_combo.currentData()
        self.view.set_paint_strip(name)
        self.mask_check.setEnabled(name is not None)
        self._update_legend()

    def _mask_changed(self, on: bool) -> None:
        self.view.set_mask(on)
        self._update_legend()

    def _update_legend(self) -> None:
        self.legend_label.setText(legend_html(self.model, self.view.paint_strip,
                                              self.view.mask and self.view.paint_strip not in (None, COUNT_STRIP)))

    # ------------------------------------------------------------------ aggregation
    def anchors(self):
        """The positions at offset 0 of every result (match starts, or last matched tokens)."""
        r = self.results
        if r is None:
            return None
        return r.starts if self.align == "start" else r.starts + r.lengths - 1

    def _start_aggregate(self) -> None:
        name = self.aggregate_view.annotation()
        recording = self.context.recording if self.context is not None else None
        if self.results is None or recording is None or name is None:
            self._cancel_aggregate()
            self._show_aggregate(None, [])
            return
        if len(self.results) == 0:
            self._cancel_aggregate()
            self._show_aggregate(None, [])
            self.aggregate_view.set_message("No matches to aggregate.")
            return
        anchors = self.anchors().copy()
        offsets = range(-self.model.left, self.model.right + 1)
        self.aggregate_view.set_message(f"Aggregating {name} over {len(anchors):,} matches…")

        def job(task, recording=recording, name=name, anchors=anchors, offsets=offsets):
            return _aggregate(recording, name, anchors, offsets, task)

        request = self.runner.submit("aggregate", job)
        request.finished.connect(self._aggregated)
        request.failed.connect(self._aggregate_failed)
        request.cancelled.connect(self._aggregate_cancelled)
        request.superseded.connect(self._aggregate_superseded)
        self._aggregate_request = request

    def _aggregate_answer(self) -> bool:
        """Whether the signal being delivered answers the aggregation asked last (which is then over)."""
        if self._aggregate_request is None or self.sender() is not self._aggregate_request:
            return False
        self._aggregate_request = None
        return True

    def _aggregated(self, result) -> None:
        if self._aggregate_answer():
            table, sentences = result
            self._show_aggregate(table, sentences)

    def _aggregate_failed(self, exc) -> None:
        if self._aggregate_answer():
            self.aggregate_view.set_message(f"Cannot aggregate: {describe(exc)}")
            report_exception(exc, "Cannot aggregate", self.workspace.notify)

    def _aggregate_cancelled(self) -> None:
        if self._aggregate_answer():
            self.aggregate_view.set_message("Aggregation cancelled.")

    def _aggregate_superseded(self) -> None:
        if self._aggregate_answer():  # another view's request took the channel
            self.aggregate_view.set_message("The aggregation was superseded by another request.")

    def _cancel_aggregate(self) -> None:
        request, self._aggregate_request = self._aggregate_request, None
        if request is not None:
            request.cancel()

    def _show_aggregate(self, table, sentences) -> None:
        if self.align == "end" and sentences:
            sentences = [_end_anchored(s) for s in sentences]
        self.aggregate_table = table
        self.aggregate_view.set_table(table, sentences, "start" if self.align == "start" else "end")
        self.aggregate_changed.emit(table)

    # ------------------------------------------------------------------ export
    def export_view(self, path: str | Path, *, part: str = "views", max_rows: int = FIGURE_ROWS) -> Path:
        """Write the results as a figure to PNG, SVG or PDF: the best ``max_rows`` results beside the
        whole aggregate table and its sentences ("views"), only the results ("results") or only the
        aggregate ("aggregate"), laid out in full whatever the dock shows (``match_figure``); or the
        panel as it is on screen ("panel")."""
        if part == "panel":
            return export_widget(self, path)
        if part not in FIGURE_PARTS:
            raise ValueError(f"unknown part {part!r}; choose one of {', '.join((*FIGURE_PARTS, 'panel'))}")
        check_view_suffix(path)
        figure = match_figure(self, part, max_rows)
        try:
            return export_widget(figure, path)
        finally:
            close_figure(figure)

    def export_matches(self, path: str | Path) -> Path:
        """The matches (rank, positions, scores and the text around them) as CSV or NPY."""
        from lstmviz.analysis.export_data import match_columns

        if self.results is None or self.context is None:
            raise ValueError("There are no matches to export yet: press Match first.")
        recording = getattr(self.context.recording, "unguarded", self.context.recording)  # a damaged read fails the
        columns = match_columns(self.results, recording, left=self.model.left, right=self.model.right)  # export
        return export_table(path, columns)

    def export_aggregate(self, path: str | Path) -> Path:
        """The aggregated annotation table (long format) as CSV or NPY."""
        from lstmviz.analysis.export_data import label_table_columns

        if self.aggregate_table is None:
            raise ValueError("There is no aggregated table to export yet: match, then choose an annotation.")
        return export_table(path, label_table_columns(self.aggregate_table))

    def choose_and_export_view(self) -> bool:
        path, chosen = QtWidgets.QFileDialog.getSaveFileName(
            self, "Export match view", self.default_path("matches.png"), ";;".join(VIEW_FORMATS.values()))
        if not path:
            return False
        return self.export_guarded("Cannot export", lambda: self.export_view(with_suffix(path, chosen, VIEW_FORMATS)))

    def choose_and_export_data(self) -> bool:
        filters = {
            "Matches, CSV table (*.csv)": ("matches", ".csv"),
            "Matches, NumPy array (*.npy)": ("matches", ".npy"),
            "Aggregated annotation, CSV table (*.csv)": ("aggregate", ".csv"),
            "Aggregated annotation, NumPy array (*.npy)": ("aggregate", ".npy"),
        }
        answer = ask_table_path(self, "Export match data", self.default_path("matches.csv"), filters)
        if answer is None:
            return False
        path, what = answer
        export = self.export_aggregate if what == "aggregate" else self.export_matches
        return self.export_guarded("Cannot export", lambda: export(path))

    def shutdown(self) -> None:
        """Cancel this panel's running requests (call before the runner shuts down)."""
        super().shutdown()
        self._cancel_aggregate()
        self.btest_row.shutdown()

    def _btest_source(self):
        """(recording, tap, selected units) for the B-test of two classes: the source pane's."""
        recording, pane = self.workspace.recording, self._source
        if recording is None or pane is None or getattr(pane, "tap", None) not in recording.taps:
            return None
        selection = pane.selection
        units = None if selection is None or len(selection) == 0 else [int(u) for u in selection.units]
        return recording, pane.tap, units


def _has_units(pane) -> bool:
    return pane is not None and pane.selection is not None and len(pane.selection) > 0


def _end_anchored(sentence: str) -> str:
    """``describe_enrichment`` speaks of match starts; with offsets from the match end, say "end"."""
    for a, b in (("matches start on", "matches end on"), ("matches start right after", "matches end right after"),
                 ("matches start ", "matches end "), ("after their start", "after their end")):
        sentence = sentence.replace(a, b)
    return sentence
