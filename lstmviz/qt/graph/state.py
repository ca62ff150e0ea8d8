"""The Graph panel's part of the workspace: how nodes are coloured, brushed and matched (Qt-free).

``GraphSettings`` is what the panel's controls show; ``GRAPH_STATE`` keeps it in the workspace file
(``"panels": {"graph": {...}}``, version 1).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from lstmviz.workspace.panel_state import PanelStateFormat
from lstmviz.workspace.schema import Flag, Record, Text, Whole

#: the panel's boxes: ring hops, k of the k-hop ball, smallest match, thumbnails shown
GRAPH_RANGES = {"ring": (0, 10), "k": (0, 20), "min_size": (1, 100_000), "thumbnails": (1, 200)}
MAIN_AXIS = "positions"


@dataclass
class GraphSettings:
    """``level``: the graph axis drawn (``positions`` or a pooled level); ``color``: the node annotation
    that colours the nodes (None: the selected units' mean); ``ring``: hops of the off-ring of the
    Select rule and the match score; ``ball`` / ``k``: a click brushes the k-hop ball around the node;
    ``min_size``: the smallest match; ``thumbnails``: how many of the top matches are drawn."""

    level: str = MAIN_AXIS
    color: str | None = None
    ring: int = 1
    ball: bool = False
    k: int = 1
    min_size: int = 2
    thumbnails: int = 24


class GraphStateFormat(PanelStateFormat):
    name = "graph"
    title = "the Graph panel"
    version = 1
    schema = Record({
        "level": (Text(), MAIN_AXIS),
        "color": (Text(nullable=True), None),
        "ring": (Whole(*GRAPH_RANGES["ring"]), 1),
        "ball": (Flag(), False),
        "k": (Whole(*GRAPH_RANGES["k"]), 1),
        "min_size": (Whole(*GRAPH_RANGES["min_size"]), 2),
        "thumbnails": (Whole(*GRAPH_RANGES["thumbnails"]), 24),
    })

    def from_values(self, values: dict) -> GraphSettings:
        return GraphSettings(**values)

    def to_values(self, state: GraphSettings) -> dict:
        return asdict(state)

    def fit(self, state: GraphSettings, recording, problems: list[str]) -> GraphSettings:
        if state.color is not None and state.color not in recording.annotations:
            problems.append(f"the recording has no annotation {state.color!r} to colour nodes by; it was dropped")
            state = replace(state, color=None)
        axes = list(getattr(recording, "axes", [MAIN_AXIS]))
        if state.level not in axes:
            problems.append(f"the recording has no graph level {state.level!r}; the input graph is shown")
            state = replace(state, level=MAIN_AXIS)
        return state

    def for_new_recording(self, state: GraphSettings) -> GraphSettings:
        return replace(state, color=None, level=MAIN_AXIS)


GRAPH_STATE = GraphStateFormat()
