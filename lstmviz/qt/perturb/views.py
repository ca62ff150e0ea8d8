"""The Perturb panel's views: they draw one result of ``lstmviz.perturb`` and compute nothing.

- ``EffectView``: for one ``Effect`` (edited against clean on one item), over the item's positions with
  the item's tokens on the same ``TokenAxis`` as the panes: Δloss per position (``dnll[t] = nll_edited[t]
  − nll_clean[t]``, nats, the loss of predicting token t+1) and ``KL(p_clean ‖ p_edited)`` of the
  next-token distribution; ‖Δ‖ per position for each tap (one line per tap, the "norm of Δ per layer");
  the Δ heatmap of one tap, ``[units × positions]`` of ``edited − clean``, on a diverging colour map
  centred at 0 (levels ±max|Δ|). The edited positions are shaded in every plot; the hovered position is
  marked (``set_hover``) and reported when the pointer moves over a plot (``position_hovered``).
- ``TopKTable``: the k most likely next tokens before and after the edit at one position.
- ``SweepView``: mean Δloss, max Δloss and mean KL against alpha (a ``Sweep``).
- ``AttackView`` (an input-side attack: ‖r‖ per position and the hidden Δ it causes) and ``PruningView``
  (predicted against measured Δloss per pruning method).
- ``BatchView``: the distribution of the effect over items (histogram of mean Δloss per item or match)
  and the items ranked by |mean Δloss|; double-clicking a row emits ``row_activated(item, start, stop)``.
"""

from __future__ import annotations

import math

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from lstmviz.qt.palette import AXIS, BACKGROUND, CATEGORICAL, FOREGROUND, HOVER_LINE, ZERO_LINE
from lstmviz.qt.token_axis import TokenAxis
from lstmviz.qt.token_text import display_token
from lstmviz.qt.widget_export import FullRowsOnVectorExport

DNLL_COLOR = (31, 119, 180)
KL_COLOR = (255, 127, 14)
EDITED_FILL = (255, 220, 120, 70)
#: the diverging colour map of the Δ heatmap (blue < 0 < red, white at 0)
DELTA_MAP = "CET-D1"
EMPTY_TEXT = "Choose a target and an action, then press Run."


def _plot(parent_layout: pg.GraphicsLayout, row: int, title: str, tokens: bool) -> tuple[pg.PlotItem, TokenAxis | None]:
    axis = TokenAxis(point_size=8.0) if tokens else None
    plot = parent_layout.addPlot(row=row, col=0, axisItems={"bottom": axis} if axis is not None else None)
    plot.setMenuEnabled(False)
    plot.hideButtons()
    plot.setMouseEnabled(x=False, y=False)
    plot.getAxis("left").setWidth(58)
    plot.getAxis("left").enableAutoSIPrefix(False)
    plot.getAxis("left").setPen(pg.mkPen(AXIS))
    plot.getAxis("left").setTextPen(pg.mkPen(FOREGROUND))
    plot.setLabel("left", title, color="#%02x%02x%02x" % FOREGROUND)
    if axis is None:
        plot.getAxis("bottom").setStyle(showValues=False)
        plot.getAxis("bottom").setHeight(6)
    return plot, axis


