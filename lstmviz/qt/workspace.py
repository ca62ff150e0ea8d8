"""The Qt face of the workspace: Qt signals forwarded from the Qt-free ``WorkspaceModel``.

The state of the GUI lives in ``lstmviz.workspace.model.WorkspaceModel`` (recordings, window, panes,
selection, panels' states; see its docstring). This adapter adds what only a Qt application has: the
worker threads every view shares (``runner``), the z-score statistics computed on them
(``tap_stats``, given to the model as its statistics), one Qt signal per model event (so widgets get
Qt's lifetime rules), a ``Pane`` adapter per model pane, and the queued announcement of a read that
failed inside a paint. Everything else — properties and methods — is the model's, read through this
adapter (``ws.window_start``, ``ws.set_window_start(...)``, ``ws.restore(state)`` ...).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal

from lstmviz.qt.pane import Pane
from lstmviz.qt.stats_cache import TapStatsCache
from lstmviz.qt.workers import TaskRunner
from lstmviz.workspace.hover import Hover
from lstmviz.workspace.model import (
    JUMP_CONTEXT,
    MAX_WINDOW_WIDTH,
    MIN_WINDOW_WIDTH,
    WorkspaceModel,
)
from lstmviz.workspace.state import TRANSFORMS

__all__ = ["JUMP_CONTEXT", "MAX_WINDOW_WIDTH", "MIN_WINDOW_WIDTH", "TRANSFORMS", "Hover", "Workspace"]

#: model events forwarded as they are to the Qt signal of the same name
_FORWARDED = ("recording_changed", "tap_changed", "transform_changed", "window_changed", "item_changed",
              "units_changed", "hover_changed", "view_changed", "panes_changed", "active_selection_changed",
              "visible_annotations_changed", "mask_annotations_changed", "panel_state_changed")


class Workspace(QObject):
    """The workspace model with Qt signals, the shared worker threads and Pane adapters."""

    #: a recording was opened (the Recording) or every recording closed (None)
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
    #: a panel's saved settings changed: its name, the state
    panel_state_changed = Signal(str, object)
    #: a problem to tell the user: title, message (the window shows it)
    error_occurred = Signal(str, str)
    #: a read of the open recording failed on the GUI thread (the sentence); queued to ``error_occurred``
    _read_failure = Signal(str)

    def __init__(self, opener: Callable[[str | Path], Any] | None = None, parent: QObject | None = None):
        super().__init__(parent)
        #: the worker threads every view shares for long computations
        self.runner = TaskRunner(self)
        self.tap_stats = TapStatsCache(self.runner, self)
        self.model = WorkspaceModel(opener, stats=self.tap_stats)
        self._adapters: dict[int, Pane] = {}  # id of a model pane -> its Pane
        events = self.model.events
        events.panes_changed.connect(self._drop_stale_panes)  # first: no view sees a pane that went
        for name in _FORWARDED:
            getattr(events, name).connect(getattr(self, name).emit)
        events.active_pane_changed.connect(lambda pane: self.active_pane_changed.emit(self.pane_for(pane)))
        events.notification.connect(self.error_occurred.emit)
        # queued: a read fails inside a paint or a slot, where a dialog must not open
        events.read_failed.connect(self._read_failure.emit)
        self._read_failure.connect(self.model.announce_read_failure, Qt.ConnectionType.QueuedConnection)
        self.tap_stats.ready.connect(self.model.stats_ready)
        self.tap_stats.failed.connect(self.model.stats_failed)

    def __getattr__(self, name: str):
        # only for what this adapter and QObject do not have: the model's state and methods
        if name == "model":
            raise AttributeError(name)
        return getattr(self.model, name)

    # ------------------------------------------------------------------ panes as Qt objects
    def pane_for(self, pane) -> Pane | None:
        """The Pane adapter of a model pane (made on first use; None for None)."""
        if pane is None:
            return None
        adapter = self._adapters.get(id(pane))
        if adapter is None or adapter.model is not pane:
            adapter = Pane(pane, self)
            self._adapters[id(pane)] = adapter
        return adapter

    def _drop_stale_panes(self) -> None:
        alive = {id(p) for p in self.model.panes}
        for key in [k for k in self._adapters if k not in alive]:
            adapter = self._adapters.pop(key)
            adapter.detach()
            adapter.deleteLater()

    @property
    def panes(self) -> list[Pane]:
        return [self.pane_for(p) for p in self.model.panes]

    @property
    def active_pane(self) -> Pane | None:
        return self.pane_for(self.model.active_pane)

    def add_pane(self, tap: str | None = None) -> Pane | None:
        """See ``WorkspaceModel.add_pane``."""
        return self.pane_for(self.model.add_pane(tap))

    # ------------------------------------------------------------------ Qt's part
    def shutdown(self) -> None:
        """Stop the background work (call before the application quits)."""
        self.runner.shutdown()
