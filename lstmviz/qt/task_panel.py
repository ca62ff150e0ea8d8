"""The base of a panel that runs analysis tasks (Match, Probes, and the panels to come).

What every such panel does the same way lives here: one request at a time on the workspace's runner
(``submit``: a newer one replaces it, ``cancel`` stops it, another view taking its channel supersedes
it), a progress bar and a Cancel button while it runs (``busy``, ``busy_changed``), one status line
(``status_text``, ``status_changed``, red for a problem), failures said in words in the status line and
through the app's one notifications path (``lstmviz.qt.errors.report_exception``), exports that say
what they wrote or why they could not (``export_guarded``), menu actions (``make_action``) and the
defaults of file dialogs (``default_path``). A subclass builds its controls and results, and says what
to do with an answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from lstmviz.errors import describe
from lstmviz.qt.errors import report_exception
from lstmviz.qt.plain_text import set_plain
from lstmviz.qt.widget_export import export_reporting
from lstmviz.qt.workers import Request


@dataclass(frozen=True)
class _Pending:
    """What the running request asked for (see ``TaskPanel.submit``)."""

    on_finished: Callable
    what: str
    title: str
    on_failed: Callable | None
    on_cancelled: Callable | None
    continues: bool


def labelled(text: str, widget: QtWidgets.QWidget, spacing: int = 4) -> QtWidgets.QWidget:
    """``widget`` with a label before it, as one widget for a row of controls."""
    box = QtWidgets.QWidget()
    layout = QtWidgets.QHBoxLayout(box)
    layout.setContentsMargins(0, 0, 0, 0)
    layout.setSpacing(spacing)
    layout.addWidget(QtWidgets.QLabel(text))
    layout.addWidget(widget)
    return box


def duration(seconds: float) -> str:
    """How long something took, for a status line."""
    return f"{1000 * seconds:,.0f} ms" if seconds < 10 else f"{seconds:,.1f} s"


class TaskPanel(QtWidgets.QWidget):
    """A panel over a workspace that runs one request at a time on its runner (see the module docstring).

    A subclass makes ``status_label`` (any QLabel) before it calls ``build_task_controls`` and sets
    ``SUPERSEDED`` (the status when another view took the channel).
    """

    #: whether a request is running
    busy_changed = QtCore.Signal(bool)
    #: the text of the status line
    status_changed = QtCore.Signal(str)

    #: the status line when another view's request took this panel's channel
    SUPERSEDED = "The request was superseded by another request; start it again."

    def __init__(self, workspace, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.workspace = workspace
        self.runner = workspace.runner
        self._request: Request | None = None
        self._pending: _Pending | None = None
        self._status = ""
        self._stage = ""  # names the running stage in the progress bar (e.g. "index", "match")

    # ------------------------------------------------------------------ building
    def build_task_controls(self, cancel_text: str, cancel_tip: str) -> None:
        """The progress bar, the Cancel button and the Cancel action (disabled while idle)."""
        self.progress = QtWidgets.QProgressBar()
        self.progress.setTextVisible(True)
        self.progress.setVisible(False)
        self.cancel_button = QtWidgets.QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.cancel_button.setVisible(False)
        self.cancel_action = self.make_action(cancel_text, self.cancel, None, cancel_tip)
        self.cancel_action.setEnabled(False)

    def build_page(self, rows, body: QtWidgets.QWidget, no_recording: str) -> None:
        """The panel's page (``rows`` of controls, ``body`` stretched, the status line) stacked under a
        centred message (``message_label``, first shown: ``no_recording``); ``stack`` switches them."""
        page = QtWidgets.QWidget()
        pv = QtWidgets.QVBoxLayout(page)
        pv.setContentsMargins(4, 4, 4, 4)
        for row in rows:
            pv.addLayout(row)
        pv.addWidget(body, 1)
        pv.addWidget(self.status_label)
        self.message_label = QtWidgets.QLabel(no_recording)
        self.message_label.setWordWrap(True)
        self.message_label.setAlignment(QtCore.Qt.AlignmentFlag.AlignCenter)
        self.stack = QtWidgets.QStackedWidget()
        self.stack.addWidget(self.message_label)
        self.stack.addWidget(page)
        outer = QtWidgets.QVBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(self.stack)

    def make_action(self, text: str, slot, shortcut=None, tip: str = "") -> QtGui.QAction:
        """An action of this panel (the main window puts it in the panel's menu)."""
        action = QtGui.QAction(text, self)
        action.triggered.connect(slot)
        if shortcut is not None:
            action.setShortcut(QtGui.QKeySequence(shortcut))
        if tip:
            action.setStatusTip(tip)
            action.setToolTip(tip)
        self.addAction(action)
        return action

    @staticmethod
    def fill_menu(button: QtWidgets.QAbstractButton, actions) -> None:
        """Give ``button`` a drop-down menu of ``actions`` (``None``: a separator), e.g. a panel's exports."""
        menu = QtWidgets.QMenu(button)
        for action in actions:
            if action is None:
                menu.addSeparator()
            else:
                menu.addAction(action)
        button.setMenu(menu)

    # ------------------------------------------------------------------ the running request
    @property
    def busy(self) -> bool:
        return self._request is not None

    def submit(self, channel: str, job: Callable, *, on_finished: Callable, what: str, title: str,
               on_failed: Callable | None = None, on_cancelled: Callable | None = None,
               stage: str = "", continues: bool = False) -> Request:
        """Run ``job(task)`` on ``channel`` as this panel's request (the previous one is abandoned).

        ``on_finished(result)`` gets the answer, the panel already idle unless ``continues`` (the
        handler then submits the next stage, e.g. the match after its index). A failure is said as
        "Could not ``what``: sentence" in the status line and notified under ``title``, then
        ``on_failed(exc)`` runs; a cancel runs ``on_cancelled()``. ``stage`` prefixes the progress.
        """
        self._abandon_quietly()
        request = self.runner.submit(channel, job)
        self._request = request
        self._pending = _Pending(on_finished, what, title, on_failed, on_cancelled, continues)
        self._stage = stage
        # bound methods: Qt drops the connections if this panel is destroyed before the answer
        request.progress.connect(self._show_progress)
        request.finished.connect(self._request_finished)
        request.failed.connect(self._request_failed)
        request.cancelled.connect(self._request_cancelled)
        request.superseded.connect(self._request_superseded)
        self._set_busy(True)
        return request

    def cancel(self) -> None:
        """Stop the running request (it reports "cancelled")."""
        if self._request is not None:
            self._request.cancel()

    def abandon(self) -> None:
        """Forget the running request (cancelling it) and go idle."""
        if self._abandon_quietly():
            self._set_busy(False)

    def _abandon_quietly(self) -> bool:
        request, self._request = self._request, None
        self._pending = None
        if request is None:
            return False
        request.cancel()
        self.request_over()
        return True

    def request_over(self) -> None:
        """The running request ended (answered, failed, cancelled, superseded or abandoned): a subclass
        forgets what it kept for it."""

    def _answering(self) -> _Pending | None:
        """What the running request asked for, when the signal being delivered is its answer."""
        if self._request is None or self.sender() is not self._request:
            return None
        return self._pending

    def _end(self) -> None:
        self._request = self._pending = None
        self.request_over()
        self._set_busy(False)

    def _request_finished(self, result) -> None:
        pending = self._answering()
        if pending is None:
            return
        if not pending.continues:
            self._end()
            pending.on_finished(result)
            return
        self._request = self._pending = None
        pending.on_finished(result)
        if self._request is None:  # the handler started no next stage
            self.request_over()
            self._set_busy(False)

    def _request_failed(self, exc: BaseException) -> None:
        pending = self._answering()
        if pending is None:
            return
        self._end()
        self.set_status(f"Could not {pending.what}: {describe(exc)}", problem=True)
        report_exception(exc, pending.title, self.workspace.notify)
        if pending.on_failed is not None:
            pending.on_failed(exc)

    def _request_cancelled(self) -> None:
        pending = self._answering()
        if pending is None:
            return
        self._end()
        if pending.on_cancelled is not None:
            pending.on_cancelled()

    def _request_superseded(self) -> None:
        if self._answering() is None:
            return
        self._end()
        self.superseded()

    def superseded(self) -> None:
        """Another view's request took this panel's channel (its request will not answer)."""
        self.set_status(self.SUPERSEDED)

    def _show_progress(self, done: int, total, message: str) -> None:
        if self._answering() is None:
            return
        if not total:
            self.progress.setRange(0, 0)
            return
        self.progress.setRange(0, 1000)
        self.progress.setValue(int(1000 * min(1.0, done / max(total, 1))))
        text = f"{self._stage}: {message}" if self._stage and message else (self._stage or message)
        self.progress.setFormat(f"{text} %p%" if text else "%p%")

    def _set_busy(self, busy: bool) -> None:
        self.progress.setVisible(busy)
        self.cancel_button.setVisible(busy)
        self.cancel_action.setEnabled(busy)
        if busy:
            self.progress.setRange(0, 0)
            self.progress.setFormat("")
        self.busy_changed.emit(busy)

    # ------------------------------------------------------------------ status line
    def set_status(self, text: str, problem: bool = False) -> None:
        self._status = text
        self.status_label.setStyleSheet("color: #b00000" if problem else "")
        set_plain(self.status_label, text)
        self.status_changed.emit(text)

    def status_text(self) -> str:
        return self._status

    # ------------------------------------------------------------------ exports
    def default_path(self, name: str) -> str:
        """Where a file dialog proposes to save ``name``: beside the recording, after its name."""
        recording = self.workspace.recording
        if recording is None:
            return name
        p = Path(recording.path)
        return str(p.with_name(f"{p.stem}-{name}"))

    def export_guarded(self, title: str, export: Callable[[], Path]) -> bool:
        """Run an export; the status line says where it wrote, a dialog titled ``title`` why it could not."""
        return export_reporting(self, title, export, lambda written: self.set_status(f"Exported to {written}"))

    def shutdown(self) -> None:
        """Cancel this panel's running request (the window calls it before the runner shuts down)."""
        self.abandon()
