"""The workspace model: the one evented, Qt-free model that holds the state of the GUI.

Views never keep state of their own: they read what to draw from the workspace and ask it to change
(``set_window_start``, ``go_to_item``, a pane's ``set_brush`` ...). The model announces each kind of
change through one event (``events.window_changed`` ...; for controls that mirror one setting) and
``events.view_changed`` once after every change of what the window shows (for views that redraw).
Changes inside one pane (brush, threshold) are announced by that pane (``PaneModel.events.changed``).

**Recordings.** The model holds a set of open recordings (``recordings``: id -> recording) and shows
one of them (``current``, ``recording``). ``open(path)`` replaces them all with one (what the window
does today); ``add_recording`` opens another beside them; a restored workspace opens every recording
it names. Each recording is held as a ``GuardedRecording``: a read that fails on the GUI thread is
stated once per kind (``events.notification``) and in the panes (``read_problems``), never raised into
a view.

**Window.** The window is a range of positions of the shown recording, ``[window_start, window_start
+ window_width)``, shared by every pane. It may span several items (views mark the boundaries). Its
left edge goes up to the start of the last item, so a window on a short last item runs past the corpus
end (that part is empty). The *current item* is always the item that holds ``window_start``, so
``go_to_item(i)`` puts the window's left edge on the first position of item ``i``.

**Panes** (``lstmviz.workspace.pane.PaneModel``) are stacked views of the window, each naming the
recording it shows, with its own tap, transform and selection; one of them is *active* (lists, exports
and the match panel follow it). ``tap`` / ``transform`` / ``set_tap`` / ``set_transform`` / ``values``
act on the active pane.

**Panels' states.** ``panel_state(name)`` / ``set_panel_state(name, state)`` keep each panel's saved
settings (``lstmviz.workspace.panel_state``); the model knows no panel.

**Long work** (z-score statistics) is asked of a ``stats`` provider (``get(tap, retry=False)`` for the
shown recording, ``set_recording``, ``busy``): the Qt adapter gives its worker-thread cache; without
one, statistics are computed when asked (scripts, tests).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from lstmviz.recording.tap_tracks import tap_track_values, tap_tracks
from lstmviz.workspace.events import EventGroup
from lstmviz.workspace.file import restore_valid
from lstmviz.workspace.guarded_recording import GuardedRecording
from lstmviz.workspace.hover import Hover, make_hover
from lstmviz.workspace.pane import PaneModel
from lstmviz.workspace.pane_defaults import BOUNDED_SIGNALS, default_tap, default_transform
from lstmviz.workspace.panel_state import panel_state_formats
from lstmviz.workspace.state import FIRST_RECORDING, MAX_PANES, TRANSFORMS, WorkspaceState

MIN_WINDOW_WIDTH = 10
MAX_WINDOW_WIDTH = 400
DEFAULT_WINDOW_WIDTH = 100
#: Positions of left context kept before a position reached with ``go_to_position`` (as in LSTMVis).
JUMP_CONTEXT = 3

EVENTS = (
    # a recording was opened (the Recording) or every recording closed (None); the shown one changed
    "recording_changed",
    # the active pane's tap / transform changed (also when another pane becomes active)
    "tap_changed", "transform_changed",
    # start and width of the window of positions; the item that holds its start
    "window_changed", "item_changed",
    # the units drawn in colour over the grey lines of the active pane (View > Highlight Units)
    "units_changed",
    # a Hover, or None when the pointer left the data
    "hover_changed",
    # once after any change of what the window shows (not for changes inside one pane)
    "view_changed",
    # panes were added or removed; another pane became active (the PaneModel)
    "panes_changed", "active_pane_changed",
    # the active pane's selection changed, or another pane became active (a Selection or None)
    "active_selection_changed",
    # the names of the annotation tracks shown, in order; whether annotation colours are masked
    "visible_annotations_changed", "mask_annotations_changed",
    # a panel's saved settings changed: its name, the state
    "panel_state_changed",
    # a problem to tell the user: title, message
    "notification",
    # a read of a recording failed on the GUI thread (the sentence; the Qt adapter queues it)
    "read_failed",
)


def _default_opener(path: str | Path) -> Any:
    from lstmviz.recording import open_recording

    return open_recording(path)


class ImmediateStats:
    """Statistics of the shown recording's taps, computed when asked (on the calling thread)."""

    busy = False

    def __init__(self):
        self._recording = None
        self._stats: dict[str, object] = {}

    def set_recording(self, recording) -> None:
        self._recording, self._stats = recording, {}

    def get(self, tap: str, *, retry: bool = False):
        from lstmviz.analysis.transforms import tap_stats

        if tap not in self._stats and self._recording is not None:
            self._stats[tap] = tap_stats(self._recording, tap)
        return self._stats.get(tap)


