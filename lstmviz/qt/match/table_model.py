"""The match results as a virtual table: one row per match, however many there are.

``MatchTableModel`` is a ``QAbstractTableModel`` over a ``MatchResults``. It never builds anything per
row up front: the tokens, the per-token match counts and the annotation values of a row are read from
the recording only when a view asks for that row (the visible ones), and kept in a bounded cache.

Columns: a few fixed ones (rank, the mode's score columns, item, position) and then one column per
offset of the aligned token context. Like LSTMVis, rows are aligned at the **start** of the matched run
(offset 0 = the first matched token) with ``left`` tokens before it and ``right`` after it (3 and 20 by
default: LSTMVis's 24-token rows); ``align="end"`` puts offset 0 on the *last* matched token instead.
Positions outside the match's item are blank: context never crosses an item boundary.

Strips: under every token the view draws thin heatmap strips, top to bottom: "match count" (how many
selected units are on there, when a counting function is given) and one per chosen annotation. The model
holds what each strip shows (``StripSpec``) and its value per token; the view turns values into colours.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np
from PySide6 import QtCore, QtGui

from lstmviz.qt.annotation_track import label_frequencies
from lstmviz.qt.model_reset import resetting
from lstmviz.qt.plain_text import escape
from lstmviz.qt.token_text import display_token

ALIGNS = ("start", "end")
#: the name of the strip that counts the selected units on at each token
COUNT_STRIP = "match count"
#: rows whose tokens/values are kept in memory (a screen shows a few dozen)
ROW_CACHE_SIZE = 2048
#: numeric strips: the colour range is read exactly up to this many positions, in blocks ...
RANGE_EXACT = 1 << 22
RANGE_BLOCK = 1 << 20
#: ... and estimated from evenly spread windows beyond
RANGE_SAMPLES = 64
RANGE_WINDOW = 1 << 14

#: the delegate reads a row's data (``RowData``) and the cell's offset through these roles
RowDataRole = QtCore.Qt.ItemDataRole.UserRole + 1
OffsetRole = QtCore.Qt.ItemDataRole.UserRole + 2


@dataclass(frozen=True)
class StripSpec:
    """What one strip under the tokens shows.

    ``kind``: "count" (0..``vmax`` selected units), "categorical" (label ids into ``labels``, -1 missing)
    or "numeric" (floats, NaN missing; ``vmin``..``vmax`` over the corpus, diverging when it crosses 0).
    """

    name: str
    kind: str
    labels: tuple[str, ...] = ()
    level: str = "position"
    vmin: float = 0.0
    vmax: float = 1.0
    description: str = ""
    #: categorical: how often each label occurs (colours go to the frequent ones when there are many)
    frequencies: tuple[int, ...] = ()

    @property
    def diverging(self) -> bool:
        return self.kind == "numeric" and self.vmin < 0 < self.vmax

    def label(self, value) -> str:
        """The text for a value of this strip (a label name, a count, a number, or "—" when missing)."""
        if value is None:
            return "—"
        if self.kind == "categorical":
            v = int(value)
            if v < 0:
                return "—"
            return self.labels[v] if v < len(self.labels) else str(v)
        if self.kind == "count":
            return f"{int(value)} of {int(self.vmax)} units on"
        v = float(value)
        return "—" if math.isnan(v) else f"{v:.4g}"


@dataclass
class RowData:
    """What a row shows: positions ``[lo, hi)`` of the context that lie inside the match's item."""

    rank: int
    start: int
    length: int
    item: int
    anchor: int  # the position at offset 0
    lo: int
    hi: int
    window_lo: int  # anchor - left: the first position the row's columns show
    window_hi: int  # anchor + right + 1
    tokens: list[str]
    counts: np.ndarray | None  # int [hi - lo] or None without a counting function
    values: dict[str, np.ndarray] = field(default_factory=dict)  # strip name -> [hi - lo]

    @property
    def stop(self) -> int:
        return self.start + self.length

    def position(self, offset: int) -> int:
        return self.anchor + offset

    def inside(self, position: int) -> bool:
        return self.lo <= position < self.hi

    def in_match(self, position: int) -> bool:
        return self.start <= position < self.stop

    def value(self, strip: str, position: int):
        """The strip's value at ``position`` (None outside the item or for an unknown strip)."""
        if not self.inside(position):
            return None
        if strip == COUNT_STRIP:
            return None if self.counts is None else int(self.counts[position - self.lo])
        values = self.values.get(strip)
        return None if values is None else values[position - self.lo]


