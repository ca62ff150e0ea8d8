"""The window's reads of a recording, guarded: a damaged part of a file becomes a sentence, not a crash.

Every view reads the open recording through ``Workspace.recording``, which is a ``GuardedRecording``:
it passes everything through to the ``Recording``, except that a data read on the GUI thread that
fails (``RecordingError`` or ``OSError``: a damaged chunk, a token id outside the vocabulary)

- is reported through ``on_failure(key, sentence)`` (the workspace turns the first failure of each
  kind into a notification),
- is kept in ``problems[key]`` until a read of the same kind succeeds (a pane shows it), where the key
  is ``"tokens"``, ``"tap:NAME"`` or ``"annotation:NAME"``,
- and returns a blank of the shape asked for: NaN states, ``"\\ufffd"`` tokens, missing annotation
  values (-1 / NaN), so every view still draws.

The reads happen in slots, paint events and model ``data()`` calls, where an exception has nowhere to go
but a traceback; guarding them here is what keeps the window usable. On any other thread (workers:
statistics, the match index, probes, searches) the exception passes through unchanged: their failure
path states it, and no analysis result is ever computed from blanks.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np

#: what a token that could not be read is shown as
BLANK_TOKEN = "\ufffd"


def _read_errors() -> tuple[type[BaseException], ...]:
    from lstmviz.recording import RecordingError

    return (RecordingError, OSError)


class GuardedRecording:
    """A recording whose GUI-thread data reads never raise (see the module docstring)."""

    def __init__(self, recording: Any, on_failure: Callable[[str, str], None] | None = None):
        self.unguarded = recording
        self.problems: dict[str, str] = {}
        self._on_failure = on_failure

    def __getattr__(self, name: str):
        # only called for what this class does not define: everything else is the recording's
        if name == "unguarded":  # not set yet (a copy being made): no recursion
            raise AttributeError(name)
        return getattr(self.unguarded, name)

    def __repr__(self) -> str:
        return f"GuardedRecording({self.unguarded!r})"

    # ------------------------------------------------------------------ the guarded reads
    def tokens(self, start: int, stop: int, axis: str | None = None) -> list[str]:
        if axis is None:  # the main axis; a recording made before per-axis tokens takes no axis
            return self._read("tokens", lambda: self.unguarded.tokens(start, stop),
                              lambda: [BLANK_TOKEN] * (int(stop) - int(start)))
        return self._read(f"tokens:{axis}", lambda: self.unguarded.tokens(start, stop, axis=axis),
                          lambda: [BLANK_TOKEN] * (int(stop) - int(start)))

    def states(self, tap: str, start: int | None = None, stop: int | None = None, units=None) -> np.ndarray:
        return self._read(f"tap:{tap}", lambda: self.unguarded.states(tap, start, stop, units),
                          lambda: self._blank_states(tap, start, stop, units))

    def item_states(self, tap: str, item: int, units=None) -> np.ndarray:
        start, stop = self.unguarded.item_range(item, self.unguarded.taps[tap].axis)
        return self.states(tap, start, stop, units)

    def annotation(self, name: str, start: int | None = None, stop: int | None = None) -> np.ndarray:
        return self._read(f"annotation:{name}", lambda: self.unguarded.annotation(name, start, stop),
                          lambda: self._blank_annotation(name, start, stop))

    # ------------------------------------------------------------------ internals
    def _read(self, key: str, read: Callable[[], Any], blank: Callable[[], Any]):
        if threading.current_thread() is not threading.main_thread():
            return read()
        try:
            value = read()
        except _read_errors() as exc:
            sentence = str(exc).strip() or type(exc).__name__
            self.problems[key] = sentence
            if self._on_failure is not None:
                self._on_failure(key, sentence)
            return blank()
        self.problems.pop(key, None)
        return value

    def _blank_states(self, tap: str, start, stop, units) -> np.ndarray:
        info = self.unguarded.taps[tap]
        rows = self.unguarded.axis_length(info.axis) if hasattr(self.unguarded, "axis_length") else self.n_positions
        a = 0 if start is None else int(start)
        b = rows if stop is None else int(stop)
        columns = np.arange(info.units)
        if units is not None:
            columns = columns[units] if isinstance(units, slice) else columns[np.asarray(units)]
        return np.full((max(0, b - a), int(np.size(columns))), np.nan, np.float32)

    def _blank_annotation(self, name: str, start, stop) -> np.ndarray:
        info = self.unguarded.annotations[name]
        n = int(self.unguarded.n_items if info.level == "item" else self.unguarded.n_positions)
        a = 0 if start is None else int(start)
        b = n if stop is None else int(stop)
        if info.kind == "categorical":
            return np.full(max(0, b - a), -1, np.int32)
        return np.full(max(0, b - a), np.nan, np.float64)