class EffectView(pg.GraphicsLayoutWidget):
    """Δloss and KL per position, ‖Δ‖ per tap, and one tap's Δ heatmap, over one item's tokens."""

    #: the pointer moved over a plot: the item-local position (or -1 when it left the data)
    position_hovered = QtCore.Signal(int)

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.setBackground(BACKGROUND)
        self.setMinimumHeight(360)
        self.effect = None
        self.heatmap_tap: str | None = None
        self.hover: int | None = None
        lay = self.ci
        lay.setSpacing(2)
        self.loss_plot, self.loss_axis = _plot(lay, 0, "Δ loss / KL", tokens=True)
        self.loss_plot.addLegend(offset=(-4, 1), labelTextColor=FOREGROUND, brush=pg.mkBrush(255, 255, 255, 220),
                                 colCount=2, verSpacing=-6)
        self.dnll_curve = self.loss_plot.plot([], [], pen=pg.mkPen(DNLL_COLOR, width=1.6), name="Δ loss (nats)")
        self.kl_curve = self.loss_plot.plot([], [], pen=pg.mkPen(KL_COLOR, width=1.4), name="KL(clean ‖ edited)")
        self.loss_plot.addItem(pg.InfiniteLine(0, angle=0, pen=pg.mkPen(ZERO_LINE, style=QtCore.Qt.PenStyle.DashLine)))
        self.norm_plot, _ = _plot(lay, 1, "‖Δ‖ per tap", tokens=False)
        self.norm_plot.addLegend(offset=(-4, 1), labelTextColor=FOREGROUND, brush=pg.mkBrush(255, 255, 255, 220),
                                 colCount=6, verSpacing=-6)
        self.norm_curves: dict[str, pg.PlotDataItem] = {}
        self.heat_plot, self.heat_axis = _plot(lay, 2, "Δ units", tokens=True)
        self.image = pg.ImageItem(axisOrder="col-major")
        self.heat_plot.addItem(self.image)
        self.colormap = pg.colormap.get(DELTA_MAP)
        self.image.setColorMap(self.colormap)
        self.colorbar = pg.ColorBarItem(values=(-1, 1), colorMap=self.colormap, interactive=False, width=12)
        self.colorbar.setImageItem(self.image)
        lay.addItem(self.colorbar, row=2, col=1)  # its own column: every plot keeps the same width
        lay.layout.setRowStretchFactor(0, 3)
        lay.layout.setRowStretchFactor(1, 2)
        lay.layout.setRowStretchFactor(2, 4)
        for plot in (self.norm_plot, self.heat_plot):
            plot.setXLink(self.loss_plot)
        self.bands: list[pg.LinearRegionItem] = []
        self.hover_lines = []
        for plot in (self.loss_plot, self.norm_plot, self.heat_plot):
            line = pg.InfiniteLine(angle=90, pen=pg.mkPen(HOVER_LINE, width=1))
            line.setVisible(False)
            line.setZValue(20)
            plot.addItem(line, ignoreBounds=True)
            self.hover_lines.append(line)
        self.message = pg.TextItem(EMPTY_TEXT, color=FOREGROUND, anchor=(0.5, 0.5))
        self.loss_plot.addItem(self.message, ignoreBounds=True)
        self.message.setPos(0.5, 0.5)
        self.scene().sigMouseMoved.connect(self._mouse_moved)

    # ------------------------------------------------------------------ data
    def set_effect(self, effect, heatmap_tap: str | None = None, message: str = "") -> None:
        """Draw ``effect`` (an ``lstmviz.perturb.Effect``), or nothing (None) with ``message``."""
        self.effect = effect
        for band in self.bands:
            for plot in (self.loss_plot, self.norm_plot, self.heat_plot):
                if band.scene() is not None and band in plot.items:
                    plot.removeItem(band)
        self.bands = []
        for curve in self.norm_curves.values():
            self.norm_plot.removeItem(curve)
        self.norm_plot.legend.clear()
        self.norm_curves = {}
        if effect is None:
            self.dnll_curve.setData([], [])
            self.kl_curve.setData([], [])
            self.image.clear()
            for axis in (self.loss_axis, self.heat_axis):
                axis.set_tokens(0, [])
            self.message.setText(message or EMPTY_TEXT)
            self.message.setVisible(True)
            self.loss_plot.setXRange(0, 1, padding=0)
            self.loss_plot.setYRange(0, 1, padding=0)
            self.heatmap_tap = None
            return
        self.message.setVisible(False)
        T = len(effect.clean.tokens)
        x = np.arange(T, dtype=float)
        vocab = effect.vocab
        tokens = [vocab[int(t)] if vocab and int(t) < len(vocab) else str(int(t)) for t in effect.clean.tokens]
        for axis in (self.loss_axis, self.heat_axis):
            axis.set_tokens(0, tokens)
        dnll = np.asarray(effect.dnll, dtype=float)
        finite = np.isfinite(dnll)
        self.dnll_curve.setData(x[finite], dnll[finite])
        self.kl_curve.setData(x, np.asarray(effect.kl, dtype=float))
        for i, (tap, norm) in enumerate(effect.delta_norm.items()):
            color = CATEGORICAL[i % len(CATEGORICAL)]
            self.norm_curves[tap] = self.norm_plot.plot(x, np.asarray(norm, dtype=float), pen=pg.mkPen(color, width=1.3),
                                                        name=tap)
        for start, stop in _runs(effect.edited_positions()):
            for plot in (self.loss_plot, self.norm_plot, self.heat_plot):
                band = pg.LinearRegionItem((start - 0.5, stop - 0.5), movable=False, brush=pg.mkBrush(*EDITED_FILL),
                                           pen=pg.mkPen(None))
                band.setZValue(-10)
                plot.addItem(band, ignoreBounds=True)
                self.bands.append(band)
        self.set_x_range(0, T)
        self.show_heatmap(heatmap_tap)

    def set_x_range(self, start: int, stop: int) -> None:
        """Show item-local positions ``[start, stop)`` (the panes' window over the item)."""
        self.x_range = (int(start), int(stop))
        self.loss_plot.setXRange(start - 0.5, stop - 0.5, padding=0)
        effect = self.effect
        if effect is None:
            return
        shown = slice(max(0, int(start)), max(int(start) + 1, int(stop)))
        values = np.concatenate([np.asarray(effect.dnll, float)[shown], np.asarray(effect.kl, float)[shown]])
        values = values[np.isfinite(values)]
        low, high = (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)
        low, high = min(low, 0.0), max(high, 0.0)
        pad = max(1e-6, 0.08 * (high - low))
        self.loss_plot.setYRange(low - pad, high + (high - low) * 0.45 + pad, padding=0)  # room for the legend
        norms = [np.asarray(n, float)[shown] for n in effect.delta_norm.values()]
        top = max((float(np.nanmax(n)) for n in norms if n.size and np.isfinite(n).any()), default=1.0)
        self.norm_plot.setYRange(0.0, max(top, 1e-6) * 1.7, padding=0)  # the legend sits above the curves

    def taps(self) -> list[str]:
        return [] if self.effect is None else list(self.effect.delta)

    def show_heatmap(self, tap: str | None) -> None:
        """Draw the Δ of ``tap`` (None: the first tap of the effect)."""
        if self.effect is None or not self.effect.delta:
            self.heatmap_tap = None
            self.image.clear()
            return
        if tap not in self.effect.delta:
            tap = next(iter(self.effect.delta))
        self.heatmap_tap = tap
        delta = np.asarray(self.effect.delta[tap], dtype=np.float32)  # [T, U]: x = position, y = unit
        T, U = delta.shape
        m = float(np.nanmax(np.abs(delta))) if delta.size else 0.0
        m = m if math.isfinite(m) and m > 0 else 1e-6
        self.image.setImage(delta, levels=(-m, m), autoLevels=False)
        self.image.setRect(QtCore.QRectF(-0.5, -0.5, T, U))
        self.colorbar.setLevels((-m, m))
        self.heat_plot.setLabel("left", f"Δ {tap} (unit)", color="#%02x%02x%02x" % FOREGROUND)
        self.heat_plot.setYRange(-0.5, U - 0.5, padding=0)

    def heatmap_array(self) -> np.ndarray:
        """The drawn Δ as ``[units, positions]`` (for NPY export)."""
        if self.effect is None or self.heatmap_tap is None:
            raise ValueError("There is no Δ heatmap yet: press Run first.")
        return np.ascontiguousarray(np.asarray(self.effect.delta[self.heatmap_tap], dtype=np.float32).T)

    # ------------------------------------------------------------------ hover
    def set_hover(self, position: int | None) -> None:
        self.hover = position
        for line in self.hover_lines:
            line.setVisible(position is not None)
            if position is not None:
                line.setValue(position)

    def _mouse_moved(self, pos) -> None:
        if self.effect is None:
            return
        for plot in (self.loss_plot, self.norm_plot, self.heat_plot):
            if plot.sceneBoundingRect().contains(pos):
                x = plot.vb.mapSceneToView(pos).x()
                t = int(round(x))
                self.position_hovered.emit(t if 0 <= t < len(self.effect.clean.tokens) else -1)
                return


