"""The one error path of the GUI: problems become a dialog the user can read, never a crash.

``show_error`` is the single place that shows a message box for a problem. ``ErrorReporter``
replaces ``sys.excepthook`` and ``threading.excepthook``: an exception that escapes a slot (or a worker
thread) is printed to stderr and shown as a dialog on the GUI thread, with the traceback under
"Show Details...".
"""

from __future__ import annotations

import sys
import threading
import traceback

from PySide6 import QtCore, QtWidgets


def show_error(parent: QtWidgets.QWidget | None, title: str, message: str, details: str = "") -> None:
    """Show a modal message box stating a problem in words (the traceback, if any, under details)."""
    box = QtWidgets.QMessageBox(QtWidgets.QMessageBox.Icon.Warning, title, message, parent=parent)
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
