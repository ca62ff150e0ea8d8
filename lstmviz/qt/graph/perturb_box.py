"""The Graph panel's perturbation box: what to do to the brushed nodes' selected units, and how far it spread.

The box holds the controls (action, value, the tap whose change is shown) and draws a
:class:`lstmviz.perturb.graph.GraphEffect`: per hop distance from the edited nodes, the largest ‖Δ‖ of the
shown tap (bars), the engine's stated bound (a dashed line, e.g. ChebNet's (m − l)(K − 1) hops) and a
sentence. The panel runs the perturbation (a worker) and colours the canvas by ‖Δ‖.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from lstmviz.qt.task_panel import labelled

#: (label, Perturbation keywords): the actions offered on brushed nodes x selected units
ACTIONS = (
    ("ablate to 0", {"action": "ablate", "ablate_to": "zero"}),
    ("ablate to mean", {"action": "ablate", "ablate_to": "mean"}),
    ("clamp to value", {"action": "clamp"}),
    ("add value along the units", {"action": "add", "direction": "unit"}),
)


class GraphPerturbBox(QtWidgets.QWidget):
    """Controls and the hop profile of the last perturbation (see the module docstring)."""

    #: the user asked to perturb the brushed nodes
    run_requested = QtCore.Signal()
    #: the tap whose change is shown changed (its name)
    shown_tap_changed = QtCore.Signal(str)
    #: the user asked to choose the recording's checkpoint file (it was moved or is another model)
    locate_requested = QtCore.Signal()

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.action_combo = QtWidgets.QComboBox()
        for label, _ in ACTIONS:
            self.action_combo.addItem(label)
        self.action_combo.setToolTip("What to do to the selected units at the brushed nodes")
        self.value_spin = QtWidgets.QDoubleSpinBox()
        self.value_spin.setRange(-1000.0, 1000.0)
        self.value_spin.setDecimals(3)
        self.value_spin.setValue(1.0)
        self.value_spin.setToolTip("clamp: the value; add: the length of the added vector (spread over the units)")
        self.run_button = QtWidgets.QPushButton("Perturb brushed nodes")
        self.run_button.setToolTip("Re-run the recording's model (its checkpoint) on this graph with the selected "
                                   "units of the brushed nodes edited, and show how far the change spreads")
        self.run_button.clicked.connect(self.run_requested)
        self.locate_button = QtWidgets.QPushButton("Locate checkpoint…")
        self.locate_button.setToolTip("Choose the checkpoint file of the recording (when it was moved), then "
                                      "perturb again")
        self.locate_button.clicked.connect(self.locate_requested)
        self.locate_button.hide()
        self.tap_combo = QtWidgets.QComboBox()
        self.tap_combo.setToolTip("The tap whose change (‖Δ‖ per node) is drawn")
        self.tap_combo.currentIndexChanged.connect(self._tap_chosen)
        self.plot = pg.PlotWidget()
        self.plot.setBackground("w")
        self.plot.setMinimumHeight(150)
        self.plot.setLabel("bottom", "hops from the edited nodes")
        self.plot.setLabel("left", "largest ‖Δ‖")
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.hideButtons()
        self.summary = QtWidgets.QLabel("Brush nodes, select units, then perturb them.")
        self.summary.setWordWrap(True)
        self.effect = None

        row = QtWidgets.QHBoxLayout()
        for widget in (self.action_combo, labelled("Value", self.value_spin), self.run_button, self.locate_button):
            row.addWidget(widget)
        row.addStretch(1)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(row)
        layout.addWidget(labelled("Δ at", self.tap_combo))
        layout.addWidget(self.plot, 1)
        layout.addWidget(self.summary)

    def perturbation_fields(self) -> dict:
        """The chosen action as :class:`lstmviz.perturb.Perturbation` keywords (without tap, units, nodes)."""
        fields = dict(ACTIONS[self.action_combo.currentIndex()][1])
        if fields["action"] == "clamp":
            fields["value"] = float(self.value_spin.value())
        elif fields["action"] == "add":
            fields["alpha"] = float(self.value_spin.value())
        return fields

    @property
    def shown_tap(self) -> str | None:
        return self.tap_combo.currentData()

    def _tap_chosen(self, *_) -> None:
        if self.effect is not None and self.shown_tap is not None:
            self._draw()
            self.shown_tap_changed.emit(self.shown_tap)

    def show_effect(self, effect, described: str) -> None:
        """Show ``effect`` (a ``GraphEffect``): the taps with hop distances, the deepest one first."""
        self.effect = effect
        self._described = described
        self.locate_button.hide()
        taps = [t for t in effect.clean if effect.hops.get(t) is not None]
        previous = self.shown_tap
        self.tap_combo.blockSignals(True)
        self.tap_combo.clear()
        for tap in taps:
            self.tap_combo.addItem(tap, tap)
        chosen = previous if previous in taps else (taps[-1] if taps else None)
        if chosen is not None:
            self.tap_combo.setCurrentIndex(taps.index(chosen))
        self.tap_combo.blockSignals(False)
        self._draw()
        if chosen is not None:
            self.shown_tap_changed.emit(chosen)

    def clear_effect(self, message: str = "Brush nodes, select units, then perturb them.", *,
                     locate: bool = False) -> None:
        """No effect shown, ``message`` instead; ``locate``: the checkpoint could not be used, and
        Locate checkpoint… is offered."""
        self.effect = None
        self.locate_button.setVisible(locate)
        self.plot.clear()
        self.summary.setText(message)

    def _draw(self) -> None:
        effect, tap = self.effect, self.shown_tap
        self.plot.clear()
        if effect is None or tap is None:
            self.summary.setText(f"{self._described}: no tap of the edited level or a coarser one to show.")
            return
        profile = effect.hop_profile(tap)
        hops, largest = profile["hops"], profile["max_norm"]
        changed = profile["changed"] > 0
        brushes = [pg.mkBrush(200, 60, 40) if c else pg.mkBrush(190, 190, 190) for c in changed]
        self.plot.addItem(pg.BarGraphItem(x=hops, height=largest, width=0.7, brushes=brushes, pen=None))
        bound = effect.bounds.get(tap)
        if bound is not None:
            line = pg.InfiniteLine(pos=bound + 0.5, angle=90, pen=pg.mkPen((40, 90, 200), width=2,
                                                                          style=QtCore.Qt.PenStyle.DashLine))
            self.plot.addItem(line)
        self.plot.getPlotItem().getAxis("bottom").setTicks([[(int(h), str(int(h))) for h in hops]])
        reach = effect.reach(tap)
        if reach == -1:
            said = f"{tap} did not change"
        elif reach > 10**9:
            said = f"{tap} changed where no path of edges leads from the edited nodes (a global readout)"
        else:
            n = int(profile["changed"].sum())
            said = f"{tap} changed at {n} node{'s' if n != 1 else ''}, up to {reach} hop{'s' if reach != 1 else ''}"
        if bound is not None:
            within = "within" if reach <= bound else "BEYOND"
            said += f" — {within} the engine's bound of {bound} hop{'s' if bound != 1 else ''} (dashed line)"
        out = effect.output_change()
        said += f". Output change: largest ‖Δ logits‖ {float(np.max(out, initial=0.0)):.3g}."
        self.summary.setText(f"{self._described}: {said}")


__all__ = ["ACTIONS", "GraphPerturbBox"]