def _runs(positions) -> list[tuple[int, int]]:
    """Runs ``[start, stop)`` of consecutive positions."""
    out: list[list[int]] = []
    for p in sorted(int(q) for q in positions):
        if out and p == out[-1][1]:
            out[-1][1] = p + 1
        else:
            out.append([p, p + 1])
    return [(a, b) for a, b in out]


class _Table(FullRowsOnVectorExport, QtWidgets.QTableWidget):
    pass


class TopKTable(QtWidgets.QWidget):
    """The k most likely next tokens at one position, before and after the edit."""

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.title = QtWidgets.QLabel("Top next tokens: hover a position")
        self.title.setWordWrap(True)
        self.table = _Table(0, 4)
        self.table.setHorizontalHeaderLabels(["before", "p", "after", "p"])
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.NoSelection)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.Stretch)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.title)
        layout.addWidget(self.table, 1)
        self.setMinimumWidth(200)
        self.position: int | None = None

    def show_position(self, effect, position: int | None) -> None:
        """The top-k of ``effect`` at item-local ``position`` (None: empty)."""
        self.position = position
        if effect is None or position is None or not 0 <= position < len(effect.clean.tokens):
            self.table.setRowCount(0)
            self.title.setText("Top next tokens: hover a position")
            return
        vocab = effect.vocab

        def name(token_id) -> str:
            i = int(token_id)
            return display_token(vocab[i]) if vocab and i < len(vocab) else str(i)

        token = name(effect.clean.tokens[position])
        nxt = (f", next is {name(effect.clean.tokens[position + 1])!r}"
               if position + 1 < len(effect.clean.tokens) else "")
        self.title.setText(f"Top next tokens after position {position} ({token!r}{nxt}); "
                           f"Δ loss {effect.dnll[position]:+.3g}, KL {effect.kl[position]:.3g}"
                           if math.isfinite(float(effect.dnll[position])) else
                           f"Top next tokens after position {position} ({token!r}); KL {effect.kl[position]:.3g}")
        k = effect.topk_clean.shape[1]
        self.table.setRowCount(k)
        for r in range(k):
            cells = (name(effect.topk_clean[position, r]), f"{effect.topk_clean_p[position, r]:.3f}",
                     name(effect.topk_edited[position, r]), f"{effect.topk_edited_p[position, r]:.3f}")
            for c, text in enumerate(cells):
                item = QtWidgets.QTableWidgetItem(text)
                if c % 2:
                    item.setTextAlignment(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, c, item)

    def rows(self) -> list[tuple[str, str, str, str]]:
        return [tuple(self.table.item(r, c).text() for c in range(4)) for r in range(self.table.rowCount())]


