"""What the Graph panel reads from a recording (Qt-free): its graph axes, one item's graph, a layout for
it, and the whole-corpus graph for matching — with the caches that keep a redraw cheap.

A recording has a graph when its reader gives position geometry (format v3: ``axis_geometry``,
``item_geometry``, ``graph_edges``, ``filler``) and its main axis ``positions`` is a graph axis. A
pooled level is a graph axis whose geometry names the finer axis it pools (``pooled_from``).

Layout (``LayoutCache``): the item's stored coordinates when it has them; else, for a pooled level, the
centroid of the finer level's layout over the nodes each pooled node gathers (so a coarse node sits on
its cluster); else ``networkx.spring_layout`` seeded (the same picture every time) up to 400 nodes and
``networkx.spectral_layout`` beyond (a force-directed layout of networkx takes seconds there); cached
in memory per (recording, axis, item). Coordinates are scaled into [-1, 1] (x and y alike, aspect kept).
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from lstmviz.geometry import GraphGeometry

MAIN_AXIS = "positions"
LAYOUT_SEED = 7
SPRING_MAX_NODES = 400
_LAYOUTS_KEPT = 256


def has_geometry(recording) -> bool:
    """Whether the reader describes position geometry at all (format v3)."""
    return recording is not None and hasattr(recording, "axis_geometry") and hasattr(recording, "item_geometry")


def graph_axes(recording) -> list[str]:
    """The recording's graph axes, the main axis first; [] when its positions are not graph nodes."""
    if not has_geometry(recording):
        return []
    try:
        if recording.axis_geometry(MAIN_AXIS).kind != "graph":
            return []
        axes = list(getattr(recording, "axes", [MAIN_AXIS]))
        return [a for a in axes if recording.axis_geometry(a).kind == "graph"]
    except (KeyError, ValueError):
        return []


def axis_taps(recording, axis: str) -> list[str]:
    """The taps that live on ``axis``, in file order."""
    return [name for name, info in recording.taps.items() if getattr(info, "axis", MAIN_AXIS) == axis]


def item_rows(recording, item: int, axis: str) -> tuple[int, int]:
    """The rows ``[start, stop)`` of ``item`` on ``axis``."""
    if axis == MAIN_AXIS:
        a, b = recording.item_range(int(item))
    else:
        a, b = recording.item_range(int(item), axis)
    return int(a), int(b)


def item_graph(recording, item: int, axis: str = MAIN_AXIS) -> GraphGeometry:
    """One item's graph on ``axis`` (node-local edges, names, filler, pooling map)."""
    geometry = recording.item_geometry(int(item), axis)
    if not isinstance(geometry, GraphGeometry):
        raise ValueError(f"item {item} has no graph on the axis {axis!r}")
    return geometry


def normalise(coords: np.ndarray) -> np.ndarray:
    """``coords`` moved and scaled into [-1, 1] (one scale for x and y, so the aspect is kept)."""
    coords = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    if not len(coords):
        return coords
    lo, hi = coords.min(0), coords.max(0)
    span = float((hi - lo).max())
    centre = (lo + hi) / 2
    return (coords - centre) / (span / 2 if span > 0 else 1.0)


def spring_layout(geometry: GraphGeometry, seed: int = LAYOUT_SEED) -> np.ndarray:
    """``networkx.spring_layout`` of the graph (filler nodes included, so indices line up), seeded."""
    import networkx as nx

    g = nx.Graph()
    g.add_nodes_from(range(geometry.num_nodes))
    g.add_edges_from((int(a), int(b)) for a, b in geometry.edges if a != b)
    pos = nx.spring_layout(g, seed=seed)
    return np.array([pos[i] for i in range(geometry.num_nodes)], dtype=np.float64)


def spectral_layout(geometry: GraphGeometry) -> np.ndarray:
    """``networkx.spectral_layout`` (the Laplacian's first non-trivial eigenvectors; fast for large graphs)."""
    import networkx as nx

    g = nx.Graph()
    g.add_nodes_from(range(geometry.num_nodes))
    g.add_edges_from((int(a), int(b)) for a, b in geometry.edges if a != b)
    pos = nx.spectral_layout(g)
    return np.array([pos[i] for i in range(geometry.num_nodes)], dtype=np.float64)


def auto_layout(geometry: GraphGeometry) -> np.ndarray:
    """The force-directed layout up to ``SPRING_MAX_NODES`` nodes, the spectral one beyond (networkx's
    force-directed layout takes seconds there: 3 s at 500 nodes, 18 s at 2,000 on this machine)."""
    if geometry.num_nodes <= SPRING_MAX_NODES:
        return spring_layout(geometry)
    return spectral_layout(geometry)


def pooled_layout(finer: np.ndarray, pooling_map: np.ndarray, num_nodes: int) -> np.ndarray | None:
    """Each pooled node at the centroid of the finer nodes it pools; None when one pools none."""
    pooling_map = np.asarray(pooling_map, dtype=np.int64)
    keep = pooling_map >= 0
    counts = np.bincount(pooling_map[keep], minlength=num_nodes)
    if len(counts) != num_nodes or np.any(counts == 0):
        return None
    out = np.zeros((num_nodes, 2))
    np.add.at(out, pooling_map[keep], finer[keep])
    return out / counts[:, None]


class LayoutCache:
    """Node coordinates per (recording, axis, item), computed once (see the module docstring)."""

    def __init__(self):
        self._layouts: OrderedDict[tuple, np.ndarray] = OrderedDict()

    def clear(self) -> None:
        self._layouts.clear()

    def layout(self, recording, item: int, axis: str = MAIN_AXIS) -> np.ndarray:
        key = (id(recording), axis, int(item))
        if key in self._layouts:
            self._layouts.move_to_end(key)
            return self._layouts[key]
        geometry = item_graph(recording, item, axis)
        coords = None
        if geometry.coordinates is not None:
            coords = np.asarray(geometry.coordinates, dtype=np.float64)
        else:
            finer = recording.axis_geometry(axis).pooled_from
            if finer and geometry.pooling_map is not None:
                coords = pooled_layout(self.layout(recording, item, finer), geometry.pooling_map, geometry.num_nodes)
            if coords is None:
                coords = auto_layout(geometry)
        coords = normalise(coords)
        self._layouts[key] = coords
        while len(self._layouts) > _LAYOUTS_KEPT:
            self._layouts.popitem(last=False)
        return coords


class CorpusCache:
    """The whole-corpus graph (``GraphCorpus``) per (recording, axis): one read of its edges."""

    def __init__(self):
        self._corpora: dict[tuple, object] = {}

    def clear(self) -> None:
        self._corpora.clear()

    def corpus(self, recording, axis: str = MAIN_AXIS):
        from lstmviz.analysis.graph_match import GraphCorpus

        key = (id(recording), axis)
        if key not in self._corpora:
            corpus = GraphCorpus.from_recording(recording, axis)
            corpus.adjacency()
            self._corpora = {key: corpus}  # one recording's corpus at a time
        return self._corpora[key]
