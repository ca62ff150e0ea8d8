"""The list of recently opened recordings, kept in QSettings (or only in memory without settings)."""

from __future__ import annotations

from pathlib import Path

from PySide6 import QtCore

KEY = "recent_files"
LIMIT = 10


class RecentFiles:
    """Most recent first, without duplicates, at most ``LIMIT`` entries."""

    def __init__(self, settings: QtCore.QSettings | None = None):
        self._settings = settings
        self._memory: list[str] = []

    def paths(self) -> list[str]:
        if self._settings is None:
            return list(self._memory)
        value = self._settings.value(KEY, [])
        if isinstance(value, str):  # QSettings gives a lone string for a one-element list
            value = [value]
        return [str(v) for v in (value or [])]

    def add(self, path: str | Path) -> None:
        path = str(Path(path).resolve())
        paths = [path] + [p for p in self.paths() if p != path]
        self._store(paths[:LIMIT])

    def clear(self) -> None:
        self._store([])

    def _store(self, paths: list[str]) -> None:
        if self._settings is None:
            self._memory = paths
        else:
            self._settings.setValue(KEY, paths)
            self._settings.sync()
