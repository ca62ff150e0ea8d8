"""The Qt face of a pane: Qt signals forwarded from a ``lstmviz.workspace.pane.PaneModel``.

Views connect to a pane's Qt signals (``changed``, ``selection_changed``, ``tap_changed``,
``transform_changed``, ``emphasis_changed``), so a destroyed widget is disconnected by Qt; everything
else (settings, setters, ``values()``, ``selection`` ...) is the model's, read through this adapter.
The workspace adapter (``lstmviz.qt.workspace``) makes one per model pane and detaches it when the
pane goes.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from lstmviz.workspace.pane import TRANSFORM_NAMES, PaneModel
from lstmviz.workspace.state import TRANSFORMS

__all__ = ["TRANSFORMS", "TRANSFORM_NAMES", "Pane"]


class Pane(QObject):
    """A pane as views see it: the model's state and setters, and Qt signals for its events."""

    #: anything the pane shows changed (settings, selection, values)
    changed = Signal()
    #: the selection (a Selection, or None without brush and added units)
    selection_changed = Signal(object)
    tap_changed = Signal(str)
    transform_changed = Signal(str)
    #: a unit to draw emphasised (hovered in a list), or None
    emphasis_changed = Signal(object)

    def __init__(self, model: PaneModel, parent: QObject | None = None):
        super().__init__(parent)
        self.model = model
        events = model.events
        self._links = [(events.changed, self.changed.emit), (events.selection_changed, self.selection_changed.emit),
                       (events.tap_changed, self.tap_changed.emit),
                       (events.transform_changed, self.transform_changed.emit),
                       (events.emphasis_changed, self.emphasis_changed.emit)]
        for event, forward in self._links:
            event.connect(forward)

    def detach(self) -> None:
        """Stop forwarding (the model pane left the workspace; this adapter is about to be deleted)."""
        for event, forward in self._links:
            event.disconnect(forward)
        self._links = []

    def __getattr__(self, name: str):
        # only for what a QObject does not have: the model's settings, methods and results
        if name == "model":
            raise AttributeError(name)
        return getattr(self.model, name)

    def __repr__(self) -> str:
        return f"Pane({self.model.tap!r} of {self.model.recording_id!r})"
