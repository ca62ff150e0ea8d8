"""Graph recordings for the Graph panel's tests: real HDF5 recordings (the current writer) whose reader
is given the v3 geometry methods (``axis_geometry``, ``item_geometry``, ``graph_edges``, ``filler``,
``axes``) from graphs kept beside them, until the v3 writer and reader (helper v3) are merged; then
these recordings are written with ``set_geometry`` / ``geometry=`` and opened as they are.

``write_karate_recording``: item 0 is Zachary's karate club (34 nodes, no stored layout: the panel lays
it out), items 1-3 are rings of 12 nodes with stored coordinates. Tap ``layer0/h`` (8 units, raw values
near 0 except):
  unit 0: 1.0 at the Officer faction's nodes (item 0);
  units 2, 3: 1.0 on the planted connected set of each item (PLANTED) and 0 elsewhere;
  unit 5: 1.0 at every node (never selected with a ring).
Annotations: faction (categorical, item 0: Mr. Hi / Officer; other items: missing), degree (numeric).
"""

from __future__ import annotations

import networkx as nx
import numpy as np

from lstmviz.geometry import AxisGeometry, GraphGeometry
from lstmviz.recording import RecordingWriter, open_recording

#: item -> the nodes where units 2 and 3 are on (each a connected set)
PLANTED = {0: (0, 4, 5, 6, 10, 16), 1: (2, 3, 4, 5), 2: (0, 1, 2, 3, 4), 3: (7, 8, 9)}
RING_NODES = 12
_GRAPHS: dict[str, list[GraphGeometry]] = {}


class GraphReader:
    """A recording with the v3 reader's graph methods (over graphs kept in memory)."""

    def __init__(self, recording, graphs: list[GraphGeometry]):
        self._recording = recording
        self._graphs = graphs
        self.axes = ["positions"]

    def __getattr__(self, name):
        return getattr(self._recording, name)

    def axis_geometry(self, axis: str = "positions") -> AxisGeometry:
        if axis != "positions":
            raise KeyError(f"no axis {axis!r}")
        return AxisGeometry(kind="graph")

    def item_geometry(self, item: int, axis: str = "positions") -> GraphGeometry:
        return self._graphs[int(item)]

    def graph_edges(self, axis: str = "positions"):
        offsets = np.asarray(self._recording.item_offsets, dtype=np.int64)
        edges = [g.edges + offsets[i] for i, g in enumerate(self._graphs)]
        counts = [len(g.edges) for g in self._graphs]
        return np.concatenate(edges).astype(np.int64), np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def filler(self, axis: str = "positions"):
        return np.concatenate([np.zeros(g.num_nodes, bool) if g.filler is None else g.filler for g in self._graphs])


def open_graph_recording(path):
    """The opener for a window's workspace: graph recordings get the geometry methods."""
    recording = open_recording(path)
    graphs = _GRAPHS.get(str(path))
    return recording if graphs is None else GraphReader(recording, graphs)


def karate_graphs() -> list[GraphGeometry]:
    club = nx.karate_club_graph()
    names = [f"{i}" for i in range(34)]
    graphs = [GraphGeometry.from_edges(34, list(club.edges()), node_names=names)]
    angle = 2 * np.pi * np.arange(RING_NODES) / RING_NODES
    ring = [(i, (i + 1) % RING_NODES) for i in range(RING_NODES)]
    for _ in range(3):
        graphs.append(GraphGeometry.from_edges(RING_NODES, ring, coordinates=np.stack([np.cos(angle), np.sin(angle)], 1)))
    return graphs


def write_karate_recording(path):
    graphs = karate_graphs()
    club = nx.karate_club_graph()
    rng = np.random.default_rng(5)
    with RecordingWriter(path, vocab=["<pad>", "node"], provenance={"engine": "test", "dataset": "karate"}) as writer:
        writer.add_tap("layer0/h", 8, layer=0, signal="h")
        writer.add_annotation("faction", kind="categorical", labels=["Mr. Hi", "Officer"], description="the club")
        writer.add_annotation("degree", kind="numeric", description="node degree")
        for item, g in enumerate(graphs):
            n = g.num_nodes
            h = rng.uniform(-0.05, 0.05, size=(n, 8)).astype(np.float32)
            h[list(PLANTED[item]), 2] = 1.0
            h[list(PLANTED[item]), 3] = 1.0
            h[:, 5] = 1.0
            faction = np.full(n, -1)
            if item == 0:
                faction = np.array([0 if club.nodes[v]["club"] == "Mr. Hi" else 1 for v in range(n)])
                h[faction == 1, 0] = 1.0
            degree = np.bincount(g.edges.reshape(-1), minlength=n).astype(float)
            writer.append_item(np.ones(n, np.int64), {"layer0/h": h}, annotations={"faction": faction, "degree": degree})
    _GRAPHS[str(path)] = graphs
    return path
