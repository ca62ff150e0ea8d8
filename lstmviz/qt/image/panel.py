"""The Image panel: an item's input image with a heatmap of a feature map over it, box brushing with the
box Select rule, the top-activating images of the selected units, and image match.

What it shows: the input image of the item at the window's position (the item box, Prev / Next and the
window's item navigation move it) and, over it, one value per cell of the chosen tap (taps on image
axes only): the signed mean of the selected units, one unit, or the channel L2 norm. Each cell covers
the ``stride × stride`` input pixels around the pixel it is centred on; with "receptive field" the
hovered cell's receptive field is outlined. The colour scale is fixed per tap and units (from the
recording's per-unit statistics, the same for every image; see ``data.overlay_scale``) and drawn
under the image; until the statistics are computed (a worker), the image's own range is used and the
legend says so. Taps on scalar axes (one row per image) are listed beside it, unit by unit (Vector taps), and
taps on set axes (one row per named member: HeMIS's modalities, colourisation's branches) show the image's
members side by side on one colour scale, as a heat strip over the units or bars (the Sets tab, ``set_view``).
The Unit maps tab (``unit_maps``) draws the image's map of every unit of the taps of one signal, one row per tap
ordered by layer, on one colour scale: for an iterative model (Tagger) the group masks of every iteration at
once. A recording with such a signal (image taps of one signal at two or more layers) opens with that tab in front.

Brushing: a left drag draws a box; the cells whose centre lies in it go to the box Select rule
(``image_regions.select_box_units``: on at ``ceil(tolerance·|S|)`` cells inside, off on the ring of
``ring`` cells around; threshold on raw values, tolerance and direction are the panel's). Its units
colour the overlay and, when the panel's tap is the active pane's tap, become the workspace's
highlighted units (as in the Graph panel; other taps' units have no pane to be drawn in). A click
on a cell lists that cell's top units.

Top images: ``image_top.top_activating`` over the whole recording in a worker (progress, Cancel): the
items where the selected units respond most (max or mean over cells), each thumbnail with the units'
heatmap over it (one scale for all thumbnails: the range of the shown images' cells) and its peak
cell's receptive field outlined; a click goes to that image. Match: ``image_match.image_match`` over every image
in a worker (the box rule's threshold, ring and tolerance; regions of at least one cell), the matched
regions as thumbnails with their cells' stride tiles outlined; a click goes to that image with the
region's box brushed.

Perturb (a tab): the recording's model (its checkpoint, the image rebuilt from the provenance's dataset
and checked against the recording; ``lstmviz.perturb.image_live``) re-runs this image with the brushed
box occluded (zero, the image's mean, a blur or a value) or with the selected units edited (ablated,
clamped, pushed) at the box's cells of the panel's tap, in a worker; the tab shows the Δ map of every
layer on one scale, the input before and after, and the class probabilities before and after
(``perturb_box``). With ``lstmviz.perturb.image_attack`` present, "Attack image" runs its L-BFGS or PGD
attack in a worker (progress, Cancel) and shows the adversarial image, r and the Δ maps the same way.
A missing or moved checkpoint is said with "Locate checkpoint…".
"""

from __future__ import annotations

import html

import numpy as np
from PySide6 import QtCore, QtWidgets

from lstmviz.errors import describe, expected_errors
from lstmviz.qt.binding import StateBinding
from lstmviz.qt.checkpoint_dialog import LocatesCheckpoint
from lstmviz.qt.image import data
from lstmviz.qt.image.canvas import ImageCanvas, overlay_lut
from lstmviz.qt.image.directions import RandomDirectionBox
from lstmviz.qt.image.perturb_box import ImagePerturbBox
from lstmviz.qt.image.set_view import STYLE_TITLES, STYLES, SetView
from lstmviz.qt.image.state import IMAGE_RANGES, ImageSettings
from lstmviz.qt.image.unit_maps import RampLegend, UnitMapsView
from lstmviz.qt.image.thumbnails import ImageThumbnailGrid
from lstmviz.qt.task_panel import TaskPanel, duration, labelled

NO_IMAGE = ("This recording has no images: its positions are {kind}, not the pixels of an image. The Image "
            "view draws recordings of image models (format v3, an image axis); the unit-lines view above "
            "shows every recording.")
NO_RECORDING = "Open a recording of an image model to see its images here."
NO_MATCH = ("Image match needs lstmviz.analysis.image_match, which this build does not have. "
            "Brush a box and use Top images meanwhile.")
REDUCE_TITLES = {"max": "max over cells", "mean": "mean over cells"}
TOP_UNITS = 8
MATCH_LIMIT = 200
MATCH_MIN_CELLS = 1


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def _hex(rgb) -> str:
    return "#%02x%02x%02x" % tuple(int(c) for c in rgb[:3])


def has_image_match() -> bool:
    """Whether the analysis offers ``image_match`` (``lstmviz.analysis.image_match``; the Match tab's hook)."""
    try:
        from lstmviz.analysis import image_match
    except ImportError:
        return False
    return hasattr(image_match, "image_match") and hasattr(image_match, "ImageMatchQuery")


