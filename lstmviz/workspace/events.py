"""A small evented-model toolkit: an ``Event`` is a list of callbacks, the Qt-free twin of a signal.

Models of ``lstmviz.workspace`` announce every change through events (``model.events.window_changed``,
``pane.events.selection_changed`` ...), as napari's evented models and glue's state objects do. Anything
can listen: a script, a test, or the Qt adapter (``lstmviz.qt.workspace``), which forwards each event
to a Qt signal so widgets get Qt's lifetime rules.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator


class Event:
    """Callbacks called in the order they connected, with the arguments of ``emit``."""

    def __init__(self, name: str = ""):
        self.name = name
        self._callbacks: list[Callable] = []
        self._blocked = 0

    def connect(self, callback: Callable) -> Callable:
        self._callbacks.append(callback)
        return callback

    def disconnect(self, callback: Callable) -> None:
        """Remove ``callback`` (nothing if it is not connected)."""
        with contextlib.suppress(ValueError):
            self._callbacks.remove(callback)

    def emit(self, *args) -> None:
        if self._blocked:
            return
        for callback in list(self._callbacks):
            callback(*args)

    @contextlib.contextmanager
    def blocked(self) -> Iterator[None]:
        """Emit nothing inside the block."""
        self._blocked += 1
        try:
            yield
        finally:
            self._blocked -= 1

    def __repr__(self) -> str:
        return f"Event({self.name!r}, {len(self._callbacks)} callbacks)"


class EventGroup:
    """The events of a model, as attributes: ``EventGroup("changed", "tap_changed").tap_changed``."""

    def __init__(self, *names: str):
        self._names = names
        for name in names:
            setattr(self, name, Event(name))

    def __iter__(self) -> Iterator[Event]:
        return (getattr(self, name) for name in self._names)

    @property
    def names(self) -> tuple[str, ...]:
        return self._names
