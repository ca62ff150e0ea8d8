"""The Perturb panel's view of a loss-model pruning (``lstmviz.perturb.global_pruning.LossPruning``): for each
pruning step, the measured change of the loss ``L_s − L_{s−1}`` (solid, dots) against the change the linear
(LM), quadratic (QM) and OBD loss models predicted for the weights pruned in that step (dashed), over the
sparsity reached after the step. It draws the result and computes nothing."""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from lstmviz.qt.palette import BACKGROUND, CATEGORICAL, FOREGROUND, ZERO_LINE

MODELS = (("lm", "LM (linear)"), ("qm", "QM (quadratic)"), ("obd", "OBD"))
MEASURED_COLOR = (20, 20, 20)


class LossPruningView(pg.PlotWidget):
    """Predicted (LM, QM, OBD) against measured Δloss per pruning step (see the module docstring)."""

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent, background=BACKGROUND)
        self.result = None
        plot = self.getPlotItem()
        plot.setMenuEnabled(False)
        plot.hideButtons()
        color = "#%02x%02x%02x" % FOREGROUND
        plot.setLabel("bottom", "sparsity after the step (%)", color=color)
        plot.setLabel("left", "Δ loss of the step (nats)", color=color)
        plot.showGrid(x=True, y=True, alpha=0.15)
        plot.addLegend(offset=(6, 2), labelTextColor=FOREGROUND, brush=pg.mkBrush(255, 255, 255, 220))
        plot.addItem(pg.InfiniteLine(0, angle=0, pen=pg.mkPen(ZERO_LINE, width=1)))
        self.measured = None
        self.predicted: dict[str, pg.PlotDataItem] = {}

    def set_result(self, result) -> None:
        plot = self.getPlotItem()
        for item in [self.measured, *self.predicted.values()]:
            if item is not None:
                plot.removeItem(item)
        plot.legend.clear()
        self.measured, self.predicted = None, {}
        self.result = result
        if result is None or not result.steps:
            return
        x = 100 * np.array([s.sparsity for s in result.steps])
        self.measured = plot.plot(x, np.array([s.measured for s in result.steps]),
                                  pen=pg.mkPen(MEASURED_COLOR, width=2.2), symbol="o", symbolSize=7,
                                  symbolBrush=MEASURED_COLOR, name="measured")
        for i, (key, name) in enumerate(MODELS):
            y = np.array([s.predicted[key] for s in result.steps], float)
            if not np.isfinite(y).any():
                continue
            own = " (ranks by it)" if key == result.method else ""
            color = CATEGORICAL[i % len(CATEGORICAL)]
            self.predicted[key] = plot.plot(x, y, pen=pg.mkPen(color, width=1.6 + (key == result.method),
                                                               style=QtCore.Qt.PenStyle.DashLine),
                                            symbol="t", symbolSize=6, symbolBrush=color, name=f"{name}{own}")
        plot.enableAutoRange()
