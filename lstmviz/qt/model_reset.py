"""``resetting(model)``: a Qt model's reset as one block that always ends.

A model that calls ``beginResetModel()`` and then raises before ``endResetModel()`` leaves its views
half-reset: Qt warns "beginResetModel called on ... without calling endResetModel first" at the next
reset and the views stop following the model. Every reset in the window goes through this block, so a
failure inside it (a read of a damaged file, a bad value) still ends the reset; the error propagates.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from PySide6 import QtCore


@contextlib.contextmanager
def resetting(model: QtCore.QAbstractItemModel) -> Iterator[None]:
    """``beginResetModel()`` before the block and ``endResetModel()`` after it, even when it raises."""
    model.beginResetModel()
    try:
        yield
    finally:
        model.endResetModel()