def _fixed_columns(mode: str) -> list[tuple[str, str, str]]:
    """(key, header, tooltip) of the columns before the tokens, for a scoring mode."""
    head = [("rank", "#", "Rank of the match, best first")]
    tail = [
        ("length", "len", "Length of the matched run (positions)"),
        ("item", "item", "The item (sequence) that holds the match"),
        ("position", "position", "First position of the matched run in the corpus"),
    ]
    if mode == "scored":
        scores = [
            ("score", "score", "Score = Jaccard × length factor (the ranking key)"),
            ("jaccard", "Jacc.", ("Jaccard = |A ∩ S| / |A ∪ S|: overlap of the units on over the run (A) "
                                  "with the selected units (S)")),
            ("length_factor", "len×", ("Length factor (min(L, Ls) / max(L, Ls)) ** weight against the "
                                       "brushed length Ls")),
        ]
    else:
        scores = [
            ("intersection", "I", ("Intersection |A ∩ S|: selected units on over the whole run "
                                   "(LSTMVis ranks by largest I, then smallest U, then longest run)")),
            ("union", "U", "Union |A ∪ S|: selected units plus other units on over the whole run"),
            ("jaccard", "Jacc.", "Jaccard = I / U (shown; LSTMVis does not rank by it)"),
        ]
    return head + scores + tail


def numeric_range(recording, name: str) -> tuple[float, float]:
    """(min, max) of a numeric annotation, NaN left out; (0, 1) when all missing: the colour scale of its
    strip, the same for every row.

    Exact for corpora up to ``RANGE_EXACT`` positions (one pass in blocks); beyond, estimated from
    ``RANGE_SAMPLES`` windows of ``RANGE_WINDOW`` positions spread evenly over the corpus, so the GUI
    thread never reads more than about a million values (values outside the range saturate).
    """
    info = recording.annotations[name]
    if info.level == "item":
        blocks = [np.asarray(recording.annotation(name), dtype=np.float64)]
    else:
        n = int(recording.n_positions)
        if n <= RANGE_EXACT:
            windows = [(a, min(n, a + RANGE_BLOCK)) for a in range(0, n, RANGE_BLOCK)]
        else:
            starts = np.linspace(0, n - RANGE_WINDOW, RANGE_SAMPLES).astype(np.int64)
            windows = [(int(a), int(a) + RANGE_WINDOW) for a in starts]
        blocks = (np.asarray(recording.annotation(name, a, b), dtype=np.float64) for a, b in windows)
    lo, hi = math.inf, -math.inf
    for block in blocks:
        finite = block[np.isfinite(block)]
        if finite.size:
            lo, hi = min(lo, float(finite.min())), max(hi, float(finite.max()))
    if lo > hi:
        return 0.0, 1.0
    if lo == hi:
        return lo - 0.5, hi + 0.5
    return lo, hi


