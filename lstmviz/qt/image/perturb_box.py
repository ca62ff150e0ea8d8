"""The Image panel's perturbation box: what to do to the brushed box (occlude it, or edit the selected units
at its cells; attack the image when the attack module is there), and what it did, layer by layer.

The box holds the controls and draws an :class:`lstmviz.perturb.image.ImageEffect` (the panel runs the
perturbation in a worker):

- a row of small Δ maps, one per feature-map tap in model order: ‖Δ‖ per cell, all on one scale (0 to the
  largest ‖Δ‖ of any cell of any tap, said under the row), titled with the tap, how many cells changed,
  how many of them lie outside the receptive-field region (0 when the geometry is right) and the
  amplification ‖Δ⁽ˢ⁾‖ / ‖Δ⁽⁰⁾‖;
- the input before and after, and ``r`` = edited − clean input (blue negative, red positive, symmetric scale
  ±max|r|, said in its title);
- the class probabilities before (grey) and after (red), and a sentence; for a segmentation model (an
  effect with per-pixel logits, ``effect.dense``) the predicted masks before and after (one colour per pixel
  class, named in a legend) and ‖Δ logits‖ per pixel in place of the bars, and a sentence that counts the
  pixels whose class changed; for a regression model (``effect.regression``: values per pixel, a depth) the
  prediction before and after (grey, one scale for both, said in the legend row; with several target channels
  channel 0, said in the titles) and |Δ prediction| per pixel (‖Δ‖ over the channels), and a sentence with the
  number of pixels that changed and the largest and mean change.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from lstmviz.qt.task_panel import labelled

#: (label, keywords): the actions offered on the brushed box. ``occlude`` fills the box's input pixels;
#: the others are :class:`lstmviz.perturb.Perturbation` keywords for the selected units at the box's cells.
ACTIONS = (
    ("occlude: zero", {"occlude": "zero"}),
    ("occlude: image mean", {"occlude": "mean"}),
    ("occlude: blur", {"occlude": "blur"}),
    ("occlude: value", {"occlude": "value"}),
    ("units: ablate to 0", {"action": "ablate", "ablate_to": "zero"}),
    ("units: ablate to mean", {"action": "ablate", "ablate_to": "mean"}),
    ("units: clamp to value", {"action": "clamp"}),
    ("units: add value", {"action": "add", "direction": "unit"}),
)

#: (label, method) of the attacks, offered when lstmviz.perturb.image_attack exists
ATTACKS = (("L-BFGS (Szegedy, box-constrained)", "lbfgs"), ("PGD (L∞)", "pgd-linf"), ("PGD (L2)", "pgd-l2"))

MAP_SIZE = 90
DELTA_STOPS = ((0.0, (255, 255, 255)), (0.3, (253, 190, 110)), (0.7, (220, 60, 30)), (1.0, (110, 0, 20)))
DIVERGING_STOPS = ((0.0, (30, 70, 200)), (0.5, (255, 255, 255)), (1.0, (200, 30, 30)))
#: colours of the pixel classes of a predicted mask: class 0 (background) light grey, then 10 distinct colours
CLASS_COLORS = ((235, 235, 235), (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
                (140, 86, 75), (227, 119, 194), (100, 100, 100), (188, 189, 34), (23, 190, 207))


def class_colors(n: int) -> np.ndarray:
    """``[n, 3]`` uint8: :data:`CLASS_COLORS`, repeated past its length."""
    return np.array([CLASS_COLORS[i % len(CLASS_COLORS)] for i in range(n)], np.uint8)


def mask_rgb(mask: np.ndarray, n: int) -> np.ndarray:
    """``[H, W, 3]`` uint8: the predicted mask ``[H, W]`` (class ids ``0 .. n-1``) in :func:`class_colors`."""
    return np.ascontiguousarray(class_colors(max(n, int(mask.max(initial=0)) + 1))[mask])


def has_image_attack() -> bool:
    """Whether ``lstmviz.perturb.image_attack`` offers the L-BFGS and PGD attacks."""
    try:
        from lstmviz.perturb import image_attack
    except ImportError:
        return False
    return hasattr(image_attack, "lbfgs_image_attack") and hasattr(image_attack, "pgd_image_attack")


def make_lut(stops, n: int = 256) -> np.ndarray:
    t = np.linspace(0.0, 1.0, n)
    at = [p for p, _ in stops]
    lut = np.empty((n, 3), np.uint8)
    for c in range(3):
        lut[:, c] = np.round(np.interp(t, at, [rgb[c] for _, rgb in stops]))
    return lut


def _hex(rgb) -> str:
    return "#%02x%02x%02x" % tuple(int(c) for c in rgb[:3])


def _image_view(image: np.ndarray, *, lut=None, levels=None) -> pg.ViewBox:
    view = pg.ViewBox(lockAspect=True, enableMenu=False, invertY=True, border=pg.mkPen(150, 150, 150))
    view.setMouseEnabled(x=False, y=False)
    item = pg.ImageItem(axisOrder="row-major")
    if lut is not None:
        item.setLookupTable(lut)
    if levels is not None:
        item.setImage(image, levels=levels, autoLevels=False)
    else:
        item.setImage(image, autoLevels=False, levels=(0.0, 1.0))
    view.addItem(item)
    view.setRange(QtCore.QRectF(0, 0, image.shape[1], image.shape[0]), padding=0.0)
    view.item = item
    return view


def _display(image_chw: np.ndarray) -> np.ndarray:
    """``[C, H, W]`` in [0, 1] as something an ImageItem shows: ``[H, W]`` grey or ``[H, W, 3]``."""
    c = image_chw.shape[0]
    if c == 3:
        return np.ascontiguousarray(image_chw.transpose(1, 2, 0))
    return np.ascontiguousarray(image_chw.mean(axis=0) if c != 1 else image_chw[0])


class ImagePerturbBox(QtWidgets.QWidget):
    """Controls and the drawing of the last effect (see the module docstring)."""

    #: the user asked to perturb the brushed box
    run_requested = QtCore.Signal()
    #: the user asked to attack the image
    attack_requested = QtCore.Signal()
    #: the user asked to choose the recording's checkpoint file (it was moved or is another model)
    locate_requested = QtCore.Signal()
    #: the user asked to run the image with the model's switches as set (drop a modality, force a branch, prune)
    switch_requested = QtCore.Signal()
    #: the user asked to load the model to see its switches
    switches_load_requested = QtCore.Signal()

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.action_combo = QtWidgets.QComboBox()
        for label, _ in ACTIONS:
            self.action_combo.addItem(label)
        self.action_combo.setToolTip("Occlude the brushed box's input pixels, or edit the selected units at the "
                                     "cells of the brushed box (of the panel's tap)")
        self.value_spin = QtWidgets.QDoubleSpinBox()
        self.value_spin.setRange(-1000.0, 1000.0)
        self.value_spin.setDecimals(3)
        self.value_spin.setSingleStep(0.1)
        self.value_spin.setValue(1.0)
        self.value_spin.setToolTip("occlude: value: the fill (0 to 1); clamp: the value; add: the length of the "
                                   "added vector (spread over the units)")
        self.run_button = QtWidgets.QPushButton("Perturb box")
        self.run_button.setToolTip("Re-run the recording's model (its checkpoint) on this image with the brushed "
                                   "box occluded or its cells' selected units edited; show Δ per layer")
        self.run_button.clicked.connect(self.run_requested)
        self.locate_button = QtWidgets.QPushButton("Locate checkpoint…")
        self.locate_button.setToolTip("Choose the checkpoint file of the recording (when it was moved), then "
                                      "perturb again")
        self.locate_button.clicked.connect(self.locate_requested)
        self.locate_button.hide()

        self.attack_combo = QtWidgets.QComboBox()
        for label, method in ATTACKS:
            self.attack_combo.addItem(label, method)
        self.attack_combo.setToolTip("L-BFGS: the smallest r (box-constrained, Szegedy et al.) that makes the model "
                                     "say the target; PGD: steps of size eps/4 within an eps ball")
        self.target_spin = QtWidgets.QSpinBox()
        self.target_spin.setRange(-1, 999)
        self.target_spin.setSpecialValueText("any other")
        self.target_spin.setValue(-1)
        self.target_spin.setToolTip("The class the attack aims for (any other: untargeted)")
        self.eps_spin = QtWidgets.QDoubleSpinBox()
        self.eps_spin.setRange(0.001, 100.0)
        self.eps_spin.setDecimals(3)
        self.eps_spin.setSingleStep(0.01)
        self.eps_spin.setValue(0.1)
        self.eps_spin.setToolTip("PGD: the radius of the allowed change (L∞: per pixel; L2: of the whole image)")
        self.attack_button = QtWidgets.QPushButton("Attack image")
        self.attack_button.setToolTip("Search for a small change of the whole image that changes the prediction "
                                      "(a worker; Cancel stops it)")
        self.attack_button.clicked.connect(self.attack_requested)
        self.attack_row = QtWidgets.QWidget()
        ar = QtWidgets.QHBoxLayout(self.attack_row)
        ar.setContentsMargins(0, 0, 0, 0)
        for widget in (labelled("Attack", self.attack_combo), labelled("Target", self.target_spin),
                       labelled("eps", self.eps_spin), self.attack_button):
            ar.addWidget(widget)
        ar.addStretch(1)
        # a model's structural switches (hemis: modalities, colorization-codec: branch, cnmm: pruning); the combos
        # appear once the model is loaded (the first perturbation, or Load)
        self.switch_combos: dict[str, QtWidgets.QComboBox] = {}
        self.switch_row = QtWidgets.QWidget()
        self._switch_layout = QtWidgets.QHBoxLayout(self.switch_row)
        self._switch_layout.setContentsMargins(0, 0, 0, 0)
        self.switch_note = QtWidgets.QLabel("Model switches:")
        self.switch_load_button = QtWidgets.QPushButton("Load")
        self.switch_load_button.setToolTip("Load the recording's model to list its switches (modalities, branches, "
                                           "pruning), if it has any")
        self.switch_load_button.clicked.connect(self.switches_load_requested)
        self.switch_button = QtWidgets.QPushButton("Run switched")
        self.switch_button.setToolTip("Run this image with the model switched as set and show what changed")
        self.switch_button.clicked.connect(self.switch_requested)
        self.switch_button.hide()
        self._switch_layout.addWidget(self.switch_note)
        self._switch_layout.addWidget(self.switch_load_button)
        self._switch_layout.addWidget(self.switch_button)
        self._switch_layout.addStretch(1)
        self.attack_row.setVisible(has_image_attack())

        self.maps = pg.GraphicsLayoutWidget()
        self.maps.setBackground("w")
        self.maps.setFixedHeight(MAP_SIZE + 70)
        self.scale_label = QtWidgets.QLabel()
        self.scale_label.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.images = pg.GraphicsLayoutWidget()
        self.images.setBackground("w")
        self.images.setFixedSize(3 * MAP_SIZE + 40, MAP_SIZE + 45)
        self.plot = pg.PlotWidget()
        self.plot.setBackground("w")
        self.plot.setFixedHeight(MAP_SIZE + 45)
        self.plot.setMinimumWidth(220)
        self.plot.setLabel("left", "probability")
        self.plot.setLabel("bottom", "class: grey before, red after")
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.masks = pg.GraphicsLayoutWidget()  # a segmentation model's masks, in place of the bars
        self.masks.setBackground("w")
        self.masks.setFixedSize(3 * MAP_SIZE + 40, MAP_SIZE + 45)
        self.mask_legend = QtWidgets.QLabel()
        self.mask_legend.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.mask_legend.setWordWrap(True)
        self.summary = QtWidgets.QLabel()
        self.summary.setWordWrap(True)
        self.effect = None
        self._maps_columns = 0
        self.map_views: dict[str, pg.ViewBox] = {}  # tap -> its Δ map's view (``.item``: the ImageItem)
        self.mask_views: list[pg.ViewBox] = []  # segmentation: mask before, mask after, ‖Δ logits‖ per pixel
        self._delta_lut = make_lut(DELTA_STOPS)
        self._diverging_lut = make_lut(DIVERGING_STOPS)

        row = QtWidgets.QHBoxLayout()
        for widget in (self.action_combo, labelled("Value", self.value_spin), self.run_button, self.locate_button):
            row.addWidget(widget)
        row.addStretch(1)
        bottom = QtWidgets.QHBoxLayout()
        bottom.addWidget(self.images)
        bottom.addWidget(self.plot, 1)
        bottom.addWidget(self.masks)  # a segmentation model's masks, in place of the bars
        bottom.addStretch(0)
        content = QtWidgets.QWidget()
        layout = QtWidgets.QVBoxLayout(content)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.maps)
        layout.addWidget(self.scale_label)
        layout.addLayout(bottom)
        layout.addWidget(self.mask_legend)  # its own row: beside the masks it would widen the tab past the dock
        layout.addWidget(self.summary)
        layout.addStretch(1)
        self.scroll = QtWidgets.QScrollArea()  # a short dock scrolls instead of squeezing the maps
        self.scroll.setWidgetResizable(True)
        self.scroll.setFrameShape(QtWidgets.QFrame.Shape.NoFrame)
        self.scroll.setWidget(content)
        outer = QtWidgets.QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addLayout(row)
        outer.addWidget(self.attack_row)
        outer.addWidget(self.switch_row)
        outer.addWidget(self.scroll, 1)
        self.clear_effect()

    # ------------------------------------------------------------------ the request
    def chosen(self) -> dict:
        """The chosen action: ``{"occlude": fill}`` (fill a name or a value) or Perturbation keywords
        (without tap, units, positions)."""
        fields = dict(ACTIONS[self.action_combo.currentIndex()][1])
        value = float(self.value_spin.value())
        if fields.get("occlude") == "value":
            fields["occlude"] = value
        elif fields.get("action") == "clamp":
            fields["value"] = value
        elif fields.get("action") == "add":
            fields["alpha"] = value
        return fields

    def attack_fields(self) -> dict:
        """``method`` (lbfgs, pgd-linf, pgd-l2), ``target`` (None: untargeted) and ``eps``."""
        target = self.target_spin.value()
        return {"method": self.attack_combo.currentData(), "target": None if target < 0 else int(target),
                "eps": float(self.eps_spin.value())}

    # ------------------------------------------------------------------ drawing
    def clear_effect(self, message: str = "Brush a box on the image, then occlude it or edit the selected units at "
                                          "its cells.", *, locate: bool = False) -> None:
        """No effect shown, ``message`` instead; ``locate``: the checkpoint could not be used, and Locate
        checkpoint… is offered."""
        self.effect = None
        self.map_views = {}
        self.locate_button.setVisible(locate)
        self.maps.clear()
        self.images.clear()
        self.plot.clear()
        self.masks.clear()
        self.mask_views = []
        self.mask_legend.setText("")
        self._show_masks(False)
        self.scale_label.setText("")
        self.summary.setText(message)

    def _show_masks(self, dense: bool) -> None:
        """The masks (segmentation) or the probability bars (image-level tasks)."""
        self.plot.setVisible(not dense)
        self.masks.setVisible(dense)
        self.mask_legend.setVisible(dense)

    def show_effect(self, effect, described: str = "", *, class_names=None) -> None:
        """Draw ``effect`` (an ``ImageEffect``, or an attack's result in its shape)."""
        self.effect = effect
        self.locate_button.hide()
        self._draw_maps(effect)
        self._draw_images(effect)
        dense = bool(getattr(effect, "dense", False))
        self._show_masks(dense)
        if getattr(effect, "regression", False):
            self._draw_values(effect, class_names)
        elif dense:
            self._draw_masks(effect, class_names)
        else:
            self._draw_probabilities(effect, class_names)
        self.summary.setText(self._sentence(effect, described or getattr(effect, "described", ""), class_names))

    def _draw_maps(self, effect) -> None:
        self.maps.clear()
        self.map_views = {}
        taps = effect.map_taps
        maps = {tap: effect.delta_map(tap) for tap in taps}
        top = max((float(m.max()) for m in maps.values() if m.size), default=0.0)
        levels = (0.0, top if top > 0 else 1.0)
        per_row = self._maps_per_row()
        self._maps_columns = per_row
        rows = -(-len(taps) // per_row) if taps else 1
        self.maps.setFixedHeight(rows * (MAP_SIZE + 70))
        for k, tap in enumerate(taps):
            row, col = 2 * (k // per_row), k % per_row
            m = maps[tap]
            changed = int(effect.changed(tap).sum())
            outside = effect.outside(tap)
            amp = effect.amplification(tap)
            title = (f"<b>{tap}</b> {m.shape[0]}×{m.shape[1]}<br>{changed} changed"
                     + (f", <span style='color:#c00'>{outside} outside</span>" if outside else "")
                     + (f"<br>×{amp:.3g}" if np.isfinite(amp) else ""))
            self.maps.addLabel(title, row=row, col=col, size="8pt")
            view = _image_view(m.astype(np.float32), lut=self._delta_lut, levels=levels)
            self.maps.addItem(view, row=row + 1, col=col)
            self.map_views[tap] = view
            view.setToolTip(f"‖Δ‖ per cell of {tap}; the receptive-field region holds "
                            f"{int(effect.region(tap).sum())} of {m.size} cells")
        for col in range(min(per_row, len(taps))):  # every map the same size, whatever its number of cells
            self.maps.ci.layout.setColumnFixedWidth(col, MAP_SIZE)
        for row in range(rows):
            self.maps.ci.layout.setRowFixedHeight(2 * row + 1, MAP_SIZE)
        stops = "".join(f'<span style="background:{_hex(self._delta_lut[int(i)])}">&nbsp;&nbsp;&nbsp;</span>'
                        for i in np.linspace(0, len(self._delta_lut) - 1, 10))
        self.scale_label.setText(f"‖Δ‖ per cell, one scale for every layer: 0 {stops} {top:.3g} &nbsp; "
                                 "<span style='color:#666'>×: amplification ‖Δ‖ / ‖change made‖</span>"
                                 if taps else "The model has no feature-map taps: no Δ maps.")

    def set_switches(self, switches) -> None:
        """Show one combo per switch of the loaded model (``lstmviz.perturb.image.model_switches``); none: say so."""
        for combo in self.switch_combos.values():
            self._switch_layout.removeWidget(combo.parentWidget())
            combo.parentWidget().deleteLater()
        self.switch_combos = {}
        self.switch_load_button.hide()
        if not switches:
            self.switch_note.setText("Model switches: none (this model has no modalities, branches or edges to "
                                     "switch)")
            self.switch_button.hide()
            return
        self.switch_note.setText("Model switches:")
        for k, sw in enumerate(switches):
            combo = QtWidgets.QComboBox()
            combo.addItems(list(sw.choices))
            combo.setCurrentText(sw.default)
            combo.setToolTip(f"{sw.description} (default {sw.default})")
            self.switch_combos[sw.name] = combo
            self._switch_layout.insertWidget(1 + k, labelled(sw.name, combo))
        self.switch_button.show()

    def reset_switches(self) -> None:
        """No model loaded: the switches are offered after loading it."""
        self.set_switches([])
        self.switch_note.setText("Model switches:")
        self.switch_load_button.show()

    def switch_settings(self) -> dict[str, str]:
        """The switches as set in the combos."""
        return {name: combo.currentText() for name, combo in self.switch_combos.items()}

    def _maps_per_row(self) -> int:
        """How many Δ maps fit side by side in the tab's width (the rest wrap onto further rows, so a model with
        many feature maps does not widen the tab past its dock)."""
        width = self.scroll.viewport().width() if self.isVisible() else self.width()
        return max(1, (width - 20) // (MAP_SIZE + 20))

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._fit_to_width()

    def showEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().showEvent(event)
        QtCore.QTimer.singleShot(0, self._fit_to_width)  # once the tab has its real width

    def _fit_to_width(self) -> None:
        """Re-flow the Δ maps for the tab's width and lay the scrolled content out at its current size: an
        effect drawn while the tab was hidden was laid out at the hidden tab's (larger) width, and the labels
        stayed that wide (their text clipped at the dock's edge)."""
        if self.effect is not None and self._maps_per_row() != self._maps_columns:
            self._draw_maps(self.effect)
        content = self.scroll.widget()
        content.layout().setGeometry(content.rect())

    def _draw_images(self, effect) -> None:
        self.images.clear()
        clean, edited = effect.image_clean, effect.image_edited
        r = (edited.astype(np.float64) - clean).mean(axis=0) if clean.shape[0] != 1 else (edited - clean)[0]
        bound = float(np.abs(r).max()) if r.size else 0.0
        shown = (("input", _display(clean), None, None, "the input"),
                 ("after", _display(edited), None, None, "the input the model saw after the change"),
                 (f"r (±{bound:.2g})", r.astype(np.float32), self._diverging_lut,
                  (-bound, bound) if bound > 0 else (-1.0, 1.0),
                  f"r = after − input: blue negative, red positive, white 0; scale ±{bound:.3g}"))
        for col, (title, image, lut, levels, tip) in enumerate(shown):
            self.images.addLabel(title, row=0, col=col, size="8pt")
            view = _image_view(image, lut=lut, levels=levels)
            view.setToolTip(tip)
            self.images.addItem(view, row=1, col=col)
            self.images.ci.layout.setColumnFixedWidth(col, MAP_SIZE)
        self.images.ci.layout.setRowFixedHeight(1, MAP_SIZE)

    def _draw_probabilities(self, effect, class_names) -> None:
        self.plot.clear()
        before, after = effect.probabilities_clean, effect.probabilities_edited
        x = np.arange(len(before))
        self.plot.addItem(pg.BarGraphItem(x=x - 0.18, height=before, width=0.36, brush=pg.mkBrush(170, 170, 170),
                                          pen=None))
        self.plot.addItem(pg.BarGraphItem(x=x + 0.18, height=after, width=0.36, brush=pg.mkBrush(210, 50, 40),
                                          pen=None))
        names = list(class_names) if class_names is not None and len(class_names) == len(x) else [str(i) for i in x]
        self.plot.getPlotItem().getAxis("bottom").setTicks([[(int(i), names[i]) for i in x]])
        self.plot.setYRange(0.0, 1.0, padding=0.02)

    def _draw_masks(self, effect, class_names) -> None:
        """The predicted masks before and after and ‖Δ logits‖ per pixel (a segmentation model)."""
        self.masks.clear()
        self.mask_views = []
        before, after = effect.mask_clean, effect.mask_edited
        n = int(effect.logits_clean.shape[0])
        delta = effect.logit_delta_map().astype(np.float32)
        top = float(delta.max(initial=0.0))
        changed = effect.pixels_changed()
        shown = (("mask before", mask_rgb(before, n), None, (0, 255), "the predicted class of every pixel before"),
                 ("mask after", mask_rgb(after, n), None, (0, 255),
                  f"the predicted class of every pixel after the change ({changed} pixels changed class)"),
                 ("‖Δ logits‖", delta, self._delta_lut, (0.0, top if top > 0 else 1.0),
                  f"‖Δ logits‖ over the classes at every pixel: white 0, dark red {top:.3g}"))
        self._show_pixel_maps(shown)
        names = list(class_names) if class_names is not None and len(class_names) == n else [str(i) for i in range(n)]
        colors = class_colors(n)
        present = sorted(set(np.unique(before).tolist()) | set(np.unique(after).tolist()))
        self.mask_legend.setText(" ".join(f'<span style="background:{_hex(colors[k])}">&nbsp;&nbsp;&nbsp;</span>'
                                          f"&nbsp;{names[k]}" for k in present))

    def _show_pixel_maps(self, shown) -> None:
        """Draw ``(title, image, lut, levels, tooltip)`` per column in the per-pixel output row (masks or values)."""
        for col, (title, image, lut, levels, tip) in enumerate(shown):
            self.masks.addLabel(title, row=0, col=col, size="8pt")
            view = _image_view(image, lut=lut, levels=levels)
            view.setToolTip(tip)
            self.masks.addItem(view, row=1, col=col)
            self.mask_views.append(view)
            self.masks.ci.layout.setColumnFixedWidth(col, MAP_SIZE)
        self.masks.ci.layout.setRowFixedHeight(1, MAP_SIZE)

    def _draw_values(self, effect, class_names) -> None:
        """The predicted values before and after and |Δ prediction| per pixel (a regression model)."""
        self.masks.clear()
        self.mask_views = []
        before, after = effect.prediction_map_clean, effect.prediction_map_edited
        ct = int(before.shape[0])
        channel = "" if ct == 1 else (f" ({class_names[0]})" if class_names is not None and len(class_names) == ct
                                      else " (c0)")
        b0, a0 = before[0].astype(np.float32), after[0].astype(np.float32)
        low = float(min(b0.min(), a0.min()))
        high = float(max(b0.max(), a0.max()))
        levels = (low, high if high > low else low + 1.0)
        delta = effect.logit_delta_map().astype(np.float32)
        top = float(delta.max(initial=0.0))
        shown = (("prediction before" + channel, b0, None, levels, "the predicted value of every pixel before"),
                 ("prediction after" + channel, a0, None, levels,
                  f"the predicted value of every pixel after the change ({effect.pixels_changed()} pixels changed)"),
                 ("|Δ prediction|", delta, self._delta_lut, (0.0, top if top > 0 else 1.0),
                  f"|Δ prediction| at every pixel (‖Δ‖ over the {ct} target channels)" if ct > 1 else
                  f"|Δ prediction| at every pixel: white 0, dark red {top:.3g}"))
        self._show_pixel_maps(shown)
        self.mask_legend.setText(f"prediction{channel}: black {levels[0]:.3g} … white {levels[1]:.3g} (one scale "
                                 f"before and after); |Δ prediction|: white 0 … dark red {top:.3g}")

    def _sentence(self, effect, described: str, class_names) -> str:
        def name(c: int) -> str:
            return str(class_names[c]) if class_names is not None and c < len(class_names) else str(c)

        outside = sum(effect.outside(t) for t in effect.map_taps)
        region = ("every change lies within the receptive-field region of what was changed" if outside == 0
                  else f"{outside} cells changed OUTSIDE the receptive-field region (the model's stated geometry "
                       "is wrong)")
        if effect.extra.get("switches"):
            region = "the model itself was switched, so any cell may change"
        if getattr(effect, "regression", False):
            delta = effect.logit_delta_map()
            return (f"{described}: the prediction changed at {effect.pixels_changed()} of {delta.size} pixels; "
                    f"largest |Δ prediction| at a pixel {delta.max(initial=0.0):.3g}, mean {delta.mean():.3g}; "
                    f"{region}.")
        if getattr(effect, "dense", False):
            before, after = effect.mask_clean, effect.mask_edited
            changed = before != after
            said = f"{int(changed.sum())} of {changed.size} pixels changed class"
            if changed.any():
                pairs, counts = np.unique(np.stack([before[changed], after[changed]]), axis=1, return_counts=True)
                k = int(np.argmax(counts))
                said += f" (most often {name(int(pairs[0, k]))} → {name(int(pairs[1, k]))}: {int(counts[k])})"
            return (f"{described}: {said}; largest ‖Δ logits‖ at a pixel {effect.logit_delta_map().max():.3g}; "
                    f"{region}.")
        a, b = effect.prediction_clean, effect.prediction_edited
        pa, pb = effect.probabilities_clean, effect.probabilities_edited
        said = (f"prediction {name(a)} ({pa[a]:.2f}) → {name(b)} ({pb[b]:.2f})" if a != b
                else f"prediction stays {name(a)} ({pa[a]:.2f} → {pb[b]:.2f})")
        return f"{described}: {said}; ‖Δ logits‖ {effect.output_change():.3g}; {region}."


__all__ = ["ACTIONS", "ATTACKS", "CLASS_COLORS", "ImagePerturbBox", "class_colors", "has_image_attack", "mask_rgb"]
