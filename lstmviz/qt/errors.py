"""The one error path of the GUI: problems become a dialog the user can read, never a crash.

``show_error`` is the single place that shows a message box for a problem; its text is plain text
(messages quote names from files). Where nobody can click a dialog away (``lstmviz --screenshot``),
``notifications_to(sink)`` sends every such problem to ``sink(title, message)`` instead of a modal box.
``ErrorReporter`` replaces ``sys.excepthook`` and ``threading.excepthook``: an exception that escapes a
slot (or a worker thread) is printed to stderr and shown as a dialog on the GUI thread, with the
traceback under "Show Details...".
"""

from __future__ import annotations

import contextlib
import sys
import threading
import traceback
from collections.abc import Callable, Iterator

from PySide6 import QtCore, QtWidgets

#: where problems go instead of a dialog (the innermost ``notifications_to``), if anywhere
_sinks: list[Callable[[str, str], None]] = []


@contextlib.contextmanager
def notifications_to(sink: Callable[[str, str], None]) -> Iterator[None]:
    """While inside, ``show_error`` calls ``sink(title, message)`` and opens no dialog."""
    _sinks.append(sink)
    try:
        yield
    finally:
        _sinks.remove(sink)


def show_error(parent: QtWidgets.QWidget | None, title: str, message: str, details: str = "") -> None:
    """Show a modal message box stating a problem in words (the traceback, if any, under details)."""
    if _sinks:
        _sinks[-1](title, message)
        return
    box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Icon.Warning, title, message, parent=parent)
    box.setTextFormat(QtCore.Qt.TextFormat.PlainText)  # a name like "<img src=...>" stays text
    if details:
        box.setDetailedText(details)
    box.exec()


def describe_exception(exc: BaseException) -> str:
    """A sentence for the user: the message if there is one, else the exception's type."""
    text = str(exc).strip()
    return text if text else type(exc).__name__


class ErrorReporter(QtCore.QObject):
    """Turns uncaught exceptions from any thread into a dialog on the GUI thread."""

    _reported = QtCore.Signal(str, str)

    def __init__(self, parent_widget: QtWidgets.QWidget | None = None):
        super().__init__()
        self.parent_widget = parent_widget
        self._showing = False
        self._previous = (sys.excepthook, threading.excepthook)
        self._reported.connect(self._show, QtCore.Qt.ConnectionType.QueuedConnection)

    def install(self) -> ErrorReporter:
        sys.excepthook = self.handle
        threading.excepthook = lambda args: self.handle(args.exc_type, args.exc_value, args.exc_traceback)
        return self

    def uninstall(self) -> None:
        sys.excepthook, threading.excepthook = self._previous

    def handle(self, exc_type, exc_value, exc_traceback) -> None:
        """The excepthook: print the traceback and ask the GUI thread to show it."""
        if issubclass(exc_type, KeyboardInterrupt):
            QtWidgets.QApplication.quit()
            return
        details = "".join(traceback.format_exception(exc_type, exc_value, exc_traceback))
        sys.stderr.write(details)
        message = f"Something went wrong: {describe_exception(exc_value)}\n\nThe window is still usable; the details show where it happened."
        self._reported.emit(message, details)

    def _show(self, message: str, details: str) -> None:
        if self._showing:  # one dialog at a time; later ones are on stderr
            return
        self._showing = True
        try:
            show_error(self.parent_widget, "Unexpected error", message, details)
        finally:
            self._showing = False
