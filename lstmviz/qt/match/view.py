"""The match results drawn as LSTMVis's word matrix, with heatmap strips under every token.

``MatchView`` is a ``QTableView`` over a ``MatchTableModel``: only the visible rows are ever read or
painted, so it stays responsive with any number of matches. ``MatchDelegate`` draws a token cell as the
token's text over thin strips, top to bottom "match count" (white→blue: how many selected units are on)
and one per chosen annotation (categorical: the palette's label colours; numeric: a ramp over the
corpus range, diverging blue-white-red when it crosses 0). The matched run is boxed and bold; positions
outside the match's item are blank, with an orange line at the item edge.

"Paint heatmap onto tokens" (``set_paint_strip``) fills the token backgrounds with one strip's colours,
and ``set_mask`` fades them by the match count (opacity 0.1..1), as LSTMVis's "mask" toggle does.

Clicking a row, or pressing Enter on it, emits ``result_activated(start, length)``; hovering a token
emits ``hovered`` with a one-line description (the tooltip says the same).
"""

from __future__ import annotations

import functools
import html
import math

from PySide6 import QtCore, QtGui, QtWidgets

from lstmviz.qt.match.table_model import MatchTableModel, StripSpec
from lstmviz.qt.palette import (
    BACKGROUND,
    FOREGROUND,
    ITEM_BOUNDARY,
    SEQUENTIAL,
    grouped_legend,
    label_colors,
)
from lstmviz.qt.widget_export import FullRowsOnVectorExport

STRIP_HEIGHT = 8
STRIP_GAP = 1
#: anchors of the white→purple ramp of the match count (ColorBrewer Purples: apart from the blues and
#: greens of ordinal annotations and the qualitative palette)
COUNT_RAMP = [(252, 251, 253), (218, 218, 235), (158, 154, 200), (106, 81, 163), (63, 0, 125)]
#: anchors of the diverging ramp (ColorBrewer RdBu, reversed: negative blue, positive red)
DIVERGING = [(33, 102, 172), (146, 197, 222), (247, 247, 247), (244, 165, 130), (178, 24, 43)]
MATCH_BOX = (20, 20, 20)
SELECTED_FILL = (222, 232, 246)
OUTSIDE_FILL = (246, 246, 246)
MASK_MIN_ALPHA = 0.1
ROW_SEPARATOR = (214, 214, 214)
TOP_PAD = 2
BOTTOM_PAD = 5


def ramp(anchors, t: float) -> tuple[int, int, int]:
    """Linear interpolation through colour anchors at ``t`` in [0, 1] (clamped)."""
    t = min(1.0, max(0.0, float(t))) * (len(anchors) - 1)
    i = min(int(t), len(anchors) - 2)
    f = t - i
    a, b = anchors[i], anchors[i + 1]
    return tuple(round(a[k] + (b[k] - a[k]) * f) for k in range(3))


@functools.lru_cache(maxsize=64)
def _label_colors(labels: tuple[str, ...], frequencies: tuple[int, ...] = ()) -> list[tuple[int, int, int]]:
    return label_colors(list(labels), frequencies or None) if labels else []


def strip_rgb(strip: StripSpec, value) -> tuple[int, int, int] | None:
    """The colour of ``value`` in a strip, or None for a missing value."""
    if value is None:
        return None
    if strip.kind == "count":
        return ramp(COUNT_RAMP, float(value) / max(strip.vmax, 1.0))
    if strip.kind == "categorical":
        v = int(value)
        if v < 0:
            return None
        colors = _label_colors(strip.labels, strip.frequencies)
        return colors[v] if v < len(colors) else (127, 127, 127)
    v = float(value)
    if math.isnan(v):
        return None
    if strip.diverging:
        top = max(abs(strip.vmin), abs(strip.vmax))
        return ramp(DIVERGING, 0.5 + 0.5 * v / top)
    span = strip.vmax - strip.vmin
    return ramp(SEQUENTIAL, (v - strip.vmin) / span if span > 0 else 0.5)