class SweepView(pg.PlotWidget):
    """Mean and max Δloss and mean KL against alpha."""

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent, background=BACKGROUND)
        self.sweep = None
        plot = self.getPlotItem()
        plot.setMenuEnabled(False)
        plot.hideButtons()
        plot.setLabel("bottom", "alpha", color="#%02x%02x%02x" % FOREGROUND)
        plot.setLabel("left", "effect", color="#%02x%02x%02x" % FOREGROUND)
        plot.showGrid(x=True, y=True, alpha=0.15)
        plot.addLegend(offset=(6, 2), labelTextColor=FOREGROUND, brush=pg.mkBrush(255, 255, 255, 210))
        self.mean_curve = plot.plot([], [], pen=pg.mkPen(DNLL_COLOR, width=2), symbol="o", symbolSize=5,
                                    symbolBrush=DNLL_COLOR, name="mean Δ loss")
        self.max_curve = plot.plot([], [], pen=pg.mkPen(DNLL_COLOR, width=1, style=QtCore.Qt.PenStyle.DashLine),
                                   name="max Δ loss")
        self.kl_curve = plot.plot([], [], pen=pg.mkPen(KL_COLOR, width=2), symbol="t", symbolSize=5,
                                  symbolBrush=KL_COLOR, name="mean KL")
        plot.addItem(pg.InfiniteLine(0, angle=0, pen=pg.mkPen(ZERO_LINE, style=QtCore.Qt.PenStyle.DashLine)))
        self.message = pg.TextItem("Press Sweep alpha (action add) to see the effect against alpha.",
                                   color=FOREGROUND, anchor=(0.5, 0.5))
        plot.addItem(self.message, ignoreBounds=True)

    def set_sweep(self, sweep, message: str = "") -> None:
        self.sweep = sweep
        if sweep is None:
            for curve in (self.mean_curve, self.max_curve, self.kl_curve):
                curve.setData([], [])
            self.message.setText(message or "Press Sweep alpha (action add) to see the effect against alpha.")
            self.message.setVisible(True)
            self.message.setPos(0.5, 0.5)
            self.getPlotItem().setRange(xRange=(0, 1), yRange=(0, 1), padding=0)
            return
        self.message.setVisible(False)
        a = np.asarray(sweep.alphas, float)
        self.mean_curve.setData(a, np.asarray(sweep.mean_dnll, float))
        self.max_curve.setData(a, np.asarray(sweep.max_dnll, float))
        self.kl_curve.setData(a, np.asarray(sweep.mean_kl, float))
        self.getPlotItem().enableAutoRange()


