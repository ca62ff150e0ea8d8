"""Which coloured line is which unit: unit numbers at the right end of the selected and highlighted
units' lines, and a small legend card that says what the colours mean (on screen and in exports).

``UnitLabels`` keeps a pool of ``TextItem``s in a pane plot. Each label sits at the line's last point in
the window, in the line's colour; labels that would overlap are pushed apart vertically, again whenever the plot's
size or value range changes (the pixels a label needs are known only once the plot is laid out). Beyond
``MAX_LABELLED`` units of a colour the numbers are left out (the legend says how many there are and
the Selection list names them).
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg

from lstmviz.qt.palette import AXIS, BACKGROUND, FOREGROUND

#: units of one colour labelled at most
MAX_LABELLED = 12
#: vertical room of one label, in pixels (labels closer than this are pushed apart): an 8 pt line and
#: the label's 1 px margin above and below, so that one label's background never covers the next
LABEL_HEIGHT_PX = 16
#: the margin around a label's text, in pixels (QTextDocument's default of 4 made labels 21 px tall)
LABEL_MARGIN_PX = 1


def _html(color, text: str, bold: bool = False) -> str:
    weight = "font-weight:bold;" if bold else ""
    return f"<span style='color:rgb{tuple(color)};{weight} font-size:8pt'>{text}</span>"


class UnitLabels:
    """Unit numbers at line ends and a legend card in one pane plot."""

    def __init__(self, plot: pg.PlotItem):
        self.plot = plot
        self.view_box = plot.getViewBox()
        self._pool: list[pg.TextItem] = []
        self.legend = pg.TextItem(anchor=(0, 0), color=FOREGROUND, fill=pg.mkBrush(*BACKGROUND, 215),
                                  border=pg.mkPen(AXIS))
        self.legend.setParentItem(self.view_box)
        self.legend.setPos(6, 4)
        self.legend.setZValue(35)
        self.legend.hide()
        self._has_legend = False
        #: what is labelled now: (unit, colour) in drawing order
        self.labelled: list[tuple[int, tuple]] = []
        self._entries: list[tuple[int, tuple, float, float]] = []
        self.view_box.sigResized.connect(self._replace)
        self.view_box.sigYRangeChanged.connect(self._replace)

    def set_units(self, start: int, values: np.ndarray, groups: list[tuple[tuple, str, list[int]]]) -> None:
        """Label the units of each group ``(colour, what, units)`` at the last point of their lines in
        ``values`` (``[positions, units]``, position 0 = ``start``); the legend names each group."""
        entries = []
        legend = []
        for color, what, units in groups:
            units = [u for u in units if 0 <= u < values.shape[1]]
            if not units:
                continue
            count = f"{len(units)} {what} unit{'s' if len(units) != 1 else ''}"
            if len(units) > MAX_LABELLED:
                legend.append(_html(color, "━━") + "&nbsp;" + _html(FOREGROUND, f"{count} (numbers in the "
                                                                                   "Selection list)"))
                continue
            legend.append(_html(color, "━━") + "&nbsp;" + _html(FOREGROUND, f"{count}, numbered at the right"))
            for unit in units:
                point = _last_point(start, values[:, unit])
                if point is not None:
                    entries.append((unit, color, *point))
        self._entries = entries
        self._place(entries)
        self._has_legend = bool(legend)
        if legend:
            self.legend.setHtml("<br>".join(legend))
        self.legend.setVisible(self._has_legend)

    def set_legend_visible(self, visible: bool) -> None:
        """Hide the legend card while something else (the hover read-out) takes its corner."""
        self.legend.setVisible(visible and self._has_legend)

    def _replace(self, *_) -> None:
        if self._entries:
            self._place(self._entries)

    def items(self) -> list[pg.TextItem]:
        """The label items shown, in drawing order (for tests)."""
        return self._pool[:len(self.labelled)]

    def _place(self, entries) -> None:
        while len(self._pool) < len(entries):
            item = pg.TextItem(anchor=(1, 0.5), fill=pg.mkBrush(*BACKGROUND, 170))
            item.textItem.document().setDocumentMargin(LABEL_MARGIN_PX)
            item.setZValue(32)
            self.plot.addItem(item, ignoreBounds=True)
            self._pool.append(item)
        ready = self.view_box.width() > 0 and self.view_box.height() > 0
        spacing = LABEL_HEIGHT_PX * abs(self.view_box.viewPixelSize()[1]) if ready else 0.0
        low, high = self.view_box.viewRange()[1]
        ys = _spread([y for *_, y in entries], spacing, (low + spacing / 2, high - spacing / 2))
        self.labelled = []
        for item, (unit, color, x, _), y in zip(self._pool, entries, ys):
            item.setHtml(_html(color, str(unit), bold=True))
            item.setPos(x, y)
            item.show()
            self.labelled.append((unit, color))
        for item in self._pool[len(entries):]:
            item.hide()

    def texts(self) -> list[str]:
        """The unit numbers shown, in drawing order (for tests)."""
        return [str(unit) for unit, _ in self.labelled]


def _last_point(start: int, line: np.ndarray) -> tuple[float, float] | None:
    finite = np.flatnonzero(np.isfinite(line))
    if finite.size == 0:
        return None
    i = int(finite[-1])
    return float(start + i), float(line[i])


def _spread(ys: list[float], spacing: float, bounds: tuple[float, float] | None = None) -> list[float]:
    """``ys`` moved apart (keeping their order) so that no two are closer than ``spacing``, and kept
    inside ``bounds`` (low, high); a stack taller than ``bounds`` is squeezed evenly into them."""
    if spacing <= 0 or not ys:
        return list(ys)
    order = np.argsort(ys, kind="stable")
    placed = np.asarray(ys, dtype=float)[order]
    if bounds is not None:
        placed = np.clip(placed, *bounds)
    for i in range(1, len(placed)):
        placed[i] = max(placed[i], placed[i - 1] + spacing)
    if bounds is not None and placed[-1] > bounds[1]:  # pushed past the top: stack down from there
        if (len(placed) - 1) * spacing > bounds[1] - bounds[0]:  # more than fit: squeezed, inside the plot
            spacing = (bounds[1] - bounds[0]) / (len(placed) - 1)
        placed[-1] = bounds[1]
        for i in range(len(placed) - 2, -1, -1):
            placed[i] = min(placed[i], placed[i + 1] - spacing)
    out = np.empty(len(ys))
    out[order] = placed
    return out.tolist()