class MatchTableModel(QtCore.QAbstractTableModel):
    """A virtual table of matches: fixed columns, then the aligned token context (one column per offset)."""

    #: the strips changed (the row height of a view depends on their number)
    strips_changed = QtCore.Signal()

    def __init__(self, parent: QtCore.QObject | None = None):
        super().__init__(parent)
        self.results = None
        self.recording = None
        self.counter = None
        self.units_total = 0
        self.left, self.right, self.align = 3, 20, "start"
        self.mode = "lstmvis"
        self._fixed = _fixed_columns(self.mode)
        self._annotations: list[str] = []
        self._strips: list[StripSpec] = []
        self._ranges: dict[tuple, tuple[float, float]] = {}
        self._cache: OrderedDict[int, RowData] = OrderedDict()
        #: rows read from the recording since the results were set (tests check that it stays small)
        self.rows_read = 0

    # ------------------------------------------------------------------ setting what to show
    def set_results(self, results, recording, *, counter=None, units_total: int | None = None) -> None:
        """Show ``results`` (a ``MatchResults``, or None to clear) of ``recording``.

        ``counter(start, stop)`` gives the number of selected units on at each position of
        ``[start, stop)`` (the "match count" strip); ``units_total`` is the number of selected units.
        """
        with resetting(self):
            if recording is not self.recording:
                self._ranges.clear()
            self.results = results
            self.recording = recording
            self.counter = counter
            if units_total is None:
                units_total = results.query.k if results is not None else 0
            self.units_total = int(units_total)
            self.mode = results.query.mode if results is not None else self.mode
            self._fixed = _fixed_columns(self.mode)
            self._strips = self._make_strips()
            self._cache.clear()
            self.rows_read = 0
        self.strips_changed.emit()

    def set_context(self, left: int, right: int, align: str = "start") -> None:
        """Show ``left`` tokens before and ``right`` after offset 0, which is the match start or end."""
        if align not in ALIGNS:
            raise ValueError(f"unknown alignment {align!r}; choose one of {', '.join(ALIGNS)}")
        left, right = max(0, int(left)), max(0, int(right))
        if (left, right, align) == (self.left, self.right, self.align):
            return
        with resetting(self):
            self.left, self.right, self.align = left, right, align
            self._cache.clear()

    def set_annotations(self, names) -> None:
        """Draw a strip for each of these annotations (after the match count), in this order."""
        names = [str(n) for n in names]
        if names == self._annotations:
            return
        with resetting(self):
            self._annotations = names
            self._strips = self._make_strips()
            self._cache.clear()
        self.strips_changed.emit()

    @property
    def annotations(self) -> list[str]:
        return list(self._annotations)

    @property
    def strips(self) -> list[StripSpec]:
        return list(self._strips)

    def strip(self, name: str) -> StripSpec | None:
        return next((s for s in self._strips if s.name == name), None)

    def _make_strips(self) -> list[StripSpec]:
        strips = []
        if self.counter is not None and self.units_total > 0:
            strips.append(StripSpec(COUNT_STRIP, "count", vmin=0.0, vmax=float(self.units_total),
                                    description="number of selected units on at the token"))
        recording = self.recording
        if recording is None:
            return strips
        for name in self._annotations:
            info = recording.annotations.get(name)
            if info is None:
                continue
            if info.kind == "categorical":
                counts = label_frequencies(recording, name)
                strips.append(StripSpec(name, "categorical", tuple(info.labels or ()), info.level,
                                        description=info.description,
                                        frequencies=() if counts is None else tuple(int(c) for c in counts)))
            else:
                key = (str(recording.path), name)
                if key not in self._ranges:
                    self._ranges[key] = numeric_range(recording, name)
                vmin, vmax = self._ranges[key]
                strips.append(StripSpec(name, "numeric", (), info.level, vmin, vmax, info.description))
        return strips

    # ------------------------------------------------------------------ geometry
    @property
    def offsets(self) -> range:
        return range(-self.left, self.right + 1)

    @property
    def n_fixed(self) -> int:
        return len(self._fixed)

    def fixed_keys(self) -> list[str]:
        return [key for key, _, _ in self._fixed]

    def offset_of_column(self, column: int) -> int | None:
        """The offset a column shows, or None for a fixed column."""
        if column < self.n_fixed:
            return None
        return column - self.n_fixed - self.left

    def column_of_offset(self, offset: int) -> int:
        return self.n_fixed + self.left + int(offset)

    def rowCount(self, parent=QtCore.QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        if parent.isValid() or self.results is None:
            return 0
        return len(self.results)

    def columnCount(self, parent=QtCore.QModelIndex()) -> int:  # noqa: B008
        if parent.isValid():
            return 0
        return self.n_fixed + self.left + self.right + 1

    # ------------------------------------------------------------------ rows
    def match(self, row: int) -> tuple[int, int]:
        """(start, length) of the match in ``row``."""
        return int(self.results.starts[row]), int(self.results.lengths[row])

    def row_data(self, row: int) -> RowData:
        """The row's tokens and strip values, read from the recording on first use and cached."""
        data = self._cache.get(row)
        if data is not None:
            self._cache.move_to_end(row)
            return data
        data = self._read_row(row)
        self._cache[row] = data
        while len(self._cache) > ROW_CACHE_SIZE:
            self._cache.popitem(last=False)
        return data

    def _read_row(self, row: int) -> RowData:
        res, rec = self.results, self.recording
        start, length = int(res.starts[row]), int(res.lengths[row])
        item = int(res.items[row])
        anchor = start if self.align == "start" else start + length - 1
        item_start, item_stop = (int(v) for v in rec.item_range(item))
        lo = min(max(item_start, anchor - self.left), item_stop)
        hi = max(min(item_stop, anchor + self.right + 1), lo)
        tokens = list(rec.tokens(lo, hi)) if hi > lo else []
        counts = None
        if self.counter is not None and hi > lo:
            counts = np.asarray(self.counter(lo, hi))
        values = {}
        for strip in self._strips:
            if strip.kind == "count":
                continue
            if strip.level == "item":
                value = rec.annotation(strip.name, item, item + 1)[0]
                values[strip.name] = np.full(hi - lo, value)
            elif hi > lo:
                values[strip.name] = np.asarray(rec.annotation(strip.name, lo, hi))
            else:
                values[strip.name] = np.zeros(0)
        self.rows_read += 1
        return RowData(row + 1, start, length, item, anchor, lo, hi, anchor - self.left, anchor + self.right + 1,
                       tokens, counts, values)

    # ------------------------------------------------------------------ Qt model API
    def data(self, index: QtCore.QModelIndex, role: int = QtCore.Qt.ItemDataRole.DisplayRole):
        if not index.isValid() or self.results is None:
            return None
        row, column = index.row(), index.column()
        if role == RowDataRole:
            return self.row_data(row)
        offset = self.offset_of_column(column)
        if role == OffsetRole:
            return offset
        if offset is None:
            return self._fixed_data(row, column, role)
        if role == QtCore.Qt.ItemDataRole.DisplayRole:
            data = self.row_data(row)
            position = data.position(offset)
            return display_token(data.tokens[position - data.lo]) if data.inside(position) else ""
        if role == QtCore.Qt.ItemDataRole.ToolTipRole:
            return self.describe_cell(row, offset)
        return None

    def _fixed_data(self, row: int, column: int, role: int):
        key = self._fixed[column][0]
        if role == QtCore.Qt.ItemDataRole.TextAlignmentRole:
            return int(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)
        if role == QtCore.Qt.ItemDataRole.ToolTipRole:
            return f"{self._fixed[column][2]}<br>{self.describe_row(row)}"
        if role not in (QtCore.Qt.ItemDataRole.DisplayRole, QtCore.Qt.ItemDataRole.EditRole):
            return None
        res = self.results
        if key == "rank":
            return f"{row + 1:,}"
        if key == "position":
            return f"{int(res.starts[row]):,}"
        if key == "item":
            return f"{int(res.items[row]):,}"
        if key == "length":
            return str(int(res.lengths[row]))
        if key in ("intersection", "union"):
            return str(int(getattr(res, key)[row]))
        value = float(getattr(res, key)[row])
        return f"{value:.3f}"

    def headerData(self, section: int, orientation, role: int = QtCore.Qt.ItemDataRole.DisplayRole):
        if orientation != QtCore.Qt.Orientation.Horizontal:
            return None
        offset = self.offset_of_column(section) if 0 <= section < self.columnCount() else None
        if role == QtCore.Qt.ItemDataRole.DisplayRole:
            if offset is None:
                return self._fixed[section][1] if 0 <= section < self.n_fixed else None
            return "0" if offset == 0 else f"{offset:+d}".replace("-", "−")
        if role == QtCore.Qt.ItemDataRole.ToolTipRole:
            if offset is None:
                return self._fixed[section][2] if 0 <= section < self.n_fixed else None
            where = "first" if self.align == "start" else "last"
            return f"Offset {offset:+d} from the {where} token of the match"
        if role == QtCore.Qt.ItemDataRole.FontRole and offset == 0:
            font = QtGui.QFont()
            font.setBold(True)
            return font
        return None

    def flags(self, index: QtCore.QModelIndex):
        if not index.isValid():
            return QtCore.Qt.ItemFlag.NoItemFlags
        return QtCore.Qt.ItemFlag.ItemIsEnabled | QtCore.Qt.ItemFlag.ItemIsSelectable

    # ------------------------------------------------------------------ descriptions (hover)
    def describe_row(self, row: int) -> str:
        res = self.results
        start, length = self.match(row)
        parts = [(f"match {row + 1:,}: positions {start:,}–{start + length - 1:,} ({length} long), "
                  f"item {int(res.items[row]):,}")]
        if self.mode == "scored":
            parts.append(f"score {float(res.score[row]):.3f} = Jaccard {float(res.jaccard[row]):.3f} × "
                         f"length factor {float(res.length_factor[row]):.3f}")
        else:
            parts.append(f"I = {int(res.intersection[row])}, U = {int(res.union[row])}, "
                         f"Jaccard {float(res.jaccard[row]):.3f}")
        return "<br>".join(parts)

    def cell_info(self, row: int, offset: int) -> dict | None:
        """Plain data about one token cell (None outside the item): position, token, in_match, strips."""
        data = self.row_data(row)
        position = data.position(offset)
        if not data.inside(position):
            return None
        return {
            "position": position,
            "token": data.tokens[position - data.lo],
            "offset": offset,
            "item": data.item,
            "in_match": data.in_match(position),
            "strips": {s.name: s.label(data.value(s.name, position)) for s in self._strips},
        }

    def describe_cell(self, row: int, offset: int, *, rich: bool = True) -> str:
        """The hover text of a token cell: position, token, and every strip's label and count."""
        info = self.cell_info(row, offset)
        if info is None:
            return "outside the match's item" if rich else ""
        esc = escape if rich else (lambda s: s)
        token = esc(display_token(info["token"]))
        head = (f"position {info['position']:,} · item {info['item']:,} · token "
                + (f"<b>{token}</b>" if rich else f"“{token}”")
                + f" · offset {offset:+d}" + (" · in the match" if info["in_match"] else ""))
        lines = [head] + [f"{esc(name)}: {esc(label)}" for name, label in info["strips"].items()]
        return ("<br>" if rich else " · ").join(lines)
