"""The Probes panel: how linearly decodable is a label from each tap (Alain & Bengio; Hewitt & Liang).

The user picks a categorical annotation of the recording (per position: a POS tag, a token type, a
nesting depth; or per item: a sequence's class), optionally shifted (``shift = 1``: predict the label of
the next token), the positions to use (all, or the last of each item: the state after the whole item,
the default for item-level labels), the taps (all by default, ordered by layer), and whether to fit the
control task and the input-token baseline. **Run** (Ctrl+Shift+P) calls
``lstmviz.analysis.probe_report.run_probes`` on the worker channel "probes" (progress, Cancel; a newer
run supersedes an older one). Reports are cached with the recording's derived data, so running the
same settings again is instant.

The results: ``ProbeChart`` (held-out accuracy per tap with intervals, control task, selectivity, the
majority and input-token baselines), ``ProbeDetail`` for one probe (confusion matrix, per-class
accuracy, the top units per class: clicking one selects it in the active pane, which switches to the
probe's tap if it shows another one) and, for a recording of several checkpoints
(``Recording.checkpoints``), ``ProbeCurvesView``: accuracy per tap against training step
(``probe_curves``, when "over training" is ticked), with, when "tangent kernel" is also ticked, the
tangent-kernel alignment and effective rank per layer below it on the same training-step axis
(``KernelCurvesView``, from ``lstmviz.analysis.ntk_recording.kernel_curves`` on at most 256 of the items,
computed in the same run; it needs the run's checkpoint files).

Saved workspaces: the panel keeps its state in the workspace (``workspace.panel_state("probes")``, a
``ProbeState``, bound to the controls by a ``StateBinding``) equal to what it shows —
the settings of its controls, whether a result is shown (or being computed) and which probe is open —
and follows it when it is set from outside (a workspace being restored): it takes the settings and,
when ``shown`` asks for a result it does not show, runs the probes on its worker as Run does (from
the cache when the same settings ran before), then reopens ``open_probe`` when the result arrives.

Exports: ``export_chart`` / ``export_detail`` / ``export_curves`` / ``export_kernel_curves`` (PNG/SVG/PDF),
``export_table`` / ``export_curves_table`` / ``export_kernel_table`` (CSV/NPY: one row per tap, then the
input baseline; one row per checkpoint and layer); the actions open file dialogs. Problems from the worker go through the workspace's ``error_occurred``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from PySide6 import QtCore, QtWidgets

from lstmviz.errors import describe
from lstmviz.qt.binding import StateBinding
from lstmviz.qt.plain_text import escape, literal
from lstmviz.qt.probes.state import PROBE_SHIFT_RANGE, PROBE_STATE, ProbeState
from lstmviz.qt.task_panel import TaskPanel, duration, labelled
from lstmviz.qt.probes.chart import ProbeChart, percent
from lstmviz.qt.kernel.views import KernelCurvesView
from lstmviz.qt.probes.curves_view import ProbeCurvesView, describe_x, has_curves
from lstmviz.qt.probes.detail import ProbeDetail
from lstmviz.qt.probes.figure import close_figure, detail_figure
from lstmviz.qt.widget_export import (
    VIEW_FORMATS,
    ask_table_path,
    check_view_suffix,
    export_table,
    export_widget,
    with_suffix,
)

PANEL_NAME = PROBE_STATE.name
CHANNEL = "probes"
SHIFT_RANGE = PROBE_SHIFT_RANGE  # a saved workspace's shift is checked against the same range
AT_NAMES = {"all": "all positions", "last": "last of each item"}
SHIFT_TIP = ("Predict the label of token t + shift from the state at token t (1: the next token's label; "
             "positions whose t + shift falls outside their item are skipped)")
START_HINT = "Pick a label and the taps, then press Run (Ctrl+Shift+P)."
NO_LABELS = ("This recording has no categorical annotation, so there is nothing to probe. Record it with a "
             "dataset that labels its tokens or items (part of speech, token type, nesting depth, class).")


def _run_probes(recording, annotation, taps, task, **options):
    from lstmviz.analysis.probe_report import run_probes

    return run_probes(recording, annotation, taps, task=task, **options)


def _probe_curves(recording, annotation, taps, task, **options):
    from lstmviz.analysis.probe_report import probe_curves

    return probe_curves(recording, annotation, taps, task=task, **options)


def _kernel_curves(recording, annotation, task):
    from lstmviz.analysis.ntk_recording import kernel_curves

    return kernel_curves(recording, annotation, task=task)


def _ordered_taps(recording) -> list[str]:
    from lstmviz.analysis.probe_report import ordered_taps

    try:
        return ordered_taps(recording)
    except ValueError:  # no tap on the main axis
        return []


@dataclass(frozen=True)
class ProbeSettings:
    """What one press of Run asks for."""

    annotation: str
    taps: tuple[str, ...]
    shift: int = 0
    at: str = "all"
    control: bool = True
    baseline: bool = True
    curves: bool = False
    kernel: bool = False  # also the tangent-kernel curves over training (with ``curves``)


@dataclass
class ProbeOutcome:
    """What a finished run hands to the panel."""

    settings: ProbeSettings
    report: object
    curves: object = None
    seconds: float = 0.0
    cached: bool = False
    recording: object = field(default=None, repr=False)
    kernel_curves: object = None


def probe_job(recording, settings: ProbeSettings, task) -> ProbeOutcome:
    """The worker's job: ``run_probes`` (and ``probe_curves`` when asked), progress forwarded to ``task``."""
    from lstmviz.tasks import Task

    t0 = time.perf_counter()
    with_kernel = settings.curves and settings.kernel
    parts = 1 + int(settings.curves) + int(with_kernel)
    scale = 1000

    def forward(part):
        def on_progress(done, total, message):
            frac = min(1.0, done / total) if total else 0.0
            task.progress(part * scale + int(frac * (scale - 1)), parts * scale, message)
        return on_progress

    options = {"shift": settings.shift, "at": settings.at, "control": settings.control}
    sub = Task(on_progress=forward(0))
    report = _run_probes(recording, settings.annotation, list(settings.taps), sub, baseline=settings.baseline,
                         **options)
    cached = bool(getattr(report, "from_cache", False))
    curves = None
    if settings.curves:
        sub = Task(on_progress=forward(1))
        curves = _probe_curves(recording, settings.annotation, list(settings.taps), sub, **options)
    kernel = None
    if with_kernel:
        kernel = _kernel_curves(recording, settings.annotation, Task(on_progress=forward(2)))
    task.progress(parts * scale, parts * scale, "Probes done")
    return ProbeOutcome(settings, report, curves, time.perf_counter() - t0, cached, recording, kernel)


