"""Per-unit statistics of taps (for z-scores), computed on the workspace's runner and kept per recording.

``get(tap)`` answers at once: the statistics, or None while a worker computes them (the first call
starts it, on channel ``"stats:<tap>"`` so two taps compute side by side). When they are ready,
``ready(tap)`` is emitted; a failure is ``failed(tap, message)`` (and is not retried until asked). Opening another recording drops
everything, and late answers about the previous one are ignored.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Signal

from lstmviz.errors import describe
from lstmviz.qt.workers import TaskRunner

CHANNEL_PREFIX = "stats:"


class TapStatsCache(QObject):
    """Statistics of the open recording's taps, computed in the background on demand."""

    ready = Signal(str)
    failed = Signal(str, str)

    def __init__(self, runner: TaskRunner, parent: QObject | None = None):
        super().__init__(parent)
        self.runner = runner
        self._recording = None
        self._stats: dict[str, object] = {}
        self._pending: dict[str, object] = {}  # tap -> its Request
        self._failed_taps: set[str] = set()

    def set_recording(self, recording) -> None:
        """Forget everything about the previous recording (its requests are cancelled)."""
        for request in self._pending.values():
            request.cancel()
        self._recording = recording
        self._stats = {}
        self._pending = {}
        self._failed_taps = set()

    def get(self, tap: str, *, retry: bool = False):
        """The statistics of ``tap`` (``UnitStats``), or None while they are computed (starting it).

        After a failure they are not computed again unless ``retry`` (the user asked anew).
        """
        stats = self._stats.get(tap)
        if retry:
            self._failed_taps.discard(tap)
        if stats is None and self._recording is not None and not self.is_pending(tap) and tap not in self._failed_taps:
            self._start(tap)
        return stats

    def is_pending(self, tap: str) -> bool:
        return tap in self._pending

    @property
    def busy(self) -> bool:
        return bool(self._pending)

    def _start(self, tap: str) -> None:
        from lstmviz.analysis.transforms import tap_stats

        recording = self._recording

        def compute(task):
            return tap_stats(recording, tap, task=task)

        request = self.runner.submit(CHANNEL_PREFIX + tap, compute)
        self._pending[tap] = request
        request.finished.connect(self._finished)
        request.failed.connect(self._failed)
        request.cancelled.connect(self._answered)
        request.superseded.connect(self._answered)

    def _answered(self) -> str | None:
        """The tap whose request is answering (it is no longer pending), or None for a forgotten one."""
        request = self.sender()
        tap = getattr(request, "channel", "")[len(CHANNEL_PREFIX):]
        if self._pending.get(tap) is not request:
            return None
        del self._pending[tap]
        return tap

    def _finished(self, result) -> None:
        tap = self._answered()
        if tap is not None:
            self._stats[tap] = result
            self.ready.emit(tap)

    def _failed(self, exc) -> None:
        tap = self._answered()
        if tap is not None:
            self._failed_taps.add(tap)
            self.failed.emit(tap, f"The z-score statistics of {tap} could not be computed: {describe(exc)}")
