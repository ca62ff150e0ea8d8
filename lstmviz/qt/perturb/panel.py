"""The Perturb panel: re-run the live model on an item with hidden states edited, and see what changes.

Select and Match say which units co-vary with a hypothesis, Probes what is linearly decodable; this
panel tests whether units *matter* (issue 13). The user picks

- the **target**: a tap; the units — the active pane's selection, a probe's top units (the largest
  |weight| of one class's row of a linear probe of a categorical annotation on the tap), or a typed list
  ``3, 17, 40-45``; the positions — the brushed range of the active pane (a match the Match panel
  shows is brushed there too), every position of the item, or a typed item-local list. The item is the
  brushed one, else the item the select view shows;
- the **action** (``lstmviz.perturb.Perturbation``): ablate (to zero, or to the unit's corpus mean),
  clamp to a value, add ``alpha × direction`` (a unit vector, a random direction of the same norm, a
  probe's class weights, the difference of the means of two classes of an annotation), or patch (copy
  the states of another item from a start position).

**Run** (Ctrl+Shift+R) computes ``perturb_item`` on the worker (progress, Cancel; the window never
blocks) and shows, on the item's tokens: Δloss and KL per position, ‖Δ‖ per tap, the Δ heatmap of one
tap and the top next tokens before/after at the hovered position (``views``). **Sweep alpha** runs
``sweep_alpha`` over the range in its boxes (action add); **All items** runs ``perturb_items`` over every
item, or over the Match panel's matches, and shows the distribution and the items that change most
(double-click one to open it in the select view).

Input side and pruning (their own tabs): **Attack** runs ``attack_item`` on the item — HotFlip (the single
token substitution that moves the prediction at the position most), PGD in embedding space within a
radius, or Szegedy et al.'s box-constrained L-BFGS — and shows the perturbed input, its distance and the
Δ of hidden states it causes next to the clean run; **Pruning curve** runs ``pruning_curve_items`` on the
tap's units over every item and shows predicted against measured Δloss for magnitude, Taylor (LM), QM and
OBD. **Prune model** (Laurent et al.'s loss models: MP, LM, QM, OBD; the target sparsity slider, the number
of steps, λ and the curvature) prunes a copy of the model's weights globally on the recording's first items
(``prune_live_model``), shows predicted against measured Δloss per step, and shows in the Effect tab what
the pruned weights change on the item (Δloss, KL, the Δ of every tap); **Save pruned checkpoint…** writes
the pruned copy with its masks.

The live model is loaded on first use (``load_live_model``: the checkpoint named in the recording); when
it cannot be found or is another model, the panel says so in its own words and offers **Locate
checkpoint…**, which runs again with the chosen file. Nothing else depends on it.

Saved workspaces: the controls and what was shown are ``PerturbState`` (``state.py``) in the workspace
(bound by a ``StateBinding``); a restored workspace that showed a result computes it again
(``restore_work``, and when the state arrives). Exports: the effect, the sweep and the histogram as
PNG/SVG/PDF; the per-position table, the sweep and the batch tables as CSV/NPY; the Δ heatmap as NPY
(``[units, positions]``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PySide6 import QtCore, QtWidgets

from lstmviz.errors import describe
from lstmviz.qt.binding import StateBinding
from lstmviz.qt.checkpoint_dialog import ask_checkpoint
from lstmviz.qt.perturb.jobs import PRUNE_ITEMS, PerturbOutcome, PerturbRequest, perturb_job, save_pruned
from lstmviz.qt.perturb.prune_view import LossPruningView
from lstmviz.qt.perturb.state import (
    ABLATE_TO,
    ALPHA_RANGE,
    ATTACKS,
    EPS_RANGE,
    PERTURB_STATE,
    PRUNE_CURVATURES,
    PRUNE_LAMBDA,
    PRUNE_STEPS,
    SWEEP_STEPS,
    VALUE_RANGE,
    VIEWS,
    PerturbState,
    parse_indices,
)
from lstmviz.qt.perturb.views import AttackView, BatchView, EffectView, PruningView, SweepView, TopKTable
from lstmviz.qt.task_panel import TaskPanel, duration, labelled
from lstmviz.qt.widget_export import VIEW_FORMATS, ask_table_path, export_table, export_widget, with_suffix

PANEL_NAME = PERTURB_STATE.name
CHANNEL = "perturb"
ACTION_NAMES = {"ablate": "ablate", "clamp": "clamp", "add": "add direction", "patch": "patch"}
UNITS_NAMES = {"selection": "the selection", "probe": "a probe's top units", "typed": "typed"}
POSITIONS_NAMES = {"brush": "the brushed range", "all": "all positions", "typed": "typed"}
DIRECTION_NAMES = {"unit": "unit vector", "random": "random (same norm)", "probe": "probe class weights",
                   "means": "difference of class means"}
BATCH_NAMES = {"items": "every item", "matches": "the Match panel's matches"}
START_HINT = "Pick a tap, units and positions, choose an action, then press Run (Ctrl+Shift+R)."
KIND_WHAT = {"effect": "run the perturbation", "sweep": "sweep alpha", "items": "run the perturbation on all items",
             "attack": "run the input attack", "pruning": "compute the pruning curve", "prune": "prune the model"}
TAB_OF = {"effect": 0, "sweep": 1, "items": 2, "attack": 3, "pruning": 4, "prune": 4}
PRUNE_METHOD_NAMES = {"mp": "MP (magnitude)", "lm": "LM (linear)", "qm": "QM (quadratic)", "obd": "OBD"}
PRUNE_CURVATURE_NAMES = {"fisher": "empirical Fisher", "sampled-fisher": "true Fisher (sampled labels)",
                         "hutchinson": "Hessian (Hutchinson)"}
ATTACK_NAMES = {"hotflip": "HotFlip (one token)", "pgd": "PGD (embedding)", "lbfgs": "Szegedy L-BFGS (embedding)"}


def _spin(low: float, high: float, value: float, decimals: int = 3, step: float = 0.1) -> QtWidgets.QDoubleSpinBox:
    spin = QtWidgets.QDoubleSpinBox()
    spin.setRange(low, high)
    spin.setDecimals(decimals)
    spin.setSingleStep(step)
    spin.setValue(value)
    spin.setKeyboardTracking(False)
    return spin


def _combo(choices: dict, tip: str = "") -> QtWidgets.QComboBox:
    combo = QtWidgets.QComboBox()
    for key, name in choices.items():
        combo.addItem(name, key)
    if tip:
        combo.setToolTip(tip)
    return combo


def _select(combo: QtWidgets.QComboBox, value) -> bool:
    i = combo.findData(value)
    if i >= 0:
        combo.setCurrentIndex(i)
    return i >= 0


class PerturbPanel(TaskPanel):
    """Controls, the effect of a perturbation on one item, the alpha sweep and the batch over items."""

    #: a result is shown: "effect", "sweep" or "items" (the result object follows)
    results_ready = QtCore.Signal(str, object)
    #: a run failed (the sentence)
    run_failed = QtCore.Signal(str)
    #: a run was cancelled
    run_cancelled = QtCore.Signal()
    #: the checkpoint could not be used (the sentence); Locate checkpoint… is offered
    checkpoint_missing = QtCore.Signal(str)
    #: the panel has something to show: its dock should open
    wants_dock = QtCore.Signal()

    SUPERSEDED = "The perturbation was superseded by another request; press Run again."

    def __init__(self, workspace, parent: QtWidgets.QWidget | None = None):
        super().__init__(workspace, parent)
        self.effect = None
        self.sweep = None
        self.batch = None
        self.attack = None
        self.pruning = None
        self.loss_pruning = None
        self.outcome: PerturbOutcome | None = None
        self._live = None  # (recording, checkpoint, LiveModel)
        self._checkpoint: str | None = None
        self._shown = "none"
        self._retry_kind: str | None = None
        self.binding = StateBinding(self.state, self._show_state, self._store_state, store_shown=True)

        self.effect_view = EffectView()
        self.effect_view.position_hovered.connect(self._plot_hovered)
        self.topk = TopKTable()
        self.sweep_view = SweepView()
        self.batch_view = BatchView()
        self.batch_view.row_activated.connect(self.open_item)
        self.attack_view = AttackView()
        self.pruning_view = PruningView()
        self.loss_pruning_view = LossPruningView()

        self._build_controls()
        self._build_actions()
        self._build_layout()

        initial = workspace.panel_state(PANEL_NAME)
        workspace.recording_changed.connect(self._recording_changed)
        workspace.panel_state_changed.connect(self._panel_state_changed)
        workspace.hover_changed.connect(self._workspace_hovered)
        workspace.window_changed.connect(self._follow_window)
        workspace.tap_changed.connect(self._pane_tap_changed)
        self._recording_changed(workspace.recording)
        if initial is not None:
            self.binding.model_changed(initial)

    # ------------------------------------------------------------------ building
    def _build_controls(self) -> None:
        push = self.binding.push
        self.tap_combo = QtWidgets.QComboBox()
        self.tap_combo.setToolTip("The tap whose states are edited")
        self.tap_combo.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToContents)
        self.tap_combo.currentIndexChanged.connect(push)
        self.units_combo = _combo(UNITS_NAMES, "Which units of the tap are edited: the active pane's selection, "
                                  "the top units of a probe (the class below), or a typed list")
        self.units_combo.currentIndexChanged.connect(self._update_visibility)
        self.units_combo.currentIndexChanged.connect(push)
        self.units_edit = QtWidgets.QLineEdit()
        self.units_edit.setPlaceholderText("3, 17, 40-45")
        self.units_edit.setToolTip("Units as numbers and ranges, e.g. 3, 17, 40-45")
        self.units_edit.setMinimumWidth(110)
        self.units_edit.editingFinished.connect(push)
        self.positions_combo = _combo(POSITIONS_NAMES, "Where the edit applies, item-local: the brushed range "
                                      "of the active pane (a shown match is brushed there), the whole item, or a "
                                      "typed list")
        self.positions_combo.currentIndexChanged.connect(self._update_visibility)
        self.positions_combo.currentIndexChanged.connect(push)
        self.positions_edit = QtWidgets.QLineEdit()
        self.positions_edit.setPlaceholderText("5-9")
        self.positions_edit.setToolTip("Item-local positions (0 = the item's first token), e.g. 5-9, 20")
        self.positions_edit.setMinimumWidth(80)
        self.positions_edit.editingFinished.connect(push)
        self.probe_label_combo = QtWidgets.QComboBox()
        self.probe_label_combo.setToolTip("The categorical annotation of the probe")
        self.probe_label_combo.currentIndexChanged.connect(self._probe_label_changed)
        self.probe_label_combo.currentIndexChanged.connect(push)
        self.probe_class_combo = QtWidgets.QComboBox()
        self.probe_class_combo.setToolTip("The class whose weight row gives the probe's units and direction")
        self.probe_class_combo.currentIndexChanged.connect(push)
        self.probe_box = labelled("Probe", self._row(self.probe_label_combo, self.probe_class_combo))

        self.action_combo = _combo(ACTION_NAMES, "What is done to the target's states")
        self.action_combo.currentIndexChanged.connect(self._update_visibility)
        self.action_combo.currentIndexChanged.connect(push)
        self.ablate_combo = _combo({k: k for k in ABLATE_TO}, "zero, or the unit's mean over the recording")
        self.ablate_combo.currentIndexChanged.connect(push)
        self.value_spin = _spin(*VALUE_RANGE, 0.0)
        self.value_spin.setToolTip("The value the units are clamped to")
        self.value_spin.valueChanged.connect(push)
        self.direction_combo = _combo(DIRECTION_NAMES, "The direction added (normalised to unit length over the "
                                      "units, times alpha); random: Szegedy et al.'s control")
        self.direction_combo.currentIndexChanged.connect(self._update_visibility)
        self.direction_combo.currentIndexChanged.connect(push)
        self.alpha_spin = _spin(*ALPHA_RANGE, 1.0)
        self.alpha_spin.setToolTip("The scale of the direction added")
        self.alpha_spin.valueChanged.connect(push)
        self.seed_spin = QtWidgets.QSpinBox()
        self.seed_spin.setRange(0, 2**31 - 1)
        self.seed_spin.setToolTip("The seed of the random direction")
        self.seed_spin.valueChanged.connect(push)
        self.means_label_combo = QtWidgets.QComboBox()
        self.means_label_combo.setToolTip("The annotation whose class means give the direction mean(a) − mean(b)")
        self.means_label_combo.currentIndexChanged.connect(self._means_label_changed)
        self.means_label_combo.currentIndexChanged.connect(push)
        self.means_a_combo = QtWidgets.QComboBox()
        self.means_b_combo = QtWidgets.QComboBox()
        for combo in (self.means_a_combo, self.means_b_combo):
            combo.currentIndexChanged.connect(push)
        self.source_item_spin = QtWidgets.QSpinBox()
        self.source_item_spin.setToolTip("Patch: the item whose states are copied")
        self.source_item_spin.valueChanged.connect(push)
        self.source_start_spin = QtWidgets.QSpinBox()
        self.source_start_spin.setRange(0, 2**31 - 1)
        self.source_start_spin.setToolTip("Patch: the source item's first position copied (item-local)")
        self.source_start_spin.valueChanged.connect(push)

        self.ablate_box = labelled("to", self.ablate_combo)
        self.value_box = labelled("value", self.value_spin)
        self.direction_box = labelled("direction", self.direction_combo)
        self.alpha_box = labelled("alpha", self.alpha_spin)
        self.seed_box = labelled("seed", self.seed_spin)
        self.means_box = labelled("means of", self._row(self.means_label_combo, self.means_a_combo,
                                                        QtWidgets.QLabel("−"), self.means_b_combo))
        self.patch_box = labelled("from item", self._row(self.source_item_spin, QtWidgets.QLabel("at"),
                                                         self.source_start_spin))

        self.run_button = QtWidgets.QPushButton("Run")
        self.run_button.setToolTip("Re-run the model on the item with the edit and compare with the clean run "
                                   "(Ctrl+Shift+R)")
        self.run_button.clicked.connect(lambda: self.run("effect"))
        self.sweep_button = QtWidgets.QPushButton("Sweep alpha")
        self.sweep_button.setToolTip("Run the add action with each alpha from … to (steps) and plot the effect")
        self.sweep_button.clicked.connect(lambda: self.run("sweep"))
        self.sweep_from = _spin(*ALPHA_RANGE, -4.0, 2, 0.5)
        self.sweep_to = _spin(*ALPHA_RANGE, 4.0, 2, 0.5)
        self.sweep_steps = QtWidgets.QSpinBox()
        self.sweep_steps.setRange(*SWEEP_STEPS)
        self.sweep_steps.setValue(9)
        for w in (self.sweep_from, self.sweep_to):
            w.valueChanged.connect(push)
        self.sweep_steps.valueChanged.connect(push)
        self.batch_button = QtWidgets.QPushButton("All items")
        self.batch_button.setToolTip("Run the same perturbation on every item (or every match) in batches and "
                                     "show the distribution of the effect")
        self.batch_button.clicked.connect(lambda: self.run("items"))
        self.batch_combo = _combo(BATCH_NAMES, "Every item of the recording, or the matches the Match panel "
                                  "shows (the edit then covers each match)")
        self.batch_combo.currentIndexChanged.connect(push)

        self.build_task_controls("Cancel Perturbation", "Stop the running perturbation")
        self.progress.setMinimumWidth(160)
        self.progress.setMaximumWidth(260)
        self.export_button = QtWidgets.QToolButton()
        self.export_button.setText("Export")
        self.export_button.setToolTip("Save the views as PNG/SVG/PDF, the tables as CSV/NPY, the Δ heatmap as NPY")
        self.export_button.setPopupMode(QtWidgets.QToolButton.ToolButtonPopupMode.InstantPopup)
        self.status_label = QtWidgets.QLabel(START_HINT)
        self.status_label.setWordWrap(True)
        self.status_label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.checkpoint_label = QtWidgets.QLabel()
        self.checkpoint_label.setWordWrap(True)
        self.checkpoint_label.setStyleSheet("color: #b00000")
        self.locate_button = QtWidgets.QPushButton("Locate checkpoint…")
        self.locate_button.setToolTip("Choose the checkpoint file the recording was made with; the run starts again")
        self.locate_button.clicked.connect(self.locate_checkpoint)
        self.checkpoint_row = self._row(self.checkpoint_label, self.locate_button)
        self.checkpoint_row.layout().setStretch(0, 1)
        self.checkpoint_row.setVisible(False)
        self.attack_combo = _combo({k: ATTACK_NAMES[k] for k in ATTACKS},
                                   "HotFlip: the single token substitution that moves the prediction most; PGD: a "
                                   "projected-gradient step in embedding space within the radius; L-BFGS: Szegedy et "
                                   "al.'s smallest embedding perturbation that flips the prediction (slow)")
        self.attack_combo.currentIndexChanged.connect(push)
        self.attack_position_spin = QtWidgets.QSpinBox()
        self.attack_position_spin.setRange(0, 2**31 - 1)
        self.attack_position_spin.setToolTip("The item-local position whose next-token prediction is attacked")
        self.attack_position_spin.valueChanged.connect(push)
        self.attack_eps_spin = _spin(*EPS_RANGE, 1.0)
        self.attack_eps_spin.setToolTip("PGD: the L2 radius of the embedding perturbation")
        self.attack_eps_spin.valueChanged.connect(push)
        self.attack_button = QtWidgets.QPushButton("Attack")
        self.attack_button.setToolTip("Perturb the item's input to flip the prediction at the position, and show "
                                      "the Δ of hidden states it causes")
        self.attack_button.clicked.connect(lambda: self.run("attack"))
        self.attack_label = QtWidgets.QLabel("Choose a method and a position, then press Attack.")
        self.attack_label.setWordWrap(True)
        self.attack_label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.pruning_button = QtWidgets.QPushButton("Pruning curve")
        self.pruning_button.setToolTip("Rank the tap's units by magnitude, first-order Taylor and OBD saliency on "
                                       "every item, prune the lowest fractions and compare predicted with measured "
                                       "Δ loss")
        self.pruning_button.clicked.connect(lambda: self.run("pruning"))
        self.prune_method_combo = _combo(PRUNE_METHOD_NAMES, "Laurent et al.'s loss model that ranks the weights: MP "
                                         "|θ|², LM |−gθ|, QM |−gθ + ½hθ²|, OBD ½hθ² (plus ½λθ²)")
        self.prune_method_combo.currentIndexChanged.connect(push)
        self.prune_sparsity_slider = QtWidgets.QSlider(QtCore.Qt.Orientation.Horizontal)
        self.prune_sparsity_slider.setRange(0, 99)
        self.prune_sparsity_slider.setValue(50)
        self.prune_sparsity_slider.setMinimumWidth(120)
        self.prune_sparsity_slider.setToolTip("The share of all weight matrices' weights pruned at the end (one "
                                              "global mask; biases and gains are kept)")
        self.prune_sparsity_label = QtWidgets.QLabel("50%")
        self.prune_sparsity_slider.valueChanged.connect(lambda v: self.prune_sparsity_label.setText(f"{v}%"))
        self.prune_sparsity_slider.valueChanged.connect(push)
        self.prune_steps_spin = QtWidgets.QSpinBox()
        self.prune_steps_spin.setRange(*PRUNE_STEPS)
        self.prune_steps_spin.setValue(5)
        self.prune_steps_spin.setToolTip("Pruning steps reaching the target (exponential schedule); the gradient "
                                         "and curvature are estimated again at each step's pruned weights")
        self.prune_steps_spin.valueChanged.connect(push)
        self.prune_lambda_spin = _spin(*PRUNE_LAMBDA, 0.0, decimals=5, step=0.001)
        self.prune_lambda_spin.setToolTip("λ of the locality term ½λθ² added to every saliency")
        self.prune_lambda_spin.valueChanged.connect(push)
        self.prune_curvature_combo = _combo({k: PRUNE_CURVATURE_NAMES[k] for k in PRUNE_CURVATURES},
                                            "The diagonal curvature h of QM and OBD (and of every step's quadratic "
                                            "prediction)")
        self.prune_curvature_combo.currentIndexChanged.connect(push)
        self.prune_button = QtWidgets.QPushButton("Prune model")
        self.prune_button.setToolTip(f"Prune a copy of the model's weights on the first {PRUNE_ITEMS} items, show "
                                     "predicted against measured Δ loss per step and what the pruned weights change "
                                     "on the item (Effect tab)")
        self.prune_button.clicked.connect(lambda: self.run("prune"))
        self.save_pruned_button = QtWidgets.QPushButton("Save pruned checkpoint…")
        self.save_pruned_button.setToolTip("Write the pruned model as a checkpoint that carries its masks")
        self.save_pruned_button.clicked.connect(self.choose_and_save_pruned)
        self.heatmap_combo = QtWidgets.QComboBox()
        self.heatmap_combo.setToolTip("The tap whose Δ the heatmap shows")
        self.heatmap_combo.currentIndexChanged.connect(self._heatmap_chosen)

    @staticmethod
    def _box(widget) -> QtWidgets.QWidget:
        box = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(widget)
        return box

    @staticmethod
    def _row(*widgets) -> QtWidgets.QWidget:
        box = QtWidgets.QWidget()
        layout = QtWidgets.QHBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(4)
        for w in widgets:
            layout.addWidget(w)
        return box

    def _build_actions(self) -> None:
        action = self.make_action
        self.run_action = action("Run &Perturbation", lambda: self.run("effect"), "Ctrl+Shift+R",
                                 "Re-run the model on the item with the Perturb panel's edit")
        self.run_action.triggered.connect(lambda: self.wants_dock.emit())
        self.locate_action = action("&Locate Checkpoint…", self.locate_checkpoint, None,
                                    "Choose the checkpoint file of the recording (when it was moved)")
        self.export_effect_action = action("Export Perturbation &Effect…", lambda: self.choose_and_export_view("effect"),
                                           None, "Save the effect curves and the Δ heatmap as PNG, SVG or PDF")
        self.export_sweep_action = action("Export Alpha &Sweep…", lambda: self.choose_and_export_view("sweep"), None,
                                          "Save the effect against alpha as PNG, SVG or PDF")
        self.export_items_action = action("Export Effect over &Items…", lambda: self.choose_and_export_view("items"),
                                          None, "Save the histogram over items as PNG, SVG or PDF")
        self.export_attack_action = action("Export Input &Attack…", lambda: self.choose_and_export_view("attack"),
                                           None, "Save the input attack and the hidden Δ it causes as PNG, SVG or PDF")
        self.export_pruning_action = action("Export P&runing Curve…", lambda: self.choose_and_export_view("pruning"),
                                            None, "Save predicted against measured Δ loss as PNG, SVG or PDF")
        self.export_prune_action = action("Export &Loss-model Pruning…", lambda: self.choose_and_export_view("prune"),
                                          None, "Save predicted against measured Δ loss per pruning step as PNG, SVG "
                                                "or PDF")
        self.save_pruned_action = action("Save Pruned C&heckpoint…", self.choose_and_save_pruned, None,
                                         "Write the pruned model as a checkpoint with its masks")
        self.export_data_action = action("Export Perturbation &Data…", self.choose_and_export_data, None,
                                         "Save the per-position, sweep or item tables as CSV/NPY, or the Δ heatmap as NPY")
        self.fill_menu(self.export_button, (self.export_effect_action, self.export_sweep_action,
                                            self.export_items_action, self.export_attack_action,
                                            self.export_pruning_action, self.export_prune_action, None,
                                            self.export_data_action, self.save_pruned_action))
        self._update_enabled()

    def _build_layout(self) -> None:
        target = QtWidgets.QHBoxLayout()
        target.setSpacing(10)
        target.addWidget(labelled("Tap", self.tap_combo))
        target.addWidget(labelled("Units", self._row(self.units_combo, self.units_edit)))
        target.addWidget(labelled("Positions", self._row(self.positions_combo, self.positions_edit)))
        target.addWidget(self.probe_box)
        self.item_label = QtWidgets.QLabel()
        self.item_label.setStyleSheet("color: #444")
        target.addWidget(self.item_label)
        target.addStretch(1)

        act = QtWidgets.QHBoxLayout()
        act.setSpacing(10)
        act.addWidget(labelled("Action", self.action_combo))
        for box in (self.ablate_box, self.value_box, self.direction_box, self.alpha_box, self.seed_box,
                    self.means_box, self.patch_box):
            act.addWidget(box)
        act.addStretch(1)
        act.addWidget(self.run_button)
        act.addWidget(self.sweep_button)
        act.addWidget(self._row(self.sweep_from, QtWidgets.QLabel("to"), self.sweep_to, QtWidgets.QLabel("in"),
                                self.sweep_steps))
        act.addWidget(self.batch_button)
        act.addWidget(self.batch_combo)
        act.addWidget(self.progress)
        act.addWidget(self.cancel_button)
        act.addWidget(self.export_button)

        effect_side = QtWidgets.QWidget()
        side = QtWidgets.QVBoxLayout(effect_side)
        side.setContentsMargins(0, 0, 0, 0)
        side.addWidget(labelled("Δ heatmap of", self.heatmap_combo))
        side.addWidget(self.topk, 1)
        self.effect_splitter = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        self.effect_splitter.addWidget(self.effect_view)
        self.effect_splitter.addWidget(effect_side)
        self.effect_splitter.setStretchFactor(0, 5)
        self.effect_splitter.setStretchFactor(1, 1)
        self.effect_splitter.setSizes([1000, 260])
        self.effect_splitter.setChildrenCollapsible(False)

        self.tabs = QtWidgets.QTabWidget()
        self.tabs.setDocumentMode(True)
        self.tabs.addTab(self.effect_splitter, "Effect on the item")
        self.tabs.addTab(self.sweep_view, "Sweep of alpha")
        self.tabs.addTab(self.batch_view, "All items")
        attack_tab = QtWidgets.QWidget()
        a_layout = QtWidgets.QVBoxLayout(attack_tab)
        a_layout.setContentsMargins(0, 4, 0, 0)
        a_row = QtWidgets.QHBoxLayout()
        a_row.addWidget(labelled("Method", self.attack_combo))
        a_row.addWidget(labelled("at position", self.attack_position_spin))
        a_row.addWidget(labelled("PGD radius", self.attack_eps_spin))
        a_row.addWidget(self.attack_button)
        a_row.addStretch(1)
        a_layout.addLayout(a_row)
        a_layout.addWidget(self.attack_label)
        a_layout.addWidget(self.attack_view, 1)
        self.attack_tab = attack_tab
        self.tabs.addTab(attack_tab, "Input attack")
        pruning_tab = QtWidgets.QWidget()
        p_layout = QtWidgets.QVBoxLayout(pruning_tab)
        p_layout.setContentsMargins(0, 4, 0, 0)
        p_row = QtWidgets.QHBoxLayout()
        p_row.addWidget(self.pruning_button)
        p_row.addWidget(QtWidgets.QLabel("the units of the chosen tap, loss over every item (Laurent et al.; "
                                         "Molchanov et al.)"))
        p_row.addStretch(1)
        p_layout.addLayout(p_row)
        m_row = QtWidgets.QHBoxLayout()
        m_row.addWidget(labelled("Loss model", self.prune_method_combo))
        m_row.addWidget(labelled("sparsity", self._row(self.prune_sparsity_slider, self.prune_sparsity_label)))
        m_row.addWidget(labelled("steps", self.prune_steps_spin))
        m_row.addWidget(labelled("λ", self.prune_lambda_spin))
        m_row.addWidget(labelled("curvature", self.prune_curvature_combo))
        m_row.addWidget(self.prune_button)
        m_row.addWidget(self.save_pruned_button)
        m_row.addStretch(1)
        p_layout.addLayout(m_row)
        self.prune_label = QtWidgets.QLabel("Prune model: the weights of every matrix, loss over the first "
                                            f"{PRUNE_ITEMS} items (Laurent et al. 2020).")
        self.prune_label.setWordWrap(True)
        self.prune_label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        p_layout.addWidget(self.prune_label)
        self.pruning_splitter = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        # plain containers: a bare pyqtgraph PlotWidget cannot be rendered by export_widget
        self.pruning_box = self._box(self.pruning_view)
        self.loss_pruning_box = self._box(self.loss_pruning_view)
        self.pruning_splitter.addWidget(self.pruning_box)
        self.pruning_splitter.addWidget(self.loss_pruning_box)
        self.pruning_splitter.setChildrenCollapsible(False)
        p_layout.addWidget(self.pruning_splitter, 1)
        self.pruning_tab = pruning_tab
        self.tabs.addTab(pruning_tab, "Pruning")
        self.tabs.currentChanged.connect(self.binding.push)

        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.setSpacing(4)
        layout.addLayout(target)
        layout.addLayout(act)
        layout.addWidget(self.status_label)
        layout.addWidget(self.checkpoint_row)
        layout.addWidget(self.tabs, 1)
        self._update_visibility()

    def heightForWidth(self, width: int) -> int:
        return -1  # see ProbePanel.heightForWidth: the wrapped sentences must not size the dock

    def _update_visibility(self, *_) -> None:
        action = self.action_combo.currentData()
        direction = self.direction_combo.currentData()
        units_from = self.units_combo.currentData()
        self.units_edit.setVisible(units_from == "typed")
        self.positions_edit.setVisible(self.positions_combo.currentData() == "typed")
        self.ablate_box.setVisible(action == "ablate")
        self.value_box.setVisible(action == "clamp")
        for box in (self.direction_box, self.alpha_box):
            box.setVisible(action == "add")
        self.seed_box.setVisible(action == "add" and direction == "random")
        self.means_box.setVisible(action == "add" and direction == "means")
        self.patch_box.setVisible(action == "patch")
        self.probe_box.setVisible(units_from == "probe" or (action == "add" and direction == "probe"))
        self._update_enabled()

    def _update_enabled(self) -> None:
        has_recording = self.workspace.recording is not None and self.tap_combo.count() > 0
        for w in (self.run_button, self.run_action, self.batch_button, self.attack_button, self.pruning_button,
                  self.prune_button):
            w.setEnabled(has_recording)
        self.sweep_button.setEnabled(has_recording and self.action_combo.currentData() == "add")
        self.export_effect_action.setEnabled(self.effect is not None)
        self.export_sweep_action.setEnabled(self.sweep is not None)
        self.export_items_action.setEnabled(self.batch is not None)
        self.export_attack_action.setEnabled(self.attack is not None)
        self.export_pruning_action.setEnabled(self.pruning is not None)
        self.export_prune_action.setEnabled(self.loss_pruning is not None)
        self.save_pruned_action.setEnabled(self.loss_pruning is not None)
        self.save_pruned_button.setEnabled(self.loss_pruning is not None)
        self.export_data_action.setEnabled(any(r is not None for r in (self.effect, self.sweep, self.batch,
                                                                       self.attack, self.pruning, self.loss_pruning)))

    def menu_actions(self) -> list:
        return [self.run_action, self.cancel_action, self.locate_action, None, self.export_effect_action,
                self.export_sweep_action, self.export_items_action, self.export_attack_action,
                self.export_pruning_action, self.export_prune_action, self.export_data_action, self.save_pruned_action]

    # ------------------------------------------------------------------ the recording
    def _recording_changed(self, recording=None) -> None:
        with self.binding.batch():
            self._fill_for_recording()
        self.binding.push()

    def _fill_for_recording(self) -> None:
        self.abandon()
        self._live = None
        self._checkpoint = None
        self._retry_kind = None
        self.checkpoint_row.setVisible(False)
        self._show_result(None, None, None)
        recording = self.workspace.recording
        for combo in (self.tap_combo, self.probe_label_combo, self.means_label_combo):
            combo.blockSignals(True)
            combo.clear()
        if recording is not None:
            for tap in self._position_taps(recording):
                info = recording.taps[tap]
                self.tap_combo.addItem(f"{tap} ({info.units})", tap)
            for name, info in recording.annotations.items():
                if info.kind == "categorical" and info.labels and info.level == "position":
                    self.probe_label_combo.addItem(name, name)
                    self.means_label_combo.addItem(name, name)
            pane = self.workspace.active_pane
            if pane is not None:
                _select(self.tap_combo, pane.tap)
            self.source_item_spin.setRange(0, max(0, recording.n_items - 1))
        for combo in (self.tap_combo, self.probe_label_combo, self.means_label_combo):
            combo.blockSignals(False)
        self._probe_label_changed()
        self._means_label_changed()
        self._update_visibility()
        if recording is None:
            self.set_status("Open a recording made by lstmviz record (it names its checkpoint) to perturb its model.")
        elif self.tap_combo.count() == 0:
            self.set_status("This recording has no tap over its positions, so there is nothing to perturb.",
                            problem=True)
        else:
            self.set_status(START_HINT)

    @staticmethod
    def _position_taps(recording) -> list[str]:
        return [name for name, info in recording.taps.items() if getattr(info, "axis", "positions") == "positions"]

    def _probe_label_changed(self, *_) -> None:
        self._fill_classes(self.probe_label_combo, [self.probe_class_combo])

    def _means_label_changed(self, *_) -> None:
        self._fill_classes(self.means_label_combo, [self.means_a_combo, self.means_b_combo])

    def _fill_classes(self, label_combo, class_combos) -> None:
        recording = self.workspace.recording
        name = label_combo.currentData()
        labels = []
        if recording is not None and name is not None and name in recording.annotations:
            labels = list(recording.annotations[name].labels or [])
        for i, combo in enumerate(class_combos):
            combo.blockSignals(True)
            combo.clear()
            for label in labels:
                combo.addItem(label, label)
            if labels:
                combo.setCurrentIndex(min(i, len(labels) - 1))
            combo.blockSignals(False)

    # ------------------------------------------------------------------ the panel's state
    def state(self) -> PerturbState | None:
        if self.workspace.recording is None:
            return None
        shown = self._shown if (self.busy or self._shown_result() is not None) else "none"
        return PerturbState(
            tap=self.tap_combo.currentData(), action=self.action_combo.currentData(),
            units_from=self.units_combo.currentData(), units_text=self.units_edit.text(),
            positions_from=self.positions_combo.currentData(), positions_text=self.positions_edit.text(),
            ablate_to=self.ablate_combo.currentData(), value=float(self.value_spin.value()),
            direction=self.direction_combo.currentData(), alpha=float(self.alpha_spin.value()),
            seed=int(self.seed_spin.value()), probe_label=self.probe_label_combo.currentData(),
            probe_class=self.probe_class_combo.currentData(), means_label=self.means_label_combo.currentData(),
            means_a=self.means_a_combo.currentData(), means_b=self.means_b_combo.currentData(),
            source_item=int(self.source_item_spin.value()), source_start=int(self.source_start_spin.value()),
            item=None if self.outcome is None else int(self.outcome.request.item),
            heatmap_tap=self.effect_view.heatmap_tap,
            sweep_range=(float(self.sweep_from.value()), float(self.sweep_to.value()))
            if self.sweep_from.value() < self.sweep_to.value() else (-4.0, 4.0),
            sweep_steps=int(self.sweep_steps.value()), batch_over=self.batch_combo.currentData(),
            view=VIEWS[max(0, self.tabs.currentIndex())], shown=shown, checkpoint=self._checkpoint,
            attack_method=self.attack_combo.currentData(), attack_position=int(self.attack_position_spin.value()),
            attack_eps=float(self.attack_eps_spin.value()), prune_method=self.prune_method_combo.currentData(),
            prune_sparsity=self.prune_sparsity_slider.value() / 100.0, prune_steps=int(self.prune_steps_spin.value()),
            prune_lambda=float(self.prune_lambda_spin.value()),
            prune_curvature=self.prune_curvature_combo.currentData())

    def _shown_result(self):
        return self._results().get(self._shown)

    def _results(self) -> dict:
        return {"effect": self.effect, "sweep": self.sweep, "items": self.batch, "attack": self.attack,
                "pruning": self.pruning, "prune": self.loss_pruning}

    def _store_state(self, state) -> None:
        self.workspace.set_panel_state(PANEL_NAME, state)

    def _panel_state_changed(self, name: str, state) -> None:
        if name == PANEL_NAME:
            self.binding.model_changed(state)

    def _show_state(self, s: PerturbState | None) -> None:
        """Show ``s`` set from outside (a restored workspace); a result it showed is computed again."""
        if s is None or self.workspace.recording is None:
            return
        if s.tap is not None:
            _select(self.tap_combo, s.tap)
        _select(self.units_combo, s.units_from)
        self.units_edit.setText(s.units_text)
        _select(self.positions_combo, s.positions_from)
        self.positions_edit.setText(s.positions_text)
        if s.probe_label is not None and _select(self.probe_label_combo, s.probe_label):
            self._probe_label_changed()
        if s.probe_class is not None:
            _select(self.probe_class_combo, s.probe_class)
        _select(self.action_combo, s.action)
        _select(self.ablate_combo, s.ablate_to)
        self.value_spin.setValue(s.value)
        _select(self.direction_combo, s.direction)
        self.alpha_spin.setValue(s.alpha)
        self.seed_spin.setValue(s.seed)
        if s.means_label is not None and _select(self.means_label_combo, s.means_label):
            self._means_label_changed()
        if s.means_a is not None:
            _select(self.means_a_combo, s.means_a)
        if s.means_b is not None:
            _select(self.means_b_combo, s.means_b)
        self.source_item_spin.setValue(s.source_item)
        self.source_start_spin.setValue(s.source_start)
        self.sweep_from.setValue(s.sweep_range[0])
        self.sweep_to.setValue(s.sweep_range[1])
        self.sweep_steps.setValue(s.sweep_steps)
        _select(self.batch_combo, s.batch_over)
        _select(self.attack_combo, s.attack_method)
        self.attack_position_spin.setValue(s.attack_position)
        self.attack_eps_spin.setValue(s.attack_eps)
        _select(self.prune_method_combo, s.prune_method)
        self.prune_sparsity_slider.setValue(int(round(100 * s.prune_sparsity)))
        self.prune_steps_spin.setValue(s.prune_steps)
        self.prune_lambda_spin.setValue(s.prune_lambda)
        _select(self.prune_curvature_combo, s.prune_curvature)
        self.tabs.setCurrentIndex(TAB_OF.get(s.view, 0))
        if s.checkpoint != self._checkpoint:
            self._checkpoint = s.checkpoint
            self._live = None
        self._restore_heatmap = s.heatmap_tap
        if s.heatmap_tap is not None and self.effect is not None:
            self.show_heatmap(s.heatmap_tap)
        self._update_visibility()
        if s.shown != "none" and not self.busy and self._shown_result() is None:
            self.run(s.shown, item=s.item)

    def restore_work(self) -> None:
        """Compute again what a restored workspace showed (``lstmviz --screenshot``)."""
        state = self.workspace.panel_state(PANEL_NAME)
        if state is not None and state.shown != "none" and not self.busy and self._shown_result() is None:
            self.run(state.shown, item=state.item)

    def in_front(self) -> bool:
        state = self.state()
        return state is not None and state.shown != "none"

    # ------------------------------------------------------------------ the request
    def current_item(self) -> int:
        """The item a run uses: the brushed one (positions from the brush), else the select view's."""
        pane = self.workspace.active_pane
        if self.positions_combo.currentData() == "brush" and pane is not None and pane.brush is not None:
            return int(self.workspace.recording.item_of(pane.brush[0]))
        return int(self.workspace.item)

    def request(self, kind: str = "effect", item: int | None = None) -> PerturbRequest:
        """What a run of ``kind`` asks for now (ValueError with a sentence when it cannot run)."""
        recording = self.workspace.recording
        if recording is None:
            raise ValueError("Open a recording to perturb its model.")
        tap = self.tap_combo.currentData()
        if tap is None:
            raise ValueError("This recording has no tap over its positions to perturb.")
        if kind in ("attack", "pruning", "prune"):
            return self._input_request(kind, tap, item)
        n_units = int(recording.taps[tap].units)
        pane = self.workspace.active_pane
        units_from = self.units_combo.currentData()
        units = probe = None
        if units_from == "selection":
            selection = None if pane is None else pane.selection
            if selection is None or len(selection) == 0:
                raise ValueError("The active pane has no selected units: brush a range or add units there, or "
                                 "choose typed units.")
            units = tuple(sorted({int(u) for u in selection.units}))
            if max(units) >= n_units:
                raise ValueError(f"The selection holds unit {max(units)}, but {tap} has {n_units} units; pick a "
                                 f"tap of the pane's size or type the units.")
        elif units_from == "typed":
            units = parse_indices(self.units_edit.text(), "unit", n_units)
        else:
            label, cls = self.probe_label_combo.currentData(), self.probe_class_combo.currentData()
            if label is None or cls is None:
                raise ValueError("Choose the annotation and class of the probe whose top units are edited.")
            probe = (label, cls)
        positions_from = self.positions_combo.currentData()
        positions = None
        if positions_from == "brush" and kind != "items" or (kind == "items" and positions_from == "brush"
                                                              and self.batch_combo.currentData() == "items"):
            if pane is None or pane.brush is None:
                raise ValueError("Brush a range in the active pane to choose the positions, or choose all positions.")
            start, stop = pane.brush
            item_of = int(recording.item_of(start))
            first = int(recording.item_range(item_of)[0])
            positions = tuple(range(start - first, stop - first))
        if item is None:
            item = self.current_item()
        item = int(np.clip(item, 0, max(0, recording.n_items - 1)))
        if positions_from == "typed":
            length = int(np.diff(recording.item_range(item))[0])
            positions = parse_indices(self.positions_edit.text(), "position", length)
        state = self.state()
        fields = state.perturbation_fields()
        if state.action == "add" and state.direction == "probe":
            if state.probe_label is None or state.probe_class is None:
                raise ValueError("Choose the annotation and class of the probe whose weights give the direction.")
        if state.action == "add" and state.direction == "means":
            if state.means_label is None or state.means_a is None or state.means_b is None:
                raise ValueError("Choose an annotation and two of its classes for the difference of means.")
            if state.means_a == state.means_b:
                raise ValueError("Choose two different classes for the difference of means.")
        alphas: tuple[float, ...] = ()
        if kind == "sweep":
            if state.action != "add":
                raise ValueError("Sweep alpha needs the action add direction.")
            low, high = float(self.sweep_from.value()), float(self.sweep_to.value())
            if not low < high:
                raise ValueError("The sweep of alpha must go from a smaller alpha to a larger one.")
            alphas = tuple(float(a) for a in np.linspace(low, high, int(self.sweep_steps.value())))
        where = None
        if kind == "items" and self.batch_combo.currentData() == "matches":
            where = self._matches()
        return PerturbRequest(kind=kind, tap=tap, fields=fields, units=units, positions=positions, item=item,
                              checkpoint=self._checkpoint, probe_units=probe, alphas=alphas, where=where)

    def _input_request(self, kind: str, tap: str, item: int | None) -> PerturbRequest:
        recording = self.workspace.recording
        item = self.current_item() if item is None else int(np.clip(item, 0, max(0, recording.n_items - 1)))
        attack = None
        if kind == "attack":
            length = int(np.diff(recording.item_range(item))[0])
            position = int(self.attack_position_spin.value())
            if position >= length:
                raise ValueError(f"Item {item} has {length} tokens; choose an attack position from 0 to {length - 1}.")
            method = self.attack_combo.currentData()
            attack = {"method": method, "position": position}
            if method == "hotflip" and length * len(self.workspace.recording.vocab) <= 200_000:
                # verify every substitution (batched forwards): on a saturated model the first-order
                # estimates are ~0 and the top 10 of them miss the flips a full check finds
                attack["k"] = None
            if method == "pgd":
                attack["eps"] = float(self.attack_eps_spin.value())
        prune = self.state().prune_fields() if kind == "prune" else None
        return PerturbRequest(kind=kind, tap=tap, fields={}, units=None, positions=None, item=item,
                              checkpoint=self._checkpoint, attack=attack, prune=prune)

    def _matches(self) -> tuple[tuple[int, int, int], ...]:
        """The Match panel's matches as (item, start, stop), item-local."""
        window = self.window()
        match = getattr(window, "panels", {}).get("match") if window is not None else None
        results = getattr(match, "results", None)
        if results is None or len(results) == 0:
            raise ValueError("The Match panel shows no matches: press Match there, or run over every item.")
        recording = self.workspace.recording
        offsets = np.asarray(recording.item_offsets, dtype=np.int64)
        rows = []
        for start, length, item in zip(results.starts, results.lengths, results.items):
            first = int(offsets[int(item)])
            rows.append((int(item), int(start) - first, int(start) - first + int(length)))
        return tuple(rows)

    # ------------------------------------------------------------------ running
    def run(self, kind: str = "effect", item: int | None = None) -> bool:
        """Start a run of ``kind`` ("effect", "sweep", "items"). False (and a sentence in the status line)
        when nothing can run."""
        try:
            request = self.request(kind, item)
        except ValueError as exc:
            self.set_status(describe(exc), problem=True)
            self.run_failed.emit(describe(exc))
            return False
        recording = self.workspace.recording
        live = None
        if self._live is not None and self._live[0] is recording and self._live[1] == self._checkpoint:
            live = self._live[2]
        with self.binding.batch():
            self.abandon()
            self._shown = kind
            self.checkpoint_row.setVisible(False)

        def job(task, recording=recording, request=request, live=live):
            return perturb_job(recording, request, live, task)

        self.submit(CHANNEL, job, on_finished=self._finished, what=KIND_WHAT[kind],
                    title="Cannot run the perturbation", on_failed=self._failed, on_cancelled=self._cancelled)
        where = {"effect": f"item {request.item}", "sweep": f"item {request.item}, {len(request.alphas)} alphas",
                 "items": "every item" if request.where is None else f"{len(request.where)} matches",
                 "attack": f"the input of item {request.item}", "pruning": "every item (pruning)",
                 "prune": f"the weights, loss over the first {PRUNE_ITEMS} items"}[kind]
        self.set_status(f"Perturbing {request.tap} on {where}…" if live is not None
                        else f"Loading the model, then perturbing {request.tap} on {where}…")
        self.tabs.setCurrentIndex(TAB_OF[kind])
        self.binding.push()
        return True

    def _finished(self, outcome: PerturbOutcome) -> None:
        if outcome.recording is not self.workspace.recording:
            return
        if outcome.checkpoint_problem is not None:
            self._shown = "none"
            self._retry_kind = outcome.request.kind
            sentence = describe(outcome.checkpoint_problem)
            self.checkpoint_label.setText(sentence)
            self.checkpoint_row.setVisible(True)
            self.set_status("The model could not be loaded, so nothing was run; locate its checkpoint.", problem=True)
            self.binding.push()
            self.checkpoint_missing.emit(sentence)
            return
        self._live = (outcome.recording, outcome.request.checkpoint, outcome.live)
        self.outcome = outcome
        kind = outcome.request.kind
        with self.binding.batch():
            self._shown = kind
            self._show_result(kind, outcome.result, outcome.perturbation)
        self.set_status(self._result_status(outcome))
        self.binding.push()
        self.results_ready.emit(kind, outcome.result)
        self.wants_dock.emit()

    def _failed(self, exc: BaseException) -> None:
        self._shown = "none"
        self.binding.push()
        self.run_failed.emit(describe(exc))

    def _cancelled(self) -> None:
        self._shown = "none"
        self.set_status("The perturbation was cancelled; nothing new is shown. Press Run to start again.")
        self.binding.push()
        self.run_cancelled.emit()

    def superseded(self) -> None:
        self._shown = "none"
        self.binding.push()
        super().superseded()

    def _result_status(self, outcome: PerturbOutcome) -> str:
        result, p = outcome.result, outcome.perturbation
        took = f" in {duration(outcome.seconds)}"
        if outcome.request.kind == "attack":
            return self._attack_text(outcome) + took + "."
        if outcome.request.kind == "prune":
            return self._prune_text(result) + f"{took}; the Effect tab shows what it changes on item {result.effect.item}."
        if outcome.request.kind == "pruning":
            best = {m: float(result.measured[m][-1]) for m in result.methods}
            least = min(best, key=best.get)
            return (f"Pruned up to {100 * float(result.fractions[-1]):g}% of {result.name}'s {result.size} units "
                    f"by {', '.join(result.methods)}{took}: at that fraction {least} raises the loss least "
                    f"({best[least]:+.4g} nats).")
        if outcome.request.kind == "effect":
            s = result.summary()
            return (f"{p.describe()} on item {s['item']}{took}: mean Δ loss {s['mean_dnll']:+.4g} nats "
                    f"(max {s['max_dnll']:+.4g}), mean KL {s['mean_kl']:.4g}. Hover a position for its top tokens.")
        if outcome.request.kind == "sweep":
            i = int(np.nanargmax(np.abs(result.mean_dnll))) if np.isfinite(result.mean_dnll).any() else 0
            return (f"Swept alpha over {len(result.alphas)} values on item {outcome.request.item}{took}: the largest "
                    f"mean Δ loss is {result.mean_dnll[i]:+.4g} at alpha {result.alphas[i]:g}.")
        n = len(result.items)
        what = "items" if result.starts is None else "matches"
        finite = np.isfinite(result.mean_dnll)
        mean = float(np.mean(result.mean_dnll[finite])) if finite.any() else float("nan")
        top = int(result.items[result.ranking()[0]]) if n else -1
        return (f"{p.describe()} on {n} {what}{took}: mean Δ loss {mean:+.4g} nats over them; item {top} changes "
                f"most. Double-click a row to open it.")

    @staticmethod
    def _prune_text(result) -> str:
        p = result.pruning
        last = p.steps[-1]
        return (f"{p.summary()} on {result.items} items; last step measured {last.measured:+.4g} nats, "
                f"predicted LM {last.predicted['lm']:+.4g}, QM {last.predicted['qm']:+.4g}, "
                f"OBD {last.predicted['obd']:+.4g}")

    def _attack_text(self, outcome: PerturbOutcome) -> str:
        a = outcome.result
        vocab = getattr(outcome.live, "vocab", None) or self.workspace.recording.vocab

        def name(i) -> str:
            i = int(i)
            return repr(vocab[i]) if vocab and i < len(vocab) else str(i)

        changed = np.flatnonzero(np.asarray(a.perturbed_tokens) != np.asarray(a.clean_tokens))
        subs = ", ".join(f"position {int(i)}: {name(a.clean_tokens[i])} → {name(a.perturbed_tokens[i])}"
                         for i in changed[:5])
        how = f"substituted {subs}" if len(changed) else f"embedding perturbation on {int(np.count_nonzero(a.l2_per_position))} positions"
        verdict = "flipped" if a.flipped else "did not flip"
        return (f"{a.method} at position {a.position} of item {outcome.request.item} {verdict} the prediction "
                f"{name(a.prediction_before)} → {name(a.prediction_after)}; {how}; ‖r‖₂ {a.l2:.4g}, ‖r‖∞ {a.linf:.4g}; "
                f"loss at the position {a.loss_before:.4g} → {a.loss_after:.4g}")

    # ------------------------------------------------------------------ results
    def _show_result(self, kind, result, perturbation) -> None:
        if kind is None:
            self.attack = self.pruning = self.loss_pruning = None
            self.attack_view.set_result(None)
            self.pruning_view.set_curve(None)
            self.loss_pruning_view.set_result(None)
            self._share_pruning_tab()
            self.effect = self.sweep = self.batch = None
            self.outcome = None
            self.effect_view.set_effect(None)
            self.topk.show_position(None, None)
            self.sweep_view.set_sweep(None)
            self.batch_view.set_batch(None)
            self._fill_heatmap_combo()
        elif kind == "effect":
            self.effect = result
            wanted = getattr(self, "_restore_heatmap", None) or self._default_heatmap_tap(result, perturbation)
            self._restore_heatmap = None
            self.effect_view.set_effect(result, wanted)
            self._fill_heatmap_combo()
            self._follow_window()
            first = result.edited_positions()
            self._set_hover(int(first[0]) if len(first) else 0)
            recording = self.workspace.recording
            start, stop = (int(v) for v in recording.item_range(result.item))
            self.item_label.setText(f"item {result.item} ({stop - start} tokens)")
        elif kind == "sweep":
            self.sweep = result
            self.sweep_view.set_sweep(result)
        elif kind == "attack":
            self.attack = result
            self.attack_view.set_result(result, self.workspace.recording.vocab)
            self.attack_label.setText(self._attack_text(self.outcome))
        elif kind == "pruning":
            self.pruning = result
            self.pruning_view.set_curve(result)
            self._share_pruning_tab()
        elif kind == "prune":
            self._show_result("effect", result.effect, None)  # what the pruned weights change downstream
            self.loss_pruning = result
            self.loss_pruning_view.set_result(result.pruning)
            self.prune_label.setText(self._prune_text(result) + ".")
            self._share_pruning_tab()
        else:
            self.batch = result
            self.batch_view.set_batch(result)
        self._update_enabled()

    def _share_pruning_tab(self) -> None:
        """The pruning tab shows the plots that have a result (both while neither has one)."""
        curve, steps = self.pruning is not None, self.loss_pruning is not None
        self.pruning_box.setVisible(curve or not steps)
        self.loss_pruning_box.setVisible(steps or not curve)

    @staticmethod
    def _default_heatmap_tap(effect, perturbation) -> str | None:
        """The edited tap's layer's first tap after the edited one (what the edit changes downstream), else
        the edited tap."""
        taps = list(effect.delta)
        if perturbation is None or perturbation.tap not in taps:
            return taps[0] if taps else None
        i = taps.index(perturbation.tap)
        return taps[i + 1] if i + 1 < len(taps) else taps[i]

    def _fill_heatmap_combo(self) -> None:
        self.heatmap_combo.blockSignals(True)
        self.heatmap_combo.clear()
        for tap in self.effect_view.taps():
            self.heatmap_combo.addItem(tap, tap)
        if self.effect_view.heatmap_tap is not None:
            _select(self.heatmap_combo, self.effect_view.heatmap_tap)
        self.heatmap_combo.blockSignals(False)

    def _heatmap_chosen(self, *_) -> None:
        tap = self.heatmap_combo.currentData()
        if tap is not None and tap != self.effect_view.heatmap_tap:
            self.effect_view.show_heatmap(tap)
            self.binding.push()

    def show_heatmap(self, tap: str) -> None:
        """Show the Δ of ``tap`` in the heatmap."""
        if self.effect is None:
            raise ValueError("There is no effect yet: press Run first.")
        if tap not in self.effect.delta:
            raise KeyError(f"the effect has no Δ of tap {tap!r}; it has {', '.join(self.effect.delta)}")
        _select(self.heatmap_combo, tap)
        self.effect_view.show_heatmap(tap)
        self.binding.push()

    # ------------------------------------------------------------------ hover and opening items
    def _set_hover(self, position: int | None) -> None:
        self.effect_view.set_hover(position)
        self.topk.show_position(self.effect, position)

    def _follow_window(self, *_) -> None:
        """The effect's x range is the select view's window over the item (the whole item when the window
        shows another item), so its tokens line up with the panes'."""
        effect = self.effect
        if effect is None or self.workspace.recording is None:
            return
        T = len(effect.clean.tokens)
        first = int(self.workspace.recording.item_range(effect.item)[0])
        start, stop = self.workspace.window_range()
        lo, hi = max(0, start - first), min(T, stop - first)
        if hi - lo < 2:
            lo, hi = 0, T
        self.effect_view.set_x_range(lo, hi)

    def _pane_tap_changed(self, tap: str) -> None:
        """Units from the selection are units of the active pane's tap: the target follows it."""
        if self.units_combo.currentData() == "selection" and tap:
            _select(self.tap_combo, tap)

    def _plot_hovered(self, position: int) -> None:
        if position >= 0:
            self._set_hover(position)

    def _workspace_hovered(self, hover) -> None:
        if hover is None or self.effect is None or int(hover.item) != int(self.effect.item):
            return
        start = int(self.workspace.recording.item_range(self.effect.item)[0])
        self._set_hover(int(hover.position) - start)

    def open_item(self, item: int, start: int = -1, stop: int = -1) -> None:
        """Show ``item`` in the select view (a match: brushed in the active pane, as the Match panel does)."""
        recording = self.workspace.recording
        if recording is None:
            return
        first = int(recording.item_range(int(item))[0])
        if start >= 0 and stop > start:
            try:
                self.workspace.show_match(first + int(start), int(stop - start))
                return
            except ValueError as exc:
                self.set_status(describe(exc), problem=True)
        self.workspace.go_to_item(int(item))

    # ------------------------------------------------------------------ the checkpoint
    def locate_checkpoint(self) -> bool:
        """Ask for the recording's checkpoint file and run again with it (the run that needed it, else Run)."""
        recording = self.workspace.recording
        if recording is None:
            return False
        path = ask_checkpoint(self, recording.path, self._checkpoint)
        if path is None:
            return False
        self._checkpoint = str(path)
        self._live = None
        kind, self._retry_kind = self._retry_kind or "effect", None
        self.binding.push()
        return self.run(kind)

    # ------------------------------------------------------------------ export
    def _view_widget(self, part: str) -> QtWidgets.QWidget:
        widgets = {"effect": (self.effect, self.effect_splitter), "sweep": (self.sweep, self.sweep_view),
                   "items": (self.batch, self.batch_view), "attack": (self.attack, self.attack_tab),
                   "pruning": (self.pruning, self.pruning_box), "prune": (self.loss_pruning, self.loss_pruning_box)}
        if part not in widgets:
            raise ValueError(f"unknown part {part!r}; choose one of {', '.join(widgets)}")
        result, widget = widgets[part]
        if result is None:
            names = {"effect": "Run", "sweep": "Sweep alpha", "items": "All items", "attack": "Attack",
                     "pruning": "Pruning curve", "prune": "Prune model"}
            raise ValueError(f"There is nothing to export yet: press {names[part]} first.")
        return widget

    def export_view(self, path: str | Path, part: str = "effect") -> Path:
        """Write the effect (curves, ‖Δ‖, heatmap and top tokens), the sweep or the batch view to PNG/SVG/PDF."""
        widget = self._view_widget(part)
        if not widget.isVisible() or widget.width() <= 0:
            widget.resize(self.tabs.size() if self.tabs.width() > 0 else QtCore.QSize(1000, 480))
            widget.ensurePolished()
        return export_widget(widget, path)

    def export_table(self, path: str | Path, part: str = "effect") -> Path:
        """The per-position table of the effect ("effect"), the sweep ("sweep") or the items ("items") as
        CSV/NPY."""
        if part not in ("effect", "sweep", "items", "pruning", "attack", "prune"):
            raise ValueError(f"unknown table {part!r}; choose effect, sweep, items, attack, pruning or prune")
        result = self._results().get(part)
        if result is None:
            raise ValueError("There is no such result to export yet; run it first.")
        rows = [result.summary()] if part == "attack" else result.to_table()
        columns = {key: [row[key] for row in rows] for key in (rows[0] if rows else {})}
        return export_table(path, columns)

    def export_heatmap(self, path: str | Path) -> Path:
        """The Δ heatmap as an NPY array ``[units, positions]`` (float32)."""
        path = Path(path)
        if path.suffix.lower() != ".npy":
            raise ValueError(f"cannot export the Δ heatmap to {path.name!r}: use a file name ending in .npy")
        array = self.effect_view.heatmap_array()
        try:
            np.save(path, array)
        except OSError as exc:
            raise OSError(f"{path}: cannot write the Δ heatmap there ({exc.strerror or exc})") from None
        return path

    def _default_path(self, what: str, suffix: str) -> str:
        return self.default_path(f"perturb-{what}{suffix}")

    def choose_and_export_view(self, part: str = "effect") -> bool:
        path, chosen = QtWidgets.QFileDialog.getSaveFileName(
            self, "Export perturbation view", self._default_path(part, ".png"), ";;".join(VIEW_FORMATS.values()))
        if not path:
            return False
        return self.export_guarded("Cannot export", lambda: self.export_view(with_suffix(path, chosen, VIEW_FORMATS),
                                                                            part))

    def choose_and_export_data(self) -> bool:
        filters = {}
        if self.effect is not None:
            filters["Effect per position, CSV (*.csv)"] = ("effect", ".csv")
            filters["Effect per position, NumPy array (*.npy)"] = ("effect", ".npy")
            filters["Δ heatmap [units × positions], NumPy array (*.npy)"] = ("heatmap", ".npy")
        if self.sweep is not None:
            filters["Sweep of alpha, CSV (*.csv)"] = ("sweep", ".csv")
        if self.attack is not None:
            filters["Input attack summary, CSV (*.csv)"] = ("attack", ".csv")
        if self.pruning is not None:
            filters["Pruning curve, CSV (*.csv)"] = ("pruning", ".csv")
        if self.loss_pruning is not None:
            filters["Loss-model pruning per step, CSV (*.csv)"] = ("prune", ".csv")
        if self.batch is not None:
            filters["Effect per item, CSV (*.csv)"] = ("items", ".csv")
            filters["Effect per item, NumPy array (*.npy)"] = ("items", ".npy")
        if not filters:
            return False
        answer = ask_table_path(self, "Export perturbation data", self._default_path("table", ".csv"), filters)
        if answer is None:
            return False
        path, what = answer
        if what == "heatmap":
            return self.export_guarded("Cannot export", lambda: self.export_heatmap(path))
        return self.export_guarded("Cannot export", lambda: self.export_table(path, what))


    # ------------------------------------------------------------------ the pruned checkpoint
    def save_pruned_checkpoint(self, path: str | Path) -> Path:
        """Write the model pruned by the last "Prune model" as a checkpoint carrying its masks (atomic)."""
        if self.loss_pruning is None or self._live is None:
            raise ValueError("There is no pruned model yet: press Prune model first.")
        return Path(save_pruned(self.loss_pruning, self._live[2], path))

    def choose_and_save_pruned(self) -> bool:
        if self.loss_pruning is None:
            return False
        path, _ = QtWidgets.QFileDialog.getSaveFileName(self, "Save pruned checkpoint",
                                                        self._default_path("pruned", ".pt"),
                                                        "Checkpoint (*.pt)")
        if not path:
            return False
        if Path(path).suffix.lower() != ".pt":
            path += ".pt"
        return self.export_guarded("Cannot save the pruned checkpoint", lambda: self.save_pruned_checkpoint(path))
