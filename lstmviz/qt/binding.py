"""Controls bound to one value of the workspace, both ways, without echoes.

A panel's controls show a value the workspace keeps (the Match panel's settings, the Probes panel's
state). The user changes a control: the value the controls show is stored in the workspace. The
workspace's value changes (a workspace file is restored): the controls show it. Neither direction may
come back as the other: setting the controls from the workspace must not store a half-set value, and
storing must not reset the controls from its own echo. ``StateBinding`` owns that bookkeeping, so a
panel keeps no flags of its own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any


class StateBinding:
    """Keeps a group of controls and one workspace value in step.

    ``read()``: the value the controls show; ``show(value)``: set the controls (and whatever follows
    from them) to ``value``; ``store(value)``: give it to the workspace, which announces the change
    (back to ``model_changed``, where it is recognised as the echo).

    Connect each control's change signal to ``push`` and the workspace's change signal to
    ``model_changed``. Setting several controls at once goes in ``with binding.batch():`` and is stored
    once, by a ``push()`` after the block. With ``store_shown``, a value from the workspace is stored
    back as the controls show it (the workspace then keeps only what the panel could take of it).
    """

    def __init__(self, read: Callable[[], Any], show: Callable[[Any], None], store: Callable[[Any], None], *,
                 store_shown: bool = False):
        self._read, self._show, self._store = read, show, store
        self._store_shown = store_shown
        self._setting = 0  # controls are being set (from the workspace, or in a batch): nothing is stored
        self._storing = 0  # the workspace is being told: its announcement is our own echo

    @contextlib.contextmanager
    def batch(self) -> Iterator[None]:
        """Set controls without storing each change (``push()`` afterwards stores them once)."""
        self._setting += 1
        try:
            yield
        finally:
            self._setting -= 1

    @property
    def setting(self) -> bool:
        """Whether controls are being set (from the workspace, or in a batch)."""
        return self._setting > 0

    def push(self, *_) -> None:
        """Store what the controls show (a control's change signal; ignored while controls are set)."""
        if self._setting:
            return
        value = self._read()
        self._storing += 1
        try:
            self._store(value)
        finally:
            self._storing -= 1

    def model_changed(self, value, *_) -> None:
        """Show the workspace's new value (not the echo of ``push``)."""
        if self._storing:
            return
        with self.batch():
            self._show(value)
        if self._store_shown:
            self.push()
