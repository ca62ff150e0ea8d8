"""The Sets tab of the Image panel: one image's rows of a tap on a ``set`` axis, the members side by side.

One row per member (its name on the left, HeMIS's modalities or colourisation's branches), its values over the
units on the right, all members on **one colour scale** (the image's range over every present member, 0
included) and with the units in the same columns, so a unit can be compared across members at a glance:

- **heat strip**: one cell per unit, coloured by value (a dark-blue -> yellow ramp; the scale under the rows);
- **bars**: one bar per unit from 0, its height the value on the shared scale, the value written above it.

``auto`` shows bars for a tap of at most :data:`BARS_MAX_UNITS` units (colourisation's mean chroma and share) and
a heat strip for more (HeMIS's 16-unit embeddings). A member the image lacks (no row, or a row of exact zeros:
the recorders' convention for a missing modality) is greyed and says so. Hovering a unit shows its value.
"""

from __future__ import annotations

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

STYLES = ("auto", "strip", "bars")
STYLE_TITLES = {"auto": "automatic", "strip": "heat strip", "bars": "bars"}
BARS_MAX_UNITS = 8
RAMP = ((0.0, (32, 38, 92)), (0.35, (40, 110, 160)), (0.7, (90, 190, 120)), (1.0, (250, 230, 80)))
"""Dark blue -> teal -> green -> yellow: light values stand out; grey is kept for absent members."""
ABSENT = QtGui.QColor(205, 205, 205)
BAR = QtGui.QColor(40, 110, 160)
NEGATIVE_BAR = QtGui.QColor(190, 80, 60)


def ramp_colour(t: float) -> QtGui.QColor:
    """The :data:`RAMP` colour at ``t`` in [0, 1] (clipped)."""
    t = float(np.clip(t, 0.0, 1.0)) if np.isfinite(t) else 0.0
    at = [p for p, _ in RAMP]
    rgb = [int(round(np.interp(t, at, [c[k] for _, c in RAMP]))) for k in range(3)]
    return QtGui.QColor(*rgb)


def resolve_style(style: str, units: int) -> str:
    """``strip`` or ``bars`` for ``style`` (``auto``: bars up to :data:`BARS_MAX_UNITS` units)."""
    if style == "auto":
        return "bars" if units <= BARS_MAX_UNITS else "strip"
    return style


class MemberValues(QtWidgets.QWidget):
    """One member's values, painted as a heat strip or bars on a given scale."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.values = np.zeros(0, np.float32)
        self.levels = (0.0, 1.0)
        self.style = "strip"
        self.absent = False
        self.setMouseTracking(True)
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Expanding, QtWidgets.QSizePolicy.Policy.Fixed)

    def set_values(self, values: np.ndarray, levels: tuple[float, float], style: str, absent: bool) -> None:
        self.values, self.levels, self.style, self.absent = np.asarray(values, np.float32), levels, style, absent
        self.setFixedHeight(52 if style == "bars" else 26)
        self.update()

    def _slot(self, unit: int) -> QtCore.QRectF:
        n = max(1, len(self.values))
        w = self.width() / n
        return QtCore.QRectF(unit * w, 0.0, w, float(self.height()))

    def unit_at(self, x: float) -> int:
        n = len(self.values)
        if n == 0 or self.width() <= 0:
            return -1
        u = int(x * n / self.width())
        return u if 0 <= u < n else -1

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt)
        painter = QtGui.QPainter(self)
        painter.setRenderHint(QtGui.QPainter.RenderHint.Antialiasing, False)
        lo, hi = self.levels
        span = hi - lo if hi > lo else 1.0
        n = len(self.values)
        if self.style == "strip":
            for u, v in enumerate(self.values):
                colour = ABSENT if self.absent or not np.isfinite(v) else ramp_colour((v - lo) / span)
                painter.fillRect(self._slot(u).adjusted(0, 0, -1 if n < 40 else 0, 0), colour)
        else:
            font = painter.font()
            font.setPointSizeF(max(6.0, font.pointSizeF() * 0.8))
            painter.setFont(font)
            text_h = painter.fontMetrics().height()
            top, bottom = float(text_h), float(self.height() - 1)
            zero = bottom - (0.0 - lo) / span * (bottom - top)
            painter.fillRect(QtCore.QRectF(0, top, self.width(), bottom - top), QtGui.QColor(246, 246, 246))
            for u, v in enumerate(self.values):
                slot = self._slot(u)
                pad = min(6.0, slot.width() * 0.15)
                if not np.isfinite(v):
                    continue
                y = bottom - (float(v) - lo) / span * (bottom - top)
                colour = ABSENT if self.absent else (BAR if v >= 0 else NEGATIVE_BAR)
                painter.fillRect(QtCore.QRectF(slot.left() + pad, min(y, zero), slot.width() - 2 * pad,
                                               max(1.0, abs(zero - y))), colour)
                painter.setPen(QtGui.QColor(120, 120, 120) if self.absent else QtGui.QColor(30, 30, 30))
                painter.drawText(QtCore.QRectF(slot.left(), 0, slot.width(), text_h),
                                 QtCore.Qt.AlignmentFlag.AlignCenter, f"{float(v):.3g}")
            painter.setPen(QtGui.QColor(150, 150, 150))
            painter.drawLine(QtCore.QPointF(0, zero), QtCore.QPointF(self.width(), zero))
        painter.end()

    def event(self, event) -> bool:
        if event.type() == QtCore.QEvent.Type.ToolTip:
            u = self.unit_at(event.position().x() if hasattr(event, "position") else event.pos().x())
            if u >= 0:
                QtWidgets.QToolTip.showText(event.globalPos(), f"unit {u}: {float(self.values[u]):.4g}", self)
            else:
                QtWidgets.QToolTip.hideText()
            return True
        return super().event(event)


class MemberRow(QtWidgets.QWidget):
    """A member's name and its values."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.name_label = QtWidgets.QLabel()
        self.name_label.setMinimumWidth(70)
        self.name_label.setAlignment(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)
        self.values = MemberValues()
        layout = QtWidgets.QHBoxLayout(self)
        layout.setContentsMargins(0, 1, 0, 1)
        layout.addWidget(self.name_label)
        layout.addWidget(self.values, 1)

    def show_member(self, name: str, values, levels, style: str, absent: bool) -> None:
        self.name_label.setText(f"{name} (absent)" if absent else name)
        self.name_label.setStyleSheet("color: #999" if absent else "")
        self.name_label.setToolTip(f"{name}: no row or all zeros in this image (a member the input lacks)"
                                   if absent else name)
        self.values.set_values(values, levels, style, absent)