def _luminance(rgb) -> float:
    r, g, b = rgb[:3]
    return 0.299 * r + 0.587 * g + 0.114 * b


def _hex(rgb) -> str:
    return "#{:02x}{:02x}{:02x}".format(*rgb[:3])


def unbreakable(text: str) -> str:
    """HTML for ``text`` that a line break never splits (spaces glued, no break after "/" or "-")."""
    return html.escape(text).replace(" ", "&nbsp;").replace("/", "/&#8288;").replace("-", "-&#8288;")


def legend_html(model: MatchTableModel, paint_strip: str | None = None, mask: bool = False) -> str:
    """A one-paragraph legend of the strips (top to bottom) with colour swatches."""
    if not model.strips:
        return "<span style='color:#777'>No strips: choose annotations to show under the tokens.</span>"

    def swatch(rgb) -> str:
        return (f"<span style='background-color:{_hex(rgb)}; color:{_hex(rgb)}'>&nbsp;&nbsp;&nbsp;</span>")

    parts = []
    for strip in model.strips:
        name = html.escape(strip.name)
        if strip.kind == "count":
            body = f"0 {swatch(ramp(COUNT_RAMP, 0))}{swatch(ramp(COUNT_RAMP, 0.5))}{swatch(ramp(COUNT_RAMP, 1))} {int(strip.vmax)}"
        elif strip.kind == "categorical":
            colors = _label_colors(strip.labels, strip.frequencies)
            shown = grouped_legend(list(strip.labels), colors)
            body = " ".join(f"{swatch(c)}&nbsp;{unbreakable(label)}" for label, c in shown)
        else:
            if strip.diverging:
                top = max(abs(strip.vmin), abs(strip.vmax))
                body = (f"{-top:.3g} {swatch(ramp(DIVERGING, 0))}{swatch(ramp(DIVERGING, 0.5))}"
                        f"{swatch(ramp(DIVERGING, 1))} {top:.3g}")
            else:
                body = (f"{strip.vmin:.3g} {swatch(ramp(SEQUENTIAL, 0))}{swatch(ramp(SEQUENTIAL, 0.5))}"
                        f"{swatch(ramp(SEQUENTIAL, 1))} {strip.vmax:.3g}")
        parts.append(f"<b>{name}</b>&nbsp; {body}")
    text = "Strips under each token, top to bottom: " + " &nbsp;|&nbsp; ".join(parts)
    if paint_strip:
        text += f" &nbsp;|&nbsp; token backgrounds: <b>{html.escape(paint_strip)}</b>"
        if mask:
            text += " (faded by match count)"
    return text


