"""The Image panel's part of the workspace: which tap is drawn and how, and the Select rule's settings
(Qt-free).

``ImageSettings`` is what the panel's controls show; ``IMAGE_STATE`` keeps it in the workspace file
(``"panels": {"image": {...}}``, version 1).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from lstmviz.workspace.panel_state import PanelStateFormat
from lstmviz.workspace.schema import Flag, Real, Record, Text, Whole

IMAGE_RANGES = {"ring": (0, 10), "unit": (0, 1_000_000), "top": (1, 200)}
MODES = ("mean", "unit", "norm")
REDUCES = ("max", "mean")


@dataclass
class ImageSettings:
    """``tap``: the feature map drawn (None: the first image tap); ``mode``: the overlay (``mean`` of the
    selected units, one ``unit``, the channel L2 ``norm``); ``field``: outline the hovered cell's
    receptive field; ``threshold`` (raw values), ``ring`` (cells), ``tolerance``, ``direction``: the
    box Select rule; ``reduce`` / ``top``: how the top-activating images are ranked and how many."""

    tap: str | None = None
    mode: str = "mean"
    unit: int = 0
    field: bool = True
    threshold: float = 0.3
    ring: int = 1
    tolerance: float = 1.0
    direction: str = "positive"
    reduce: str = "max"
    top: int = 24


class ImageStateFormat(PanelStateFormat):
    name = "image"
    title = "the Image panel"
    version = 1
    schema = Record({
        "tap": (Text(nullable=True), None),
        "mode": (Text(), "mean"),
        "unit": (Whole(*IMAGE_RANGES["unit"]), 0),
        "field": (Flag(), True),
        "threshold": (Real(-1e6, 1e6), 0.3),
        "ring": (Whole(*IMAGE_RANGES["ring"]), 1),
        "tolerance": (Real(0.0, 1.0, low_open=True), 1.0),
        "direction": (Text(), "positive"),
        "reduce": (Text(), "max"),
        "top": (Whole(*IMAGE_RANGES["top"]), 24),
    })

    def from_values(self, values: dict) -> ImageSettings:
        s = ImageSettings(**values)
        if s.mode not in MODES:
            s = replace(s, mode="mean")
        if s.reduce not in REDUCES:
            s = replace(s, reduce="max")
        if s.direction not in ("positive", "negative"):
            s = replace(s, direction="positive")
        return s

    def to_values(self, state: ImageSettings) -> dict:
        return asdict(state)

    def fit(self, state: ImageSettings, recording, problems: list[str]) -> ImageSettings:
        if state.tap is not None and state.tap not in recording.taps:
            problems.append(f"the recording has no tap {state.tap!r} to draw over its images; the first one is shown")
            state = replace(state, tap=None)
        return state

    def for_new_recording(self, state: ImageSettings) -> ImageSettings:
        return replace(state, tap=None, unit=0)


IMAGE_STATE = ImageStateFormat()
