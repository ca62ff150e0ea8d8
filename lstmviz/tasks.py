"""Progress and cancellation for long computations.

Every long computation is a plain function that takes a ``Task``: it reports progress with
``task.progress(done, total)`` and calls ``task.check()`` often enough that a cancel takes effect
within a fraction of a second. The Qt layer runs such functions on a worker thread and connects
``on_progress`` to a signal; the CLI uses ``TqdmTask``. Nothing here imports Qt.
"""

from __future__ import annotations

import threading
from typing import Callable, Optional

ProgressCallback = Callable[[int, Optional[int], str], None]


class Cancelled(Exception):
    """Raised by ``Task.check()`` once the task has been cancelled."""


class Task:
    """Progress sink and cancellation flag shared between a computation and whoever waits for it."""

    def __init__(self, on_progress: ProgressCallback | None = None):
        self._on_progress = on_progress
        self._cancel = threading.Event()
        self.done = 0
        self.total: int | None = None
        self.message = ""

    def progress(self, done: int, total: int | None = None, message: str = "") -> None:
        """Report that ``done`` of ``total`` units of work are finished, then check for cancellation."""
        self.done, self.message = done, message
        if total is not None:
            self.total = total
        if self._on_progress is not None:
            self._on_progress(done, self.total, message)
        self.check()

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check(self) -> None:
        if self._cancel.is_set():
            raise Cancelled()


class TqdmTask(Task):
    """A task that draws a tqdm progress bar on stderr (for the CLI)."""

    def __init__(self, desc: str = "", unit: str = "it", disable: bool | None = None):
        super().__init__()
        from tqdm.auto import tqdm

        self._bar = tqdm(desc=desc, unit=unit, disable=disable, dynamic_ncols=True)

    def progress(self, done: int, total: int | None = None, message: str = "") -> None:
        if total is not None and self._bar.total != total:
            self._bar.total = total
        self._bar.n = done
        if message:
            self._bar.set_postfix_str(message, refresh=False)
        self._bar.refresh()
        super().progress(done, total, message)

    def close(self) -> None:
        self._bar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def ensure_task(task: Task | None) -> Task:
    """The given task, or a silent one."""
    return task if task is not None else Task()
