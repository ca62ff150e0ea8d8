"""Views of tangent kernels: alignment and effective rank over training, and the NTK spectrum with the label
energy per eigendirection (data from ``lstmviz.analysis.ntk_recording``; the views compute nothing).

``KernelCurvesView`` draws a ``KernelCurves``: two plots stacked, centred alignment A(K_l, YYᵀ) and the
effective rank of the centred K_l per layer against training step (one colour per layer, the whole
kernel K = Σ_l K_l in black), x as ``ProbeCurvesView``'s so the two can share an axis (``link_x``).

``SpectrumView`` draws a ``KernelSpectrum``: on top each eigendirection's share of the trace λ_k / Σλ
(log scale, the top ``max_directions``), below the cumulative label energy Σ_{j≤k} (u_jᵀ y_c)²/‖y_c‖² per
class against k: a class whose curve rises first lives on the kernel's top directions — what gradient
descent on this kernel learns first (Bietti & Mairal's spectral bias).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore

from lstmviz.qt.match.view import unbreakable
from lstmviz.qt.palette import AXIS, DISTINCT, FOREGROUND
from lstmviz.qt.probes.chart import LegendOverPlots

ALL_COLOR = (20, 20, 20)
CURVES_EMPTY = ("Tangent-kernel curves appear here: tick “tangent kernel” and run the probes over training "
                "(the checkpoint files must be at hand).")
SPECTRUM_EMPTY = "Pick a label and press Run to compute the NTK spectrum of the recording's model."


def _pen(color, width=1.5, style=QtCore.Qt.PenStyle.SolidLine):
    pen = pg.mkPen(color=color, width=width)
    pen.setStyle(style)
    pen.setCosmetic(True)
    return pen


def _entry(color, text: str) -> str:
    return f"<span style='color:rgb{tuple(color)}'>&#9632;</span>&nbsp;{unbreakable(text)}"


class _StackedPlots(LegendOverPlots):
    """A rich-text legend over pyqtgraph plots stacked in one column (exports render all)."""

    def __init__(self, rows: int, parent=None):
        super().__init__(parent, minimum=(320, 220))
        self.plots = []
        for row in range(rows):
            plot = pg.PlotItem()
            for side in ("left", "bottom"):
                plot.getAxis(side).setPen(_pen(AXIS))
                plot.getAxis(side).setTextPen(_pen(FOREGROUND))
            plot.getAxis("left").setWidth(52)  # as the probe curves: linked x axes line up
            plot.getAxis("left").enableAutoSIPrefix(False)
            plot.setMenuEnabled(False)
            plot.hideButtons()
            plot.setMouseEnabled(x=False, y=False)
            plot.showGrid(x=True, y=True, alpha=0.15)
            self.view.addItem(plot, row=row, col=0)
            self.plots.append(plot)
        self._items: list = []

    def _clear(self) -> None:
        for plot in self.plots:
            plot.clear()
        self._items = []

    def _message(self, text: str) -> None:
        self._clear()
        self.legend_label.setText("")
        item = pg.TextItem(text, color=AXIS, anchor=(0.5, 0.5))
        item.setPos(0.5, 0.5)
        self.plots[0].addItem(item)
        for plot in self.plots:
            plot.setXRange(0, 1, padding=0)
            plot.setYRange(0, 1, padding=0)
            plot.setLogMode(False, False)


class KernelCurvesView(_StackedPlots):
    """Alignment and effective rank per layer against training step (module docstring)."""

    def __init__(self, parent=None):
        super().__init__(2, parent)
        self.curves = None
        self.series: dict[str, dict] = {}
        self.plots[0].setLabel("left", "alignment")
        self.plots[1].setLabel("left", "effective rank")
        self.plots[1].setXLink(self.plots[0])
        self.set_curves(None)

    def set_curves(self, curves, message: str = "") -> None:
        self.curves = curves
        self.series = {}
        if curves is None:
            self._message(message or CURVES_EMPTY)
            self.plots[1].setLabel("bottom", "")
            return
        self._clear()
        x = curves.x()
        stepped = bool(curves.steps) and all(s is not None for s in curves.steps)
        bottom = self.plots[1].getAxis("bottom")
        if stepped:
            bottom.setTicks(None)
            self.plots[1].setLabel("bottom", "training step")
        else:
            bottom.setTicks([[(float(i), name) for i, name in enumerate(curves.checkpoints)]])
            self.plots[1].setLabel("bottom", "checkpoint (in training order)")
        legend = []
        lines = [(layer, DISTINCT[i % len(DISTINCT)], curves.alignment[:, i], curves.effective_rank[:, i], 1.6)
                 for i, layer in enumerate(curves.layers)]
        lines.append(("all layers (K)", ALL_COLOR, curves.total_alignment, curves.total_effective_rank, 2.6))
        for name, color, al, er, width in lines:
            for plot, values in ((self.plots[0], al), (self.plots[1], er)):
                plot.addItem(pg.PlotDataItem(x, values, pen=_pen(color, width), symbol="o", symbolSize=6,
                                             symbolBrush=pg.mkBrush(*color), symbolPen=_pen(color)))
            self.series[name] = {"x": x, "alignment": np.asarray(al), "effective_rank": np.asarray(er), "color": color}
            legend.append(_entry(color, name))
        legend.append(unbreakable(f"{curves.items} items; top: A(K, YYᵀ), bottom: eff. rank ({curves.rank}, centred K)"))
        self.legend_label.setText(" &nbsp; ".join(legend))
        span = float(x[-1] - x[0]) if len(x) > 1 else 1.0
        pad = 0.04 * span if span > 0 else 0.5
        self.plots[0].setXRange(float(x[0]) - pad, float(x[-1]) + pad, padding=0)
        for plot in self.plots:
            plot.enableAutoRange(axis="y")

    def link_x(self, plot: pg.PlotItem) -> None:
        """Share the x axis (training step) with another plot (the probe curves)."""
        self.plots[0].setXLink(plot)


class SpectrumView(_StackedPlots):
    """Eigenvalue shares and the cumulative label energy per class (module docstring)."""

    def __init__(self, parent=None, max_directions: int = 60):
        super().__init__(2, parent)
        self.max_directions = int(max_directions)
        self.result = None
        self.plots[0].setLabel("left", "λ_k / Σλ")
        self.plots[1].setLabel("left", "label energy on the top k")
        self.plots[1].setLabel("bottom", "eigendirection k (descending eigenvalue)")
        self.plots[1].setXLink(self.plots[0])
        self.set_result(None)

    def set_result(self, result, message: str = "") -> None:
        self.result = result
        if result is None:
            self._message(message or SPECTRUM_EMPTY)
            return
        self._clear()
        s = result.spectrum
        k = min(self.max_directions, len(s.eigenvalues))
        ks = np.arange(1, k + 1, dtype=float)
        values = np.clip(s.eigenvalues[:k], 0, None)
        share = values / max(float(np.clip(s.eigenvalues, 0, None).sum()), 1e-300)
        floor = max(float(share[share > 0].min()) if np.any(share > 0) else 1e-12, 1e-12)
        self.plots[0].setLogMode(False, True)
        self.plots[0].addItem(pg.PlotDataItem(ks, np.maximum(share, floor), pen=_pen(FOREGROUND, 1.4), symbol="o",
                                              symbolSize=5, symbolBrush=pg.mkBrush(*FOREGROUND)))
        cum = s.cumulative()[:k]
        legend = []
        for c, name in enumerate(s.labels):
            color = DISTINCT[c % len(DISTINCT)]
            self.plots[1].addItem(pg.PlotDataItem(np.concatenate([[0.0], ks]), np.concatenate([[0.0], cum[:, c]]),
                                                  pen=_pen(color, 1.8)))
            legend.append(_entry(color, f"{name} ({int(s.counts[c])})"))
        self.plots[1].addItem(pg.InfiniteLine(pos=0.9, angle=0, pen=_pen(AXIS, 1.0, QtCore.Qt.PenStyle.DotLine)))
        head = (f"{result.items} items, A(K) = {result.total_alignment:.3f}, effective rank "
                f"{result.total_effective_rank:.1f} ({result.rank}, centred)")
        self.legend_label.setText(unbreakable(head) + " &nbsp;|&nbsp; " + unbreakable("class (items):") + " "
                                  + " &nbsp; ".join(legend))
        self.plots[0].setXRange(0.5, k + 0.5, padding=0)
        self.plots[0].enableAutoRange(axis="y")
        self.plots[1].setYRange(0, 1.02, padding=0)
