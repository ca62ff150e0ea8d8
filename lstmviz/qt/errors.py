"""The one error path of the GUI: problems become a dialog the user can read, never a crash.

``show_error`` is the single place that shows a message box for a problem; its text is plain text
(messages quote names from files). Where nobody can click a dialog away (``lstmviz --screenshot``),
``notifications_to(sink)`` sends every such problem to ``sink(title, message)`` instead of a modal box.
``ErrorReporter`` replaces ``sys.excepthook`` and ``threading.excepthook``: an exception that escapes a
slot (or a worker thread) is printed to stderr and shown as a dialog on the GUI thread, with the
traceback under "Show Details...".

Problems found by views and panels take one path: ``report_exception`` words an exception (an expected
problem as its sentence, ``lstmviz.errors``; anything else as "Something went wrong", its traceback on
stderr) and hands it to the workspace's ``notify``, whose ``error_occurred`` the main window shows with
``show_error``.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import traceback
from collections.abc import Callable, Iterator

from PySide6 import QtCore, QtWidgets

from lstmviz.errors import describe, is_expected

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


def report_exception(exc: BaseException, title: str, notify: Callable[[str, str], None]) -> str:
    """Hand ``exc`` to ``notify(title, message)`` (a workspace's ``notify``) and return its sentence.

    An expected problem (``lstmviz.errors.expected_errors``) is its sentence; anything else is "Something
    went wrong: ..." and its traceback (kept by the worker that raised it, else this one) goes to stderr.
    """
    sentence = describe(exc)
    if is_expected(exc):
        notify(title, sentence)
        return sentence
    details = getattr(exc, "lstmviz_traceback", "") or "".join(
        traceback.format_exception(type(exc), exc, exc.__traceback__))
    sys.stderr.write(details)
    notify(title, f"Something went wrong: {sentence}\n\nThe window is still usable.")
    return sentence


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
        message = f"Something went wrong: {describe(exc_value)}\n\nThe window is still usable; the details show where it happened."
        self._reported.emit(message, details)

    def _show(self, message: str, details: str) -> None:
        if self._showing:  # one dialog at a time; later ones are on stderr
            return
        self._showing = True
        try:
            show_error(self.parent_widget, "Unexpected error", message, details)
        finally:
            self._showing = False
