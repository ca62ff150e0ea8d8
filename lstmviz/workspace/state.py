"""What a workspace saves and restores: plain data, no Qt, no open files.

``WorkspaceState`` names every open recording (by an id the panes use), the one the window shows, the
window of positions, the panes (each naming the recording it shows), the active pane, the annotation
tracks shown, and each panel's part (``panels``: a panel's name -> its state, see
``lstmviz.workspace.panel_state``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lstmviz.analysis.selection_types import SelectionSpec

#: the value transforms a pane may use (as ``lstmviz.analysis.transforms.TRANSFORMS``)
TRANSFORMS = ("raw", "tanh", "zscore")
#: the id of the first recording of a workspace (a workspace of one recording has only this one)
FIRST_RECORDING = "r0"
#: panes a workspace may show (each is a plot row; more do not fit a screen and cost seconds to build)
MAX_PANES = 16
#: recordings a workspace may hold open at once
MAX_RECORDINGS = 16
DEFAULT_WINDOW_WIDTH = 100


@dataclass
class PaneState:
    """One state view: a tap of a recording, how its values are shown, and the hypothesis brushed on it."""

    tap: str
    transform: str = "tanh"
    threshold: float = 0.3
    brush: tuple[int, int] | None = None  # [start, stop) absolute positions
    pad_left: int = 1
    pad_right: int = 0
    tolerance: float = 1.0
    direction: str = "positive"
    added: tuple[tuple[int, int], ...] = ()  # (unit, sign)
    removed: tuple[tuple[int, int], ...] = ()
    recording: str = FIRST_RECORDING  # the id of the recording it shows (``WorkspaceState.recordings``)

    def selection_spec(self) -> SelectionSpec | None:
        """The ``SelectionSpec`` this pane asks for, or None without a brush."""
        if self.brush is None:
            return None
        return SelectionSpec(self.brush[0], self.brush[1], self.threshold, self.pad_left, self.pad_right,
                             self.tolerance, self.direction, self.added, self.removed)


@dataclass
class WorkspaceState:
    """Everything a saved workspace restores."""

    #: id -> path of every open recording (absolute after loading), in the order they were opened
    recordings: dict[str, str]
    #: the id of the recording the window shows
    shown: str = FIRST_RECORDING
    window_start: int = 0
    window_width: int = DEFAULT_WINDOW_WIDTH
    panes: list[PaneState] = field(default_factory=list)
    active_pane: int = 0
    annotations: list[str] = field(default_factory=list)  # visible annotation tracks, in order
    #: a panel's name -> its state (the type its format reads; a JSON object for a panel this lstmviz
    #: does not have, kept to be written back); a panel without an entry keeps its defaults
    panels: dict[str, Any] = field(default_factory=dict)

    @property
    def recording(self) -> str:
        """The path of the recording the window shows."""
        return self.recordings[self.shown]

    @classmethod
    def of(cls, recording, **fields) -> WorkspaceState:
        """A workspace of one recording (``FIRST_RECORDING``); its panes show it."""
        return cls(recordings={FIRST_RECORDING: str(recording)}, shown=FIRST_RECORDING, **fields)