class ScaleBar(QtWidgets.QWidget):
    """Under the rows: the unit numbers in the rows' columns, then the shared scale from ``lo`` to ``hi`` (the
    colour ramp for a heat strip; the bars' range in words)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.levels, self.style, self.units = (0.0, 1.0), "strip", 0
        self.setFixedHeight(48)

    def set_scale(self, levels, style: str, units: int) -> None:
        self.levels, self.style, self.units = levels, style, units
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt)
        painter = QtGui.QPainter(self)
        metrics = painter.fontMetrics()
        w, n = self.width(), max(1, self.units)
        lo, hi = self.levels
        slot = w / n
        wide = metrics.horizontalAdvance(str(max(0, self.units - 1))) + 4
        every = max(1, int(np.ceil(wide / slot)))  # label every k-th unit when the columns are narrow
        painter.setPen(QtGui.QColor(60, 60, 60))
        label_h = metrics.height()
        for u in range(0, self.units, every):
            text = f"unit {u}" if slot > metrics.horizontalAdvance("unit 00") + 6 else str(u)
            painter.drawText(QtCore.QRectF(u * slot, 0, slot * every if every > 1 else slot, label_h),
                             QtCore.Qt.AlignmentFlag.AlignHCenter if every == 1 else QtCore.Qt.AlignmentFlag.AlignLeft,
                             text)
        y0 = label_h + 4
        painter.setPen(QtGui.QColor(40, 40, 40))
        if self.style == "strip":
            lo_text, hi_text = f"{lo:.3g}", f"{hi:.3g}"
            left, right = metrics.horizontalAdvance(lo_text) + 6, metrics.horizontalAdvance(hi_text) + 6
            span = max(1.0, w - left - right)
            for x in range(int(span)):
                painter.fillRect(QtCore.QRectF(left + x, y0, 1, 12), ramp_colour(x / max(1.0, span - 1)))
            baseline = y0 + 6 + metrics.ascent() / 2 - 1
            painter.drawText(QtCore.QPointF(0, baseline), lo_text)
            painter.drawText(QtCore.QPointF(w - right + 6, baseline), hi_text)
        else:
            text = f"bars from 0, one scale for all members: {lo:.3g} .. {hi:.3g}"
            painter.drawText(QtCore.QPointF((w - metrics.horizontalAdvance(text)) / 2, y0 + metrics.ascent()), text)
        painter.end()


class SetView(QtWidgets.QWidget):
    """The members of one image's set tap, side by side (module docstring). :meth:`show_rows` fills it."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.rows: list[MemberRow] = []
        self.style = "strip"
        self.levels = (0.0, 1.0)
        self._rows_box = QtWidgets.QVBoxLayout()
        self._rows_box.setSpacing(2)
        self._rows_box.setContentsMargins(0, 0, 0, 0)
        self.scale_bar = ScaleBar()
        scale_row = QtWidgets.QHBoxLayout()
        self._scale_pad = QtWidgets.QLabel()
        scale_row.addWidget(self._scale_pad)
        scale_row.addWidget(self.scale_bar, 1)
        scale_row.setContentsMargins(0, 0, 0, 0)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(self._rows_box)
        layout.addLayout(scale_row)
        layout.addStretch(1)

    def clear(self) -> None:
        for row in self.rows:
            self._rows_box.removeWidget(row)
            row.deleteLater()
        self.rows = []

    def show_rows(self, rows, style: str = "auto") -> None:
        """Show :class:`~lstmviz.qt.image.data.SetRows` in ``style`` (``auto``, ``strip`` or ``bars``)."""
        units = rows.values.shape[1] if rows.values.ndim == 2 else 0
        self.style = resolve_style(style, units)
        self.levels = rows.scale()
        while len(self.rows) < len(rows):
            row = MemberRow()
            self._rows_box.addWidget(row)
            self.rows.append(row)
        while len(self.rows) > len(rows):
            row = self.rows.pop()
            self._rows_box.removeWidget(row)
            row.deleteLater()
        width = max((row.name_label.fontMetrics().horizontalAdvance(f"{n} (absent)") for row, n in
                     zip(self.rows, rows.names)), default=70) + 6
        for row, name, values, absent in zip(self.rows, rows.names, rows.values, rows.absent):
            row.name_label.setFixedWidth(width)
            row.show_member(name, values, self.levels, self.style, bool(absent))
        self._scale_pad.setFixedWidth(width)
        self.scale_bar.set_scale(self.levels, self.style, units)

    def member_names(self) -> list[str]:
        return [row.name_label.text() for row in self.rows]
