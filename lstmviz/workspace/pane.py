"""A pane: one tap of a recording shown over the workspace's window, with its own value transform and
hypothesis (Qt-free; the Qt adapter is ``lstmviz.qt.pane``).

Every pane of a workspace shows the same window of positions, of the recording it names
(``recording_id``, one of the workspace's open recordings). A pane holds what LSTMVis's select view
holds for its one source: the tap, how its values are transformed (raw, tanh, z-score per unit), the
threshold, the brushed range, the off-padding around it, the tolerance and direction of the rule, and
the units the user added or removed by hand. From these it keeps the current ``selection`` and the
``ranking`` of every candidate unit up to date; both come from ``lstmviz.analysis.selection`` (fast
enough to run on every mouse move: they only look at the brush and its padding).

The pane never draws. Views read ``values()``, ``selection``, ``active_counts()`` and redraw on
``events.changed``. Setters raise ``ValueError`` / ``KeyError`` with a sentence for a bad value.
"""

from __future__ import annotations

import numpy as np

from lstmviz.analysis.selection import active_counts, rank_candidates, select_units
from lstmviz.analysis.selection_types import (
    DIRECTIONS,
    CandidateRanking,
    Selection,
    SelectionSpec,
)
from lstmviz.workspace.events import EventGroup
from lstmviz.workspace.state import TRANSFORMS, PaneState

TRANSFORM_NAMES = {"raw": "raw values", "tanh": "tanh of values", "zscore": "z-score per unit"}
DEFAULT_THRESHOLD = 0.3


def transform_values(values: np.ndarray, transform: str, stats=None) -> np.ndarray:
    """``values`` (float ``[n, units]``) shown under ``transform``; raw needs no statistics."""
    if transform == "raw":
        return np.asarray(values, dtype=np.float32)
    from lstmviz.analysis.transforms import apply_transform

    return apply_transform(values, transform, stats)


