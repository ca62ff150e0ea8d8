"""The workspace: the one evented model that holds the state of the GUI.

Views never keep state of their own: they read what to draw from the workspace and ask it to change
(``set_window_start``, ``go_to_item``, a pane's ``set_brush`` ...). The workspace emits one specific
signal per kind of change (for controls that mirror one setting) and ``view_changed`` once after every
change of what the window shows (for views that redraw). Changes inside one pane (brush, threshold)
are signalled by that pane (``Pane.changed``), not by ``view_changed``.

The window is a range of positions of the whole corpus, ``[window_start, window_start + window_width)``,
shared by every pane. It may span several items (views mark the boundaries). Its left edge goes up to
the start of the last item, so a window on a short last item runs past the corpus end (that part is
empty). The *current item* is always the item that holds ``window_start``, so ``go_to_item(i)`` puts
the window's left edge on the first position of item ``i``.

Panes (``lstmviz.qt.pane_model.Pane``) are stacked views of the same window, each with its own tap,
transform and selection; one of them is *active* (lists, exports and the match panel follow it).
``tap`` / ``transform`` / ``set_tap`` / ``set_transform`` / ``values`` act on the active pane.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QObject, Qt, Signal

from lstmviz.analysis.workspace_file import MAX_PANES, MatchSettings, ProbeState, WorkspaceState
from lstmviz.qt.guarded_recording import GuardedRecording
from lstmviz.qt.hover import Hover, make_hover
from lstmviz.qt.pane_defaults import BOUNDED_SIGNALS, default_tap, default_transform
from lstmviz.qt.pane_model import TRANSFORMS, Pane
from lstmviz.qt.stats_cache import TapStatsCache
from lstmviz.qt.workers import TaskRunner

__all__ = ["TRANSFORMS", "Hover", "Workspace"]

MIN_WINDOW_WIDTH = 10
MAX_WINDOW_WIDTH = 400
DEFAULT_WINDOW_WIDTH = 100
#: Positions of left context kept before a position reached with ``go_to_position`` (as in LSTMVis).
JUMP_CONTEXT = 3


def _default_opener(path: str | Path) -> Any:
    from lstmviz.recording import open_recording

    return open_recording(path)


class Workspace(QObject):
    """Open recording, window of positions, panes (each a tap with its selection) and hover."""

    #: the recording was opened (the Recording) or closed (None)
    recording_changed = Signal(object)
    #: the active pane's tap / transform changed (also when another pane becomes active)
    tap_changed = Signal(str)
    transform_changed = Signal(str)
    #: start and width of the window of positions
    window_changed = Signal(int, int)
    item_changed = Signal(int)
    #: the units drawn in colour over the grey lines of the active pane (View > Highlight Units)
    units_changed = Signal(list)
    #: a Hover, or None when the pointer left the data
    hover_changed = Signal(object)
    #: emitted once after any change of what the window shows (not for changes inside one pane)
    view_changed = Signal()
    #: panes were added or removed
    panes_changed = Signal()
    #: another pane became active (the Pane)
    active_pane_changed = Signal(object)
    #: the active pane's selection changed, or another pane became active (a Selection or None)
    active_selection_changed = Signal(object)
    #: the names of the annotation tracks shown, in order
    visible_annotations_changed = Signal(list)
    #: whether annotation colours are faded where few selected units are on
    mask_annotations_changed = Signal(bool)
    #: a MatchSettings
    match_settings_changed = Signal(object)
    #: the annotation the aggregate view summarises (a name or None)
    aggregate_annotation_changed = Signal(object)
    #: the Probes panel's settings and whether it shows a result (a ProbeState, or None)
    probe_state_changed = Signal(object)
    #: a problem found in the background: title, message (the window shows it)
    error_occurred = Signal(str, str)
    #: a read of the open recording failed on the GUI thread (the sentence); queued to ``error_occurred``
    _read_failure = Signal(str)

    def __init__(self, opener: Callable[[str | Path], Any] | None = None, parent: QObject | None = None):
        super().__init__(parent)
        self._opener = opener or _default_opener
        self.recording: Any = None
        self.window_start = 0
        self.window_width = DEFAULT_WINDOW_WIDTH
        self.item = 0
        self.panes: list[Pane] = []
        self._active = 0
        self.highlighted_units: list[int] = []
        self.hover: Hover | None = None
        self.visible_annotations: list[str] = []
        self.mask_annotations = True
        self.match_settings = MatchSettings()
        self.aggregate_annotation: str | None = None
        #: the Probes panel's settings (kept by the panel; None until it has a recording to probe, and
        #: again after another recording is opened)
        self.probe_state: ProbeState | None = None
        #: the worker threads every view shares for long computations
        self.runner = TaskRunner(self)
        self.tap_stats = TapStatsCache(self.runner, self)
        self.tap_stats.ready.connect(self._stats_ready)
        self.tap_stats.failed.connect(self._stats_failed)
        self._hover_request: tuple | None = None
        self._tokens_key: tuple | None = None
        self._tokens: list[str] = []
        self._annotation_cache: dict = {}
        self._announced_reads: set[str] = set()
        # queued: a read fails inside a paint or a slot, where a dialog must not open
        self._read_failure.connect(self._announce_read_failure, Qt.ConnectionType.QueuedConnection)

    # ------------------------------------------------------------------ opening and closing
    def open(self, path: str | Path) -> None:
        """Open a recording with one pane. On failure the exception propagates and the open recording stays.

        The recording is held as a ``GuardedRecording``: a read that fails later (a damaged chunk) is
        stated once per kind (``error_occurred``) and in the panes (``read_problems``), never raised
        into a view.
        """
        recording = GuardedRecording(self._opener(path), self._read_failed)
        taps = self._position_taps(recording)
        previous = self.recording
        self.recording = recording
        self.tap_stats.set_recording(recording)
        self.window_start = 0
        self.window_width = int(np.clip(DEFAULT_WINDOW_WIDTH, MIN_WINDOW_WIDTH, MAX_WINDOW_WIDTH))
        self.item = 0
        self.hover = None
        self.highlighted_units = []
        self.visible_annotations = [info.name for info in self.position_annotations()]
        self.aggregate_annotation = None
        self.probe_state = None  # recording-specific; the Probes panel sets it again on recording_changed
        self._tokens_key, self._annotation_cache = None, {}
        self._announced_reads = set()
        self._drop_panes()
        if taps:
            tap = self._default_tap(taps)
            self._insert_pane(Pane(self, tap, transform=self.default_transform(tap), transform_follows_tap=True,
                                   parent=self))
        if previous is not None:
            previous.close()
        self.recording_changed.emit(recording)
        self.panes_changed.emit()
        self._active_changed()
        self.window_changed.emit(self.window_start, self.window_width)
        self.item_changed.emit(self.item)
        self.visible_annotations_changed.emit(list(self.visible_annotations))
        self.aggregate_annotation_changed.emit(None)
        self.hover_changed.emit(None)
        self.view_changed.emit()

    def close(self) -> None:
        """Close the open recording, if any."""
        if self.recording is None:
            return
        recording, self.recording = self.recording, None
        self.tap_stats.set_recording(None)
        self.probe_state = None
        self.hover = None
        self._drop_panes()
        recording.close()
        self.recording_changed.emit(None)
        self.panes_changed.emit()
        self._active_changed()
        self.hover_changed.emit(None)
        self.view_changed.emit()

    def shutdown(self) -> None:
        """Stop the background work (call before the application quits)."""
        self.runner.shutdown()

    def notify(self, title: str, message: str) -> None:
        """State a problem to the user (``error_occurred``: the window shows it): the one notifications
        path of views and panels (``lstmviz.qt.errors.report_exception`` words exceptions for it)."""
        self.error_occurred.emit(title, message)

    @staticmethod
    def _position_taps(recording) -> list[str]:
        return [name for name, info in recording.taps.items() if info.axis == "positions"]

    def _default_tap(self, taps: list[str], taken: tuple[str, ...] = ()) -> str | None:
        """The tap that holds the state, preferring one not shown yet (``pane_defaults.default_tap``)."""
        return default_tap([self.recording.taps[name] for name in taps], taken)

    def default_transform(self, tap: str) -> str:
        """How a pane shows ``tap`` until a transform is chosen: tanh for a cell state, raw for bounded
        signals, and for a signal of unknown range decided from the window's values (``pane_defaults``;
        raw when they cannot be read: the pane then says why when it draws)."""
        from lstmviz.recording import RecordingError

        info = self.recording.taps[tap]
        sample = None
        if info.signal not in BOUNDED_SIGNALS | {"c"}:
            start = min(self.window_start, max(0, self.n_positions - 1))
            try:
                sample = np.asarray(self.recording.states(tap, start, min(self.n_positions, start + self.window_width)))
            except (RecordingError, OSError, ValueError):
                sample = None
        return default_transform(info, sample)

    # ------------------------------------------------------------------ panes
    @property
    def active_pane(self) -> Pane | None:
        return self.panes[self._active] if self.panes else None

    @property
    def active_index(self) -> int:
        return self._active

    def add_pane(self, tap: str | None = None) -> Pane | None:
        """Add a pane under the others (on ``tap``, else the state tap not shown yet) and make it active;
        it takes the active pane's transform and threshold.

        None (and ``error_occurred`` says why) when the recording has no tap over positions or the
        window already shows ``MAX_PANES`` panes (the most a workspace file holds).
        """
        if self.recording is None:
            raise ValueError("open a recording before adding a pane")
        if not self.taps or len(self.panes) >= MAX_PANES:
            self.error_occurred.emit("Cannot add a pane", "This recording has no tap over its positions to show."
                                     if not self.taps else f"The window shows at most {MAX_PANES} panes; "
                                     "remove one (View > Remove Active Pane) first.")
            return None
        if tap is None:
            tap = self._default_tap(self.taps, tuple(p.tap for p in self.panes))
        active = self.active_pane
        # the new pane shows its tap the way the active pane shows its own (transform and threshold)
        pane = Pane(self, tap, transform=active.transform if active is not None else self.default_transform(tap),
                    threshold=active.threshold if active is not None else 0.3,
                    transform_follows_tap=active is None or active.transform_follows_tap, parent=self)
        self._insert_pane(pane)
        self.panes_changed.emit()
        self.set_active_pane(len(self.panes) - 1)
        return pane

    def remove_pane(self, index: int) -> None:
        """Remove a pane; the last one stays (ValueError)."""
        if not 0 <= index < len(self.panes):
            raise IndexError(f"no pane {index}; there are {len(self.panes)}")
        if len(self.panes) == 1:
            raise ValueError("the last pane cannot be removed")
        was_active = self.active_pane
        pane = self.panes.pop(index)
        pane.deleteLater()
        self._active = self.panes.index(was_active) if was_active in self.panes else min(index, len(self.panes) - 1)
        self.panes_changed.emit()
        if was_active is pane:
            self._active_changed()

    def set_active_pane(self, index: int) -> None:
        if not 0 <= index < len(self.panes):
            raise IndexError(f"no pane {index}; there are {len(self.panes)}")
        if index == self._active:
            return
        self._active = index
        self._active_changed()

    def replace_panes(self, panes: list[Pane], active: int = 0) -> None:
        """Show exactly ``panes`` (made for this workspace), ``active`` being the active one."""
        if not panes:
            raise ValueError("a workspace shows at least one pane")
        self._drop_panes()
        for pane in panes:
            pane.setParent(self)
            self._insert_pane(pane)
        self._active = int(min(max(active, 0), len(panes) - 1))
        self.panes_changed.emit()
        self._active_changed()

    def _insert_pane(self, pane: Pane) -> None:
        self.panes.append(pane)
        pane.tap_changed.connect(lambda tap, p=pane: self._pane_tap_changed(p, tap))
        pane.transform_changed.connect(lambda name, p=pane: self._pane_transform_changed(p, name))
        pane.selection_changed.connect(lambda selection, p=pane: self._pane_selection_changed(p, selection))

    def _drop_panes(self) -> None:
        for pane in self.panes:
            pane.deleteLater()
        self.panes = []
        self._active = 0

    def _active_changed(self) -> None:
        pane = self.active_pane
        self.active_pane_changed.emit(pane)
        self.tap_changed.emit(pane.tap if pane else "")
        self.transform_changed.emit(pane.transform if pane else "raw")
        self._check_highlighted_units()
        self.active_selection_changed.emit(pane.selection if pane else None)
        self._refresh_hover()
        self.view_changed.emit()

    def _pane_tap_changed(self, pane: Pane, tap: str) -> None:
        if pane is self.active_pane:
            self.tap_changed.emit(tap)
            self._check_highlighted_units()
            self._refresh_hover()
            self.view_changed.emit()

    def _pane_transform_changed(self, pane: Pane, name: str) -> None:
        if pane is self.active_pane:
            self.transform_changed.emit(name)
            self._refresh_hover()
            self.view_changed.emit()

    def _pane_selection_changed(self, pane: Pane, selection) -> None:
        if pane is self.active_pane:
            self.active_selection_changed.emit(selection)

    def _read_failed(self, key: str, sentence: str) -> None:
        if key not in self._announced_reads:  # once per tap / annotation / the tokens, not per scroll step
            self._announced_reads.add(key)
            self._read_failure.emit(sentence)

    def _announce_read_failure(self, sentence: str) -> None:
        self.error_occurred.emit("Cannot read part of the recording",
                                 f"{sentence}\n\nThe window shows blanks where it could not read; the rest of "
                                 "the recording can still be used.")

    def read_problems(self, tap: str | None = None) -> list[str]:
        """Why reads of the open recording failed, for the window as it is now: the tokens' and, with
        ``tap``, that tap's (each stays until the same kind of read succeeds)."""
        if self.recording is None:
            return []
        problems = getattr(self.recording, "problems", {})
        keys = ["tokens"] + ([f"tap:{tap}"] if tap is not None else [])
        return [problems[k] for k in keys if k in problems]

    def _stats_failed(self, tap: str, message: str) -> None:
        for pane in self.panes:
            pane.stats_failed(tap)
        self.error_occurred.emit("Cannot compute z-scores", message + " The pane shows raw values.")

    def _stats_ready(self, tap: str) -> None:
        for pane in self.panes:
            pane.stats_ready(tap)
        self._refresh_hover()

    def _check_highlighted_units(self) -> None:
        info = self.tap_info()
        if info is not None and any(u >= info.units for u in self.highlighted_units):
            self.highlighted_units = []
            self.units_changed.emit([])

    # ------------------------------------------------------------------ the active pane's settings
    @property
    def taps(self) -> list[str]:
        """The taps over the main position axis, in file order."""
        return [] if self.recording is None else self._position_taps(self.recording)

    @property
    def tap(self) -> str | None:
        pane = self.active_pane
        return None if pane is None else pane.tap

    @property
    def transform(self) -> str:
        pane = self.active_pane
        return "raw" if pane is None else pane.transform

    @property
    def n_positions(self) -> int:
        return 0 if self.recording is None else int(self.recording.n_positions)

    @property
    def n_items(self) -> int:
        return 0 if self.recording is None else int(self.recording.n_items)

    def set_tap(self, name: str) -> None:
        """Show tap ``name`` in the active pane."""
        if self.active_pane is not None:
            self.active_pane.set_tap(name)

    def set_transform(self, name: str) -> None:
        """Show the active pane's values under transform ``name`` (raw, tanh or zscore)."""
        if name not in TRANSFORMS:
            raise ValueError(f"unknown transform {name!r}; expected one of {TRANSFORMS}")
        if self.active_pane is not None:
            self.active_pane.set_transform(name)

    def set_highlighted_units(self, units) -> None:
        """Draw these units of the active pane's tap in colour; ValueError names units the tap lacks."""
        units = sorted({int(u) for u in units})
        info = self.tap_info()
        if info is not None:
            bad = [u for u in units if not 0 <= u < info.units]
            if bad:
                raise ValueError(f"tap {info.name} has units 0-{info.units - 1}; no unit {', '.join(map(str, bad))}")
        if units == self.highlighted_units:
            return
        self.highlighted_units = units
        self.units_changed.emit(units)
        self.view_changed.emit()

    def set_visible_annotations(self, names) -> None:
        """Show these position-level annotations as tracks, in this order; KeyError names unknown ones."""
        names = list(dict.fromkeys(str(n) for n in names))
        known = {info.name for info in self.position_annotations()}
        bad = [n for n in names if n not in known]
        if bad:
            raise KeyError(f"no per-position annotation {', '.join(map(repr, bad))}; there are {', '.join(sorted(known))}")
        if names == self.visible_annotations:
            return
        self.visible_annotations = names
        self.visible_annotations_changed.emit(list(names))
        self._refresh_hover()

    def set_mask_annotations(self, on: bool) -> None:
        on = bool(on)
        if on != self.mask_annotations:
            self.mask_annotations = on
            self.mask_annotations_changed.emit(on)

    def set_match_settings(self, settings: MatchSettings) -> None:
        if settings != self.match_settings:
            self.match_settings = settings
            self.match_settings_changed.emit(settings)

    def set_aggregate_annotation(self, name: str | None) -> None:
        if name != self.aggregate_annotation:
            self.aggregate_annotation = name
            self.aggregate_annotation_changed.emit(name)

    def set_probe_state(self, state: ProbeState | None) -> None:
        """The Probes panel's settings; the panel shows them, and runs the probes when ``state.shown``
        asks for a result it does not show."""
        if state != self.probe_state:
            self.probe_state = state
            self.probe_state_changed.emit(state)

    # ------------------------------------------------------------------ window
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

    def show_match(self, start: int, length: int) -> None:
        """Show a match (``JUMP_CONTEXT`` positions of left context) and brush it in the active pane.

        The active pane's off-padding stays. ValueError when the range is not inside one item.
        """
        start, length = int(start), int(length)
        self.go_to_position(start)
        if self.active_pane is not None:
            self.active_pane.set_brush(start, start + length)

    # ------------------------------------------------------------------ what the window shows
    def window_range(self) -> tuple[int, int]:
        """Positions ``[start, stop)`` of the window that hold data (stop is clipped at the corpus end)."""
        start = self.window_start
        return start, min(start + self.window_width, self.n_positions)

    def tap_info(self):
        pane = self.active_pane
        return None if self.recording is None or pane is None else self.recording.taps[pane.tap]

    def values(self) -> np.ndarray:
        """The active pane's tap over the window, transformed: float32 ``[positions, units]``."""
        pane = self.active_pane
        return np.zeros((0, 0), np.float32) if pane is None or self.recording is None else pane.values()

    def value_range(self) -> tuple[float, float]:
        """The active pane's y range (see ``Pane.value_range``)."""
        pane = self.active_pane
        return (-1.0, 1.0) if pane is None or self.recording is None else pane.value_range()

    def tokens(self) -> list[str]:
        """The token strings of the window's positions."""
        if self.recording is None:
            return []
        key = (id(self.recording), self.window_range())
        if key != self._tokens_key:
            self._tokens = list(self.recording.tokens(*self.window_range()))
            self._tokens_key = key
        return list(self._tokens)

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

    def position_annotations(self) -> list:
        """Every per-position annotation of the recording (categorical or numeric), in file order."""
        if self.recording is None:
            return []
        return [info for info in self.recording.annotations.values() if info.level == "position"]

    def annotation_tracks(self) -> list:
        """The annotations shown as tracks under the tokens, in the order of ``visible_annotations``."""
        if self.recording is None:
            return []
        return [self.recording.annotations[name] for name in self.visible_annotations]

    def categorical_tracks(self) -> list:
        """The visible categorical per-position annotations."""
        return [info for info in self.annotation_tracks() if info.kind == "categorical"]

    def annotation_window(self, name: str) -> np.ndarray:
        """A per-position annotation over the window's positions."""
        if self.recording is None:
            return np.zeros(0)
        key = (id(self.recording), name, self.window_range())
        if key not in self._annotation_cache:
            if len(self._annotation_cache) > 32:
                self._annotation_cache.clear()
            self._annotation_cache[key] = np.asarray(self.recording.annotation(name, *self.window_range()))
        return self._annotation_cache[key]

    # ------------------------------------------------------------------ saved workspaces
    def state(self) -> WorkspaceState:
        """Everything a workspace file restores (see ``lstmviz.analysis.workspace_file``)."""
        from lstmviz.qt.workspace_state import workspace_state

        return workspace_state(self)

    def restore(self, state: WorkspaceState, path: str | Path | None = None) -> list[str]:
        """Open ``state``'s recording (or ``path``) and restore what fits; returns a sentence per thing dropped."""
        from lstmviz.qt.workspace_state import restore_workspace

        return restore_workspace(self, state, path)

    # ------------------------------------------------------------------ hover
    def set_hover(self, position: float | None, value: float | None = None, pane: int | None = None,
                  tolerance: float | None = None) -> None:
        """Report the pointer at ``position`` (x) and ``value`` (y; None when not over a plot).

        ``pane``: the pane whose plot is under the pointer (default the active one). With
        ``tolerance`` (in the pane's value units), a selected unit within it wins over a nearer
        unselected one, so the coloured lines stay easy to hover.
        """
        self._hover_request = (position, value, pane, tolerance)
        hover = make_hover(self, position, value, pane, tolerance)
        if hover != self.hover:
            self.hover = hover
            self.hover_changed.emit(hover)

    def _refresh_hover(self) -> None:
        if self._hover_request is not None and self.hover is not None:
            self.set_hover(*self._hover_request)