class WorkspaceModel:
    """Open recordings, the window of positions, panes (each a tap of a recording with its selection),
    hover and the panels' states (see the module docstring)."""

    def __init__(self, opener: Callable[[str | Path], Any] | None = None, stats=None):
        self.events = EventGroup(*EVENTS)
        self._opener = opener or _default_opener
        self.stats = stats if stats is not None else ImmediateStats()
        #: id -> open recording (a GuardedRecording), in the order they were opened
        self.recordings: dict[str, Any] = {}
        #: the id of the recording the window shows (None: nothing is open)
        self.current: str | None = None
        self.window_start = 0
        self.window_width = DEFAULT_WINDOW_WIDTH
        self.item = 0
        self.panes: list[PaneModel] = []
        self._active = 0
        self.highlighted_units: list[int] = []
        self.hover: Hover | None = None
        self.visible_annotations: list[str] = []
        self.mask_annotations = True
        #: a panel's name -> its saved settings (None or absent: the panel's defaults)
        self.panel_states: dict[str, Any] = {}
        self._hover_request: tuple | None = None
        self._tokens_key: tuple | None = None
        self._tokens: list[str] = []
        self._annotation_cache: dict = {}
        self._tap_tracks_cache: tuple = (None, {})
        self._announced_reads: set[str] = set()

    # ------------------------------------------------------------------ recordings
    @property
    def recording(self):
        """The recording the window shows, or None."""
        return None if self.current is None else self.recordings[self.current]

    def _guarded(self, path: str | Path) -> GuardedRecording:
        return GuardedRecording(self._opener(path), self._read_failed)

    def _new_id(self) -> str:
        n = 0
        while f"r{n}" in self.recordings:
            n += 1
        return f"r{n}"

    def add_recording(self, path: str | Path, recording_id: str | None = None) -> str:
        """Open another recording beside the open ones (the window keeps showing its recording, or shows
        this one if none was open); returns its id. On failure the exception propagates."""
        recording = self._guarded(path)
        rid = recording_id or self._new_id()
        if rid in self.recordings:
            recording.close()
            raise ValueError(f"a recording {rid!r} is already open")
        self.recordings[rid] = recording
        if self.current is None:
            self._show(rid, previous=None)
        return rid

    def open(self, path: str | Path) -> None:
        """Open a recording with one pane instead of every open one. On failure the exception propagates
        and the open recordings stay."""
        self._open_all({FIRST_RECORDING: path}, FIRST_RECORDING)

    def _open_all(self, paths: dict[str, str | Path], shown: str) -> None:
        """Open every recording of ``paths`` (id -> path) instead of the open ones and show ``shown``; if
        one fails, the others are closed again and the open recordings stay."""
        opened: dict[str, Any] = {}
        try:
            for rid, path in paths.items():
                opened[rid] = self._guarded(path)
        except BaseException:
            for recording in opened.values():
                recording.close()
            raise
        previous, self.recordings = self.recordings, opened
        self._show(shown, previous=previous)

    def _show(self, rid: str, previous: dict | None) -> None:
        """Show recording ``rid`` with one default pane; ``previous``: the recordings to close."""
        recording = self.recordings[rid]
        taps = self._position_taps(recording)
        self.current = rid
        self.stats.set_recording(recording)
        self.window_start = 0
        # a recording shorter than the default window (one small graph) fills the plot instead of a third of it
        self.window_width = int(np.clip(min(DEFAULT_WINDOW_WIDTH, recording.n_positions), MIN_WINDOW_WIDTH,
                                        MAX_WINDOW_WIDTH))
        self.item = 0
        self.hover = None
        self.highlighted_units = []
        self.visible_annotations = [info.name for info in self.position_annotations()]
        formats = panel_state_formats()  # what of each panel's state stays with another recording
        self.panel_states = {name: (formats[name].for_new_recording(state) if name in formats else state)
                             for name, state in self.panel_states.items()}
        self._tokens_key, self._annotation_cache = None, {}
        self._announced_reads = set()
        self.panes = []
        self._active = 0
        if taps:
            tap = default_tap([recording.taps[name] for name in taps])
            self._insert_pane(PaneModel(self, tap, recording_id=rid, transform=self.default_transform(tap),
                                        transform_follows_tap=True))
        for old in (previous or {}).values():
            if old is not recording:
                old.close()
        self.events.recording_changed.emit(recording)
        self.events.panes_changed.emit()
        self._active_changed()
        self.events.window_changed.emit(self.window_start, self.window_width)
        self.events.item_changed.emit(self.item)
        self.events.visible_annotations_changed.emit(list(self.visible_annotations))
        self.events.hover_changed.emit(None)
        self.events.view_changed.emit()

    def close(self) -> None:
        """Close every open recording."""
        if not self.recordings:
            return
        recordings, self.recordings = self.recordings, {}
        self.current = None
        self.stats.set_recording(None)
        formats = panel_state_formats()
        self.panel_states = {name: (formats[name].for_new_recording(state) if name in formats else state)
                             for name, state in self.panel_states.items()}
        self.hover = None
        self.panes = []
        self._active = 0
        for recording in recordings.values():
            recording.close()
        self.events.recording_changed.emit(None)
        self.events.panes_changed.emit()
        self._active_changed()
        self.events.hover_changed.emit(None)
        self.events.view_changed.emit()

    @staticmethod
    def _position_taps(recording) -> list[str]:
        return [name for name, info in recording.taps.items() if info.axis == "positions"]

    def position_taps(self, recording_id: str | None = None) -> list[str]:
        """The taps over the main position axis of a recording (default: the shown one), in file order."""
        recording = self.recordings.get(self.current if recording_id is None else recording_id)
        return [] if recording is None else self._position_taps(recording)

    def default_transform(self, tap: str, recording_id: str | None = None) -> str:
        """How a pane shows ``tap`` until a transform is chosen: tanh for a cell state, raw for bounded
        signals, and for a signal of unknown range decided from the window's values (``pane_defaults``;
        raw when they cannot be read: the pane then says why when it draws)."""
        from lstmviz.recording import RecordingError

        recording = self.recordings[self.current if recording_id is None else recording_id]
        info = recording.taps[tap]
        sample = None
        if info.signal not in BOUNDED_SIGNALS | {"c"}:
            n = int(recording.n_positions)
            start = min(self.window_start, max(0, n - 1))
            try:
                sample = np.asarray(recording.states(tap, start, min(n, start + self.window_width)))
            except (RecordingError, OSError, ValueError):
                sample = None
        return default_transform(info, sample)

    def tap_stats(self, recording_id: str, tap: str, *, retry: bool = False):
        """The per-unit statistics of a tap (``UnitStats``), or None while they are computed (and for a
        recording the window does not show)."""
        if recording_id != self.current:
            return None
        return self.stats.get(tap, retry=retry)

    # ------------------------------------------------------------------ problems
    def notify(self, title: str, message: str) -> None:
        """State a problem to the user (``events.notification``): the one notifications path."""
        self.events.notification.emit(title, message)

    def _read_failed(self, key: str, sentence: str) -> None:
        if key not in self._announced_reads:  # once per tap / annotation / the tokens, not per scroll step
            self._announced_reads.add(key)
            self.events.read_failed.emit(sentence)

    def announce_read_failure(self, sentence: str) -> None:
        """Tell the user a read of the recording failed (the Qt adapter calls it outside the paint)."""
        self.notify("Cannot read part of the recording",
                    f"{sentence}\n\nThe window shows blanks where it could not read; the rest of the recording "
                    "can still be used.")

    def read_problems(self, tap: str | None = None) -> list[str]:
        """Why reads of the shown recording failed, for the window as it is now: the tokens' and, with
        ``tap``, that tap's (each stays until the same kind of read succeeds)."""
        if self.recording is None:
            return []
        problems = getattr(self.recording, "problems", {})
        keys = ["tokens"] + ([f"tap:{tap}"] if tap is not None else [])
        return [problems[k] for k in keys if k in problems]

    def stats_failed(self, tap: str, message: str) -> None:
        """The statistics of ``tap`` could not be computed: z-scored panes on it show raw values."""
        for pane in self.panes:
            if pane.recording_id == self.current:
                pane.stats_failed(tap)
        self.notify("Cannot compute z-scores", message + " The pane shows raw values.")

    def stats_ready(self, tap: str) -> None:
        for pane in self.panes:
            if pane.recording_id == self.current:
                pane.stats_ready(tap)
        self._refresh_hover()

    # ------------------------------------------------------------------ panes
    @property
    def active_pane(self) -> PaneModel | None:
        return self.panes[self._active] if self.panes else None

    @property
    def active_index(self) -> int:
        return self._active

    def add_pane(self, tap: str | None = None) -> PaneModel | None:
        """Add a pane on the shown recording under the others (on ``tap``, else the state tap not shown
        yet) and make it active; it takes the active pane's transform and threshold.

        None (and a notification says why) when the recording has no tap over positions or the window
        already shows ``MAX_PANES`` panes (the most a workspace file holds).
        """
        if self.recording is None:
            raise ValueError("open a recording before adding a pane")
        taps = self.taps
        if not taps or len(self.panes) >= MAX_PANES:
            self.notify("Cannot add a pane", "This recording has no tap over its positions to show."
                        if not taps else f"The window shows at most {MAX_PANES} panes; "
                        "remove one (View > Remove Active Pane) first.")
            return None
        if tap is None:
            tap = default_tap([self.recording.taps[name] for name in taps], tuple(p.tap for p in self.panes))
        active = self.active_pane
        # the new pane shows its tap the way the active pane shows its own (transform and threshold)
        pane = PaneModel(self, tap, recording_id=self.current,
                         transform=active.transform if active is not None else self.default_transform(tap),
                         threshold=active.threshold if active is not None else 0.3,
                         transform_follows_tap=active is None or active.transform_follows_tap)
        self._insert_pane(pane)
        self.events.panes_changed.emit()
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
        self._active = self.panes.index(was_active) if was_active in self.panes else min(index, len(self.panes) - 1)
        self.events.panes_changed.emit()
        if was_active is pane:
            self._active_changed()

    def set_active_pane(self, index: int) -> None:
        if not 0 <= index < len(self.panes):
            raise IndexError(f"no pane {index}; there are {len(self.panes)}")
        if index == self._active:
            return
        self._active = index
        self._active_changed()

    def replace_panes(self, panes: list[PaneModel], active: int = 0) -> None:
        """Show exactly ``panes`` (made for this workspace), ``active`` being the active one."""
        if not panes:
            raise ValueError("a workspace shows at least one pane")
        self.panes = []
        for pane in panes:
            self._insert_pane(pane)
        self._active = int(min(max(active, 0), len(panes) - 1))
        self.events.panes_changed.emit()
        self._active_changed()

    def _insert_pane(self, pane: PaneModel) -> None:
        self.panes.append(pane)
        pane.events.tap_changed.connect(lambda tap, p=pane: self._pane_tap_changed(p, tap))
        pane.events.transform_changed.connect(lambda name, p=pane: self._pane_transform_changed(p, name))
        pane.events.selection_changed.connect(lambda selection, p=pane: self._pane_selection_changed(p, selection))

    def _active_changed(self) -> None:
        pane = self.active_pane
        self.events.active_pane_changed.emit(pane)
        self.events.tap_changed.emit(pane.tap if pane else "")
        self.events.transform_changed.emit(pane.transform if pane else "raw")
        self._check_highlighted_units()
        self.events.active_selection_changed.emit(pane.selection if pane else None)
        self._refresh_hover()
        self.events.view_changed.emit()

    def _pane_tap_changed(self, pane: PaneModel, tap: str) -> None:
        if pane is self.active_pane:
            self.events.tap_changed.emit(tap)
            self._check_highlighted_units()
            self._refresh_hover()
            self.events.view_changed.emit()

    def _pane_transform_changed(self, pane: PaneModel, name: str) -> None:
        if pane is self.active_pane:
            self.events.transform_changed.emit(name)
            self._refresh_hover()
            self.events.view_changed.emit()

    def _pane_selection_changed(self, pane: PaneModel, selection) -> None:
        if pane is self.active_pane:
            self.events.active_selection_changed.emit(selection)

    def _check_highlighted_units(self) -> None:
        info = self.tap_info()
        if info is not None and any(u >= info.units for u in self.highlighted_units):
            self.highlighted_units = []
            self.events.units_changed.emit([])

    # ------------------------------------------------------------------ the active pane's settings
    @property
    def taps(self) -> list[str]:
        """The taps over the main position axis of the shown recording, in file order."""
        return self.position_taps()

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
        self.events.units_changed.emit(units)
        self.events.view_changed.emit()

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
        self.events.visible_annotations_changed.emit(list(names))
        self._refresh_hover()

    def set_mask_annotations(self, on: bool) -> None:
        on = bool(on)
        if on != self.mask_annotations:
            self.mask_annotations = on
            self.events.mask_annotations_changed.emit(on)

    # ------------------------------------------------------------------ panels' states
    def panel_state(self, name: str):
        """The saved settings of panel ``name`` (None: its defaults)."""
        return self.panel_states.get(name)

    def set_panel_state(self, name: str, state) -> None:
        """Keep panel ``name``'s settings (the panel shows them; ``events.panel_state_changed``)."""
        if state != self.panel_states.get(name):
            self.panel_states[name] = state
            self.events.panel_state_changed.emit(name, state)

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
        self.events.window_changed.emit(start, self.window_width)
        if self.recording is not None:
            item = int(self.recording.item_of(start))
            if item != self.item:
                self.item = item
                self.events.item_changed.emit(item)
        self._refresh_hover()
        self.events.view_changed.emit()

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
        return None if pane is None or pane.recording is None else pane.recording.taps[pane.tap]

    def values(self) -> np.ndarray:
        """The active pane's tap over the window, transformed: float32 ``[positions, units]``."""
        pane = self.active_pane
        return np.zeros((0, 0), np.float32) if pane is None or self.recording is None else pane.values()

    def value_range(self) -> tuple[float, float]:
        """The active pane's y range (see ``PaneModel.value_range``)."""
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
        """Every per-position annotation of the shown recording (categorical or numeric), in file order,
        then its taps that hold one integer label per position (``tap layer0/z``, see
        ``lstmviz.recording.tap_tracks``)."""
        if self.recording is None:
            return []
        annotations = [info for info in self.recording.annotations.values() if info.level == "position"]
        return annotations + [info for name, info in self._tap_tracks().items()
                              if name not in self.recording.annotations]

    def _tap_tracks(self) -> dict:
        """The shown recording's taps offered as tracks (found once per recording)."""
        if self._tap_tracks_cache[0] is not self.recording:
            # unguarded: a tap that cannot be read is simply not a track; the pane that shows it says why
            self._tap_tracks_cache = (self.recording, tap_tracks(getattr(self.recording, "unguarded", self.recording)))
        return self._tap_tracks_cache[1]

    def track_info(self, name: str):
        """The description of the annotation or tap track ``name`` of the shown recording."""
        info = self.recording.annotations.get(name)
        return info if info is not None else self._tap_tracks()[name]

    def annotation_values(self, name: str, start: int, stop: int) -> np.ndarray:
        """A per-position annotation (or a tap track's label ids) over positions ``[start, stop)``."""
        if name in self.recording.annotations:
            return np.asarray(self.recording.annotation(name, start, stop))
        return tap_track_values(self.recording, name, len(self._tap_tracks()[name].labels), start, stop)

    def annotation_tracks(self) -> list:
        """The annotations shown as tracks under the tokens, in the order of ``visible_annotations``."""
        if self.recording is None:
            return []
        return [self.track_info(name) for name in self.visible_annotations]

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
            self._annotation_cache[key] = self.annotation_values(name, *self.window_range())
        return self._annotation_cache[key]

    # ------------------------------------------------------------------ saved workspaces
    def state(self) -> WorkspaceState:
        """Everything a workspace file restores (``lstmviz.workspace.file``); ValueError without an open
        recording."""
        if self.recording is None:
            raise ValueError("no recording is open: there is no workspace to save")
        return WorkspaceState(
            recordings={rid: str(Path(rec.path).resolve()) for rid, rec in self.recordings.items()},
            shown=self.current,
            window_start=int(self.window_start),
            window_width=int(self.window_width),
            panes=[pane.state() for pane in self.panes],
            active_pane=int(self.active_index),
            annotations=list(self.visible_annotations),
            panels={name: state for name, state in self.panel_states.items() if state is not None},
        )

    def restore(self, state: WorkspaceState, path: str | Path | None = None) -> list[str]:
        """Open ``state``'s recordings (the shown one from ``path`` when given) and restore what fits;
        returns a sentence per thing dropped. Opening failures propagate (the open recordings stay)."""
        paths = dict(state.recordings)
        if path is not None:
            paths[state.shown] = path
        self._open_all(paths, state.shown)
        valid, problems = restore_valid(state, self.recordings)
        # what does not depend on the panes first, so the views lay out the panes once
        self.set_window_width(valid.window_width)
        self.set_window_start(valid.window_start)
        self.set_visible_annotations(valid.annotations)
        panes: list[PaneModel] = []
        for i, pane_state in enumerate(valid.panes):
            try:
                pane = PaneModel(self, pane_state.tap, recording_id=pane_state.recording)
                pane.apply_state(pane_state)
            except (ValueError, KeyError) as exc:
                problems.append(f"pane {i}: {exc}; the pane was left out")
                continue
            panes.append(pane)
        if panes:
            self.replace_panes(panes, valid.active_pane)
        elif state.panes:
            problems.append("no pane of the workspace fits this recording; it shows the default pane")
        for name in dict.fromkeys([*self.panel_states, *valid.panels]):  # a panel the file lacks: defaults
            self.set_panel_state(name, valid.panels.get(name))
        return problems

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
            self.events.hover_changed.emit(hover)

    def _refresh_hover(self) -> None:
        if self._hover_request is not None and self.hover is not None:
            self.set_hover(*self._hover_request)
