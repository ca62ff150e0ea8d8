"""The Embedding geometry panel's part of the workspace: its settings (Qt-free).

``EmbeddingState`` is what the panel's controls show: where the table comes from (``source``: the recording's
checkpoint, class means of a tap per annotation label, or a file), the choices for each, the method and
exclusion of the analogy box, the neighbours shown, how relations are made and the map's projection.
``EMBEDDING_STATE`` keeps it in the workspace file (``"panels": {"embedding": {...}}``, version 1). The table
itself is not saved: after a restore the panel shows the settings, and Load reads the table again.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

from lstmviz.analysis.analogy import GENERATORS, METHODS
from lstmviz.analysis.embedding_projection import PROJECTIONS
from lstmviz.workspace.panel_state import PanelStateFormat
from lstmviz.workspace.schema import Flag, Record, Text, Whole

SOURCES = ("checkpoint", "class-means", "file")
RELATION_SOURCES = (*GENERATORS, "file")
K_RANGE = (1, 200)


@dataclass(frozen=True)
class EmbeddingState:
    source: str = "checkpoint"
    parameter: str | None = None
    tap: str | None = None
    annotation: str | None = None
    by: str | None = None
    file: str | None = None
    method: str = "3cosadd"
    exclude: bool = True
    k: int = 10
    relations: str = "morphology"
    relations_file: str | None = None
    projection: str = "pca"


class EmbeddingStateFormat(PanelStateFormat):
    name = "embedding"
    title = "the Embedding geometry panel"
    version = 1
    schema = Record({
        "source": (Text(choices=SOURCES), "checkpoint"),
        "parameter": (Text(nullable=True), None),
        "tap": (Text(nullable=True), None),
        "annotation": (Text(nullable=True), None),
        "by": (Text(nullable=True), None),
        "file": (Text(nullable=True), None),
        "method": (Text(choices=tuple(METHODS)), "3cosadd"),
        "exclude": (Flag(), True),
        "k": (Whole(*K_RANGE), 10),
        "relations": (Text(choices=RELATION_SOURCES), "morphology"),
        "relations_file": (Text(nullable=True), None),
        "projection": (Text(choices=PROJECTIONS), "pca"),
    })

    def from_values(self, values: dict) -> EmbeddingState:
        return EmbeddingState(**values)

    def to_values(self, state: EmbeddingState) -> dict:
        return asdict(state)

    def for_new_recording(self, state: EmbeddingState) -> EmbeddingState:
        """The choices of the analysis stay; the recording's taps and annotations do not."""
        return replace(state, tap=None, annotation=None, by=None, parameter=None)

    def fit(self, state: EmbeddingState, recording, problems: list[str]) -> EmbeddingState:
        tap, annotation, by = state.tap, state.annotation, state.by
        if tap is not None and tap not in recording.taps:
            problems.append(f"embedding: the recording has no tap {tap!r}; the Embedding panel shows its first tap")
            tap = None
        for name, value in (("annotation", annotation), ("by", by)):
            info = recording.annotations.get(value) if value is not None else None
            if value is not None and (info is None or info.kind != "categorical"):
                problems.append(f"embedding: the recording has no categorical annotation {value!r}; the Embedding "
                                f"panel left it out")
                if name == "annotation":
                    annotation = None
                else:
                    by = None
        return replace(state, tap=tap, annotation=annotation, by=by)


EMBEDDING_STATE = EmbeddingStateFormat()
