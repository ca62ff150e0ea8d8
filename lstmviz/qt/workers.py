"""Run long analysis functions on worker threads, with progress, cancel, and "the latest request wins".

Work is grouped by *channel* ("index", "match", "stats" ...). ``submit(channel, fn)`` cancels whatever
that channel was running and returns a ``Request``: a handle with its own signals (``progress``,
``finished``, ``failed``, ``cancelled``), so only the view that asked hears the answer. A superseded
request says ``superseded`` at once and nothing after: a view only ever sees the answer to the last
thing asked on a channel. The runner itself tells only what every request shares: ``progress`` and
``busy_changed`` per channel (the status bar shows them).
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from PySide6.QtCore import QObject, QRunnable, QThreadPool, Signal

from lstmviz.tasks import Cancelled, Task

#: progress signals of one request are emitted at most this often (the last one always gets through)
PROGRESS_INTERVAL_S = 0.05


class _Bridge(QObject):
    progress = Signal(str, int, int, object, str)
    done = Signal(str, int, object, object)  # channel, id, result, exception (or None)


class _Job(QRunnable):
    def __init__(self, bridge: _Bridge, channel: str, request_id: int, fn: Callable[[Task], Any], task: Task):
        super().__init__()
        self.setAutoDelete(True)
        self.bridge, self.channel, self.request_id, self.fn, self.task = bridge, channel, request_id, fn, task

    def run(self) -> None:
        # The GUI thread keeps its own references to fn and task until the answer arrives, and this
        # thread lets go of its references first: a Python wrapper of a QObject (a view captured by fn)
        # whose last reference dies on a worker thread is deleted later by PySide, twice if the GUI
        # thread deletes it too (a segfault in QObject::~QObject).
        fn, task = self.fn, self.task
        self.fn = self.task = None
        try:
            result = fn(task)
        except BaseException as exc:  # noqa: BLE001 - every failure goes back to the GUI thread
            del fn, task
            self.bridge.done.emit(self.channel, self.request_id, None, _detached(exc))
        else:
            del fn, task
            self.bridge.done.emit(self.channel, self.request_id, result, None)


def _detached(exc: BaseException) -> BaseException:
    """``exc`` without its traceback frames (they hold the worker's locals); the text is kept in
    ``exc.lstmviz_traceback`` for error details."""
    try:
        exc.lstmviz_traceback = "".join(traceback.format_exception(exc))
    except Exception:  # noqa: BLE001 - an exception that refuses attributes still goes back
        pass
    seen = set()
    link = exc
    while link is not None and id(link) not in seen:
        seen.add(id(link))
        link.__traceback__ = None
        link = link.__cause__ or link.__context__
    return exc


class Request(QObject):
    """One submitted job: its answer arrives on its own signals, on the GUI thread, exactly once (one of
    ``finished``, ``failed``, ``cancelled`` or ``superseded``), and only while it is the latest on its
    channel."""

    #: done, total (int or None), message
    progress = Signal(int, object, str)
    #: the job's return value
    finished = Signal(object)
    #: the exception it raised (never a Cancelled); its traceback text is in ``lstmviz_traceback``
    failed = Signal(object)
    #: it stopped at a ``cancel()``
    cancelled = Signal()
    #: a newer request on its channel took over (sent at once): this one will not answer
    superseded = Signal()

    def __init__(self, runner: TaskRunner, channel: str, request_id: int):
        super().__init__(runner)
        self.runner = runner
        self.channel = channel
        self.id = request_id
        #: whether it has answered (or was superseded)
        self.done = False

    def cancel(self) -> None:
        """Stop the job (it answers ``cancelled``); nothing when it is over or superseded."""
        if not self.done:
            self.runner._cancel_request(self)

    def __repr__(self) -> str:
        return f"Request({self.channel!r}, {self.id}{', done' if self.done else ''})"


class TaskRunner(QObject):
    """Runs ``fn(task)`` on a thread pool; one live request per channel."""

    #: channel, request id, done, total (int or None), message (of the latest request on the channel)
    progress = Signal(str, int, int, object, str)
    #: channel, whether a request is running on it
    busy_changed = Signal(str, bool)

    def __init__(self, parent: QObject | None = None, max_threads: int = 2):
        super().__init__(parent)
        self._pool = QThreadPool(self)
        self._pool.setMaxThreadCount(max_threads)
        self._bridge = _Bridge(self)  # parented: its lifetime is Qt's, never a worker thread's
        self._bridge.progress.connect(self._on_progress)
        self._bridge.done.connect(self._on_done)
        self._next_id = 0
        self._latest: dict[str, int] = {}
        self._requests: dict[str, Request] = {}  # the latest request per channel, until it answers
        self._tasks: dict[tuple[str, int], Task] = {}
        self._keep: dict[tuple[str, int], tuple] = {}  # fn and task, released on the GUI thread
        self._lock = threading.Lock()

    def submit(self, channel: str, fn: Callable[[Task], Any]) -> Request:
        """Start ``fn(task)`` on ``channel``, cancelling (and superseding) the request running there."""
        self.cancel(channel)
        previous = self._requests.pop(channel, None)
        self._next_id += 1
        request_id = self._next_id
        request = Request(self, channel, request_id)
        self._requests[channel] = request
        last_emit = [0.0]

        def on_progress(done: int, total: int | None, message: str) -> None:
            now = time.monotonic()
            if now - last_emit[0] >= PROGRESS_INTERVAL_S or (total is not None and done >= total):
                last_emit[0] = now
                self._bridge.progress.emit(channel, request_id, int(done), total, message)

        task = Task(on_progress=on_progress)
        with self._lock:
            self._latest[channel] = request_id
            self._tasks[(channel, request_id)] = task
        self._keep[(channel, request_id)] = (fn, task)
        self.busy_changed.emit(channel, True)
        self._pool.start(_Job(self._bridge, channel, request_id, fn, task))
        if previous is not None and not previous.done:
            previous.done = True
            previous.superseded.emit()
            previous.deleteLater()
        return request

    def cancel(self, channel: str) -> None:
        """Cancel the request running on ``channel`` (if any); it reports ``cancelled`` when it stops."""
        with self._lock:
            request_id = self._latest.get(channel)
            task = self._tasks.get((channel, request_id)) if request_id is not None else None
        if task is not None:
            task.cancel()

    def _cancel_request(self, request: Request) -> None:
        if self._latest.get(request.channel) == request.id:
            self.cancel(request.channel)

    def is_busy(self, channel: str) -> bool:
        with self._lock:
            request_id = self._latest.get(channel)
            return request_id is not None and (channel, request_id) in self._tasks

    @property
    def busy(self) -> bool:
        """Whether a request is running on any channel."""
        with self._lock:
            return any(self._latest.get(channel) == request_id for channel, request_id in self._tasks)

    def latest(self, channel: str) -> int | None:
        return self._latest.get(channel)

    def shutdown(self, timeout_ms: int = 5000) -> bool:
        """Cancel everything and wait for the threads to stop (call before the application quits)."""
        with self._lock:
            tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        return self._pool.waitForDone(timeout_ms)

    def _current(self, channel: str, request_id: int) -> bool:
        return self._latest.get(channel) == request_id

    def _on_progress(self, channel: str, request_id: int, done: int, total, message: str) -> None:
        if self._current(channel, request_id):
            request = self._requests.get(channel)
            if request is not None and request.id == request_id:
                request.progress.emit(done, total, message)
            self.progress.emit(channel, request_id, done, total, message)

    def _on_done(self, channel: str, request_id: int, result, exc) -> None:
        with self._lock:
            self._tasks.pop((channel, request_id), None)
        self._keep.pop((channel, request_id), None)
        if not self._current(channel, request_id):
            return  # superseded: the newer request reports for this channel
        request = self._requests.pop(channel, None)
        if request is not None and request.id == request_id:
            request.done = True
            if isinstance(exc, Cancelled):
                request.cancelled.emit()
            elif exc is not None:
                request.failed.emit(exc)
            else:
                request.finished.emit(result)
            request.deleteLater()
        self.busy_changed.emit(channel, False)