class PaneModel:
    """One tap of a recording over the window, with its own transform, threshold, brush and selection.

    Events (``events``): ``changed()`` anything the pane shows changed (settings, selection, values);
    ``selection_changed(selection)`` a Selection, or None without brush and added units;
    ``tap_changed(tap)``; ``transform_changed(name)``; ``emphasis_changed(unit)`` a unit to draw
    emphasised (hovered in a list), or None.
    """

    def __init__(self, workspace, tap: str, *, recording_id: str | None = None,
                 transform: str = "raw", threshold: float = DEFAULT_THRESHOLD, transform_follows_tap: bool = False):
        self.events = EventGroup("changed", "selection_changed", "tap_changed", "transform_changed",
                                 "emphasis_changed")
        #: the WorkspaceModel it belongs to (its recordings, window and statistics)
        self.workspace = workspace
        #: the recording it shows (an id of ``workspace.recordings``)
        self.recording_id = workspace.current if recording_id is None else recording_id
        if transform not in TRANSFORMS:
            raise ValueError(f"unknown transform {transform!r}; choose one of {', '.join(TRANSFORMS)}")
        self._check_tap(tap)
        self.tap = tap
        self.transform = transform
        #: while the transform is the default one (nobody chose it), another tap brings its own default
        #: (tanh for a cell state, raw for a hidden state: ``Workspace.default_transform``)
        self.transform_follows_tap = bool(transform_follows_tap)
        self.threshold = float(threshold)
        self.brush: tuple[int, int] | None = None
        self.pad_left = 1
        self.pad_right = 0
        self.tolerance = 1.0
        self.direction = "positive"
        self.added: tuple[tuple[int, int], ...] = ()
        self.removed: tuple[tuple[int, int], ...] = ()
        self.selection: Selection | None = None
        self.ranking: CandidateRanking | None = None
        #: why there is no selection although a brush is set (a sentence), else None
        self.problem: str | None = None
        self.emphasized: int | None = None
        self._window_key: tuple | None = None
        self._window_values: np.ndarray | None = None
        self._block_key: tuple | None = None
        self._block_values: np.ndarray | None = None
        self._counts_key: tuple | None = None
        self._counts: np.ndarray | None = None
        self._margins_of = None
        self._margins: dict = {}
        if transform == "zscore":
            self.stats()  # start computing the statistics now

    # ------------------------------------------------------------------ what the pane shows
    @property
    def recording(self):
        return self.workspace.recordings.get(self.recording_id)

    @property
    def n_units(self) -> int:
        return int(self.recording.taps[self.tap].units)

    def tap_info(self):
        return self.recording.taps[self.tap]

    def stats(self):
        """The tap's per-unit statistics (``UnitStats``), or None while they are computed."""
        return self.workspace.tap_stats(self.recording_id, self.tap)

    @property
    def effective_transform(self) -> str:
        """The transform the values are shown in: z-score shows raw values until its statistics exist."""
        if self.transform == "zscore" and self.stats() is None:
            return "raw"
        return self.transform

    def _transformed(self, start: int, stop: int) -> np.ndarray:
        transform = self.effective_transform
        raw = self.recording.states(self.tap, start, stop)
        return transform_values(raw, transform, self.stats() if transform == "zscore" else None)

    def values(self) -> np.ndarray:
        """The tap over the workspace's window, transformed: float32 ``[positions, units]``."""
        if self.recording is None:
            return np.zeros((0, 0), np.float32)
        start, stop = self.workspace.window_range()
        key = (id(self.recording), self.tap, start, stop, self.effective_transform)
        if key != self._window_key:
            self._window_values = self._transformed(start, stop)
            self._window_key = key
        return self._window_values

    def value_range(self) -> tuple[float, float]:
        """The y range to show: symmetric when any value is negative, else from 0 (rounded up)."""
        values = self.values()
        if values.size == 0 or not np.isfinite(values).any():
            return (-1.0, 1.0)
        negative = float(np.nanmin(values)) < 0
        if self.effective_transform == "tanh":
            return (-1.0, 1.0) if negative else (0.0, 1.0)
        top = nice_ceiling(max(float(np.nanmax(np.abs(values))), abs(self.threshold) * 1.05))
        return (-top, top) if negative or self.direction != "positive" else (0.0, top)

    def active_counts(self) -> np.ndarray:
        """int32 per window position: how many selected units are on there (zeros without a selection)."""
        values = self.values()
        selection = self.selection
        if selection is None or len(selection) == 0:
            return np.zeros(values.shape[0], np.int32)
        key = (id(values), id(selection), self.threshold)
        if key != self._counts_key:
            self._counts = active_counts(values, selection.units, selection.signs, self.threshold)
            self._counts_key = key
        return self._counts

    def margins(self) -> dict[tuple[int, int], tuple[float, float, float]]:
        """(unit, sign) -> (margin, on fraction of the range, on fraction of the padding) from the ranking."""
        ranking = self.ranking
        if ranking is None:
            return {}
        if self._margins_of is not ranking:
            self._margins = {
                (u, s): (m, a, b)
                for u, s, m, a, b in zip(ranking.units.tolist(), ranking.signs.tolist(), ranking.margin.tolist(),
                                         ranking.on_fraction_range.tolist(), ranking.on_fraction_padding.tolist())
            }
            self._margins_of = ranking
        return self._margins

    def spec(self) -> SelectionSpec | None:
        """What this pane asks for, or None without a brush."""
        if self.brush is None:
            return None
        return SelectionSpec(self.brush[0], self.brush[1], self.threshold, self.pad_left, self.pad_right,
                             self.tolerance, self.direction, self.added, self.removed)

    # ------------------------------------------------------------------ setters
    def _check_tap(self, tap: str) -> None:
        taps = self.workspace.position_taps(self.recording_id)
        if tap not in taps:
            raise KeyError(f"no tap {tap!r} over positions in this recording; taps: {', '.join(taps)}")

    def set_tap(self, tap: str) -> None:
        """Show another tap; the brush and threshold stay, hand-picked units are dropped (they name units of the old tap)."""
        if tap == self.tap:
            return
        self._check_tap(tap)
        self.tap = tap
        self.added = self.removed = ()
        self.emphasized = None
        self.events.tap_changed.emit(tap)
        if self.transform_follows_tap:
            transform = self.workspace.default_transform(tap, self.recording_id)
            if transform != self.transform:
                self.transform = transform
                self.events.transform_changed.emit(transform)
        if self.transform == "zscore":
            self.workspace.tap_stats(self.recording_id, tap, retry=True)
        self._update()

    def set_transform(self, transform: str) -> None:
        """Show the values under ``transform``; from then on it stays when the tap changes."""
        if transform not in TRANSFORMS:
            raise ValueError(f"unknown transform {transform!r}; choose one of {', '.join(TRANSFORMS)}")
        self.transform_follows_tap = False
        if transform == self.transform:
            return
        self.transform = transform
        self.events.transform_changed.emit(transform)
        if transform == "zscore":
            self.workspace.tap_stats(self.recording_id, self.tap, retry=True)
        self._update()

    def set_threshold(self, threshold: float) -> None:
        threshold = float(threshold)
        if not np.isfinite(threshold):
            raise ValueError(f"the threshold must be a finite number, got {threshold}")
        if threshold == self.threshold:
            return
        self.threshold = threshold
        self._update()

    def set_brush(self, start: int, stop: int) -> None:
        """Brush positions ``[start, stop)``; they must lie inside one item of the recording."""
        brush = self._checked_brush(start, stop)
        if brush == self.brush:
            return
        self.brush = brush
        self._update()

    def _checked_brush(self, start: int, stop: int) -> tuple[int, int]:
        start, stop = int(start), int(stop)
        n = int(self.recording.n_positions)
        if not 0 <= start < stop <= n:
            raise ValueError(f"the brush [{start}, {stop}) is not a range of positions 0-{n - 1}")
        _, item_stop = (int(p) for p in self.recording.item_range(int(self.recording.item_of(start))))
        if stop > item_stop:
            raise ValueError(f"the brush [{start}, {stop}) runs past the end of its item (position {item_stop}); "
                             "brush inside one item")
        return start, stop

    def clear_brush(self) -> None:
        if self.brush is None:
            return
        self.brush = None
        self._update()

    def clear_selection(self) -> None:
        """Drop the brush and every unit added or removed by hand."""
        if self.brush is None and not self.added and not self.removed:
            return
        self.brush = None
        self.added = self.removed = ()
        self._update()

    def set_padding(self, left: int, right: int) -> None:
        """Positions before / after the brush where selected units must be off (0 = no constraint)."""
        left, right = int(left), int(right)
        if left < 0 or right < 0:
            raise ValueError("off-padding must be >= 0 positions")
        if (left, right) == (self.pad_left, self.pad_right):
            return
        self.pad_left, self.pad_right = left, right
        self._update()

    def set_tolerance(self, tolerance: float) -> None:
        """The fraction of brushed positions at which a unit must be on, in (0, 1]."""
        tolerance = float(tolerance)
        if not 0.0 < tolerance <= 1.0:
            raise ValueError(f"the tolerance must be in (0, 1], got {tolerance}")
        if tolerance == self.tolerance:
            return
        self.tolerance = tolerance
        self._update()

    def set_direction(self, direction: str) -> None:
        if direction not in DIRECTIONS:
            raise ValueError(f"unknown direction {direction!r}; choose one of {', '.join(DIRECTIONS)}")
        if direction == self.direction:
            return
        self.direction = direction
        self._update()

    def _check_unit(self, unit: int, sign: int) -> tuple[int, int]:
        unit, sign = int(unit), int(sign)
        if sign not in (1, -1):
            raise ValueError(f"a unit's sign is +1 or -1, got {sign}")
        if not 0 <= unit < self.n_units:
            raise ValueError(f"tap {self.tap} has units 0-{self.n_units - 1}; no unit {unit}")
        return unit, sign

    def add_unit(self, unit: int, sign: int = 1) -> None:
        """Put ``(unit, sign)`` into the selection whatever the rule says (until removed)."""
        pair = self._check_unit(unit, sign)
        removed = tuple(p for p in self.removed if p != pair)
        added = self.added if pair in self.added else (*self.added, pair)
        if (added, removed) == (self.added, self.removed):
            return
        self.added, self.removed = added, removed
        self._update()

    def remove_unit(self, unit: int, sign: int = 1) -> None:
        """Keep ``(unit, sign)`` out of the selection whatever the rule says (until added)."""
        pair = self._check_unit(unit, sign)
        added = tuple(p for p in self.added if p != pair)
        removed = self.removed if pair in self.removed else (*self.removed, pair)
        if (added, removed) == (self.added, self.removed):
            return
        self.added, self.removed = added, removed
        self._update()

    def set_emphasized(self, unit: int | None) -> None:
        """Draw one unit emphasised (e.g. while it is hovered in a list); None for none."""
        unit = None if unit is None else int(unit)
        if unit != self.emphasized:
            self.emphasized = unit
            self.events.emphasis_changed.emit(unit)

    # ------------------------------------------------------------------ saved state
    def state(self) -> PaneState:
        return PaneState(tap=self.tap, transform=self.transform, threshold=self.threshold, brush=self.brush,
                         pad_left=self.pad_left, pad_right=self.pad_right, tolerance=self.tolerance,
                         direction=self.direction, added=self.added, removed=self.removed,
                         recording=self.recording_id)

    def apply_state(self, state: PaneState) -> None:
        """Take every setting of ``state`` at once (one re-selection); ValueError/KeyError for a bad one
        (then nothing changes)."""
        self._check_tap(state.tap)
        if state.transform not in TRANSFORMS:
            raise ValueError(f"unknown transform {state.transform!r}; choose one of {', '.join(TRANSFORMS)}")
        if state.direction not in DIRECTIONS:
            raise ValueError(f"unknown direction {state.direction!r}; choose one of {', '.join(DIRECTIONS)}")
        old_tap, old_transform = self.tap, self.transform
        self.tap = state.tap  # units are checked against the new tap
        try:
            added = tuple(self._check_unit(u, s) for u, s in state.added)
            removed = tuple(self._check_unit(u, s) for u, s in state.removed)
            brush = None if state.brush is None else self._checked_brush(*state.brush)
            SelectionSpec(0, 1, float(state.threshold), int(state.pad_left), int(state.pad_right),
                          float(state.tolerance), state.direction)  # the same checks as a selection
        except (ValueError, KeyError):
            self.tap = old_tap
            raise
        self.transform, self.brush = state.transform, brush
        self.transform_follows_tap = False  # a saved transform was chosen
        self.threshold = float(state.threshold)
        self.pad_left, self.pad_right = int(state.pad_left), int(state.pad_right)
        self.tolerance, self.direction = float(state.tolerance), state.direction
        self.added, self.removed = added, removed
        self.emphasized = None
        if self.tap != old_tap:
            self.events.tap_changed.emit(self.tap)
        if self.transform != old_transform:
            self.events.transform_changed.emit(self.transform)
        if self.transform == "zscore":
            self.stats()
        self._update()

    # ------------------------------------------------------------------ re-selection
    def stats_failed(self, tap: str) -> None:
        """The statistics of ``tap`` could not be computed: a z-scored pane on it goes back to raw values."""
        if tap == self.tap and self.transform == "zscore":
            self.set_transform("raw")

    def stats_ready(self, tap: str) -> None:
        """The workspace computed statistics of ``tap``: a z-scored pane on it redraws in z-scores."""
        if tap == self.tap and self.transform == "zscore":
            self._update()

    def _update(self) -> None:
        self._reselect()
        self.events.changed.emit()
        self.events.selection_changed.emit(self.selection)

    def _reselect(self) -> None:
        self.problem = None
        spec = self.spec()
        if self.recording is None:
            self.selection = self.ranking = None
            return
        if spec is None:
            self.ranking = None
            self.selection = _manual_selection(self.added) if self.added else None
            return
        item = int(self.recording.item_of(spec.brush_start))
        item_start, item_stop = (int(p) for p in self.recording.item_range(item))
        low = max(item_start, spec.brush_start - spec.pad_left)
        high = min(item_stop, spec.brush_stop + spec.pad_right)
        transform = self.effective_transform
        key = (id(self.recording), self.tap, low, high, transform, id(self.stats()) if transform == "zscore" else 0)
        if key != self._block_key:
            self._block_values = self._transformed(low, high)
            self._block_key = key
        try:
            self.selection = select_units(self._block_values, low, spec, item_start=item_start, item_stop=item_stop)
            self.ranking = rank_candidates(self._block_values, low, spec, item_start=item_start, item_stop=item_stop)
        except ValueError as exc:
            self.selection = self.ranking = None
            self.problem = str(exc)


def _manual_selection(pairs) -> Selection:
    pairs = sorted(set(pairs), key=lambda p: (p[0], -p[1]))
    return Selection(np.array([u for u, _ in pairs], np.int64), np.array([s for _, s in pairs], np.int8), None)


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8 (times a power of ten) that is >= value."""
    import math

    if not np.isfinite(value) or value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    for step in (1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0):
        candidate = step * 10.0**exponent
        if candidate >= value * (1 - 1e-9):
            return candidate
    return 10.0 ** (exponent + 1)
