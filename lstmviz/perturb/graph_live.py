"""The live graph model of a graph recording: its checkpoint, its data, and perturbing one recorded graph.

A graph recording stores states, tokens and each graph's geometry, not the model's input features, so the
graphs are rebuilt from the dataset the provenance names (``dataset``, ``split``, ``dataset_options``:
the datasets are deterministic) and checked against the recording: the same number of positions per graph
and the same tokens at every position (filler positions aside). The checkpoint is found and checked as for
sequence models (:func:`lstmviz.perturb.live_model.find_checkpoint`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import PerturbError
from .graph import GraphEffect, graph_forward, perturb_graph
from .live_model import CheckpointProblem, load_checkpoint_model, recording_dataset


@dataclass
class LiveGraph:
    """A graph model with the data of its recording (see the module docstring)."""

    model: Any
    dataset: Any
    path: Path | None
    meta: dict = field(default_factory=dict)
    _prepared: dict = field(default_factory=dict, repr=False)

    def prepared(self, item: int):
        """``model.prepare`` of graph ``item`` (cached)."""
        if item not in self._prepared:
            if len(self._prepared) > 256:
                self._prepared.clear()
            self._prepared[item] = self.model.prepare(self.dataset[int(item)])
        return self._prepared[item]


def _dataset_of(recording):
    return recording_dataset(recording, "graphs", "; from a script, use lstmviz.perturb.graph.perturb_graph(model, "
                                                  "model.prepare(item), edits)")


def load_graph_model(recording, checkpoint: Path | str | None = None) -> LiveGraph:
    """The graph model that made ``recording``, with its dataset. :class:`CheckpointProblem` when the
    checkpoint is missing, another model or does not load; :class:`PerturbError` for the data."""
    if recording.axis_geometry().kind != "graph":
        raise PerturbError(f"the recording {Path(recording.path).name} holds {recording.axis_geometry().kind} "
                           "positions, not graph nodes")
    model, meta, path = load_checkpoint_model(recording, checkpoint)
    if not callable(getattr(model, "prepare", None)):
        raise CheckpointProblem("mismatch", path, f"the checkpoint {path} holds a {type(model).__name__}, not a graph "
                                                  "model; it is another model")
    dataset = _dataset_of(recording)
    if len(dataset) < recording.n_items:
        raise PerturbError(f"the rebuilt dataset has {len(dataset)} graphs, the recording {recording.n_items}; the "
                           "dataset changed since the recording was made")
    return LiveGraph(model, dataset, path, meta)


def check_item(live: LiveGraph, recording, item: int):
    """The prepared graph of ``item``, after checking it is the graph the recording holds."""
    if not 0 <= int(item) < recording.n_items:
        raise PerturbError(f"graph {item} does not exist; the recording has graphs 0 to {recording.n_items - 1}")
    prepared = live.prepared(int(item))
    start, stop = recording.item_range(int(item))
    level0 = prepared.levels[0]
    if stop - start != level0.geometry.num_nodes:
        raise PerturbError(f"graph {item} has {stop - start} positions in the recording but {level0.geometry.num_nodes} "
                           "when rebuilt; the dataset or the model changed since the recording was made")
    tokens = np.asarray(live.dataset[int(item)].tokens, dtype=np.int64)
    if level0.source_node is not None:
        real = level0.source_node >= 0
        tokens = np.where(real, tokens[np.maximum(level0.source_node, 0)], -1)
    else:
        real = np.ones(len(tokens), dtype=bool)
    recorded = recording.token_ids(start, stop)
    if not np.array_equal(recorded[real], tokens[real]):
        raise PerturbError(f"graph {item} differs from the recording's (its nodes' tokens differ); the dataset changed "
                           "since the recording was made")
    return prepared


def reproduces(live: LiveGraph, recording, item: int, taps: Sequence[str] | None = None) -> dict[str, float]:
    """Largest |recorded - recomputed| per tap of graph ``item`` (float16 recordings differ by rounding)."""
    prepared = check_item(live, recording, item)
    names = list(recording.taps) if taps is None else list(taps)
    _, states = graph_forward(live.model, prepared, (), names)
    return {name: float(np.max(np.abs(recording.item_states(name, int(item)) - states[name]), initial=0.0))
            for name in names}


def perturb_recorded(live: LiveGraph, recording, item: int, edits, *, taps=None, tolerance: float = 0.0
                     ) -> GraphEffect:
    """:func:`lstmviz.perturb.graph.perturb_graph` on graph ``item`` of ``recording`` (checked first)."""
    return perturb_graph(live.model, check_item(live, recording, item), edits, taps=taps, tolerance=tolerance)


__all__ = ["LiveGraph", "check_item", "load_graph_model", "perturb_recorded", "reproduces"]