class BatchView(QtWidgets.QWidget):
    """Histogram of the effect over items (or matches) and the rows that change most."""

    #: a row was double-clicked (or activated): item, item-local start, stop (-1, -1 for a whole item)
    row_activated = QtCore.Signal(int, int, int)

    COLUMNS = ("item", "match", "tokens", "mean Δ loss", "max Δ loss", "mean KL")

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.batch = None
        self.histogram = pg.PlotWidget(background=BACKGROUND)
        plot = self.histogram.getPlotItem()
        plot.setMenuEnabled(False)
        plot.hideButtons()
        plot.setLabel("bottom", "mean Δ loss per item (nats)", color="#%02x%02x%02x" % FOREGROUND)
        plot.setLabel("left", "items", color="#%02x%02x%02x" % FOREGROUND)
        self.bars = pg.PlotDataItem([], [], stepMode="center", fillLevel=0, brush=pg.mkBrush(*DNLL_COLOR, 150),
                                    pen=pg.mkPen(DNLL_COLOR))
        plot.addItem(self.bars)
        plot.addItem(pg.InfiniteLine(0, angle=90, pen=pg.mkPen(ZERO_LINE, style=QtCore.Qt.PenStyle.DashLine)))
        self.table = _Table(0, len(self.COLUMNS))
        self.table.setHorizontalHeaderLabels(list(self.COLUMNS))
        self.table.verticalHeader().setVisible(False)
        self.table.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self.table.horizontalHeader().setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        self.table.setToolTip("Items ranked by |mean Δ loss|, most changed first; double-click one to open it "
                              "in the select view")
        self.table.cellDoubleClicked.connect(self._activated)
        self.table.cellActivated.connect(self._activated)
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.histogram, 3)
        layout.addWidget(self.table, 2)
        self._rows: list[tuple[int, int, int]] = []

    def set_batch(self, batch, max_rows: int = 500) -> None:
        self.batch = batch
        self.table.setRowCount(0)
        self._rows = []
        if batch is None:
            self.bars.setData([], [])
            return
        values = np.asarray(batch.mean_dnll, float)
        finite = values[np.isfinite(values)]
        if finite.size:
            low, high = float(finite.min()), float(finite.max())
            if high - low < 1e-9:
                low, high = low - 0.5e-3, high + 0.5e-3
            counts, edges = np.histogram(finite, bins=min(40, max(5, int(np.sqrt(finite.size)) * 2)), range=(low, high))
            self.bars.setData(edges, counts)
        else:
            self.bars.setData([], [])
        self.histogram.getPlotItem().enableAutoRange()
        order = batch.ranking("mean_dnll")[:max_rows]
        self.table.setRowCount(len(order))
        for r, row in enumerate(order):
            item = int(batch.items[row])
            start = int(batch.starts[row]) if batch.starts is not None else -1
            stop = int(batch.stops[row]) if batch.stops is not None else -1
            self._rows.append((item, start, stop))
            tokens = int(batch.lengths[row]) if batch.lengths is not None else ""
            cells = (str(item), f"{start}..{stop - 1}" if start >= 0 else "whole item", str(tokens),
                     f"{batch.mean_dnll[row]:+.4g}", f"{batch.max_dnll[row]:+.4g}", f"{batch.mean_kl[row]:.4g}")
            for c, text in enumerate(cells):
                cell = QtWidgets.QTableWidgetItem(text)
                if c != 1:
                    cell.setTextAlignment(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)
                self.table.setItem(r, c, cell)

    def shown_rows(self) -> list[tuple[int, int, int]]:
        """(item, start, stop) of each table row, in order."""
        return list(self._rows)

    def _activated(self, row: int, _column: int = 0) -> None:
        if 0 <= row < len(self._rows):
            self.row_activated.emit(*self._rows[row])




