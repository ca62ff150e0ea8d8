"""The probe chart: held-out accuracy of a linear probe per tap, taps ordered by layer (Alain & Bengio).

``ProbeChart`` draws one ``ProbeReport`` (``lstmviz.analysis.probe_report``):

- x: the report's taps in its order (by layer, then declaration), tick labels = tap names (staggered
  on two or three rows when they would overlap, elided when even that is not enough); alternate layers are
  shaded so the layer groups stand out;
- y: held-out accuracy, 0–100 %;
- per tap a bar for the probe and, beside it, a bar for its control probe (Hewitt & Liang), each with
  its 95 % bootstrap interval as an error bar; above them the selectivity (accuracy − control accuracy,
  in percentage points);
- dashed lines across: the majority-class baseline and the input-token baseline (each with its interval as
  a band).

The legend sits above the plot, never over the data. Clicking a tap (its bars, its column or its
label) emits ``tap_clicked(tap)``; the current tap is shaded. The chart computes nothing.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from lstmviz.qt.palette import AXIS, BACKGROUND, FOREGROUND

PROBE_COLOR = (31, 119, 180)
CONTROL_COLOR = (255, 160, 80)
MAJORITY_COLOR = (110, 110, 110)
INPUT_COLOR = (44, 160, 44)
CURRENT_FILL = (255, 246, 210)
LAYER_FILL = (242, 242, 242)
BAR_WIDTH = 0.34
BAND_HEIGHT = 3.0  # shaded columns reach past the top of the view (the view clips them)
LABEL_ROOM_PX = 20
"""Pixels kept above 100 % for the selectivity numbers: the y range ends at 1 + this much."""
EMPTY_TEXT = "Choose a label and press Run to fit a probe on every tap."


def percent(x: float, digits: int = 1) -> str:
    return "–" if x is None or not math.isfinite(x) else f"{100 * x:.{digits}f}%"


def points(x: float) -> str:
    """Selectivity in percentage points, signed."""
    if x is None or not math.isfinite(x):
        return ""
    value = round(100 * x)
    return "0" if value == 0 else f"{value:+d}".replace("-", "−")


class PercentAxis(pg.AxisItem):
    """A value axis over fractions, labelled in percent."""

    def tickStrings(self, values, scale, spacing):
        return [f"{100 * v:.0f}%" if -1e-9 <= v <= 1 + 1e-9 else "" for v in values]


class TapAxis(pg.AxisItem):
    """A bottom axis whose labels (tap names) never overlap: on one row when they fit, else staggered
    on two or three rows, elided when even three rows are too narrow (the full name is in the detail
    and the tooltip). Two rows elided the twelve taps of a 2-layer LSTM at the default window to
    "layer…tes/i", the same text for both layers."""

    #: rows the labels may be staggered on before they are elided
    MAX_ROWS = 3

    PAD = 8
    #: how far labels may reach past the ends of the axis (pyqtgraph's bounding rect allows 15 px)
    OVERHANG = 14

    def __init__(self, *args, **kwargs):
        super().__init__(*args, orientation="bottom", **kwargs)
        # labels may reach OVERHANG px past the axis ends: its bounding rect then covers them
        self.setStyle(hideOverlappingLabels=False)
        self.rows = 1
        self._base_height = None
        #: the label texts of the last paint, in tap order (for tests)
        self.drawn_labels: list[str] = []

    def generateDrawSpecs(self, p):
        specs = super().generateDrawSpecs(p)
        if specs is None:
            return specs
        axis_spec, tick_specs, _ = specs
        ticks = self._tickLevels[0] if self._tickLevels else []
        # pyqtgraph drops a label that pokes out of the axis (the first and last often do); lay them
        # out here instead: every tap keeps its label. One tick line per tap, in order.
        if not ticks or len(tick_specs) != len(ticks):
            return self._set_rows(1, specs)
        metrics = QtGui.QFontMetricsF(p.font())
        bounds = self.mapRectFromParent(self.geometry())
        top = bounds.top() + max(0, self.style["tickLength"]) + self.style["tickTextOffset"][1]
        height = metrics.height()
        centers = [spec[1].x() for spec in tick_specs]
        texts = [str(label) for _, label in ticks]
        widths = [metrics.horizontalAdvance(t) + 2 for t in texts]
        spacing = min((b - a for a, b in itertools.pairwise(centers)), default=bounds.width())
        rows = next((r for r in range(1, self.MAX_ROWS) if max(widths) + self.PAD <= r * spacing), self.MAX_ROWS)
        flags = QtCore.Qt.AlignmentFlag.AlignHCenter | QtCore.Qt.AlignmentFlag.AlignTop
        room = rows * spacing - self.PAD  # between same-row neighbours
        lo, hi = bounds.left() - self.OVERHANG, bounds.right() + self.OVERHANG

        def elide(text, width):
            text = metrics.elidedText(text, QtCore.Qt.TextElideMode.ElideMiddle, max(width, 1.0))
            return text, metrics.horizontalAdvance(text) + 2

        for i in range(len(texts)):
            if widths[i] > room:
                texts[i], widths[i] = elide(texts[i], room)
        lefts = [x - w / 2 for x, w in zip(centers, widths)]
        n = len(texts)
        # the first and last labels may reach past their column to the edge of the axis, up to their
        # same-row neighbour
        for i, neighbour, inward in ((0, rows, 1), (n - 1, n - 1 - rows, -1)):
            if not 0 <= neighbour < n or neighbour == i:
                neighbour = None
            if inward > 0:
                limit = lefts[neighbour] - self.PAD if neighbour is not None else hi
                if widths[i] > limit - lo:
                    texts[i], widths[i] = elide(texts[i], limit - lo)
                lefts[i] = min(max(lefts[i], lo), limit - widths[i])
            else:
                limit = lefts[neighbour] + widths[neighbour] + self.PAD if neighbour is not None else lo
                if widths[i] > hi - limit:
                    texts[i], widths[i] = elide(texts[i], hi - limit)
                lefts[i] = max(min(lefts[i], hi - widths[i]), limit)
        out = []
        for i, (left, text, w) in enumerate(zip(lefts, texts, widths)):
            y = top + (i % rows) * (height + 1)
            out.append((QtCore.QRectF(left, y, w, height), flags, text))
        self.drawn_labels = list(texts)
        return self._set_rows(rows, (axis_spec, tick_specs, out))

    def _set_rows(self, rows: int, specs):
        if rows != self.rows:
            self.rows = rows
            # the height changes after this paint (the layout then repaints the axis)
            QtCore.QTimer.singleShot(0, self, self._apply_height)
        return specs

    def _apply_height(self):
        if self._base_height is None:
            self._base_height = self.height()
        metrics = QtGui.QFontMetricsF(self.font() if self.style.get("tickFont") is None else self.style["tickFont"])
        self.setHeight(self._base_height + (self.rows - 1) * (metrics.height() + 4))


def _pen(color, width=1.0, style=QtCore.Qt.PenStyle.SolidLine):
    pen = pg.mkPen(color=color, width=width)
    pen.setStyle(style)
    pen.setCosmetic(True)
    return pen


class LegendOverPlots(QtWidgets.QWidget):
    """A rich-text legend line (``legend_label``) over a static pyqtgraph layout (``view``) on the
    window's background; exports render both. Subclasses add their plots to ``view``."""

    def __init__(self, parent: QtWidgets.QWidget | None = None, minimum: tuple[int, int] = (320, 150)):
        super().__init__(parent)
        self.setMinimumSize(*minimum)
        self.legend_label = QtWidgets.QLabel()
        self.legend_label.setTextFormat(QtCore.Qt.TextFormat.RichText)
        self.legend_label.setWordWrap(True)
        self.legend_label.setContentsMargins(8, 2, 8, 0)
        self.view = pg.GraphicsLayoutWidget(border=None)
        self.view.setBackground(BACKGROUND)
        self.view.ci.layout.setContentsMargins(4, 6, 12, 4)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.legend_label)
        layout.addWidget(self.view, 1)
        self.setAutoFillBackground(True)
        palette = self.palette()
        palette.setColor(QtGui.QPalette.ColorRole.Window, QtGui.QColor(*BACKGROUND))
        self.setPalette(palette)

    def legend_text(self) -> str:
        """The legend as plain text."""
        text = QtGui.QTextDocumentFragment.fromHtml(self.legend_label.text()).toPlainText()
        return text.replace("\xa0", " ").replace("\u2060", "")


