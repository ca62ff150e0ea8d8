"""Probe accuracy over training: one line per tap against the training step (Alain & Bengio's figures).

``ProbeCurvesView`` draws a ``ProbeCurves`` (``lstmviz.analysis.probe_report.probe_curves``): x is the
training step of each checkpoint (or the checkpoints in order, named on the axis, when steps are
unknown), y the held-out accuracy (0–100 %). Each tap is a solid line coloured by its layer (taps of
one layer differ by their marker) with its 95 % interval as a band; its control probe is a dashed
line of the same colour; the majority-class baseline is a grey dashed line. The legend sits above
the plot. Only offered for recordings of several checkpoints; the view computes nothing.
"""

from __future__ import annotations

import html

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from lstmviz.qt.palette import AXIS, CATEGORICAL
from lstmviz.qt.probe_chart import MAJORITY_COLOR, AccuracyPlot, _pen

SYMBOLS = ("o", "s", "t", "d", "x", "star", "t1", "p")
SYMBOL_HTML = {"o": "&#9679;", "s": "&#9632;", "t": "&#9660;", "d": "&#9670;", "x": "&#10005;",
               "star": "&#9733;", "t1": "&#9650;", "p": "&#11039;"}
NO_LAYER = (90, 90, 90)
EMPTY_TEXT = "Probe curves appear here for a recording of several checkpoints of one training run."


def layer_colors(layers: dict) -> dict:
    """One colour per layer (the qualitative palette, in layer order); taps without a layer are grey."""
    known = sorted({v for v in layers.values() if v is not None and v >= 0})
    return {layer: CATEGORICAL[i % len(CATEGORICAL)] for i, layer in enumerate(known)}


class ProbeCurvesView(AccuracyPlot):
    """Accuracy per tap against training step (see the module docstring)."""

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.curves = None
        self.plot.showGrid(x=True, y=True, alpha=0.15)
        self._items: list = []
        self._series: dict[str, dict] = {}
        self.set_curves(None)

    def set_curves(self, curves, message: str = "") -> None:
        """Draw ``curves`` (a ProbeCurves), or ``message`` when None."""
        self.curves = curves
        for item in self._items:
            self.plot.removeItem(item)
        self._items = []
        self._series = {}
        plot = self.plot
        if curves is None or not curves.reports:
            self.legend_label.setText("")
            text = pg.TextItem(message or EMPTY_TEXT, color=AXIS, anchor=(0.5, 0.5))
            text.setPos(0.5, 0.5)
            self._add(text)
            plot.getAxis("bottom").setTicks(None)
            plot.setLabel("bottom", "")
            plot.setXRange(0, 1, padding=0)
            plot.setYRange(0, 1.02, padding=0)
            return
        x = curves.x()
        stepped = bool(curves.steps) and all(s is not None for s in curves.steps)
        bottom = plot.getAxis("bottom")
        if stepped:
            bottom.setTicks(None)
            plot.setLabel("bottom", "training step")
        else:
            bottom.setTicks([[(float(i), name) for i, name in enumerate(curves.checkpoints)]])
            plot.setLabel("bottom", "checkpoint (in training order)")
        layers = dict(curves.reports[-1].layers) if curves.reports else {}
        colors = layer_colors(layers)
        seen_in_layer: dict = {}
        legend = []
        for tap in curves.taps:
            layer = layers.get(tap)
            color = colors.get(layer, NO_LAYER)
            k = seen_in_layer.get(layer, 0)
            seen_in_layer[layer] = k + 1
            symbol = SYMBOLS[k % len(SYMBOLS)]
            acc = curves.accuracy(tap)
            lo, hi = curves.interval(tap)
            control = curves.control_accuracy(tap)
            if np.isfinite(lo).all() and np.isfinite(hi).all():
                band = pg.FillBetweenItem(pg.PlotCurveItem(x, lo, pen=pg.mkPen(None)),
                                          pg.PlotCurveItem(x, hi, pen=pg.mkPen(None)),
                                          brush=pg.mkBrush(*color, 45))
                band.setZValue(-5)
                self._add(band)
            self._add(pg.PlotDataItem(x, acc, pen=_pen(color, 2.0), symbol=symbol, symbolSize=7,
                                      symbolBrush=pg.mkBrush(*color), symbolPen=_pen(color)))
            if np.isfinite(control).any():
                self._add(pg.PlotDataItem(x, control, pen=_pen(color, 1.2, QtCore.Qt.PenStyle.DashLine),
                                          connect="finite"))
            self._series[tap] = {"x": x, "accuracy": acc, "ci_low": lo, "ci_high": hi, "control": control,
                                 "color": color, "symbol": symbol, "layer": layer}
            where = "" if layer is None or layer < 0 else f"&nbsp;(layer&nbsp;{layer})"
            legend.append(f"<span style='color:rgb{tuple(color)}'>{SYMBOL_HTML.get(symbol, '&#9679;')}"
                          f"&#9472;</span>&nbsp;{html.escape(tap)}{where}")
        majority = curves.majority_accuracy()
        if np.isfinite(majority).any():
            self._add(pg.PlotDataItem(x, majority, pen=_pen(MAJORITY_COLOR, 1.5, QtCore.Qt.PenStyle.DotLine),
                                      connect="finite"))
            legend.append(f"<span style='color:rgb{MAJORITY_COLOR}'>&#9476;&#9476;</span>"
                          "&nbsp;majority&nbsp;class")
        legend.append("shaded:&nbsp;95%&nbsp;CI, dashed:&nbsp;control&nbsp;task")
        self.legend_label.setText("&nbsp;&nbsp; ".join(legend))
        span = float(x[-1] - x[0]) if len(x) > 1 else 1.0
        pad = 0.04 * span if span > 0 else 0.5
        plot.setXRange(float(x[0]) - pad, float(x[-1]) + pad, padding=0)
        plot.setYRange(-0.004, 1.02, padding=0)

    def series(self, tap: str) -> dict:
        """What is drawn for ``tap``: x, accuracy, ci_low, ci_high, control, color, symbol, layer."""
        return dict(self._series[tap])

    def _add(self, item):
        self.plot.addItem(item)
        self._items.append(item)
        return item


def has_curves(recording) -> bool:
    """Whether a recording holds several checkpoints (so that curves over training can be drawn)."""
    return recording is not None and len(getattr(recording, "checkpoints", None) or []) >= 2


def describe_x(curves) -> str:
    if curves is None:
        return ""
    if curves.steps and all(s is not None for s in curves.steps):
        return f"steps {curves.steps[0]:,}–{curves.steps[-1]:,}"
    return f"{len(curves.checkpoints)} checkpoints"

