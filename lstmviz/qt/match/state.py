"""The Match panel's part of the workspace: how matches are searched and shown (Qt-free).

``MatchSettings`` is what the panel's controls show (mode, result limit, shortest run, length weight,
candidate cap, context columns) and the annotation its aggregate view summarises; ``MATCH_STATE`` keeps
it in the workspace file (``"panels": {"match": {...}}``, version 1; a version 1 workspace file had the
same entries at the top level, "match" and "aggregate_annotation").
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from lstmviz.analysis.match_types import MODES
from lstmviz.workspace.panel_state import PanelStateFormat
from lstmviz.workspace.schema import Real, Record, Text, Whole

#: the panel's boxes: results, shortest run, length weight, candidates scored, context columns
MATCH_RANGES = {
    "limit": (1, 10_000_000), "min_length": (1, 100_000), "length_weight": (0.0, 10.0),
    "candidate_cap": (1, 100_000_000), "left": (0, 200), "right": (0, 500),
}


@dataclass
class MatchSettings:
    """How matches are searched and shown (see ``MatchQuery``); ``left``/``right``: context columns;
    ``aggregate_annotation``: the annotation the aggregate view summarises (None: its default)."""

    mode: str = "lstmvis"
    limit: int | None = 1000
    min_length: int = 1
    length_weight: float = 0.5
    candidate_cap: int | None = 10000
    left: int = 3
    right: int = 20
    aggregate_annotation: str | None = None


class MatchStateFormat(PanelStateFormat):
    name = "match"
    title = "the Match panel"
    version = 1
    schema = Record({
        "mode": (Text(choices=MODES), "lstmvis"),
        "limit": (Whole(*MATCH_RANGES["limit"], nullable=True), 1000),
        "min_length": (Whole(*MATCH_RANGES["min_length"]), 1),
        "length_weight": (Real(*MATCH_RANGES["length_weight"]), 0.5),
        "candidate_cap": (Whole(*MATCH_RANGES["candidate_cap"], nullable=True), 10000),
        "left": (Whole(*MATCH_RANGES["left"]), 3),
        "right": (Whole(*MATCH_RANGES["right"]), 20),
        "aggregate_annotation": (Text(nullable=True), None),
    })

    def from_values(self, values: dict) -> MatchSettings:
        return MatchSettings(**values)

    def to_values(self, state: MatchSettings) -> dict:
        return asdict(state)

    def fit(self, state: MatchSettings, recording, problems: list[str]) -> MatchSettings:
        name = state.aggregate_annotation
        if name is not None and name not in recording.annotations:
            problems.append(f"the recording has no annotation {name!r} to aggregate; it was dropped")
            state = replace(state, aggregate_annotation=None)
        return state

    def for_new_recording(self, state: MatchSettings) -> MatchSettings:
        return replace(state, aggregate_annotation=None)  # an annotation of the recording that was open


MATCH_STATE = MatchStateFormat()