class ProbePanel(TaskPanel):
    """Controls, the probe chart, one probe's detail and the curves over training, over a workspace."""

    #: the report now shown (a ProbeReport, or None when cleared)
    report_changed = QtCore.Signal(object)
    #: a run finished and its results are shown (the ProbeReport)
    results_ready = QtCore.Signal(object)
    #: the curves over training now shown (a ProbeCurves, or None)
    curves_changed = QtCore.Signal(object)
    #: a run stopped by Cancel (no result is shown)
    run_cancelled = QtCore.Signal()
    #: a run failed (the sentence that says why)
    run_failed = QtCore.Signal(str)
    #: the probe open in the detail (a tap, or probes.INPUT_TAP)
    probe_opened = QtCore.Signal(str)
    #: a unit was put into the active pane's selection: tap, unit
    unit_selected = QtCore.Signal(str, int)
    #: the panel has something to show (a run was asked for, results arrived): its dock should open
    wants_dock = QtCore.Signal()

    SUPERSEDED = "The probes were superseded by another request; press Run again."

    def __init__(self, workspace, parent: QtWidgets.QWidget | None = None):
        super().__init__(workspace, parent)
        self.report = None
        self.curves = None
        self.outcome: ProbeOutcome | None = None
        # the controls (and what is shown) are the panel's state in the workspace, both ways
        self.binding = StateBinding(self.state, self._show_state, self._store_state, store_shown=True)
        self._reopen: str | None = None  # the probe to open when the running result arrives

        self.chart = ProbeChart()
        self.chart.tap_clicked.connect(self.open_probe)
        self.detail = ProbeDetail()
        self.detail.tap_chosen.connect(self._detail_chose)
        self.detail.unit_activated.connect(self.select_unit)
        self.curves_view = ProbeCurvesView(self)
        self.kernel_view = KernelCurvesView(self)
        self.kernel_view.link_x(self.curves_view.plot)  # the same training-step axis
        self.kernel_curves = None
        self.training_view = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical, self)
        self.training_view.addWidget(self.curves_view)
        self.training_view.addWidget(self.kernel_view)
        self.training_view.setChildrenCollapsible(False)
        self.kernel_view.hide()  # shown when the tangent-kernel curves were asked for
        self.training_view.hide()  # in a tab only for a recording of several checkpoints

        self._build_controls()
        self._build_actions()
        self._build_layout()

        initial = workspace.panel_state(PANEL_NAME)
        workspace.recording_changed.connect(self._recording_changed)
        workspace.panel_state_changed.connect(self._panel_state_changed)
        self._recording_changed(workspace.recording)
        if initial is not None:  # settings the workspace already holds (restored before the panel existed)
            self.binding.model_changed(initial)

    # ------------------------------------------------------------------ building
    def _build_controls(self) -> None:
        self.label_combo = QtWidgets.QComboBox()
        self.label_combo.setToolTip("The categorical annotation the probes predict (per position or per item)")
        self.label_combo.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.label_combo.currentIndexChanged.connect(self._label_changed)
        self.shift_spin = QtWidgets.QSpinBox()
        self.shift_spin.setRange(*SHIFT_RANGE)
        self.shift_spin.setToolTip(SHIFT_TIP)
        self.shift_spin.valueChanged.connect(self._shift_changed)
        self.shift_spin.valueChanged.connect(self.binding.push)
        self.shift_label = QtWidgets.QLabel()
        self.shift_label.setStyleSheet("color: #444")
        longest = "predict the label of token t−1 (the previous token)"
        self.shift_label.setMinimumWidth(self.shift_label.fontMetrics().horizontalAdvance(longest) + 4)
        self.at_combo = QtWidgets.QComboBox()
        for at, name in AT_NAMES.items():
            self.at_combo.addItem(name, at)
        self.at_combo.currentIndexChanged.connect(self.binding.push)
        self.at_combo.setToolTip("all positions: every labelled token; last of each item: the state after the "
                                 "whole item (the natural choice for a label of the item)")
        self.control_check = QtWidgets.QCheckBox("control task")
        self.control_check.setChecked(True)
        self.control_check.toggled.connect(self.binding.push)
        self.control_check.setToolTip("Also fit each probe on Hewitt & Liang's control task (a random label per "
                                      "token type); selectivity = accuracy − control accuracy")
        self.baseline_check = QtWidgets.QCheckBox("input-token baseline")
        self.baseline_check.setChecked(True)
        self.baseline_check.toggled.connect(self.binding.push)
        self.baseline_check.setToolTip("Also score the best probe on the model's inputs alone (one-hot tokens)")
        self.curves_check = QtWidgets.QCheckBox("over training")
        self.curves_check.setToolTip("Also probe every checkpoint of the recording and draw accuracy per tap "
                                     "against the training step")
        self.curves_check.setVisible(False)
        self.curves_check.toggled.connect(self.binding.push)
        self.kernel_check = QtWidgets.QCheckBox("tangent kernel")
        self.kernel_check.setToolTip("Over training, also compute the tangent kernel of every checkpoint's model on "
                                     "at most 256 items: its centred alignment with the label and its effective "
                                     "rank per layer (Baratin et al.), drawn under the probe curves; needs the "
                                     "run's checkpoint files")
        self.kernel_check.setVisible(False)
        self.kernel_check.toggled.connect(self.binding.push)
        self.curves_check.toggled.connect(lambda on: self.kernel_check.setEnabled(on))

        self.taps_list = QtWidgets.QListWidget()
        self.taps_list.setToolTip("The taps to probe (ordered by layer); untick the ones to skip")
        self.taps_list.setUniformItemSizes(True)
        self.taps_list.itemChanged.connect(lambda _: self._update_run_enabled())
        self.taps_list.itemChanged.connect(self.binding.push)
        self.all_taps_button = QtWidgets.QToolButton()
        self.all_taps_button.setText("all")
        self.all_taps_button.setToolTip("Tick every tap")
        self.all_taps_button.clicked.connect(lambda: self.set_checked_taps(None))
        self.no_taps_button = QtWidgets.QToolButton()
        self.no_taps_button.setText("none")
        self.no_taps_button.setToolTip("Untick every tap")
        self.no_taps_button.clicked.connect(lambda: self.set_checked_taps([]))

        self.run_button = QtWidgets.QPushButton("Run")
        self.run_button.setToolTip("Fit a probe per tap for the chosen label (Ctrl+Shift+P)")
        self.run_button.clicked.connect(self.run)
        self.build_task_controls("Cancel Probes", "Stop the running probes")
        self.progress.setMinimumWidth(200)
        self.progress.setMaximumWidth(320)
        self.export_button = QtWidgets.QToolButton()
        self.export_button.setText("Export")
        self.export_button.setToolTip("Save the chart, the probe detail or the curves as PNG/SVG/PDF, "
                                      "or the table as CSV/NPY")
        self.export_button.setPopupMode(QtWidgets.QToolButton.ToolButtonPopupMode.InstantPopup)
        self.status_label = QtWidgets.QLabel(START_HINT)
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)

    def _build_actions(self) -> None:
        action = self.make_action
        self.run_action = action("Run &Probes", self.run, "Ctrl+Shift+P",
                                 "Fit a linear probe per tap for the label chosen in the Probes panel")
        self.run_action.triggered.connect(lambda: self.wants_dock.emit())
        self.export_chart_action = action("Export Probe &Chart…", lambda: self.choose_and_export_view("chart"),
                                          None, "Save the accuracy-per-tap chart as PNG, SVG or PDF")
        self.export_detail_action = action("Export Probe &Detail…", lambda: self.choose_and_export_view("detail"),
                                           None, "Save the open probe (confusion matrix, top units) as PNG, SVG or PDF")
        self.export_curves_action = action("Export Probe C&urves…", lambda: self.choose_and_export_view("curves"),
                                           None, "Save the accuracy-over-training chart as PNG, SVG or PDF")
        self.export_kernel_action = action("Export Tangent-Kernel C&urves…",
                                           lambda: self.choose_and_export_view("kernel"), None,
                                           "Save the tangent-kernel alignment and effective rank over training as "
                                           "PNG, SVG or PDF")
        self.export_data_action = action("Export Probe &Table…", self.choose_and_export_data, None,
                                         "Save one row per tap (accuracy, intervals, control, selectivity) as CSV or NPY")
        self.fill_menu(self.export_button, (self.export_chart_action, self.export_detail_action,
                                            self.export_curves_action, self.export_kernel_action, None,
                                            self.export_data_action))
        self._update_export_enabled()

    def _build_layout(self) -> None:
        row = QtWidgets.QHBoxLayout()
        row.setSpacing(10)
        row.addWidget(labelled("Label", self.label_combo))
        shift = labelled("Shift", self.shift_spin)
        shift.layout().addWidget(self.shift_label)
        row.addWidget(shift)
        row.addWidget(labelled("Positions", self.at_combo))
        row.addWidget(self.control_check)
        row.addWidget(self.baseline_check)
        row.addWidget(self.curves_check)
        row.addWidget(self.kernel_check)
        row.addStretch(1)
        row.addWidget(self.run_button)
        row.addWidget(self.progress)
        row.addWidget(self.cancel_button)
        row.addWidget(self.export_button)

        taps = QtWidgets.QWidget()
        t_layout = QtWidgets.QVBoxLayout(taps)
        t_layout.setContentsMargins(0, 0, 0, 0)
        t_layout.setSpacing(2)
        head = QtWidgets.QHBoxLayout()
        head.setSpacing(2)
        head.addWidget(QtWidgets.QLabel("Taps"))
        head.addStretch(1)
        head.addWidget(self.all_taps_button)
        head.addWidget(self.no_taps_button)
        t_layout.addLayout(head)
        t_layout.addWidget(self.taps_list, 1)
        taps.setMinimumWidth(120)
        self.taps_box = taps

        self.tabs = QtWidgets.QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.setTabBarAutoHide(True)  # one tab (no checkpoints): no tab bar
        self.tabs.addTab(self.chart, "Accuracy by tap")

        self.splitter = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        self.splitter.addWidget(taps)
        self.splitter.addWidget(self.tabs)
        self.splitter.addWidget(self.detail)
        self.splitter.setStretchFactor(0, 0)
        self.splitter.setStretchFactor(1, 5)
        self.splitter.setStretchFactor(2, 5)
        self.splitter.setSizes([140, 560, 620])
        self.splitter.setChildrenCollapsible(False)

        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(4)
        layout.addLayout(row)
        layout.addWidget(self.status_label)
        layout.addWidget(self.splitter, 1)

    def heightForWidth(self, width: int) -> int:
        """No height-for-width: the wrapped sentences would otherwise make a scroll area (the dock) size
        the panel to its preferred height, hiding the chart below the fold; they wrap within the
        height the dock gives."""
        return -1

    # ------------------------------------------------------------------ settings
    def labels(self) -> list[str]:
        """The annotations offered (the recording's categorical ones, in file order)."""
        return [self.label_combo.itemData(i) for i in range(self.label_combo.count())]

    def set_label(self, name: str) -> None:
        i = self.label_combo.findData(name)
        if i < 0:
            raise KeyError(f"no categorical annotation {name!r} to probe; there are {', '.join(self.labels()) or 'none'}")
        self.label_combo.setCurrentIndex(i)

    def taps(self) -> list[str]:
        """Every tap offered, in the list's order (by layer)."""
        return [self.taps_list.item(i).data(QtCore.Qt.ItemDataRole.UserRole) for i in range(self.taps_list.count())]

    def checked_taps(self) -> list[str]:
        out = []
        for i in range(self.taps_list.count()):
            item = self.taps_list.item(i)
            if item.checkState() == QtCore.Qt.CheckState.Checked:
                out.append(item.data(QtCore.Qt.ItemDataRole.UserRole))
        return out

    def set_checked_taps(self, taps) -> None:
        """Tick exactly these taps (None: every tap)."""
        wanted = None if taps is None else set(taps)
        with self.binding.batch():
            for i in range(self.taps_list.count()):
                item = self.taps_list.item(i)
                on = wanted is None or item.data(QtCore.Qt.ItemDataRole.UserRole) in wanted
                item.setCheckState(QtCore.Qt.CheckState.Checked if on else QtCore.Qt.CheckState.Unchecked)
        self._update_run_enabled()
        self.binding.push()

    def settings(self) -> ProbeSettings:
        """What Run would ask for now (ValueError with a sentence when it cannot run)."""
        recording = self.workspace.recording
        if recording is None:
            raise ValueError("Open a recording to probe.")
        annotation = self.label_combo.currentData()
        if annotation is None:
            raise ValueError(NO_LABELS)
        taps = self.checked_taps()
        if not taps:
            raise ValueError("Tick at least one tap to probe.")
        return ProbeSettings(annotation=annotation, taps=tuple(taps), shift=int(self.shift_spin.value()),
                             at=self.at_combo.currentData(), control=self.control_check.isChecked(),
                             baseline=self.baseline_check.isChecked(),
                             curves=not self.curves_check.isHidden() and self.curves_check.isChecked(),
                             kernel=(not self.curves_check.isHidden() and self.curves_check.isChecked()
                                     and self.kernel_check.isChecked()))

    def _label_changed(self, _index: int = 0) -> None:
        recording = self.workspace.recording
        name = self.label_combo.currentData()
        info = recording.annotations.get(name) if recording is not None and name is not None else None
        item_level = info is not None and info.level == "item"
        with self.binding.batch():
            self.at_combo.setCurrentIndex(self.at_combo.findData("last" if item_level else "all"))
            if item_level:
                self.shift_spin.setValue(0)
        self.shift_spin.setEnabled(not item_level)
        self.shift_spin.setToolTip("An item's label is the same at every position: no shift"
                                   if item_level else SHIFT_TIP)
        self._shift_changed(self.shift_spin.value())
        self.binding.push()

    def _shift_changed(self, shift: int) -> None:
        shift = int(shift)
        which = "t" if shift == 0 else f"t{shift:+d}".replace("-", "−")
        extra = {1: " (the next token)", -1: " (the previous token)"}.get(shift, "")
        self.shift_label.setText(f"predict the label of token {which}{extra}")

    # ------------------------------------------------------------------ the panel's state in the workspace
    def state(self) -> ProbeState | None:
        """What a saved workspace keeps of this panel (None without a recording): the settings the
        controls show, whether a result is shown or being computed, and the probe open in the detail."""
        if self.workspace.recording is None:
            return None
        shown = self.report is not None or self.busy
        open_probe = self.detail.tap if self.report is not None else (self._reopen if self.busy else None)
        return ProbeState(label=self.label_combo.currentData(), shift=int(self.shift_spin.value()),
                          at=self.at_combo.currentData(), taps=tuple(self.checked_taps()),
                          control=self.control_check.isChecked(), baseline=self.baseline_check.isChecked(),
                          curves=not self.curves_check.isHidden() and self.curves_check.isChecked(),
                          kernel=not self.kernel_check.isHidden() and self.kernel_check.isChecked(),
                          shown=shown, open_probe=open_probe)

    def _store_state(self, state: ProbeState | None) -> None:
        self.workspace.set_panel_state(PANEL_NAME, state)

    def _panel_state_changed(self, name: str, state) -> None:
        if name == PANEL_NAME:
            self.binding.model_changed(state)

    def in_front(self) -> bool:
        """Whether the dock goes in front after a workspace was restored: it shows (or computes again)
        the result the workspace showed."""
        state = self.state()
        return state is not None and state.shown

    def menu_actions(self) -> list:
        """The Analysis menu (None: a separator)."""
        return [self.run_action, self.cancel_action, None, self.export_chart_action, self.export_detail_action,
                self.export_curves_action, self.export_kernel_action, self.export_data_action]

    def _show_state(self, state: ProbeState | None) -> None:
        """Show ``state`` set on the workspace from outside (a restored workspace): its settings, and,
        when it was showing a result, the probes run again on the worker with ``state.open_probe``
        opened when the result arrives. Settings this recording lacks are left as they are (the
        workspace's restore has said which)."""
        if state is None or self.workspace.recording is None:
            return
        if state.label is not None and self.label_combo.findData(state.label) >= 0:
            self.set_label(state.label)  # first: a label sets its default positions and shift
        if self.shift_spin.isEnabledTo(self):  # an item's label has no shift
            self.shift_spin.setValue(int(state.shift))
        at = self.at_combo.findData(state.at)
        if at >= 0:
            self.at_combo.setCurrentIndex(at)
        self.control_check.setChecked(bool(state.control))
        self.baseline_check.setChecked(bool(state.baseline))
        self.curves_check.setChecked(bool(state.curves) and not self.curves_check.isHidden())
        self.kernel_check.setChecked(bool(state.kernel) and not self.kernel_check.isHidden())
        self.set_checked_taps(state.taps)
        if state.shown and not self.busy and not self._shows_current_settings():
            if self.run():
                self._reopen = state.open_probe
        elif state.shown and self.report is not None and state.open_probe not in (None, self.detail.tap) \
                and self._has_probe(state.open_probe):
            self.open_probe(state.open_probe)

    def _shows_current_settings(self) -> bool:
        if self.report is None or self.outcome is None:
            return False
        try:
            return self.outcome.settings == self.settings()
        except ValueError:
            return False

    def _has_probe(self, tap: str) -> bool:
        from lstmviz.analysis.probes import INPUT_TAP

        report = self.report
        return report is not None and (tap in report.taps or (tap == INPUT_TAP and report.baseline is not None))

    # ------------------------------------------------------------------ workspace changes
    def _recording_changed(self, recording=None) -> None:
        with self.binding.batch():
            self._fill_for_recording()
        self.binding.push()

    def _fill_for_recording(self) -> None:
        self.abandon()
        self._reopen = None
        self._show(None, None)
        recording = self.workspace.recording
        self.label_combo.blockSignals(True)
        self.label_combo.clear()
        if recording is not None:
            for name, info in recording.annotations.items():
                if info.kind != "categorical" or not info.labels:
                    continue
                level = "item" if info.level == "item" else "position"
                self.label_combo.addItem(f"{name} ({level})", name)
                tip = info.description or f"{len(info.labels)} labels"
                self.label_combo.setItemData(self.label_combo.count() - 1, literal(tip), QtCore.Qt.ItemDataRole.ToolTipRole)
        self.label_combo.blockSignals(False)
        self.label_combo.setEnabled(self.label_combo.count() > 0)
        self.taps_list.blockSignals(True)
        self.taps_list.clear()
        if recording is not None:
            for tap in _ordered_taps(recording):
                info = recording.taps[tap]
                layer = "" if info.layer is None or info.layer < 0 else f"layer {info.layer}, "
                item = QtWidgets.QListWidgetItem(tap)
                item.setData(QtCore.Qt.ItemDataRole.UserRole, tap)
                item.setToolTip(literal(f"{tap}: {layer}{info.units} units" + (f" — {info.description}" if info.description else "")))
                item.setFlags(item.flags() | QtCore.Qt.ItemFlag.ItemIsUserCheckable)
                item.setCheckState(QtCore.Qt.CheckState.Checked)
                self.taps_list.addItem(item)
        self.taps_list.blockSignals(False)
        checkpoints = len(getattr(recording, "checkpoints", None) or []) if recording is not None else 0
        offered = has_curves(recording)
        self.curves_check.setVisible(offered)
        self.kernel_check.setVisible(offered)
        self.kernel_check.setEnabled(self.curves_check.isChecked())
        self.curves_check.setText(f"over training ({checkpoints} checkpoints)" if offered else "over training")
        self._offer_curves_tab(offered)
        self._label_changed()
        if recording is None:
            self.set_status("Open a recording to probe its states.")
        elif self.label_combo.count() == 0:
            self.set_status(NO_LABELS, problem=True)
        elif self.taps_list.count() == 0:
            self.set_status("This recording has no tap over its positions, so there is nothing to probe.",
                             problem=True)
        else:
            self.set_status(START_HINT)
        self._update_run_enabled()

    def _offer_curves_tab(self, offered: bool) -> None:
        """The "Over training" tab exists only for a recording of several checkpoints."""
        present = self.tabs.indexOf(self.training_view) >= 0
        if offered and not present:
            self.tabs.addTab(self.training_view, "Over training")
        elif present and not offered:
            self.tabs.removeTab(self.tabs.indexOf(self.training_view))
            self.training_view.setParent(self)  # kept (and exportable), not shown
            self.training_view.hide()

    @property
    def curves_offered(self) -> bool:
        return self.tabs.indexOf(self.training_view) >= 0

    def _update_run_enabled(self) -> None:
        ok = (self.workspace.recording is not None and self.label_combo.count() > 0
              and bool(self.checked_taps()))
        self.run_button.setEnabled(ok)
        self.run_action.setEnabled(ok)

    def _update_export_enabled(self) -> None:
        has = self.report is not None
        self.export_chart_action.setEnabled(has)
        self.export_detail_action.setEnabled(has and self.detail.result is not None)
        self.export_curves_action.setEnabled(self.curves is not None)
        self.export_kernel_action.setEnabled(self.kernel_curves is not None)
        self.export_data_action.setEnabled(has)

    # ------------------------------------------------------------------ running
    def run(self) -> bool:
        """Start the probes for the chosen settings. False (and a sentence in the status line) when
        nothing can run."""
        try:
            settings = self.settings()
        except ValueError as exc:
            self.set_status(describe(exc), problem=True)
            return False
        recording = self.workspace.recording
        with self.binding.batch():
            self.abandon()
            self._reopen = None
            self._show(None, None, None, "Probing…")

        def job(task, recording=recording, settings=settings):
            return probe_job(recording, settings, task)

        self.submit(CHANNEL, job, on_finished=self._probed, what="run the probes", title="Cannot run the probes",
                    on_failed=self._probe_failed, on_cancelled=self._probe_cancelled)
        what = f"{len(settings.taps)} tap{'s' if len(settings.taps) != 1 else ''}"
        self.set_status(f"Probing {settings.annotation} on {what}…")
        self.binding.push()
        return True

    def _probed(self, outcome: ProbeOutcome) -> None:
        reopen, self._reopen = self._reopen, None
        if outcome.recording is not self.workspace.recording:
            return
        self.outcome = outcome
        with self.binding.batch():
            self._show(outcome.report, outcome.curves, outcome.kernel_curves)
            if reopen is not None and reopen != self.detail.tap and self._has_probe(reopen):
                self.open_probe(reopen)  # the probe that was open when the workspace was saved
        self.set_status(self._result_status(outcome))
        self.binding.push()
        self.results_ready.emit(outcome.report)
        self.wants_dock.emit()

    def _probe_failed(self, exc: BaseException) -> None:
        self._reopen = None
        self._show(None, None, None, "The probes could not run; see the status line.")
        self.run_failed.emit(describe(exc))

    def _probe_cancelled(self) -> None:
        self._reopen = None
        self._show(None, None, None, "Probing cancelled: no result.")
        self.set_status("Probing cancelled; no result was kept. Press Run to start again.")
        self.run_cancelled.emit()

    def superseded(self) -> None:
        self._reopen = None
        self.binding.push()
        super().superseded()

    def _result_status(self, outcome: ProbeOutcome) -> str:
        report = outcome.report
        s = outcome.settings
        n = len(report.taps)
        how = "from the cache" if outcome.cached else f"in {duration(outcome.seconds)}"
        shift = "" if not s.shift else f", label of token t{s.shift:+d}".replace("-", "−")
        on_rows = any(report.short_rows(t) for t in report.taps)  # an image recording's pooled rows or cells
        where = "" if s.at == "all" or on_rows else ", last position of each item"
        best = report.best_tap()
        text = (f"Probed {report.annotation}{shift}{where} on {n} tap{'s' if n != 1 else ''} {how}: "
                f"best {best} {percent(report.probes[best].accuracy)}")
        control = report.controls.get(best)
        if control is not None:
            text += f" (control {percent(control.accuracy)})"
        if report.mixed_rows():
            text += "; each tap's rows (pixels, cells, images) have their own majority class"
        else:
            text += f"; majority class {percent(report.majority_accuracy)}"
        if report.baseline is not None:
            text += f"{'; ' if report.mixed_rows() else ', '}input tokens {percent(report.baseline.accuracy)}"
        if outcome.curves is not None:
            text += f"; curves over {describe_x(outcome.curves)}"
        if outcome.kernel_curves is not None:
            k = outcome.kernel_curves
            text += (f"; tangent-kernel alignment {k.total_alignment[0]:.3f} → {k.total_alignment[-1]:.3f}, effective "
                     f"rank {k.total_effective_rank[0]:.1f} → {k.total_effective_rank[-1]:.1f} ({k.items} items)")
        if report.skipped:  # "tap: why" each; the same reason is said once
            reasons = dict.fromkeys(why.split(": ", 1)[-1] for why in report.skipped.values())
            text += f". Not probed: {', '.join(report.skipped)} ({'; '.join(reasons)})"
        if report.split_unit == "positions":
            train, valid, test = report.split_sizes
            text += (f". Fewer than 3 items: positions were split ({train} train, {valid} validation, {test} test); "
                     f"positions of one item share their inputs, so the scores are optimistic")
        stopped = [r for r in (*report.probes.values(), *report.controls.values()) if not r.converged]
        if stopped:
            text += (f". {len(stopped)} fit{'s' if len(stopped) != 1 else ''} stopped at the iteration limit "
                     f"before converging (their accuracy may be a little low)")
        return text + ". Click a tap to open its probe."

    # ------------------------------------------------------------------ results
    def _show(self, report, curves, kernel_curves=None, message: str = "") -> None:
        changed = report is not self.report
        self.report = report
        self.curves = curves
        self.kernel_curves = kernel_curves
        self.kernel_view.set_curves(kernel_curves)
        self.kernel_view.setVisible(kernel_curves is not None)
        if kernel_curves is not None:
            self.training_view.setSizes([1000, 1000])  # the probe curves and the kernel's two plots share the tab
        if report is None:
            self.outcome = None
        self.chart.set_report(report, message)
        self.curves_view.set_curves(curves)
        if report is not None:
            self.open_probe(report.best_tap())
        else:
            self.detail.set_probe(None, None, message)
        self._update_export_enabled()
        self.binding.push()
        if changed:
            self.report_changed.emit(report)
        self.curves_changed.emit(curves)

    def open_probe(self, tap: str) -> None:
        """Open the probe of ``tap`` (or probes.INPUT_TAP) in the detail and shade it in the chart."""
        if self.report is None:
            raise ValueError("There are no probes yet: press Run first.")
        self.detail.set_probe(self.report, tap)
        if tap in self.report.taps:
            self.chart.set_current(tap)
        self._update_export_enabled()
        self.binding.push()
        self.probe_opened.emit(tap)

    def _detail_chose(self, tap: str) -> None:
        if self.report is not None and tap in self.report.taps:
            self.chart.set_current(tap)
        self.binding.push()
        self.probe_opened.emit(tap)

    def select_unit(self, tap: str, unit: int) -> bool:
        """Put ``unit`` of ``tap`` into the active pane's selection, first making the pane show ``tap``."""
        pane = getattr(self.workspace, "active_pane", None)
        if pane is None:
            self.detail.set_note("<span style='color:#b00000'>No pane to select the unit in: open a recording.</span>")
            return False
        switched = pane.tap != tap
        try:
            if switched:
                pane.set_tap(tap)
            pane.add_unit(int(unit))
        except (KeyError, ValueError) as exc:
            self.detail.set_note(f"<span style='color:#b00000'>Cannot select unit {int(unit)}: "
                                 f"{escape(describe(exc))}</span>")
            return False
        note = f"Unit <b>{int(unit)}</b> of <b>{escape(tap)}</b> is selected in the active pane"
        note += f" (it now shows {escape(tap)})." if switched else "."
        self.detail.set_note(note)
        self.unit_selected.emit(tap, int(unit))
        return True

    # ------------------------------------------------------------------ export
    def _view_widget(self, part: str) -> QtWidgets.QWidget:
        widgets = {"chart": self.chart, "detail": self.detail, "curves": self.curves_view, "kernel": self.kernel_view}
        if part not in widgets:
            raise ValueError(f"unknown part {part!r}; choose one of {', '.join(widgets)}")
        if self.report is None:
            raise ValueError("There are no probes to export yet: press Run first.")
        if part == "curves" and self.curves is None:
            raise ValueError("There are no curves over training to export: tick “over training” and run the "
                             "probes on a recording of several checkpoints.")
        if part == "kernel" and self.kernel_curves is None:
            raise ValueError("There are no tangent-kernel curves to export: tick “over training” and “tangent "
                             "kernel” and run the probes on a recording of several checkpoints.")
        return widgets[part]

    def export_view(self, path: str | Path, part: str = "chart") -> Path:
        """Write the chart ("chart"), the open probe ("detail", as a figure of the whole confusion matrix
        and list of top units: ``probe_figure``) or the curves ("curves") to PNG, SVG or PDF."""
        widget = self._view_widget(part)
        if part == "detail":
            check_view_suffix(path)
            figure = detail_figure(self.detail)
            try:
                return export_widget(figure, path)
            finally:
                close_figure(figure)
        if not widget.isVisible():  # e.g. the curves behind their tab: lay it out at the chart's size
            widget.resize(self.chart.size() if self.chart.width() > 0 else QtCore.QSize(640, 360))
            widget.ensurePolished()
        return export_widget(widget, path)

    def export_chart(self, path: str | Path) -> Path:
        return self.export_view(path, "chart")

    def export_detail(self, path: str | Path) -> Path:
        return self.export_view(path, "detail")

    def export_curves(self, path: str | Path) -> Path:
        return self.export_view(path, "curves")

    def export_kernel_curves(self, path: str | Path) -> Path:
        return self.export_view(path, "kernel")

    def export_kernel_table(self, path: str | Path) -> Path:
        """One row per checkpoint and layer (``KernelCurves.table``), as CSV or NPY."""
        if self.kernel_curves is None:
            raise ValueError("There are no tangent-kernel curves to export.")
        return export_table(path, self.kernel_curves.table())

    def export_table(self, path: str | Path) -> Path:
        """One row per tap, then the input baseline (``ProbeReport.table``), as CSV or NPY."""
        if self.report is None:
            raise ValueError("There are no probes to export yet: press Run first.")
        return export_table(path, self.report.table())

    def export_curves_table(self, path: str | Path) -> Path:
        """One row per checkpoint and tap (``ProbeCurves.table``), as CSV or NPY."""
        if self.curves is None:
            raise ValueError("There are no curves over training to export.")
        return export_table(path, self.curves.table())

    def _default_path(self, what: str, suffix: str) -> str:
        label = self.report.annotation if self.report is not None else "probes"
        return self.default_path(f"probes-{label}-{what}{suffix}")

    def choose_and_export_view(self, part: str = "chart") -> bool:
        titles = {"chart": "Export probe chart", "detail": "Export probe detail", "curves": "Export probe curves",
                  "kernel": "Export tangent-kernel curves"}
        path, chosen = QtWidgets.QFileDialog.getSaveFileName(
            self, titles.get(part, "Export"), self._default_path(part, ".png"), ";;".join(VIEW_FORMATS.values()))
        if not path:
            return False
        return self.export_guarded("Cannot export", lambda: self.export_view(with_suffix(path, chosen, VIEW_FORMATS), part))

    def choose_and_export_data(self) -> bool:
        filters = {
            "Probe table, CSV (*.csv)": ("table", ".csv"),
            "Probe table, NumPy array (*.npy)": ("table", ".npy"),
        }
        if self.curves is not None:
            filters["Curves over training, CSV (*.csv)"] = ("curves", ".csv")
            filters["Curves over training, NumPy array (*.npy)"] = ("curves", ".npy")
        if self.kernel_curves is not None:
            filters["Tangent-kernel curves, CSV (*.csv)"] = ("kernel", ".csv")
        answer = ask_table_path(self, "Export probe data", self._default_path("table", ".csv"), filters)
        if answer is None:
            return False
        path, what = answer
        export = {"curves": self.export_curves_table, "kernel": self.export_kernel_table}.get(what, self.export_table)
        return self.export_guarded("Cannot export", lambda: export(path))
