"""Probe accuracy over training: one line per tap against the training step (Alain & Bengio's figures).

``ProbeCurvesView`` draws a ``ProbeCurves`` (``lstmviz.analysis.probe_report.probe_curves``): x is the
training step of each checkpoint (or the checkpoints in order, named on the axis, when steps are
unknown), y the held-out accuracy (0–100 %). Each tap is a solid line with its 95 % interval as a
band; its control probe is a dashed line of the same colour; the majority-class baseline is a grey
dotted line. Taps of several layers that record the same signals are coloured by signal (h, c, each
gate) and marked by layer, so the legend above the plot stays one or two lines (``curve_styles``);
other taps get a colour each. Legend entries never break inside a name. Only offered for recordings of several checkpoints; the view computes nothing.
"""

from __future__ import annotations


import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from lstmviz.qt.match.view import unbreakable
from lstmviz.qt.palette import AXIS, DISTINCT, FOREGROUND
from lstmviz.qt.probes.chart import MAJORITY_COLOR, AccuracyPlot, _pen

SYMBOLS = ("o", "s", "t", "d", "x", "star", "t1", "p")
SYMBOL_HTML = {"o": "&#9679;", "s": "&#9632;", "t": "&#9660;", "d": "&#9670;", "x": "&#10005;",
               "star": "&#9733;", "t1": "&#9650;", "p": "&#11039;"}
EMPTY_TEXT = "Probe curves appear here for a recording of several checkpoints of one training run."


def signal_of(tap: str, layer) -> str:
    """What a tap records, without its layer: ``layer1/gates/f`` -> ``gates/f`` (the tap itself when its
    name has no ``layer<N>`` part)."""
    if layer is None or layer < 0:
        return tap
    parts = [part for part in tap.split("/") if part != f"layer{layer}"]
    return "/".join(parts) if parts and len(parts) < len(tap.split("/")) else tap


def curve_styles(taps: list[str], layers: dict) -> tuple[dict, bool]:
    """(tap -> (colour, symbol)), and whether colours stand for signals (and markers for layers).

    Taps of several layers that record the same signals (h, c, the gates) get one colour per signal and
    one marker per layer, so that twelve curves need a six-colour and a two-marker legend; otherwise
    every tap gets its own colour (and its layer's marker)."""
    signals = {tap: signal_of(tap, layers.get(tap)) for tap in taps}
    distinct = list(dict.fromkeys(signals.values()))
    layer_order = sorted({layers.get(t) for t in taps}, key=lambda v: (v is None or v < 0, v if v is not None else 0))
    by_signal = len(distinct) < len(taps) and len(distinct) <= len(DISTINCT)
    styles = {}
    for i, tap in enumerate(taps):
        color = DISTINCT[(distinct.index(signals[tap]) if by_signal else i) % len(DISTINCT)]
        styles[tap] = (color, SYMBOLS[layer_order.index(layers.get(tap)) % len(SYMBOLS)])
    return styles, by_signal


def _entry(color, symbol: str | None, text: str, line: str = "&#9472;") -> str:
    mark = SYMBOL_HTML.get(symbol, "") if symbol else ""
    return f"<span style='color:rgb{tuple(color)}'>{mark}{line}</span>&nbsp;{unbreakable(text)}"


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
        styles, by_signal = curve_styles(list(curves.taps), layers)
        legend = []
        for tap in curves.taps:
            layer = layers.get(tap)
            color, symbol = styles[tap]
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
            if not by_signal:
                where = "" if layer is None or layer < 0 else f" (layer {layer})"
                legend.append(_entry(color, symbol, tap + where))
        if by_signal:
            seen = {}
            for tap in curves.taps:
                seen.setdefault(signal_of(tap, layers.get(tap)), styles[tap][0])
            legend = [_entry(color, None, signal, "&#9632;") for signal, color in seen.items()]
            marks = {}
            for tap in curves.taps:
                marks.setdefault(layers.get(tap), styles[tap][1])
            legend += [_entry(FOREGROUND, symbol, "no layer" if layer is None or layer < 0 else f"layer {layer}", "")
                       for layer, symbol in marks.items()]
        majority = curves.majority_accuracy()
        if np.isfinite(majority).any():
            self._add(pg.PlotDataItem(x, majority, pen=_pen(MAJORITY_COLOR, 1.5, QtCore.Qt.PenStyle.DotLine),
                                      connect="finite"))
            legend.append(_entry(MAJORITY_COLOR, None, "majority class", "&#9476;&#9476;"))
        legend.append(unbreakable("dashed: control task") + ",&nbsp; " + unbreakable("shaded: 95% CI"))
        head = "colour:&nbsp;signal, marker:&nbsp;layer &nbsp;|&nbsp; " if by_signal else ""
        self.legend_label.setText(head + " &nbsp; ".join(legend))
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

