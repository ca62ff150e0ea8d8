"""Graph recordings for the Graph panel's tests, written with the v3 writer (a graph main axis and a
pooled level).

``write_karate_recording``: item 0 is Zachary's karate club (34 nodes), items 1-3 are rings of 12 nodes;
no stored layout (the panel lays them out). Tap ``layer0/h`` (8 units, raw values
near 0 except):
  unit 0: 1.0 at the Officer faction's nodes (item 0);
  units 2, 3: 1.0 on the planted connected set of each item (PLANTED) and 0 elsewhere;
  unit 5: 1.0 at every node (never selected with a ring).
Annotations: faction (categorical, item 0: Mr. Hi / Officer; other items: missing), degree (numeric).
Pooled level ``level1``: node i pools into i // 2 (edges between the pairs joined below), tap
``level1/h`` (4 units).
"""

from __future__ import annotations

import networkx as nx
import numpy as np

from lstmviz.geometry import AxisGeometry, GraphGeometry
from lstmviz.recording import RecordingWriter

#: item -> the nodes where units 2 and 3 are on (each a connected set)
PLANTED = {0: (0, 4, 5, 6, 10, 16), 1: (2, 3, 4, 5), 2: (0, 1, 2, 3, 4), 3: (7, 8, 9)}
RING_NODES = 12


def karate_graphs() -> list[GraphGeometry]:
    club = nx.karate_club_graph()
    names = [f"{i}" for i in range(34)]
    graphs = [GraphGeometry.from_edges(34, list(club.edges()), node_names=names)]
    ring = [(i, (i + 1) % RING_NODES) for i in range(RING_NODES)]
    for item in range(1, 4):  # the format keeps layouts and names for every item or for none
        graphs.append(GraphGeometry.from_edges(RING_NODES, ring, node_names=[f"r{item}.{i}" for i in range(RING_NODES)]))
    return graphs


def pooled(g: GraphGeometry) -> GraphGeometry:
    """Node i pools into i // 2; the pooled graph joins the pairs that a finer edge joins."""
    m = (g.num_nodes + 1) // 2
    pairs = {(int(min(a, b)) // 2, int(max(a, b)) // 2) for a, b in g.edges if a // 2 != b // 2}
    return GraphGeometry.from_edges(m, sorted(pairs), pooling_map=np.arange(g.num_nodes) // 2,
                                    finer_nodes=g.num_nodes)


def write_karate_recording(path):
    graphs = karate_graphs()
    club = nx.karate_club_graph()
    rng = np.random.default_rng(5)
    with RecordingWriter(path, vocab=["<pad>", "node"], provenance={"engine": "test", "dataset": "karate"}) as writer:
        writer.set_geometry("positions", "graph")
        writer.add_axis("level1", description="pairs of nodes", geometry=AxisGeometry("graph", pooled_from="positions"))
        writer.add_tap("layer0/h", 8, layer=0, signal="h")
        writer.add_tap("level1/h", 4, axis="level1", layer=1, signal="h")
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
            coarse = pooled(g)
            h1 = rng.uniform(-0.05, 0.05, size=(coarse.num_nodes, 4)).astype(np.float32)
            writer.append_item(np.ones(n, np.int64), {"layer0/h": h, "level1/h": h1},
                               annotations={"faction": faction, "degree": degree},
                               geometry={"positions": g, "level1": coarse})
    return path
