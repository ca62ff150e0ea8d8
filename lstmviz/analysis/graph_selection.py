"""Hypothesis selection on a graph: which units are on over a brushed node set and off on its ring.

The Select rule of ``lstmviz.analysis.selection`` applied to node sets instead of ranges. For one item's
graph (a :class:`lstmviz.geometry.GraphGeometry`) and its transformed values ``V`` ``[nodes, units]``:

- the **brushed set** S: the nodes the user picked (click, lasso, k-hop ball), filler nodes removed;
- the **ring** R: the nodes within ``ring`` hops of S (hop distance 1 .. ring, edges taken both ways),
  not in S and not filler — the graph analogue of LSTMVis's off-padding around a range; ``ring = 0``
  means no ring (nothing must be off);
- a signed unit ``(u, +1)`` is **selected** when ``is_on(V[s, u], +1, θ)`` holds at no fewer than
  ``need = ceil(tolerance · |S|)`` nodes s of S and at no node of R; ``(u, -1)`` is the mirror image
  (``V <= -θ``). On/off is the one rule of ``transforms.is_on``; a NaN value is never on.
  ``direction`` "positive", "negative" or "both" picks the signs, as ``SelectionSpec`` does;
- then ``removed`` units are taken out and ``added`` units put in, as in ``select_units``.

Filler nodes (Graclus's fake nodes, ``GraphGeometry.filler``) never count: not in S, not in R, and they do
not carry the ring further (the ring is measured on the graph without them).

Helpers for the brushes: :func:`k_hop_ball` (the nodes within k hops of one node) and
:func:`lasso_nodes` (the nodes whose layout coordinates lie inside a polygon, even-odd rule).
Everything is numpy / scipy over one item (tens to thousands of nodes), fast enough for every click.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lstmviz.analysis.selection_types import DIRECTIONS, Selection
from lstmviz.analysis.transforms import is_on
from lstmviz.geometry import GraphGeometry

_TOLERANCE_EPS = 1e-9  # as in selection.required_on: ceil(0.7 * 10) must be 7


@dataclass(frozen=True)
class NodeSetSpec:
    """A brushed node set of one item and how to select units on it (see the module docstring).

    ``nodes``: item-local node indices (duplicates are dropped); ``ring``: hops of the off-ring (>= 0);
    ``threshold``, ``tolerance``, ``direction``, ``added``, ``removed`` as in ``SelectionSpec``.
    """

    nodes: tuple[int, ...]
    threshold: float = 0.3
    ring: int = 1
    tolerance: float = 1.0
    direction: str = "positive"
    added: tuple[tuple[int, int], ...] = ()
    removed: tuple[tuple[int, int], ...] = ()

    def __post_init__(self):
        nodes = tuple(sorted({int(n) for n in self.nodes}))
        if not nodes:
            raise ValueError("no nodes are brushed; click, lasso or pick a k-hop ball first")
        object.__setattr__(self, "nodes", nodes)
        if int(self.ring) < 0:
            raise ValueError("the off-ring must be >= 0 hops")
        object.__setattr__(self, "ring", int(self.ring))
        if not 0.0 < self.tolerance <= 1.0:
            raise ValueError("tolerance must be in (0, 1]")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"unknown direction {self.direction!r}; choose one of {', '.join(DIRECTIONS)}")
        object.__setattr__(self, "added", tuple((int(u), int(s)) for u, s in self.added))
        object.__setattr__(self, "removed", tuple((int(u), int(s)) for u, s in self.removed))


def _real(geometry: GraphGeometry) -> np.ndarray:
    """bool [nodes]: the nodes that are not filler."""
    if geometry.filler is None:
        return np.ones(geometry.num_nodes, dtype=bool)
    return ~np.asarray(geometry.filler, dtype=bool)


def _check_nodes(geometry: GraphGeometry, nodes) -> np.ndarray:
    nodes = np.unique(np.asarray(nodes, dtype=np.int64).reshape(-1))
    if nodes.size and (nodes[0] < 0 or nodes[-1] >= geometry.num_nodes):
        bad = nodes[0] if nodes[0] < 0 else nodes[-1]
        raise ValueError(f"node {int(bad)} is not in this graph (nodes 0 .. {geometry.num_nodes - 1})")
    return nodes


def _hops(geometry: GraphGeometry, sources: np.ndarray, limit: int) -> np.ndarray:
    """Hop distance (both edge directions, filler nodes removed) from the nearest source; -1: beyond
    ``limit`` hops or unreachable. Breadth first over the CSR adjacency, ``limit`` rounds."""
    n = geometry.num_nodes
    dist = np.full(n, -1, dtype=np.int64)
    real = _real(geometry)
    sources = sources[real[sources]]
    dist[sources] = 0
    if limit <= 0 or not sources.size or not len(geometry.edges):
        return dist
    adjacency = geometry.adjacency(directed=False)
    indptr, indices = adjacency.indptr, adjacency.indices
    frontier = sources
    for hop in range(1, limit + 1):
        starts, stops = indptr[frontier], indptr[frontier + 1]
        counts = stops - starts
        if not counts.sum():
            break
        # every neighbour of every frontier node, in one gather
        offsets = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
        neighbours = np.unique(indices[offsets])
        neighbours = neighbours[(dist[neighbours] < 0) & real[neighbours]]
        if not neighbours.size:
            break
        dist[neighbours] = hop
        frontier = neighbours
    return dist


def boundary_ring(geometry: GraphGeometry, nodes, ring: int = 1) -> np.ndarray:
    """int64, sorted: the non-filler nodes within ``ring`` hops of ``nodes`` that are not in ``nodes``."""
    nodes = _check_nodes(geometry, nodes)
    if ring <= 0 or not nodes.size:
        return np.zeros(0, np.int64)
    dist = _hops(geometry, nodes, int(ring))
    return np.flatnonzero(dist > 0).astype(np.int64)


def k_hop_ball(geometry: GraphGeometry, node: int, k: int) -> np.ndarray:
    """int64, sorted: the non-filler nodes within ``k`` hops of ``node`` (``node`` itself included)."""
    node = int(node)
    if not 0 <= node < geometry.num_nodes:
        raise ValueError(f"node {node} is not in this graph (nodes 0 .. {geometry.num_nodes - 1})")
    if int(k) < 0:
        raise ValueError("a k-hop ball needs k >= 0")
    if not _real(geometry)[node]:
        return np.zeros(0, np.int64)
    dist = _hops(geometry, np.array([node]), int(k))
    return np.flatnonzero(dist >= 0).astype(np.int64)


def lasso_nodes(coordinates, polygon, *, filler=None) -> np.ndarray:
    """int64, sorted: the nodes whose (x, y) ``coordinates`` lie inside ``polygon`` (vertices ``[m, 2]``,
    closed implicitly), by the even-odd rule; filler nodes (``filler`` mask) are left out.

    A polygon of fewer than 3 vertices holds no nodes.
    """
    points = np.asarray(coordinates, dtype=np.float64).reshape(-1, 2)
    poly = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    if len(poly) < 3 or not len(points):
        return np.zeros(0, np.int64)
    x, y = points[:, 0:1], points[:, 1:2]  # [n, 1] against the m edges
    x0, y0 = poly[:, 0], poly[:, 1]
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    crosses = (y0 > y) != (y1 > y)  # the edge spans the point's height
    with np.errstate(divide="ignore", invalid="ignore"):
        x_at = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
    inside = np.count_nonzero(crosses & (x < x_at), axis=1) % 2 == 1
    if filler is not None:
        inside &= ~np.asarray(filler, dtype=bool)
    return np.flatnonzero(inside).astype(np.int64)


def required_on(spec: NodeSetSpec, size: int) -> int:
    """How many brushed (non-filler) nodes must be on: ``ceil(tolerance · size)``, at least 1."""
    return max(1, math.ceil(spec.tolerance * size - _TOLERANCE_EPS))


def _signs_of(direction: str) -> tuple[int, ...]:
    return {"positive": (1,), "negative": (-1,), "both": (1, -1)}[direction]


def select_node_units(values, geometry: GraphGeometry, spec: NodeSetSpec) -> Selection:
    """The signed units ``spec`` selects on one item's graph (module docstring), sorted by (unit, -sign).

    ``values``: transformed float ``[num_nodes, units]`` of the item. ``extra`` of the result holds
    ``nodes`` (S without filler), ``ring`` (R), ``required_on``. Raises ``ValueError`` (a sentence) for
    values of the wrong shape, a node outside the graph, a brush of only filler nodes, or an added unit
    outside the tap.
    """
    values = np.asarray(values)
    if values.ndim != 2 or values.shape[0] != geometry.num_nodes:
        raise ValueError(f"values must be [nodes, units] with {geometry.num_nodes} nodes, got shape {values.shape}")
    nodes = _check_nodes(geometry, spec.nodes)
    nodes = nodes[_real(geometry)[nodes]]
    if not nodes.size:
        raise ValueError("every brushed node is a filler node (not part of the input graph); brush real nodes")
    ring = boundary_ring(geometry, nodes, spec.ring)
    need = required_on(spec, nodes.size)
    n_units = values.shape[1]
    chosen = np.zeros((n_units, 2), dtype=bool)  # column 0: sign +1, column 1: sign -1
    inside, outside = values[nodes], values[ring]
    for sign in _signs_of(spec.direction):
        ok = np.count_nonzero(is_on(inside, sign, spec.threshold), axis=0) >= need
        if ring.size:
            ok &= ~is_on(outside, sign, spec.threshold).any(axis=0)
        chosen[:, 0 if sign > 0 else 1] = ok
    for u, s in spec.removed:
        if s not in (1, -1):
            raise ValueError(f"removed units need sign +1 or -1, got {s}")
        if 0 <= u < n_units:
            chosen[u, 0 if s > 0 else 1] = False
    for u, s in spec.added:
        if s not in (1, -1):
            raise ValueError(f"added units need sign +1 or -1, got {s}")
        if not 0 <= u < n_units:
            raise ValueError(f"cannot add unit {u}: the tap has units 0-{n_units - 1}")
        chosen[u, 0 if s > 0 else 1] = True
    flat = np.flatnonzero(chosen.ravel())
    units = (flat // 2).astype(np.int64)
    signs = np.where(flat % 2 == 0, 1, -1).astype(np.int8)
    return Selection(units, signs, None, {"nodes": nodes, "ring": ring, "required_on": need})


__all__ = ["NodeSetSpec", "boundary_ring", "k_hop_ball", "lasso_nodes", "required_on", "select_node_units"]