class MatchDelegate(QtWidgets.QStyledItemDelegate):
    """Paints a token cell: text (bold inside the match), the match box, and the strips under it."""

    def __init__(self, view: MatchView):
        super().__init__(view)
        self.view = view

    def text_height(self) -> int:
        return self.view.fontMetrics().height() + 6

    def row_height(self, n_strips: int) -> int:
        return TOP_PAD + self.text_height() + n_strips * (STRIP_HEIGHT + STRIP_GAP) + BOTTOM_PAD

    @staticmethod
    def _paint_separator(painter, rect: QtCore.QRect) -> None:
        painter.save()
        painter.setPen(QtGui.QPen(QtGui.QColor(*ROW_SEPARATOR), 1))
        painter.drawLine(rect.left(), rect.bottom(), rect.right(), rect.bottom())
        painter.restore()

    def paint(self, painter: QtGui.QPainter, option: QtWidgets.QStyleOptionViewItem, index: QtCore.QModelIndex):
        model = index.model()
        offset = model.offset_of_column(index.column()) if isinstance(model, MatchTableModel) else None
        if offset is None:
            if option.state & QtWidgets.QStyle.StateFlag.State_Selected:
                painter.fillRect(option.rect, QtGui.QColor(*SELECTED_FILL))
            opt = QtWidgets.QStyleOptionViewItem(option)
            opt.state &= ~QtWidgets.QStyle.StateFlag.State_Selected
            opt.state &= ~QtWidgets.QStyle.StateFlag.State_HasFocus
            opt.rect = QtCore.QRect(option.rect.left(), option.rect.top() + TOP_PAD, option.rect.width(),
                                    self.text_height())
            super().paint(painter, opt, index)
            self._paint_separator(painter, option.rect)
            return
        self._paint_token(painter, option, model, index.row(), offset)
        self._paint_separator(painter, option.rect)

    def _paint_token(self, painter, option, model: MatchTableModel, row: int, offset: int) -> None:
        data = model.row_data(row)
        rect = option.rect
        selected = bool(option.state & QtWidgets.QStyle.StateFlag.State_Selected)
        position = data.position(offset)
        text_rect = QtCore.QRect(rect.left(), rect.top() + TOP_PAD, rect.width(), self.text_height())
        painter.save()
        try:
            if not data.inside(position):
                painter.fillRect(rect, QtGui.QColor(*(SELECTED_FILL if selected else OUTSIDE_FILL)))
                return
            background = QtGui.QColor(*(SELECTED_FILL if selected else BACKGROUND))
            paint_name = self.view.paint_strip
            strip = model.strip(paint_name) if paint_name else None
            if strip is not None:
                rgb = strip_rgb(strip, data.value(strip.name, position))
                if rgb is not None:
                    alpha = 1.0
                    if self.view.mask and data.counts is not None and model.units_total > 0:
                        frac = float(data.counts[position - data.lo]) / model.units_total
                        alpha = MASK_MIN_ALPHA + (1.0 - MASK_MIN_ALPHA) * frac
                    base = (SELECTED_FILL if selected else BACKGROUND)
                    mixed = tuple(round(base[k] + (rgb[k] - base[k]) * alpha) for k in range(3))
                    background = QtGui.QColor(*mixed)
            painter.fillRect(text_rect, background)
            in_match = data.in_match(position)
            font = QtGui.QFont(option.font)
            font.setBold(in_match)
            painter.setFont(font)
            text_color = (255, 255, 255) if _luminance(background.getRgb()) < 110 else FOREGROUND
            painter.setPen(QtGui.QColor(*text_color))
            token = model.data(model.index(row, model.column_of_offset(offset)))
            metrics = QtGui.QFontMetrics(font)
            shown = metrics.elidedText(token, QtCore.Qt.TextElideMode.ElideRight, max(4, text_rect.width() - 4))
            painter.drawText(text_rect.adjusted(2, 0, -2, 0), QtCore.Qt.AlignmentFlag.AlignCenter, shown)
            # strips
            y = text_rect.bottom() + 1 + STRIP_GAP
            for s in model.strips:
                rgb = strip_rgb(s, data.value(s.name, position))
                strip_rect = QtCore.QRect(rect.left(), y, rect.width(), STRIP_HEIGHT)
                if rgb is not None:
                    painter.fillRect(strip_rect, QtGui.QColor(*rgb))
                y += STRIP_HEIGHT + STRIP_GAP
            if in_match:
                self._paint_match_box(painter, text_rect, data, position)
            self._paint_item_edge(painter, rect, data, position)
        finally:
            painter.restore()

    @staticmethod
    def _paint_match_box(painter, text_rect: QtCore.QRect, data, position: int) -> None:
        pen = QtGui.QPen(QtGui.QColor(*MATCH_BOX))
        pen.setWidth(2)
        painter.setPen(pen)
        r = text_rect.adjusted(0, 1, 0, -1)
        painter.drawLine(r.left(), r.top(), r.right() + 1, r.top())
        painter.drawLine(r.left(), r.bottom(), r.right() + 1, r.bottom())
        if position == data.start:
            painter.drawLine(r.left() + 1, r.top(), r.left() + 1, r.bottom())
        if position == data.stop - 1:
            painter.drawLine(r.right(), r.top(), r.right(), r.bottom())

    @staticmethod
    def _paint_item_edge(painter, rect: QtCore.QRect, data, position: int) -> None:
        """An orange line where the item begins or ends inside the row."""
        pen = QtGui.QPen(QtGui.QColor(*ITEM_BOUNDARY))
        pen.setWidth(2)
        painter.setPen(pen)
        if position == data.lo and data.lo > data.window_lo:
            painter.drawLine(rect.left() + 1, rect.top(), rect.left() + 1, rect.bottom())
        if position == data.hi - 1 and data.hi < data.window_hi:
            painter.drawLine(rect.right(), rect.top(), rect.right(), rect.bottom())

    def sizeHint(self, option, index):
        model = index.model()
        n = len(model.strips) if isinstance(model, MatchTableModel) else 0
        return QtCore.QSize(self.view.token_width, self.row_height(n))