class AccuracyPlot(LegendOverPlots):
    """A rich-text legend line (``legend_label``) over a static pyqtgraph plot (``view``, ``plot``)
    of held-out accuracy, 0–100% on the left axis; exports render both."""

    def __init__(self, parent: QtWidgets.QWidget | None = None, bottom_axis: pg.AxisItem | None = None):
        super().__init__(parent)
        self.value_axis = PercentAxis(orientation="left", pen=_pen(AXIS), textPen=_pen(FOREGROUND))
        axes = {"left": self.value_axis} if bottom_axis is None else {"left": self.value_axis,
                                                                      "bottom": bottom_axis}
        self.plot = pg.PlotItem(axisItems=axes)
        self.view.addItem(self.plot, row=0, col=0)
        self.plot.getAxis("bottom").setPen(_pen(AXIS))
        self.plot.getAxis("bottom").setTextPen(_pen(FOREGROUND))
        self.plot.setMenuEnabled(False)
        self.plot.hideButtons()
        self.plot.setMouseEnabled(x=False, y=False)
        self.plot.setLabel("left", "held-out accuracy")
        self.value_axis.setWidth(52)
        self.value_axis.setTicks([[(v, f"{100 * v:.0f}%") for v in np.arange(0, 1.01, 0.2)],
                                  [(v, "") for v in np.arange(0.1, 1.0, 0.2)]])