class AttackView(pg.GraphicsLayoutWidget):
    """An input-side perturbation of one item (``lstmviz.perturb.adversarial.InputPerturbation``) next to
    the clean run: the size of the input perturbation per position (‖r_t‖₂ in embedding space; for a
    token substitution, the one substituted position) and the Δ of hidden states it causes (‖Δ‖ per
    tap), over the item's tokens (the perturbed tokens where a substitution changed them)."""

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.setBackground(BACKGROUND)
        self.setMinimumHeight(260)
        self.result = None
        lay = self.ci
        self.input_plot, self.input_axis = _plot(lay, 0, "‖r‖ input", tokens=True)
        self.input_bars = pg.BarGraphItem(x=[], height=[], width=0.8, brush=pg.mkBrush(*DNLL_COLOR, 180),
                                          pen=pg.mkPen(None))
        self.input_plot.addItem(self.input_bars)
        self.hidden_plot, self.hidden_axis = _plot(lay, 1, "‖Δ‖ hidden", tokens=True)
        self.hidden_plot.addLegend(offset=(-4, 1), labelTextColor=FOREGROUND, brush=pg.mkBrush(255, 255, 255, 220),
                                   colCount=6, verSpacing=-6)
        self.hidden_plot.setXLink(self.input_plot)
        self.hidden_curves: dict[str, pg.PlotDataItem] = {}
        self.position_lines = []
        for plot in (self.input_plot, self.hidden_plot):
            line = pg.InfiniteLine(angle=90, pen=pg.mkPen(HOVER_LINE, width=1.2))
            line.setVisible(False)
            plot.addItem(line, ignoreBounds=True)
            self.position_lines.append(line)

    def set_result(self, result, vocab=None) -> None:
        self.result = result
        for curve in self.hidden_curves.values():
            self.hidden_plot.removeItem(curve)
        self.hidden_plot.legend.clear()
        self.hidden_curves = {}
        if result is None:
            self.input_bars.setOpts(x=[], height=[])
            for axis in (self.input_axis, self.hidden_axis):
                axis.set_tokens(0, [])
            for line in self.position_lines:
                line.setVisible(False)
            return
        T = len(result.clean_tokens)
        tokens = [vocab[int(t)] if vocab and int(t) < len(vocab) else str(int(t)) for t in result.perturbed_tokens]
        for axis in (self.input_axis, self.hidden_axis):
            axis.set_tokens(0, tokens)
        x = np.arange(T, dtype=float)
        self.input_bars.setOpts(x=x, height=np.asarray(result.l2_per_position, float), width=0.8)
        for i, (tap, delta) in enumerate(result.hidden_delta.items()):
            norm = np.linalg.norm(np.asarray(delta, float), axis=1)
            color = CATEGORICAL[i % len(CATEGORICAL)]
            self.hidden_curves[tap] = self.hidden_plot.plot(x, norm, pen=pg.mkPen(color, width=1.3), name=tap)
        for line in self.position_lines:
            line.setValue(result.position)
            line.setVisible(True)
        lo = max(0, result.position - 60)
        self.input_plot.setXRange(lo - 0.5, min(T, lo + 100) - 0.5, padding=0)
        self.input_plot.enableAutoRange(axis="y")
        self.hidden_plot.enableAutoRange(axis="y")


class PruningView(pg.PlotWidget):
    """Predicted against measured Δloss when the lowest-ranked fraction of a tap's units is pruned, one
    colour per ranking (magnitude, first-order Taylor, OBD): measured solid with dots, each method's own
    prediction dashed (``PruningCurve.predicted``)."""

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent, background=BACKGROUND)
        self.curve = None
        plot = self.getPlotItem()
        plot.setMenuEnabled(False)
        plot.hideButtons()
        plot.setLabel("bottom", "fraction of units pruned", color="#%02x%02x%02x" % FOREGROUND)
        plot.setLabel("left", "Δ loss (nats)", color="#%02x%02x%02x" % FOREGROUND)
        plot.showGrid(x=True, y=True, alpha=0.15)
        plot.addLegend(offset=(6, 2), labelTextColor=FOREGROUND, brush=pg.mkBrush(255, 255, 255, 220))
        self.items: dict[str, tuple] = {}

    def set_curve(self, curve) -> None:
        plot = self.getPlotItem()
        for measured, predicted in self.items.values():
            plot.removeItem(measured)
            plot.removeItem(predicted)
        plot.legend.clear()
        self.items = {}
        self.curve = curve
        if curve is None:
            return
        f = np.asarray(curve.fractions, float)
        for i, method in enumerate(curve.methods):
            color = CATEGORICAL[i % len(CATEGORICAL)]
            measured = plot.plot(f, np.asarray(curve.measured[method], float), pen=pg.mkPen(color, width=2),
                                 symbol="o", symbolSize=6, symbolBrush=color, name=f"{method}: measured")
            predicted = plot.plot(f, np.asarray(curve.predicted[method], float),
                                  pen=pg.mkPen(color, width=1.4, style=QtCore.Qt.PenStyle.DashLine),
                                  name=f"{method}: predicted")
            self.items[method] = (measured, predicted)
        plot.enableAutoRange()
