"""The workspace: the one evented model that holds the state of the GUI.

Views never keep state of their own: they read what to draw from the workspace and ask it to change
(``set_tap``, ``scroll_by``, ``go_to_item`` ...). The workspace emits one specific signal per kind of
change (for controls that mirror one setting) and ``view_changed`` once after every change of what
the window shows (for views that redraw).

The window is a range of positions of the whole corpus, ``[window_start, window_start + window_width)``.
It may span several items (views mark the boundaries). Its left edge goes up to the start of the last
item, so a window on a short last item runs past the corpus end (that part is empty). The *current item* is always the item that holds ``window_start``, so
``go_to_item(i)`` puts the window's left edge on the first position of item ``i``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Signal

#: Value transforms the state plot can show. The file keeps raw values; a transform is a view setting.
TRANSFORMS = ("raw", "tanh")
MIN_WINDOW_WIDTH = 10
MAX_WINDOW_WIDTH = 400
DEFAULT_WINDOW_WIDTH = 100
#: Positions of left context kept before a position reached with ``go_to_position`` (as in LSTMVis).
JUMP_CONTEXT = 3


@dataclass(frozen=True)
class Hover:
    """What lies under the mouse: a position, its token, and the unit nearest to the pointer."""

    position: int
    token: str
    item: int
    unit: int | None = None
    value: float | None = None
    labels: dict[str, str] = field(default_factory=dict)  # categorical annotation name -> label


def _default_opener(path: str | Path) -> Any:
    from lstmviz.recording import open_recording

    return open_recording(path)


def _nice_ceiling(value: float) -> float:
    """The smallest of 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 (times a power of ten) that is >= value."""
    if not np.isfinite(value) or value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0):
        candidate = step * 10.0**exponent
        if candidate >= value * (1 - 1e-9):
            return candidate
    return 10.0 ** (exponent + 1)


class Workspace(QObject):
    """Open recording, chosen tap, window of positions, value transform and hover."""

    #: the recording was opened (the Recording) or closed (None)
    recording_changed = Signal(object)
    tap_changed = Signal(str)
    #: start and width of the window of positions
    window_changed = Signal(int, int)
    item_changed = Signal(int)
    transform_changed = Signal(str)
    #: the units drawn in colour over the grey lines (a list of unit indices of the current tap)
    units_changed = Signal(list)
    #: a Hover, or None when the pointer left the data
    hover_changed = Signal(object)
    #: emitted once after any change of what the window shows
    view_changed = Signal()

    def __init__(self, opener: Callable[[str | Path], Any] | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self._opener = opener or _default_opener
        self.recording: Any = None
        self.tap: str | None = None
        self.window_start = 0
        self.window_width = DEFAULT_WINDOW_WIDTH
        self.item = 0
        self.transform = "raw"
        self.highlighted_units: list[int] = []
        self.hover: Hover | None = None
        self._hover_request: tuple[float | None, float | None] | None = None
        self._values_key: tuple | None = None
        self._values: np.ndarray | None = None

    # ------------------------------------------------------------------ opening and closing
    def open(self, path: str | Path) -> None:
        """Open a recording. On failure the exception propagates and the open recording stays."""
        recording = self._opener(path)
        taps = self._position_taps(recording)
        previous = self.recording
        self.recording = recording
        self.tap = self._default_tap(taps)
        self.window_start = 0
        self.window_width = int(np.clip(DEFAULT_WINDOW_WIDTH, MIN_WINDOW_WIDTH, MAX_WINDOW_WIDTH))
        self.item = 0
        self.hover = None
        self.highlighted_units = []
        self._values_key = self._values = None
        if previous is not None:
            previous.close()
        self.recording_changed.emit(recording)
        self.tap_changed.emit(self.tap or "")
        self.window_changed.emit(self.window_start, self.window_width)
        self.item_changed.emit(self.item)
        self.hover_changed.emit(None)
        self.view_changed.emit()

    def close(self) -> None:
        """Close the open recording, if any."""
        if self.recording is None:
            return
        recording, self.recording = self.recording, None
        self.tap = None
        self.hover = None
        self._values_key = self._values = None
        recording.close()
        self.recording_changed.emit(None)
        self.hover_changed.emit(None)
        self.view_changed.emit()

    @staticmethod
    def _position_taps(recording) -> list[str]:
        return [name for name, info in recording.taps.items() if info.axis == "positions"]

    @staticmethod
    def _default_tap(taps: list[str]) -> str | None:
        """The first cell-state tap (what LSTMVis shows), else the first tap."""
        for name in taps:
            if name.rsplit("/", 1)[-1] == "c":
                return name
        return taps[0] if taps else None

    # ------------------------------------------------------------------ settings
    @property
    def taps(self) -> list[str]:
        """The taps over the main position axis, in file order."""
        return [] if self.recording is None else self._position_taps(self.recording)

    @property
    def n_positions(self) -> int:
        return 0 if self.recording is None else int(self.recording.n_positions)

    @property
    def n_items(self) -> int:
        return 0 if self.recording is None else int(self.recording.n_items)

    def set_tap(self, name: str) -> None:
        if self.recording is None or name == self.tap:
            return
        if name not in self.taps:
            raise KeyError(f"no tap {name!r} over positions in {self.recording.path}; taps: {self.taps}")
        self.tap = name
        units = self.recording.taps[name].units
        if any(u >= units for u in self.highlighted_units):
            self.highlighted_units = []
            self.units_changed.emit([])
        self.tap_changed.emit(name)
        self._refresh_hover()
        self.view_changed.emit()

    def set_highlighted_units(self, units) -> None:
        """Draw these units of the current tap in colour; ValueError names units the tap lacks."""
        units = sorted({int(u) for u in units})
        if self.recording is not None and self.tap is not None:
            n = self.recording.taps[self.tap].units
            bad = [u for u in units if not 0 <= u < n]
            if bad:
                raise ValueError(f"tap {self.tap} has units 0-{n - 1}; no unit {', '.join(map(str, bad))}")
        if units == self.highlighted_units:
            return
        self.highlighted_units = units
        self.units_changed.emit(units)
        self.view_changed.emit()

    def set_transform(self, name: str) -> None:
        if name not in TRANSFORMS:
            raise ValueError(f"unknown transform {name!r}; expected one of {TRANSFORMS}")
        if name == self.transform:
            return
        self.transform = name
        self.transform_changed.emit(name)
        self._refresh_hover()
        self.view_changed.emit()

    def set_window_width(self, width: int) -> None:
        """Show ``width`` positions (clamped to the allowed range); the left edge stays if it can."""
        width = int(np.clip(int(width), MIN_WINDOW_WIDTH, MAX_WINDOW_WIDTH))
        if width == self.window_width:
            return
        self.window_width = width
        self._move_window(min(self.window_start, self.max_window_start()))

    def set_window_start(self, start: int) -> None:
        """Move the window's left edge to a position of the corpus (clamped to the corpus)."""
        if self.recording is None:
            return
        start = int(np.clip(int(start), 0, self.max_window_start()))
        if start != self.window_start:
            self._move_window(start)

    def _move_window(self, start: int) -> None:
        self.window_start = start
        self.window_changed.emit(start, self.window_width)
        if self.recording is not None:
            item = int(self.recording.item_of(start))
            if item != self.item:
                self.item = item
                self.item_changed.emit(item)
        self._refresh_hover()
        self.view_changed.emit()

    def max_window_start(self) -> int:
        """The last left edge: the window ends at the corpus end, or starts on the last item if later."""
        if self.recording is None or self.n_positions == 0:
            return 0
        last_item_start = int(self.recording.item_range(self.n_items - 1)[0]) if self.n_items else 0
        return max(0, self.n_positions - self.window_width, last_item_start)

    def scroll_by(self, positions: int) -> None:
        self.set_window_start(self.window_start + int(positions))

    def go_to_item(self, item: int) -> None:
        """Put the window's left edge on the first position of an item (clamped to the items)."""
        if self.recording is None or self.n_items == 0:
            return
        item = int(np.clip(int(item), 0, self.n_items - 1))
        start, _ = self.recording.item_range(item)
        self.set_window_start(int(start))

    def go_to_position(self, position: int) -> None:
        """Show a position with a little left context, without leaving its item."""
        if self.recording is None:
            return
        position = int(np.clip(int(position), 0, max(0, self.n_positions - 1)))
        item_start, _ = self.recording.item_range(int(self.recording.item_of(position)))
        self.set_window_start(max(int(item_start), position - JUMP_CONTEXT))

    # ------------------------------------------------------------------ what the window shows
    def window_range(self) -> tuple[int, int]:
        """Positions ``[start, stop)`` of the window that hold data (stop is clipped at the corpus end)."""
        start = self.window_start
        return start, min(start + self.window_width, self.n_positions)

    def tap_info(self):
        return None if self.recording is None or self.tap is None else self.recording.taps[self.tap]

    def values(self) -> np.ndarray:
        """The chosen tap over the window, transformed: float32 ``[positions, units]``."""
        if self.recording is None or self.tap is None:
            return np.zeros((0, 0), np.float32)
        start, stop = self.window_range()
        key = (id(self.recording), self.tap, start, stop, self.transform)
        if key != self._values_key:
            values = np.asarray(self.recording.states(self.tap, start, stop), dtype=np.float32)
            if self.transform == "tanh":
                values = np.tanh(values)
            self._values_key, self._values = key, values
        return self._values

    def value_range(self) -> tuple[float, float]:
        """The y range to show: symmetric ±max|v| when any value is negative, else 0..max (rounded up)."""
        values = self.values()
        if values.size == 0:
            return (-1.0, 1.0)
        if self.transform == "tanh":
            return (-1.0, 1.0) if float(np.nanmin(values)) < 0 else (0.0, 1.0)
        top = _nice_ceiling(float(np.nanmax(np.abs(values))))
        return (-top, top) if float(np.nanmin(values)) < 0 else (0.0, top)

    def tokens(self) -> list[str]:
        """The token strings of the window's positions."""
        if self.recording is None:
            return []
        return list(self.recording.tokens(*self.window_range()))

    def item_starts(self) -> list[int]:
        """First positions of items that begin inside the window, after its left edge."""
        if self.recording is None:
            return []
        start, stop = self.window_start, self.window_start + self.window_width
        offsets = np.asarray(self.recording.item_offsets)
        inside = offsets[(offsets > start) & (offsets < min(stop, self.n_positions))]
        return [int(p) for p in inside]

    def item_range(self, item: int | None = None) -> tuple[int, int]:
        if self.recording is None:
            return (0, 0)
        start, stop = self.recording.item_range(self.item if item is None else item)
        return int(start), int(stop)

    def categorical_tracks(self) -> list:
        """Categorical per-position annotations, shown as colour tracks under the tokens."""
        if self.recording is None:
            return []
        return [
            info
            for info in self.recording.annotations.values()
            if info.kind == "categorical" and info.level == "position"
        ]

    def annotation_window(self, name: str) -> np.ndarray:
        """A per-position annotation over the window's positions."""
        if self.recording is None:
            return np.zeros(0)
        return np.asarray(self.recording.annotation(name, *self.window_range()))

    # ------------------------------------------------------------------ hover
    def set_hover(self, position: float | None, value: float | None = None) -> None:
        """Report the pointer at ``position`` (x) and ``value`` (y; None when not over the plot)."""
        self._hover_request = (position, value)
        hover = self._make_hover(position, value)
        if hover != self.hover:
            self.hover = hover
            self.hover_changed.emit(hover)

    def _refresh_hover(self) -> None:
        if self._hover_request is not None and self.hover is not None:
            self.set_hover(*self._hover_request)

    def _make_hover(self, position: float | None, value: float | None) -> Hover | None:
        if self.recording is None or position is None:
            return None
        start, stop = self.window_range()
        index = round(position) - start
        if not 0 <= index < stop - start:
            return None
        pos = start + index
        unit = unit_value = None
        values = self.values()
        if value is not None and values.shape[1] > 0:
            column = values[index]
            unit = int(np.nanargmin(np.abs(column - value)))
            unit_value = float(column[unit])
        labels = {}
        for info in self.categorical_tracks():
            label_id = int(self.recording.annotation(info.name, pos, pos + 1)[0])
            names = info.labels or []
            labels[info.name] = names[label_id] if 0 <= label_id < len(names) else ("—" if label_id < 0 else str(label_id))
        return Hover(
            position=pos,
            token=self.recording.tokens(pos, pos + 1)[0],
            item=int(self.recording.item_of(pos)),
            unit=unit,
            value=unit_value,
            labels=labels,
        )