class ImagePanel(LocatesCheckpoint, TaskPanel):
    """See the module docstring."""

    #: the panel has something to show: its dock should open
    wants_dock = QtCore.Signal()
    #: the drawn image or tap changed (item, tap)
    image_shown = QtCore.Signal(int, str)
    #: the overlay was redrawn
    overlay_drawn = QtCore.Signal()
    #: the box selection changed (a ``Selection``, or None)
    selection_changed = QtCore.Signal(object)
    #: a cell was clicked (item-local cell index)
    cell_clicked = QtCore.Signal(int)
    #: top-activating images arrived (``TopImages``)
    top_ready = QtCore.Signal(object)
    #: match results arrived
    matches_ready = QtCore.Signal(object)
    #: a perturbation's or an attack's effect arrived (``lstmviz.perturb.image.ImageEffect`` or the attack's)
    perturbed = QtCore.Signal(object)
    #: the Sets tab shows an image's members of a set tap (item, tap)
    set_shown = QtCore.Signal(int, str)
    #: the Unit maps tab shows an image's maps of a signal's taps (item, signal)
    maps_shown = QtCore.Signal(int, str)

    SUPERSEDED = "The request was superseded by another request; start it again."

    def __init__(self, workspace, parent: QtWidgets.QWidget | None = None):
        super().__init__(workspace, parent)
        self.blocks = data.BlockCache()
        self.item = 0
        self.tap_name: str | None = None
        self.size = None  # ImageGeometry of the tap's map for this item
        self.axis_geometry = None
        self.box = None
        self.selection = None
        self.kept = None  # (units, signs) of the last non-empty box selection on this tap
        self.clicked_cell = -1
        self.top = None
        self.results = None
        self._taps: list[str] = []
        self._scale_fixed = False
        self._live = None  # (recording, LiveImage) of the last perturbation
        self._checkpoint = None  # the checkpoint file the user located (None: the recording's own)
        self.input_what = ""
        self._lut = overlay_lut()
        self.settings_binding = StateBinding(self.settings_from_controls, self._show_settings, self._store_settings)
        self._build_controls()
        self._build_layout()
        self.top_action = self.make_action("Top-activating images", self.find_top, None,
                                           "The images where the selected units respond most")
        ws = workspace
        ws.recording_changed.connect(self._recording_changed)
        ws.item_changed.connect(self._workspace_item_changed)
        ws.units_changed.connect(self._units_changed)
        ws.panel_state_changed.connect(self._panel_state_changed)
        ws.tap_stats.ready.connect(self._stats_ready)
        self.settings_binding.model_changed(self.settings)
        self._recording_changed(ws.recording)

    # ------------------------------------------------------------------ building
    def _build_controls(self) -> None:
        self.item_spin = QtWidgets.QSpinBox()
        self.item_spin.setToolTip("The image shown (an item of the recording); the window's item navigation moves it too")
        self.item_spin.valueChanged.connect(self._item_chosen)
        self.prev_button = QtWidgets.QToolButton()
        self.prev_button.setText("◀")
        self.prev_button.setToolTip("Previous image")
        self.prev_button.clicked.connect(lambda: self.step_item(-1))
        self.next_button = QtWidgets.QToolButton()
        self.next_button.setText("▶")
        self.next_button.setToolTip("Next image")
        self.next_button.clicked.connect(lambda: self.step_item(1))
        self.tap_combo = QtWidgets.QComboBox()
        self.tap_combo.setToolTip("The feature map drawn over the image (taps on image axes)")
        self.mode_combo = QtWidgets.QComboBox()
        for mode in data.MODES:
            self.mode_combo.addItem(data.MODE_TITLES[mode], mode)
        self.mode_combo.setToolTip("Colour cells by the mean of the selected units, one unit, or the L2 norm "
                                   "over all channels")
        self.unit_spin = QtWidgets.QSpinBox()
        self.unit_spin.setRange(*IMAGE_RANGES["unit"])
        self.unit_spin.setToolTip("The unit drawn in 'one unit' mode")
        self.field_check = QtWidgets.QCheckBox("Receptive field")
        self.field_check.setToolTip("Outline the receptive field of the cell under the mouse")
        self.threshold_spin = QtWidgets.QDoubleSpinBox()
        self.threshold_spin.setDecimals(3)
        self.threshold_spin.setRange(-1e6, 1e6)
        self.threshold_spin.setSingleStep(0.05)
        self.threshold_spin.setToolTip("A unit is on at a cell when its raw value is >= this (negative "
                                       "direction: <= minus this)")
        self.ring_spin = QtWidgets.QSpinBox()
        self.ring_spin.setRange(*IMAGE_RANGES["ring"])
        self.ring_spin.setToolTip("Selected units must be off on every cell within this many cells of the box "
                                  "(Chebyshev distance; 0: no ring)")
        self.tolerance_spin = QtWidgets.QDoubleSpinBox()
        self.tolerance_spin.setRange(0.05, 1.0)
        self.tolerance_spin.setSingleStep(0.05)
        self.tolerance_spin.setToolTip("The share of the box's cells where a unit must be on")
        self.direction_combo = QtWidgets.QComboBox()
        self.direction_combo.addItem("on (≥ θ)", "positive")
        self.direction_combo.addItem("negative (≤ −θ)", "negative")
        self.direction_combo.setToolTip("Select units that are high in the box, or low")
        self.status_label = QtWidgets.QLabel()
        self.status_label.setWordWrap(True)
        self.build_task_controls("Cancel image search", "Stop the running top-images search or match")
        for signal in (self.tap_combo.currentIndexChanged, self.mode_combo.currentIndexChanged,
                       self.unit_spin.valueChanged, self.field_check.toggled, self.threshold_spin.valueChanged,
                       self.ring_spin.valueChanged, self.tolerance_spin.valueChanged,
                       self.direction_combo.currentIndexChanged):
            signal.connect(self.settings_binding.push)

    def _build_layout(self) -> None:
        self.canvas = ImageCanvas()
        self.canvas.box_finished.connect(self._box_drawn)
        self.canvas.clicked.connect(self._clicked)
        self.canvas.hovered.connect(self._hovered)
        self.legend_label = QtWidgets.QLabel()
        self.legend_label.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.legend_label.setWordWrap(True)
        self.hover_label = QtWidgets.QLabel(" ")
        self.hover_label.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.units_label = QtWidgets.QLabel()
        self.units_label.setWordWrap(True)
        self.cell_label = QtWidgets.QLabel()
        self.cell_label.setWordWrap(True)

        # side: the scalar taps of the item, unit by unit
        self.scalar_combo = QtWidgets.QComboBox()
        self.scalar_combo.setToolTip("A tap with one row per image (fully connected layers, logits)")
        self.scalar_combo.currentIndexChanged.connect(lambda _i: self._fill_scalar_table())
        self.scalar_table = QtWidgets.QTableWidget(0, 2)
        self.scalar_table.setHorizontalHeaderLabels(["unit", "value"])
        self.scalar_table.verticalHeader().setVisible(False)
        self.scalar_table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.scalar_table.setSortingEnabled(True)
        scalars = QtWidgets.QWidget()
        sv = QtWidgets.QVBoxLayout(scalars)
        sv.setContentsMargins(0, 0, 0, 0)
        sv.addWidget(labelled("Tap", self.scalar_combo))
        sv.addWidget(self.scalar_table, 1)

        # set taps: the image's members side by side
        self.set_combo = QtWidgets.QComboBox()
        self.set_combo.setToolTip("A tap on a set axis: one row per named member (modalities, branches)")
        self.set_combo.currentIndexChanged.connect(lambda _i: self._fill_set_view())
        self.set_style_combo = QtWidgets.QComboBox()
        for style in STYLES:
            self.set_style_combo.addItem(STYLE_TITLES[style], style)
        self.set_style_combo.setToolTip("Heat strip over the units, or bars (automatic: bars up to 8 units)")
        self.set_style_combo.currentIndexChanged.connect(lambda _i: self._fill_set_view())
        self.set_view = SetView()
        self.set_legend = QtWidgets.QLabel()
        self.set_legend.setTextFormat(QtCore.Qt.TextFormat.RichText)  # ours, every name escaped
        self.set_legend.setWordWrap(True)
        set_scroll = QtWidgets.QScrollArea()
        set_scroll.setWidgetResizable(True)
        set_scroll.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        set_scroll.setWidget(self.set_view)
        sets = QtWidgets.QWidget()
        setv = QtWidgets.QVBoxLayout(sets)
        setv.setContentsMargins(0, 0, 0, 0)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(labelled("Tap", self.set_combo))
        row.addWidget(labelled("Show", self.set_style_combo))
        row.addStretch(1)
        setv.addLayout(row)
        setv.addWidget(self.set_legend)
        setv.addWidget(set_scroll, 1)

        # unit maps: every unit of a signal's taps (a row per layer / iteration)
        self.maps_combo = QtWidgets.QComboBox()
        self.maps_combo.setToolTip("Image taps of one signal (at most 16 units each), a row per tap ordered by layer: "
                                   "e.g. Tagger's group masks per iteration")
        self.maps_combo.currentIndexChanged.connect(lambda _i: self._fill_unit_maps())
        self.maps_view = UnitMapsView()
        self.maps_legend = RampLegend()
        self.maps_label = QtWidgets.QLabel()
        self.maps_label.setWordWrap(True)
        self.maps_label.setTextFormat(QtCore.Qt.TextFormat.PlainText)
        maps_scroll = QtWidgets.QScrollArea()
        maps_scroll.setWidgetResizable(True)
        maps_scroll.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        maps_scroll.setWidget(self.maps_view)
        maps = QtWidgets.QWidget()
        mapv = QtWidgets.QVBoxLayout(maps)
        mapv.setContentsMargins(0, 0, 0, 0)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(labelled("Signal", self.maps_combo))
        row.addWidget(self.maps_legend)
        row.addStretch(1)
        mapv.addLayout(row)
        mapv.addWidget(self.maps_label)
        mapv.addWidget(maps_scroll, 1)

        # top-activating images
        self.reduce_combo = QtWidgets.QComboBox()
        for reduce, title in REDUCE_TITLES.items():
            self.reduce_combo.addItem(title, reduce)
        self.reduce_combo.setToolTip("Rank images by the largest cell (NetDissect) or by the mean over cells")
        self.reduce_combo.currentIndexChanged.connect(self.settings_binding.push)
        self.top_spin = QtWidgets.QSpinBox()
        self.top_spin.setRange(*IMAGE_RANGES["top"])
        self.top_spin.setToolTip("How many images are shown")
        self.top_spin.valueChanged.connect(self.settings_binding.push)
        self.top_button = QtWidgets.QPushButton("Find top images")
        self.top_button.setToolTip("Rank every image of the recording by the selected units (a worker)")
        self.top_button.clicked.connect(self.find_top)
        self.top_grid = ImageThumbnailGrid()
        self.top_grid.activated.connect(self.show_top)
        top = QtWidgets.QWidget()
        tv = QtWidgets.QVBoxLayout(top)
        tv.setContentsMargins(0, 0, 0, 0)
        row = QtWidgets.QHBoxLayout()
        self.direction_box = RandomDirectionBox(self)  # Szegedy et al.: the top images along a random direction
        for w in (labelled("Rank by", self.reduce_combo), labelled("Show", self.top_spin), self.top_button,
                  self.direction_box):
            row.addWidget(w)
        row.addStretch(1)
        tv.addLayout(row)
        tv.addWidget(self.top_grid, 1)

        # match (said in the tab when the analysis lacks image_match)
        self.match_button = QtWidgets.QPushButton("Match selected units")
        self.match_button.setToolTip("Find regions of every image where the selected units are on together")
        self.match_button.clicked.connect(self.match)
        self.match_label = QtWidgets.QLabel()
        self.match_label.setWordWrap(True)
        self.match_grid = ImageThumbnailGrid()
        self.match_grid.activated.connect(self.show_match)
        matches = QtWidgets.QWidget()
        mv = QtWidgets.QVBoxLayout(matches)
        mv.setContentsMargins(0, 0, 0, 0)
        mv.addWidget(self.match_button, 0, QtCore.Qt.AlignmentFlag.AlignLeft)
        mv.addWidget(self.match_label)
        mv.addWidget(self.match_grid, 1)

        self.tabs = QtWidgets.QTabWidget()
        self.tabs.addTab(top, "Top images")
        self.tabs.addTab(matches, "Match")
        self.tabs.addTab(scalars, "Vector taps")
        self.sets_tab = self.tabs.addTab(sets, "Sets")
        self.maps_tab = self.tabs.addTab(maps, "Unit maps")
        self.perturb_box = ImagePerturbBox()
        self.perturb_box.run_requested.connect(self.perturb)
        self.perturb_box.attack_requested.connect(self.attack)
        self.perturb_box.locate_requested.connect(self.locate_checkpoint)
        self.perturb_box.switch_requested.connect(self.perturb_switched)
        self.perturb_box.switches_load_requested.connect(self.load_switches)
        self.tabs.addTab(self.perturb_box, "Perturb")

        controls = QtWidgets.QHBoxLayout()
        for widget in (labelled("Image", self.item_spin), self.prev_button, self.next_button,
                       labelled("Tap", self.tap_combo), labelled("Colour", self.mode_combo),
                       labelled("Unit", self.unit_spin), self.field_check, self.progress, self.cancel_button):
            controls.addWidget(widget)
        controls.addStretch(1)
        rule = QtWidgets.QHBoxLayout()
        for widget in (QtWidgets.QLabel("Box rule:"), labelled("θ", self.threshold_spin),
                       labelled("Ring", self.ring_spin), labelled("Tolerance", self.tolerance_spin),
                       self.direction_combo):
            rule.addWidget(widget)
        rule.addStretch(1)

        left = QtWidgets.QWidget()
        lv = QtWidgets.QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        lv.addWidget(self.canvas, 1)
        lv.addWidget(self.legend_label)
        lv.addWidget(self.hover_label)
        lv.addWidget(self.units_label)
        lv.addWidget(self.cell_label)
        self.splitter = QtWidgets.QSplitter()
        self.splitter.addWidget(left)
        self.splitter.addWidget(self.tabs)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)

        self.build_page((controls, rule), self.splitter, NO_RECORDING)

    def menu_actions(self) -> list:
        return [self.top_action, self.cancel_action]

    # ------------------------------------------------------------------ settings (the workspace's)
    @property
    def settings(self) -> ImageSettings:
        state = self.workspace.panel_state("image")
        return state if state is not None else ImageSettings()

    def settings_from_controls(self) -> ImageSettings:
        return ImageSettings(tap=self.tap_combo.currentData(), mode=self.mode_combo.currentData() or "mean",
                             unit=self.unit_spin.value(), field=self.field_check.isChecked(),
                             threshold=float(self.threshold_spin.value()), ring=self.ring_spin.value(),
                             tolerance=float(self.tolerance_spin.value()),
                             direction=self.direction_combo.currentData() or "positive",
                             reduce=self.reduce_combo.currentData() or "max", top=self.top_spin.value())

    def _show_settings(self, s: ImageSettings) -> None:
        with self.settings_binding.batch():
            i = self.tap_combo.findData(s.tap) if s.tap is not None else 0
            self.tap_combo.setCurrentIndex(max(0, i))
            self.mode_combo.setCurrentIndex(max(0, self.mode_combo.findData(s.mode)))
            self.unit_spin.setValue(s.unit)
            self.field_check.setChecked(s.field)
            self.threshold_spin.setValue(s.threshold)
            self.ring_spin.setValue(s.ring)
            self.tolerance_spin.setValue(s.tolerance)
            self.direction_combo.setCurrentIndex(max(0, self.direction_combo.findData(s.direction)))
            self.reduce_combo.setCurrentIndex(max(0, self.reduce_combo.findData(s.reduce)))
            self.top_spin.setValue(s.top)
        self._settings_taken()

    def _store_settings(self, s: ImageSettings) -> None:
        self.workspace.set_panel_state("image", s)
        self._settings_taken()

    def _panel_state_changed(self, name: str, state) -> None:
        if name == "image":
            self.settings_binding.model_changed(state if state is not None else ImageSettings())

    def _settings_taken(self) -> None:
        """Follow the settings: the tap drawn, the overlay, the rule."""
        tap = self.tap_combo.currentData()
        if tap is not None and tap != self.tap_name and tap in self._taps:
            self.tap_name = tap
            self.selection = None
            self.kept = None
            self.box = None
            self.canvas.clear_box()
            self._draw()
        else:
            self._reselect()
            self._redraw_overlay()
        if not self.field_check.isChecked():
            self.canvas.set_field(None)

    # ------------------------------------------------------------------ the recording and the item
    @property
    def has_images(self) -> bool:
        return bool(self._taps) or data.has_images(self.workspace.recording)

    def _recording_changed(self, recording=None) -> None:
        recording = self.workspace.recording
        self.abandon()
        self.blocks.clear()
        self.top = self.results = None
        self.top_grid.clear()
        self.match_grid.clear()
        self.box = self.selection = self.kept = None
        self.clicked_cell = -1
        self.canvas.clear_box()
        self.cell_label.setText("")
        self._taps = []
        self.tap_name = None
        self._live = None
        self._checkpoint = None
        self.perturb_box.clear_effect()
        self.perturb_box.reset_switches()
        if recording is None:
            self.message_label.setText(NO_RECORDING)
            self.stack.setCurrentIndex(0)
            return
        if not data.has_images(recording):
            kind = {"graph": "graph nodes", "set": "set members", "scalar": "whole items"}.get(
                data.axis_kind(recording, data.MAIN_AXIS), "tokens")
            self.message_label.setText(NO_IMAGE.format(kind=kind))
            self.stack.setCurrentIndex(0)
            return
        self.stack.setCurrentIndex(1)
        self._taps = data.image_taps(recording)
        self.item = int(self.workspace.item)
        with self.settings_binding.batch():
            self.tap_combo.clear()
            for tap in self._taps:
                g = recording.axis_geometry(data.tap_axis(recording, tap))
                self.tap_combo.addItem(f"{tap} (stride {g.stride[0]}, field {g.receptive_field[0]})", tap)
            self.item_spin.setRange(0, max(0, int(recording.n_items) - 1))
            self.scalar_combo.clear()
            for tap in data.scalar_taps(recording):
                self.scalar_combo.addItem(tap, tap)
        with QtCore.QSignalBlocker(self.set_combo):
            self.set_combo.clear()
            for tap in data.set_taps(recording):
                members = recording.axis_geometry(data.tap_axis(recording, tap)).members
                self.set_combo.addItem(f"{tap} (set {data.tap_axis(recording, tap)}: {len(members)} members)", tap)
        self.tabs.setTabEnabled(self.sets_tab, self.set_combo.count() > 0)
        with QtCore.QSignalBlocker(self.maps_combo):
            self.maps_combo.clear()
            for signal, taps in data.map_signals(recording).items():
                self.maps_combo.addItem(f"{signal} ({_count(len(taps), 'tap')})", signal)
            iterative = data.iterative_signal(recording)
            if iterative is not None:
                self.maps_combo.setCurrentIndex(self.maps_combo.findData(iterative))
        self.tabs.setTabEnabled(self.maps_tab, self.maps_combo.count() > 0)
        if iterative is not None:
            self.tabs.setCurrentIndex(self.maps_tab)
        self.settings_binding.model_changed(self.settings)
        self.tap_name = self.tap_combo.currentData()
        with QtCore.QSignalBlocker(self.item_spin):
            self.item_spin.setValue(self.item)
        self._show_match_hook()
        self._draw()
        self.wants_dock.emit()

    def _workspace_item_changed(self, item: int) -> None:
        if self.has_images and int(item) != self.item:
            self.set_item(int(item))

    def _item_chosen(self, item: int) -> None:
        if not self.has_images or int(item) == self.item:
            return
        self.set_item(int(item))
        self.workspace.go_to_item(int(item))

    def step_item(self, step: int) -> None:
        """Show the previous (-1) or next (+1) image."""
        recording = self.workspace.recording
        if recording is None or not self.has_images:
            return
        item = min(max(0, self.item + int(step)), int(recording.n_items) - 1)
        if item != self.item:
            self.item_spin.setValue(item)

    def set_item(self, item: int) -> None:
        """Draw image ``item`` (the box is dropped)."""
        self.item = int(item)
        with QtCore.QSignalBlocker(self.item_spin):
            self.item_spin.setValue(self.item)
        self.box = None
        self.clicked_cell = -1
        self.canvas.clear_box()
        self.canvas.set_cell_mark(None)
        self.cell_label.setText("")
        if self.perturb_box.effect is not None:
            self.perturb_box.clear_effect()
        self._draw()

    # ------------------------------------------------------------------ values
    def tap(self) -> str | None:
        return self.tap_name

    def item_values(self) -> np.ndarray | None:
        """The tap's raw values at the item's cells: float32 [cells, units] (cached)."""
        recording, tap = self.workspace.recording, self.tap_name
        if recording is None or tap is None:
            return None
        return self.blocks.block(recording, tap, self.item)

    def colour_units(self) -> tuple[np.ndarray, np.ndarray]:
        """The signed units the overlay shows: the box selection, else the last box's units (kept while
        moving between images, until another box or tap), else the highlighted units (when the panel's
        tap is the active pane's)."""
        if self.selection is not None and len(self.selection):
            return np.asarray(self.selection.units, np.int64), np.asarray(self.selection.signs, np.int64)
        if self.kept is not None:
            return self.kept
        pane = self.workspace.active_pane
        if pane is not None and pane.tap == self.tap_name:
            units = np.asarray(self.workspace.highlighted_units, dtype=np.int64)
            return units, np.ones(len(units), np.int64)
        return np.zeros(0, np.int64), np.zeros(0, np.int64)

    def overlay_units(self) -> tuple[np.ndarray, np.ndarray]:
        """The units of the overlay in the current mode (one unit: the unit box)."""
        mode = self.mode_combo.currentData()
        if mode == "unit":
            return np.array([self.unit_spin.value()], np.int64), np.ones(1, np.int64)
        return self.colour_units()

    # ------------------------------------------------------------------ drawing
    def _draw(self) -> None:
        """Draw the item's input image and the tap's map over it."""
        recording = self.workspace.recording
        if recording is None or not self.has_images:
            return
        try:
            image, what = data.input_image(recording, self.item)
            self.canvas.set_input(image)
            self.input_what = what
            if self.tap_name is not None:
                axis = data.tap_axis(recording, self.tap_name)
                self.axis_geometry = recording.axis_geometry(axis)
                self.size = recording.item_geometry(self.item, axis)
                self.canvas.set_overlay_geometry(data.cell_rect(self.axis_geometry, self.size))
                units = recording.taps[self.tap_name].units
                self.unit_spin.setMaximum(max(0, units - 1))
        except expected_errors() as exc:  # a damaged or odd file: said, not raised from a slot
            self.size = None
            self.canvas.set_overlay(None)
            self.set_status(f"Cannot draw image {self.item}: {describe(exc)}", problem=True)
            return
        self._reselect()
        self._redraw_overlay()
        self._fill_scalar_table()
        self._fill_set_view()
        self._fill_unit_maps()
        self.image_shown.emit(self.item, self.tap_name or "")

    def _scale(self, mode, units, signs, values) -> tuple[tuple[float, float], bool]:
        """The colour levels and whether they are the tap's fixed scale (else this image's range)."""
        recording = self.workspace.recording
        stats = None
        if recording is not None and self.tap_name is not None:
            stats = self.workspace.model.tap_stats(self.workspace.current, self.tap_name)
        scale = data.overlay_scale(stats, mode, units, signs)
        if scale is not None:
            return scale, True
        finite = values[np.isfinite(values)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        return ((lo, hi) if hi > lo else (lo - 0.5, lo + 0.5)), False

    def redraw(self) -> np.ndarray | None:
        """Recompute the overlay (the mean over the cached block) and give it to the image item; the
        overlay ``[h', w']`` or None."""
        block = self.item_values() if self.size is not None else None
        mode = self.mode_combo.currentData() or "mean"
        units, signs = self.overlay_units()
        values = None if block is None else data.overlay_values(block, mode, units, signs)
        if values is None:
            self.canvas.set_overlay(None)
            return None
        image = values.reshape(self.size.height, self.size.width)
        (lo, hi), fixed = self._scale(mode, units, signs, values)
        if (lo, hi) != self.canvas.levels:
            self.canvas.set_levels(lo, hi)
        self.canvas.set_overlay(image)
        self._scale_fixed = fixed
        return image

    def _redraw_overlay(self, *_) -> None:
        if not self.has_images:
            return
        if self.tap_name is None:
            self.canvas.set_overlay(None)
            self.legend_label.setText("The recording has no feature maps (no tap on an image axis besides the "
                                      "input): only the input is drawn.")
            return
        image = self.redraw()
        self._show_legend(image)
        self.overlay_drawn.emit()

    def _show_legend(self, image) -> None:
        if image is None:
            mode = self.mode_combo.currentData()
            self.legend_label.setText(
                "No heatmap: brush a box on the image (drag) to select units, choose 'one unit', or the "
                "channel L2 norm." if mode != "unit" else "No heatmap: the tap has no such unit.")
            return
        mode = self.mode_combo.currentData()
        units, signs = self.overlay_units()
        if mode == "norm":
            what = f"L2 norm over the {self.item_values().shape[1]} channels"
        elif mode == "unit":
            what = f"unit {int(units[0])}"
        else:
            shown = ", ".join(f"{u}{'−' if s < 0 else ''}" for u, s in zip(units[:8], signs[:8]))
            more = f" and {len(units) - 8} more" if len(units) > 8 else ""
            what = f"mean of unit{'s' if len(units) > 1 else ''} {shown}{more}"
        lo, hi = self.canvas.levels
        stops = "".join(f'<span style="background:{_hex(self._lut[int(i)])}">&nbsp;&nbsp;&nbsp;</span>'
                        for i in np.linspace(0, len(self._lut) - 1, 10))
        scale = ("fixed for this tap (its statistics)" if self._scale_fixed
                 else "this image's range until the tap's statistics are computed")
        g = self.axis_geometry
        self.legend_label.setText(
            f"<b>{self.tap_name}</b> {self.size.height}×{self.size.width} cells, stride {g.stride[0]}, "
            f"field {g.receptive_field[0]}: {what} &nbsp; {lo:.3g} {stops} {hi:.3g} &nbsp; "
            f"<span style='color:#666'>scale {scale}</span>")

    def _units_changed(self, *_) -> None:
        if self.has_images and (self.selection is None or not len(self.selection)):
            self._redraw_overlay()

    def _stats_ready(self, tap: str) -> None:
        if tap == self.tap_name:
            self._redraw_overlay()

    def _fill_scalar_table(self) -> None:
        recording, tap = self.workspace.recording, self.scalar_combo.currentData()
        table = self.scalar_table
        table.setSortingEnabled(False)
        table.setRowCount(0)
        if recording is None or tap is None or not self.has_images:
            return
        try:
            values = recording.item_states(tap, self.item)[0]
        except expected_errors() as exc:
            self.set_status(f"Cannot read {tap}: {describe(exc)}", problem=True)
            return
        table.setRowCount(len(values))
        for u, v in enumerate(values):
            unit = QtWidgets.QTableWidgetItem()
            unit.setData(QtCore.Qt.ItemDataRole.DisplayRole, u)
            value = QtWidgets.QTableWidgetItem()
            value.setData(QtCore.Qt.ItemDataRole.DisplayRole, float(v))
            table.setItem(u, 0, unit)
            table.setItem(u, 1, value)
        table.setSortingEnabled(True)
        table.sortItems(1, QtCore.Qt.SortOrder.DescendingOrder)

    def show_set_tap(self, tap: str) -> None:
        """Show set tap ``tap`` in the Sets tab and bring the tab forward."""
        i = self.set_combo.findData(tap)
        if i < 0:
            raise ValueError(f"the recording has no set tap {tap!r}")
        self.set_combo.setCurrentIndex(i)
        self.tabs.setCurrentIndex(self.sets_tab)
        self._fill_set_view()

    def _fill_set_view(self) -> None:
        recording, tap = self.workspace.recording, self.set_combo.currentData()
        if recording is None or tap is None or not self.has_images:
            self.set_view.clear()
            self.set_legend.setText("This recording has no tap on a set axis (e.g. HeMIS's modalities, "
                                    "colourisation's branches).")
            return
        try:
            rows = data.set_rows(recording, tap, self.item)
        except expected_errors() as exc:
            self.set_view.clear()
            self.set_legend.setText(f"Cannot read {html.escape(tap)} for image {self.item}: {html.escape(describe(exc))}")
            return
        self.set_view.show_rows(rows, self.set_style_combo.currentData() or "auto")
        info = recording.taps[tap]
        absent = int(rows.absent.sum())
        lo, hi = self.set_view.levels
        self.set_legend.setText(
            f"<b>{html.escape(tap)}</b>, image {self.item}: {_count(len(rows), 'member')} × {_count(info.units, 'unit')}, "
            f"one scale {lo:.3g} .. {hi:.3g} (this image)"
            + (f"; {absent} absent (greyed)" if absent else "")
            + (f"<br><span style='color:#666'>{html.escape(info.description)}</span>" if info.description else ""))
        self.set_shown.emit(self.item, tap)

    def show_unit_maps(self, signal: str) -> None:
        """Show the maps of ``signal``'s taps in the Unit maps tab and bring the tab forward."""
        i = self.maps_combo.findData(signal)
        if i < 0:
            raise ValueError(f"the recording has no image taps of signal {signal!r} to draw unit by unit")
        self.maps_combo.setCurrentIndex(i)
        self.tabs.setCurrentIndex(self.maps_tab)
        self._fill_unit_maps()

    def _fill_unit_maps(self) -> None:
        recording, signal = self.workspace.recording, self.maps_combo.currentData()
        if recording is None or signal is None or not self.has_images:
            self.maps_view.clear()
            self.maps_label.setText("This recording has no image tap of at most 16 units to draw unit by unit.")
            return
        try:
            maps = data.unit_maps(recording, signal, self.item)
        except expected_errors() as exc:
            self.maps_view.clear()
            self.maps_label.setText(f"Cannot read the {signal} taps of image {self.item}: {describe(exc)}")
            return
        self.maps_view.show_maps(maps)
        self.maps_legend.set_levels(maps.levels)
        lo, hi = maps.levels
        self.maps_label.setText(f"Image {self.item}: {_count(len(maps.rows), 'tap')} of signal {signal}, a row per "
                                f"tap (by layer), a map per unit; one scale {lo:.3g} .. {hi:.3g} (this image).")
        self.maps_shown.emit(self.item, signal)

    # ------------------------------------------------------------------ brushing and the Select rule
    def set_box(self, box) -> None:
        """Brush the input-pixel box ``(y0, x0, y1, x1)`` (None: none); the Select rule runs."""
        self.box = None if box is None else tuple(float(v) for v in box)
        if self.box is None:
            self.canvas.clear_box()
        else:
            self.canvas.set_box(*self.box)
        self._reselect()
        self._redraw_overlay()

    def _box_drawn(self, y0, x0, y1, x1) -> None:
        if self.size is None:
            return
        if y1 - y0 < 0.5 and x1 - x0 < 0.5:  # a tiny drag is a click
            self._clicked((y0 + y1) / 2, (x0 + x1) / 2)
            return
        self.set_box((y0, x0, y1, x1))

    def _reselect(self) -> None:
        """Run the box Select rule; its units colour the overlay (and become the highlighted units when
        the panel's tap is the active pane's)."""
        previous = self.selection
        self.selection = None
        values = self.item_values() if self.box is not None and self.size is not None else None
        if values is not None:
            from lstmviz.analysis.image_regions import BoxSpec, select_box_units

            try:
                spec = BoxSpec(self.box, threshold=float(self.threshold_spin.value()), ring=self.ring_spin.value(),
                               tolerance=float(self.tolerance_spin.value()),
                               direction=self.direction_combo.currentData() or "positive")
                self.selection = select_box_units(values, self.axis_geometry, self.size, spec)
            except ValueError as exc:
                self.units_label.setText(describe(exc))
                self.selection = None
        self._show_selection()
        same = (previous is None and self.selection is None) or (
            previous is not None and self.selection is not None and previous.pairs() == self.selection.pairs()
            and np.array_equal(previous.extra["cells"], self.selection.extra["cells"]))
        if self.selection is not None and len(self.selection):
            self.kept = (np.asarray(self.selection.units, np.int64), np.asarray(self.selection.signs, np.int64))
        if not same:
            self.selection_changed.emit(self.selection)
            pane = self.workspace.active_pane
            if self.selection is not None and len(self.selection) and pane is not None and pane.tap == self.tap_name:
                try:
                    self.workspace.set_highlighted_units(sorted({int(u) for u in self.selection.units}))
                except ValueError as exc:
                    self.set_status(describe(exc), problem=True)

    def _show_selection(self) -> None:
        sel = self.selection
        if self.box is None:
            self.units_label.setText("Drag a box on the image to select the units on inside it and off around it; "
                                     "click a cell to list its top units.")
            return
        if sel is None:
            return
        cells, ring = len(sel.extra["cells"]), len(sel.extra["ring"])
        pairs = ", ".join(f"{u}{'−' if s < 0 else ''}" for u, s in sel.pairs()[:24])
        more = f" … ({len(sel)} in all)" if len(sel) > 24 else ""
        self.units_label.setText(
            f"Box: {_count(cells, 'cell')}, ring of {_count(ring, 'cell')}: "
            + (f"{_count(len(sel), 'unit')} on inside and off on the ring: {pairs}{more}"
               if len(sel) else "no unit is on inside and off on the ring (lower θ, the ring or the tolerance)"))

    def _clicked(self, y: float, x: float) -> None:
        if self.size is None:
            return
        cell = data.cell_at(self.axis_geometry, self.size, y, x)
        self.show_cell(cell)

    def show_cell(self, cell: int) -> None:
        """List the top units of one cell's unit vector and outline the cell (-1: none)."""
        self.clicked_cell = int(cell)
        values = self.item_values()
        if cell < 0 or values is None:
            self.canvas.set_cell_mark(None)
            self.cell_label.setText("")
            return
        i, j = divmod(int(cell), self.size.width)
        cy, cx = data.cell_centre(self.axis_geometry, cell, self.size)
        sy, sx = self.axis_geometry.stride
        self.canvas.set_cell_mark((cy - sy / 2, cx - sx / 2, cy + sy / 2, cx + sx / 2))
        top = data.top_units(values[cell], TOP_UNITS)
        self.cell_label.setText(f"Cell ({i}, {j}) top units: " + ", ".join(f"{u}: {v:.3g}" for u, v in top))
        self.cell_clicked.emit(int(cell))

    def _hovered(self, y: float, x: float) -> None:
        if self.size is None or not np.isfinite(y):
            self.hover_label.setText(" ")
            self.canvas.set_field(None)
            return
        cell = data.cell_at(self.axis_geometry, self.size, y, x)
        if cell < 0:
            self.hover_label.setText(" ")
            self.canvas.set_field(None)
            return
        i, j = divmod(cell, self.size.width)
        text = f"pixel ({int(np.floor(y))}, {int(np.floor(x))}) · cell ({i}, {j})"
        image = self.canvas.overlay_image()
        if image is not None:
            text += f": {float(image[i, j]):.3g}"
        self.hover_label.setText(text)
        self.canvas.set_field(data.receptive_box(self.axis_geometry, cell, self.size)
                              if self.field_check.isChecked() else None)

    # ------------------------------------------------------------------ top-activating images
    def find_top(self) -> bool:
        """Rank every image by the selected units (a worker); False, with a sentence, when there are none."""
        recording = self.workspace.recording
        if recording is None or not self.has_images or self.tap_name is None:
            self.set_status("Open a recording of an image model to find its top-activating images.", problem=True)
            return False
        units, signs = self.overlay_units() if self.mode_combo.currentData() == "unit" else self.colour_units()
        if not len(units):
            self.set_status("Select units first: drag a box on the image, or choose 'one unit'.", problem=True)
            return False
        tap, reduce, limit = self.tap_name, self.reduce_combo.currentData() or "max", self.top_spin.value()
        lut = self._lut

        def job(task):
            import time

            from lstmviz.analysis.image_top import cell_scores, top_activating

            t0 = time.perf_counter()
            top = top_activating(recording, tap, units, signs, limit=limit, reduce=reduce, task=task)
            seconds = time.perf_counter() - t0
            axis = recording.taps[tap].axis
            geometry = recording.axis_geometry(axis)
            maps = []
            for item in top.items:  # each shown image's cell scores, on one scale for all of them
                task.check()
                size = recording.item_geometry(int(item), axis)
                a, b = recording.item_range(int(item), axis)
                scores = cell_scores(recording.states(tap, a, b, units=units), signs)
                maps.append((size, scores.reshape(size.height, size.width)))
            finite = np.concatenate([m[np.isfinite(m)] for _, m in maps]) if maps else np.zeros(0)
            lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
            entries = []
            for rank, (item, score, cell, (size, heat)) in enumerate(zip(top.items, top.scores, top.cells, maps)):
                task.check()
                image, _ = data.input_image(recording, int(item))
                box = data.receptive_box(geometry, int(cell), size) if cell >= 0 else None
                t = (heat - lo) / (hi - lo) if hi > lo else np.zeros_like(heat)
                entries.append((image, box, f"#{rank + 1} image {int(item)}: {score:.3g}",
                                (t, data.cell_rect(geometry, size), lut)))
            return top, entries, seconds

        self.submit("image-top", job, on_finished=lambda result: self._top_found(recording, result),
                    what="find the top-activating images", title="Cannot find the top-activating images",
                    stage="top images", on_cancelled=lambda: self.set_status("Top-images search cancelled."))
        self.tabs.setCurrentIndex(0)
        self.set_status(f"Ranking every image by {_count(len(units), 'unit')} of {tap}…")
        self.wants_dock.emit()
        return True

    def _top_found(self, recording, result) -> None:
        top, entries, seconds = result
        if recording is not self.workspace.recording:
            return
        self.top = top
        self.top_grid.set_thumbnails(entries)
        self.set_status(f"The {_count(len(top), 'image')} where {_count(len(top.units), 'unit')} of {top.tap} "
                        f"respond most ({REDUCE_TITLES[top.reduce]}), of {_count(recording.n_items, 'image')} "
                        f"in {duration(seconds)}; the thumbnails' heatmaps share one scale, the outline is the "
                        "peak cell's receptive field.")
        self.top_ready.emit(top)

    def show_top(self, i: int) -> None:
        """Go to the i-th top image and mark its peak cell (a thumbnail's click)."""
        if self.top is None or not 0 <= i < len(self.top):
            return
        item = int(self.top.items[i])
        if item != self.item:
            self.set_item(item)
            self.workspace.go_to_item(item)
        self.show_cell(int(self.top.cells[i]))

    # ------------------------------------------------------------------ match (hook)
    def _show_match_hook(self) -> None:
        available = has_image_match()
        self.match_button.setEnabled(available)
        self.match_label.setText("" if available else NO_MATCH)

    def match(self) -> bool:
        """Match the box selection in every image (a worker), when the analysis offers ``image_match``."""
        recording = self.workspace.recording
        if recording is None or not self.has_images or self.tap_name is None:
            self.set_status("Open a recording of an image model to match regions.", problem=True)
            return False
        if not has_image_match():
            self.set_status(NO_MATCH, problem=True)
            return False
        units, signs = self.colour_units()
        if not len(units):
            self.set_status("Select units first: drag a box on the image.", problem=True)
            return False
        from lstmviz.analysis import image_match as im

        tap = self.tap_name
        try:
            query = im.ImageMatchQuery(units=tuple(int(u) for u in units), signs=tuple(int(s) for s in signs),
                                       threshold=float(self.threshold_spin.value()), transform="raw",
                                       ring=self.ring_spin.value(), tolerance=float(self.tolerance_spin.value()),
                                       min_cells=MATCH_MIN_CELLS, limit=MATCH_LIMIT)
        except (TypeError, ValueError) as exc:
            self.set_status(describe(exc), problem=True)
            return False
        shown = self.top_spin.value()

        def job(task):
            results = im.image_match(recording, tap, query, task=task)
            entries = []
            for i in range(min(len(results), shown)):
                task.check()
                item = int(results.items[i])
                image, _ = data.input_image(recording, item)
                box = tuple(float(v) for v in results.tiles[i])
                entries.append((image, box, f"image {item}: {int(results.sizes[i])} cells, {float(results.score[i]):.3g}"))
            return results, entries

        def finished(result) -> None:
            results, entries = result
            if recording is not self.workspace.recording:
                return
            self.results = results
            self.match_grid.set_thumbnails(entries)
            k = results.query.k
            more = "" if results.exact else " (candidates capped: the ranking may miss some)"
            self.match_label.setText(f"{_count(len(results), 'region')} where {'the unit is' if k == 1 else f'the {k} units are'} "
                                     f"on together, best first; the outline is the region's cells. Click one to go there.")
            self.set_status(f"{_count(len(results), 'match', 'matches')} of {_count(k, 'unit')} of {tap} in every image "
                            f"in {duration(results.elapsed_s)}{more}.")
            self.matches_ready.emit(results)

        self.submit("image-match", job, on_finished=finished, what="match the box", title="Cannot match the box",
                    stage="match", on_cancelled=lambda: self.set_status("Image match cancelled."))
        self.tabs.setCurrentIndex(1)
        self.set_status(f"Matching {_count(len(units), 'unit')} of {tap} in every image…")
        self.wants_dock.emit()
        return True

    def show_match(self, i: int) -> None:
        """Go to match ``i``'s image and brush its region."""
        if self.results is None or not 0 <= i < len(self.results):
            return
        item = int(self.results.items[i])
        if item != self.item:
            self.set_item(item)
            self.workspace.go_to_item(item)
        self.set_box(tuple(float(v) for v in self.results.tiles[i]))

    # ------------------------------------------------------------------ perturb and attack
    def box_cells(self) -> np.ndarray:
        """The cells of the panel's tap whose centre lies in the brushed box (empty without a box)."""
        if self.box is None or self.size is None or self.axis_geometry is None:
            return np.zeros(0, np.int64)
        from lstmviz.analysis.image_regions import cells_in_box

        try:
            return cells_in_box(self.axis_geometry, self.size, self.box)
        except ValueError:
            return np.zeros(0, np.int64)

    def _class_names(self, recording):
        info = recording.annotations.get("target")
        return list(info.labels) if info is not None and getattr(info, "labels", None) else None

    def perturb(self) -> bool:
        """Occlude the brushed box or edit the selected units at its cells on this image (a worker); False, with
        a sentence, when there is nothing to perturb."""
        from lstmviz.perturb import Perturbation, PerturbError

        recording = self.workspace.recording
        if recording is None or not self.has_images:
            self.set_status("Open a recording of an image model to perturb its images.", problem=True)
            return False
        if self.box is None:
            self.perturb_box.clear_effect("Brush a box on the image first (drag): the perturbation occludes it or "
                                          "edits the selected units at its cells.")
            return False
        chosen = self.perturb_box.chosen()
        occlude, spec = None, None
        if "occlude" in chosen:
            fill = chosen["occlude"]
            if not isinstance(fill, str) and not 0.0 <= fill <= 1.0:
                self.perturb_box.clear_effect(f"An occlusion fills pixels with a value in [0, 1]; {fill:g} is outside "
                                              "the pixel range.")
                return False
            occlude = (tuple(self.box), fill)
            what = "occlude the box"
        else:
            units, _ = self.overlay_units()
            cells = self.box_cells()
            if self.tap_name is None or not len(units) or not len(cells):
                self.perturb_box.clear_effect("Select units first (the box rule, or 'one unit'): the edit changes "
                                              "the units the heatmap shows at the box's cells.")
                return False
            try:
                spec = Perturbation(tap=self.tap_name, units=tuple(int(u) for u in units),
                                    positions=tuple(int(c) for c in cells), **chosen)
            except PerturbError as exc:
                self.perturb_box.clear_effect(describe(exc))
                return False
            what = spec.describe()
        item = self.item
        live = self._live[1] if self._live is not None and self._live[0] is recording else None
        checkpoint = self._checkpoint
        names = self._class_names(recording)

        def job(task):
            from lstmviz.perturb import resolve
            from lstmviz.perturb.image_live import load_image_model, perturb_recorded_image

            model = live if live is not None else load_image_model(recording, checkpoint)
            task.progress(1, 3, "model loaded")
            edits = []
            if spec is not None:
                a, b = recording.item_range(item, recording.taps[spec.tap].axis)
                edits = resolve([spec], model, recording, item, length=b - a, task=task)
            task.progress(2, 3, "perturbing")
            return model, perturb_recorded_image(model, recording, item, occlude=occlude, edits=edits)

        return self._submit_effect("image-perturb", job, recording, item, names, stage="perturb",
                                   what="perturb the image", running=f"Perturbing image {item}: {what}…",
                                   done=lambda effect: f"Perturbed image {item} ({what}): the Perturb tab shows Δ "
                                                       "per layer.")

    def attack(self) -> bool:
        """Attack this image with ``lstmviz.perturb.image_attack`` (a worker with progress and Cancel)."""
        from lstmviz.qt.image.perturb_box import has_image_attack

        recording = self.workspace.recording
        if recording is None or not self.has_images:
            self.set_status("Open a recording of an image model to attack its images.", problem=True)
            return False
        if not has_image_attack():
            self.perturb_box.clear_effect("This build has no image attack (lstmviz.perturb.image_attack).")
            return False
        target = recording.annotations.get("target", recording.annotations.get("target_c0"))
        per_pixel = target is not None and getattr(target, "level", "item") == "position"
        if per_pixel and getattr(target, "kind", "") == "numeric":  # a regression model's values per pixel
            self.perturb_box.clear_effect("This recording's model predicts values per pixel (regression), so there "
                                          "is no class to flip: the attacks need a model trained for one class per "
                                          "image. Occlusion and unit edits work: brush a box and Perturb.")
            self.tabs.setCurrentWidget(self.perturb_box)
            return False
        if per_pixel:  # a segmentation model's
            self.perturb_box.clear_effect("This recording's model segments (one class per pixel), so there is no "
                                          "single prediction to flip: the attacks need a model trained for one class "
                                          "per image. Occlusion and unit edits work: brush a box and Perturb.")
            self.tabs.setCurrentWidget(self.perturb_box)
            return False
        fields = self.perturb_box.attack_fields()
        item = self.item
        live = self._live[1] if self._live is not None and self._live[0] is recording else None
        checkpoint = self._checkpoint
        names = self._class_names(recording)
        if fields["target"] is not None and names is not None and fields["target"] >= len(names):
            self.perturb_box.clear_effect(f"There is no class {fields['target']}: the model has {len(names)} classes "
                                          f"(0 to {len(names) - 1}).")
            return False

        def job(task):
            from lstmviz.perturb.image_live import attack_recorded_image, load_image_model

            model = live if live is not None else load_image_model(recording, checkpoint)
            task.progress(0, 1, "attacking")
            return model, attack_recorded_image(model, recording, item, **fields, task=task)

        return self._submit_effect("image-attack", job, recording, item, names, stage="attack",
                                   what="attack the image", running=f"Attacking image {item} ({fields['method']})…",
                                   done=lambda effect: f"Attacked image {item}: the Perturb tab shows the adversarial "
                                                       "image, r and Δ per layer.")

    def _submit_effect(self, channel: str, job, recording, item: int, names, *, stage: str, what: str, running: str,
                       done) -> bool:
        """Run ``job`` (returns ``(LiveImage, effect)``) on a worker; when it ends on the same recording and image,
        keep the model, draw the effect in the Perturb tab and say ``done(effect)``."""
        def finished(result) -> None:
            model, effect = result
            if recording is not self.workspace.recording or item != self.item:
                return
            self._remember_live(recording, model)
            self.perturb_box.show_effect(effect, effect.described or "nothing changed (the defaults)",
                                         class_names=names)
            self.set_status(done(effect))
            self.tabs.setCurrentWidget(self.perturb_box)
            self.perturbed.emit(effect)

        self.submit(channel, job, on_finished=finished, what=what, title=f"Cannot {what}", stage=stage,
                    on_failed=self._perturb_failed,
                    on_cancelled=lambda: self.set_status(f"{'Perturbation' if stage == 'perturb' else 'Attack'} "
                                                         "cancelled."))
        self.set_status(running)
        self.wants_dock.emit()
        return True

    def _remember_live(self, recording, model) -> None:
        """Keep the loaded model for the next run, and show its switches (once per model)."""
        from lstmviz.perturb.image import model_switches

        fresh = self._live is None or self._live[1] is not model
        self._live = (recording, model)
        if fresh:
            self.perturb_box.set_switches(model_switches(model.model))

    def load_switches(self) -> bool:
        """Load the recording's model (a worker) to show its switches in the Perturb tab."""
        recording = self.workspace.recording
        if recording is None or not self.has_images:
            self.set_status("Open a recording of an image model to see its switches.", problem=True)
            return False
        checkpoint = self._checkpoint

        def job(task):
            from lstmviz.perturb.image_live import load_image_model

            return load_image_model(recording, checkpoint)

        def finished(model) -> None:
            if recording is self.workspace.recording:
                self._remember_live(recording, model)
                self.set_status("Loaded the model: its switches are in the Perturb tab.")

        self.submit("image-perturb", job, on_finished=finished, what="load the model", title="Cannot load the model",
                    stage="perturb", on_failed=self._perturb_failed)
        return True

    def perturb_switched(self) -> bool:
        """Run this image with the model's switches as set in the Perturb tab (a worker)."""
        recording = self.workspace.recording
        live = self._live[1] if self._live is not None and self._live[0] is recording else None
        if recording is None or live is None:
            self.set_status("Load the model first (Perturb tab, Model switches: Load).", problem=True)
            return False
        settings = self.perturb_box.switch_settings()
        item = self.item
        names = self._class_names(recording)

        def job(task):
            from lstmviz.perturb.image_live import perturb_recorded_image

            task.progress(0, 1, "perturbing")
            return live, perturb_recorded_image(live, recording, item, switches=settings)

        return self._submit_effect("image-perturb", job, recording, item, names, stage="perturb",
                                   what="run the switched model",
                                   running=f"Running image {item} with the model switched…",
                                   done=lambda effect: f"Ran image {item} with the model switched "
                                                       f"({effect.described or 'defaults'}): the Perturb tab shows Δ "
                                                       "per layer.")

    def _failed_shown(self) -> None:
        self.tabs.setCurrentWidget(self.perturb_box)

    # ------------------------------------------------------------------ life cycle
    def restore_work(self) -> None:
        """Nothing runs by itself: top images and matches are asked for."""

    def shutdown(self) -> None:
        self.abandon()


__all__ = ["ImagePanel"]