class ProbeChart(AccuracyPlot):
    """Accuracy per tap of one ``ProbeReport`` (see the module docstring): a legend line over a
    pyqtgraph plot (``view``); exports render both."""

    #: a tap was clicked (its name)
    tap_clicked = QtCore.Signal(str)

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        tap_axis = TapAxis(pen=_pen(AXIS), textPen=_pen(FOREGROUND))
        super().__init__(parent, bottom_axis=tap_axis)
        self.tap_axis = tap_axis
        self.report = None
        self.current: str | None = None
        self.plot.showGrid(x=False, y=True, alpha=0.15)
        self.plot.setLabel("bottom", "tap, ordered by layer (alternate layers shaded)")
        self.plot.vb.setDefaultPadding(0)
        self._message = pg.TextItem(EMPTY_TEXT, color=AXIS, anchor=(0.5, 0.5))
        self.view.scene().sigMouseClicked.connect(self._clicked)
        self.plot.vb.sigResized.connect(lambda *_: self._fit_y())
        self._items: list = []
        self._current_item = None
        self._entries: list[dict] = []
        self._offset = 0.0  # of the probe bar from its tap's x (the control bar is on the other side)
        self.set_report(None)

    # ------------------------------------------------------------------ data
    def set_report(self, report, message: str = "") -> None:
        """Draw ``report`` (a ProbeReport), or ``message`` (default: how to start) when it is None."""
        self.report = report
        if report is None or self.current not in report.taps:
            self.current = None
        self._redraw(message)

    def set_current(self, tap: str | None) -> None:
        """Shade ``tap``'s column (the probe open in the detail)."""
        if tap is not None and (self.report is None or tap not in self.report.taps):
            raise KeyError(f"no tap {tap!r} in the chart")
        self.current = tap
        self._draw_current()

    def entries(self) -> list[dict]:
        """What the chart shows, one dict per tap in x order: tap, x, layer, accuracy, ci_low, ci_high,
        control_accuracy, control_ci_low, control_ci_high, selectivity."""
        return [dict(e) for e in self._entries]

    def tap_x(self, tap: str) -> float:
        return float(self.report.taps.index(tap))

    def tap_point(self, tap: str) -> QtCore.QPoint:
        """The viewport pixel over the middle of ``tap``'s probe bar (for clicks in tests and demos)."""
        e = next(e for e in self._entries if e["tap"] == tap)
        scene = self.plot.vb.mapViewToScene(QtCore.QPointF(e["x"] - self._offset, max(0.05, e["accuracy"] / 2)))
        return self.view.mapFromScene(scene)

    # ------------------------------------------------------------------ drawing
    def _clear(self) -> None:
        for item in self._items:
            self.plot.removeItem(item)
        self._items = []
        if self._current_item is not None:
            self.plot.removeItem(self._current_item)
            self._current_item = None
        self.legend_label.setText("")
        self._entries = []

    def _add(self, item):
        self.plot.addItem(item)
        self._items.append(item)
        return item

    def _band(self, xs, interval, color) -> None:
        """A translucent horizontal band over ``interval`` (low, high), behind the bars."""
        low, high = interval
        if not (math.isfinite(low) and math.isfinite(high)):
            return
        band = pg.FillBetweenItem(pg.PlotCurveItem(xs, [low] * 2, pen=pg.mkPen(None)),
                                  pg.PlotCurveItem(xs, [high] * 2, pen=pg.mkPen(None)),
                                  brush=pg.mkBrush(*color, 40))
        band.setZValue(-5)
        self._add(band)

    def _redraw(self, message: str = "") -> None:
        self._clear()
        report = self.report
        plot = self.plot
        if report is None or not report.taps:
            plot.setXRange(-0.5, 0.5, padding=0)
            self._fit_y()
            self.tap_axis.setTicks([[]])
            self._message.setText(message or EMPTY_TEXT)
            self._message.setPos(0, 0.5)
            self._add(self._message)
            return
        taps = list(report.taps)
        n = len(taps)
        x = np.arange(n, dtype=float)
        self._entries = [self._entry(report, tap, i) for i, tap in enumerate(taps)]
        self._draw_layer_bands(report, taps)

        acc = np.array([e["accuracy"] for e in self._entries])
        lo = np.array([e["ci_low"] for e in self._entries])
        hi = np.array([e["ci_high"] for e in self._entries])
        has_control = any(math.isfinite(e["control_accuracy"]) for e in self._entries)
        offset = self._offset = BAR_WIDTH / 2 if has_control else 0.0
        bars = pg.BarGraphItem(x=x - offset, height=acc, width=BAR_WIDTH, brush=pg.mkBrush(*PROBE_COLOR),
                               pen=_pen(tuple(int(c * 0.7) for c in PROBE_COLOR)))
        self._add(bars)
        legend = [_swatch(PROBE_COLOR, "probe ± 95% CI")]
        self._add(pg.ErrorBarItem(x=x - offset, y=acc, top=_nonneg(hi - acc), bottom=_nonneg(acc - lo),
                                  beam=BAR_WIDTH * 0.4, pen=_pen(FOREGROUND, 1.5)))
        top = hi.copy()
        if has_control:
            cacc = np.array([e["control_accuracy"] for e in self._entries])
            clo = np.array([e["control_ci_low"] for e in self._entries])
            chi = np.array([e["control_ci_high"] for e in self._entries])
            cbars = pg.BarGraphItem(x=x + offset, height=np.nan_to_num(cacc), width=BAR_WIDTH,
                                    brush=pg.mkBrush(*CONTROL_COLOR),
                                    pen=_pen(tuple(int(c * 0.75) for c in CONTROL_COLOR)))
            self._add(cbars)
            legend.append(_swatch(CONTROL_COLOR, "control task (Hewitt &amp; Liang) ± 95% CI"))
            self._add(pg.ErrorBarItem(x=x + offset, y=np.nan_to_num(cacc), top=_nonneg(chi - cacc),
                                      bottom=_nonneg(cacc - clo), beam=BAR_WIDTH * 0.4,
                                      pen=_pen(FOREGROUND, 1.5)))
            top = np.fmax(top, chi)
        xs = [-0.5, n - 0.5]
        majority = report.majority_accuracy
        mixed = getattr(report, "mixed_rows", lambda: False)()
        if mixed:  # rows of different kinds (pixels, cells, images): a majority segment per tap
            for i, tap in enumerate(taps):
                p = report.probes[tap]
                seg = [i - 0.5, i + 0.5]
                self._band(seg, (p.majority_ci_low, p.majority_ci_high), MAJORITY_COLOR)
                self._add(pg.PlotDataItem(seg, [p.majority_accuracy] * 2,
                                          pen=_pen(MAJORITY_COLOR, 1.5, QtCore.Qt.PenStyle.DashLine)))
            legend.append(_dash(MAJORITY_COLOR, "majority class of each tap's rows (band: 95% CI)"))
        elif majority is not None and math.isfinite(majority):
            self._band(xs, report.majority_interval, MAJORITY_COLOR)
            self._add(pg.PlotDataItem(xs, [majority, majority],
                                      pen=_pen(MAJORITY_COLOR, 1.5, QtCore.Qt.PenStyle.DashLine)))
            legend.append(_dash(MAJORITY_COLOR, f"majority class {percent(majority)} (band: 95% CI)"))
        base = report.baseline
        if base is not None and math.isfinite(base.accuracy):
            self._band(xs, (base.ci_low, base.ci_high), INPUT_COLOR)
            self._add(pg.PlotDataItem(xs, [base.accuracy] * 2,
                                      pen=_pen(INPUT_COLOR, 1.5, QtCore.Qt.PenStyle.DashLine)))
            legend.append(_dash(INPUT_COLOR, f"input tokens {percent(base.accuracy)} (band: 95% CI)"))
        if has_control:
            for e, t in zip(self._entries, top):
                if not math.isfinite(e["selectivity"]):
                    continue
                label = pg.TextItem(points(e["selectivity"]), color=FOREGROUND, anchor=(0.5, 1.0))
                font = label.textItem.font()
                font.setPointSizeF(max(6.5, font.pointSizeF() * 0.85))
                label.setFont(font)
                label.setPos(e["x"], (t if math.isfinite(t) else e["accuracy"]) + 0.01)
                self._add(label)
            legend.append("<b>+n</b>:&nbsp;" + _nowrap("selectivity = probe − control, in points"))
        self.legend_label.setText("&nbsp;&nbsp; ".join(legend))
        short = getattr(report, "short_rows", lambda t: "")
        self.tap_axis.setTicks([[(float(i), f"{tap} ({short(tap)})" if short(tap) else tap)
                                 for i, tap in enumerate(taps)]])
        plot.setXRange(-0.5, n - 0.5, padding=0)
        self._fit_y()
        self._draw_current()

    def y_top(self) -> float:
        """The top of the y range: 100 % plus ``LABEL_ROOM_PX`` for the selectivity numbers."""
        height = self.plot.vb.height()
        if height <= 3 * LABEL_ROOM_PX:
            return 1.12
        return max(1.06, 1.0 / (1.0 - LABEL_ROOM_PX / height))

    def _fit_y(self) -> None:
        self.plot.setYRange(-0.004, self.y_top(), padding=0)

    def _draw_layer_bands(self, report, taps) -> None:
        layers = [report.layers.get(t) for t in taps]
        distinct = list(dict.fromkeys(layers))
        for i, layer in enumerate(layers):
            if distinct.index(layer) % 2 == 1:
                band = pg.BarGraphItem(x=[float(i)], height=[BAND_HEIGHT], width=1.0, brush=pg.mkBrush(*LAYER_FILL),
                                       pen=pg.mkPen(None))
                band.setZValue(-20)
                self._add(band)

    def _draw_current(self) -> None:
        if self._current_item is not None:
            self.plot.removeItem(self._current_item)
            self._current_item = None
        if self.current is None or self.report is None:
            return
        i = self.report.taps.index(self.current)
        item = pg.BarGraphItem(x=[float(i)], height=[BAND_HEIGHT], width=0.96, brush=pg.mkBrush(*CURRENT_FILL),
                               pen=_pen((210, 170, 60)))
        item.setZValue(-10)
        self.plot.addItem(item)
        self._current_item = item

    @staticmethod
    def _entry(report, tap: str, i: int) -> dict:
        probe = report.probes[tap]
        control = report.controls.get(tap)
        nan = math.nan
        return {
            "tap": tap, "x": float(i), "layer": report.layers.get(tap),
            "accuracy": float(probe.accuracy), "ci_low": float(probe.ci_low), "ci_high": float(probe.ci_high),
            "control_accuracy": float(control.accuracy) if control else nan,
            "control_ci_low": float(control.ci_low) if control else nan,
            "control_ci_high": float(control.ci_high) if control else nan,
            "selectivity": float(probe.accuracy - control.accuracy) if control else nan,
        }

    # ------------------------------------------------------------------ clicks
    def tap_at(self, scene_pos: QtCore.QPointF) -> str | None:
        """The tap whose column (plot area or tick label) holds ``scene_pos``, else None."""
        if self.report is None or not self.report.taps:
            return None
        vb_rect = self.plot.vb.sceneBoundingRect()
        axis_rect = self.tap_axis.sceneBoundingRect()
        if not (vb_rect.contains(scene_pos) or axis_rect.contains(scene_pos)):
            return None
        x = self.plot.vb.mapSceneToView(scene_pos).x()
        i = round(x)
        if 0 <= i < len(self.report.taps) and abs(x - i) <= 0.5:
            return self.report.taps[i]
        return None

    def _clicked(self, event) -> None:
        if event.button() != QtCore.Qt.MouseButton.LeftButton:
            return
        tap = self.tap_at(event.scenePos())
        if tap is not None:
            event.accept()
            self.set_current(tap)
            self.tap_clicked.emit(tap)


def _nowrap(text: str) -> str:
    return text.replace(" ", "&nbsp;")


def _swatch(color, text: str) -> str:
    return f"<span style='color:rgb{tuple(color)}; font-size:13pt'>&#9632;</span>&nbsp;{_nowrap(text)}"


def _dash(color, text: str) -> str:
    return f"<span style='color:rgb{tuple(color)}'>&#9476;&#9476;</span>&nbsp;{_nowrap(text)}"


def _nonneg(a):
    return np.clip(np.nan_to_num(np.asarray(a, dtype=float)), 0.0, None)