class MatchView(FullRowsOnVectorExport, QtWidgets.QTableView):
    """The results table: one row per match (virtual), tokens aligned, strips under each token."""

    #: start position and length of the match the user clicked or pressed Enter on
    result_activated = QtCore.Signal(int, int)
    #: a plain-text description of the token under the pointer ("" when none)
    hovered = QtCore.Signal(str)

    MIN_TOKEN_WIDTH = 22
    MAX_TOKEN_WIDTH = 84

    def __init__(self, model: MatchTableModel | None = None, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.paint_strip: str | None = None
        self.mask = True
        self.token_width = 28
        self._width_key = None
        self._delegate = MatchDelegate(self)
        self.setItemDelegate(self._delegate)
        self.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.setShowGrid(False)
        self.setWordWrap(False)
        self.setMouseTracking(True)
        self.setHorizontalScrollMode(QtWidgets.QAbstractItemView.ScrollMode.ScrollPerPixel)
        self.setVerticalScrollMode(QtWidgets.QAbstractItemView.ScrollMode.ScrollPerItem)
        self.setCornerButtonEnabled(False)
        vertical = self.verticalHeader()
        vertical.setVisible(False)
        # fixed row heights: the view never asks every row for its size (100k rows stay instant)
        vertical.setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.Fixed)
        horizontal = self.horizontalHeader()
        horizontal.setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.Fixed)
        horizontal.setHighlightSections(False)
        horizontal.setMinimumSectionSize(8)
        self.setStyleSheet("QTableView { background: white; selection-background-color: transparent; }")
        self.entered.connect(self._entered)
        self.clicked.connect(self._activate)
        if model is not None:
            self.setModel(model)

    # ------------------------------------------------------------------ model and layout
    def setModel(self, model: MatchTableModel) -> None:
        old = self.model()
        if isinstance(old, MatchTableModel):
            for signal in (old.modelReset, old.strips_changed):
                try:
                    signal.disconnect(self._relayout)
                except (RuntimeError, TypeError):
                    pass
        super().setModel(model)
        model.modelReset.connect(self._relayout)
        model.strips_changed.connect(self._relayout)
        self._relayout()

    def match_model(self) -> MatchTableModel:
        return self.model()

    def _relayout(self) -> None:
        model = self.model()
        if not isinstance(model, MatchTableModel):
            return
        self.token_width = self._token_width(model)
        self.verticalHeader().setDefaultSectionSize(self._delegate.row_height(len(model.strips)))
        metrics = self.fontMetrics()
        n = model.rowCount()
        widths = {
            "rank": metrics.horizontalAdvance(f"{max(n, 100):,}") + 12,
            "intersection": metrics.horizontalAdvance("000") + 10,
            "union": metrics.horizontalAdvance("000") + 10,
            "jaccard": metrics.horizontalAdvance("0.000") + 12,
            "score": metrics.horizontalAdvance("0.000") + 12,
            "length_factor": metrics.horizontalAdvance("0.000") + 12,
            "length": metrics.horizontalAdvance("0000") + 10,
            "item": metrics.horizontalAdvance(f"{self._max_item(model):,}") + 14,
            "position": metrics.horizontalAdvance(f"{self._max_position(model):,}") + 14,
        }
        header = self.horizontalHeader()
        for column, key in enumerate(model.fixed_keys()):
            title = model.headerData(column, QtCore.Qt.Orientation.Horizontal)
            header.resizeSection(column, max(widths.get(key, 40), metrics.horizontalAdvance(title) + 14))
        for column in range(model.n_fixed, model.columnCount()):
            header.resizeSection(column, self.token_width)
        self.viewport().update()

    @staticmethod
    def _max_item(model) -> int:
        return 0 if model.recording is None else max(0, int(model.recording.n_items) - 1)

    @staticmethod
    def _max_position(model) -> int:
        return 0 if model.recording is None else max(0, int(model.recording.n_positions) - 1)

    def _token_width(self, model: MatchTableModel) -> int:
        """Wide enough for most tokens of the vocabulary (the longest ones are elided)."""
        from lstmviz.qt.token_text import display_token

        recording = model.recording
        key = (id(recording), model.left, model.right, self.font().toString())
        if key == self._width_key:
            return self.token_width
        self._width_key = key
        metrics = self.fontMetrics()
        bold = QtGui.QFont(self.font())
        bold.setBold(True)
        bold_metrics = QtGui.QFontMetrics(bold)
        # special tokens such as <pad> or <unk> do not set the width (they are elided if they occur)
        vocab = [t for t in list(getattr(recording, "vocab", []) or [])[:50000]
                 if not (len(t) > 2 and t.startswith("<") and t.endswith(">"))]
        if not vocab:
            return max(self.MIN_TOKEN_WIDTH, metrics.horizontalAdvance("MMM") + 8)
        widths = sorted(bold_metrics.horizontalAdvance(display_token(t)) for t in vocab)
        typical = widths[min(len(widths) - 1, int(0.9 * len(widths)))]
        # the offset headers ("−3" .. "+20") must fit too
        header = self.horizontalHeader().fontMetrics()
        widest = max(header.horizontalAdvance(f"{-model.left:+d}".replace("-", "−")),
                     header.horizontalAdvance(f"{model.right:+d}"))
        return int(min(self.MAX_TOKEN_WIDTH, max(self.MIN_TOKEN_WIDTH, typical + 10, widest + 8)))

    # ------------------------------------------------------------------ display options
    def set_paint_strip(self, name: str | None) -> None:
        """Fill token backgrounds with this strip's colours (None: plain)."""
        self.paint_strip = name or None
        self.viewport().update()

    def set_mask(self, on: bool) -> None:
        """Fade painted backgrounds by the match count (as LSTMVis's "mask")."""
        self.mask = bool(on)
        self.viewport().update()

    # ------------------------------------------------------------------ interaction
    def _activate(self, index: QtCore.QModelIndex) -> None:
        if not index.isValid():
            return
        start, length = self.model().match(index.row())
        self.result_activated.emit(start, length)

    def keyPressEvent(self, event: QtGui.QKeyEvent) -> None:
        if event.key() in (QtCore.Qt.Key.Key_Return, QtCore.Qt.Key.Key_Enter):
            index = self.currentIndex()
            if index.isValid():
                self._activate(index)
                event.accept()
                return
        super().keyPressEvent(event)

    def _entered(self, index: QtCore.QModelIndex) -> None:
        model = self.model()
        if not index.isValid() or not isinstance(model, MatchTableModel):
            self.hovered.emit("")
            return
        offset = model.offset_of_column(index.column())
        if offset is None:
            self.hovered.emit(model.describe_row(index.row()).replace("<br>", " · "))
        else:
            self.hovered.emit(model.describe_cell(index.row(), offset, rich=False))

    def leaveEvent(self, event) -> None:
        self.hovered.emit("")
        super().leaveEvent(event)

    def content_width(self) -> int:
        """The width that shows every column (and a vertical scroll bar) without a horizontal one."""
        return (self.horizontalHeader().length() + 2 * self.frameWidth()
                + self.verticalScrollBar().sizeHint().width())

    def visible_rows(self) -> range:
        """The rows on screen now."""
        model = self.model()
        if model is None or model.rowCount() == 0:
            return range(0)
        first = self.rowAt(0)
        last = self.rowAt(self.viewport().height() - 1)
        if first < 0:
            return range(0)
        if last < 0:
            last = model.rowCount() - 1
        return range(first, last + 1)
