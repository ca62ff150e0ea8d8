"""What a position is, and how positions of one item relate: the geometry of a position axis.

Every recording concatenates its items along position axes (docs/format.md). A position is a token of
a sequence, a node of a graph, a location of an image's feature map, a named member of a set (e.g. a
modality) or the whole item. The *axis geometry* (:class:`AxisGeometry`) says which, once per axis; the
*item geometry* says how one item's positions relate (a graph's edges, an image's height and width, a
set's members), once per item and axis:

==========  =============================================  ======================================
kind        per axis (:class:`AxisGeometry`)               per item
==========  =============================================  ======================================
``tokens``  --                                             -- (positions in reading order)
``graph``   ``directed``; ``pooled_from``: the finer axis  :class:`GraphGeometry`: edges (item-local
            whose nodes this axis's nodes pool             node indices), optional weights, fixed
                                                           layout, node names, filler mask, and
                                                           the pooling map from ``pooled_from``
``image``   ``stride``, ``receptive_field``, ``offset``    :class:`ImageGeometry`: height, width
            (input pixels, (y, x))                         (positions in raster order)
``set``     ``members``: the member names                  :class:`SetGeometry`: which member
                                                           each position is
``scalar``  --                                             -- (exactly one position per item)
==========  =============================================  ======================================

A tap lives on one axis and so has that axis's geometry: a pooled graph level, with fewer nodes than
the input graph, is its own axis (``pooled_from`` names the finer one). This module is numpy only, so
datasets, engines, the recorder, the file format, analysis and the views all share it.

Bad graphs (:meth:`GraphGeometry.from_edges`): self-loops, isolated nodes, disconnected components and
an edge given in both directions of an undirected graph are accepted (the last is stored once); no
nodes, an edge pointing outside the node set, non-integer or non-finite values are refused with a
:class:`GeometryError` that says what was wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from lstmviz.errors import ExpectedError

KINDS = ("tokens", "graph", "image", "set", "scalar")
"""The kinds of position axis (the same names as :data:`lstmviz.hooks.GEOMETRIES`)."""


class GeometryError(ExpectedError, ValueError):
    """A geometry that cannot describe an item's positions; the text says what was wrong."""


def _pair(value: Any, name: str, *, positive: bool, integer: bool) -> tuple:
    try:
        pair = tuple(value)
    except TypeError:
        pair = (value, value)
    if len(pair) != 2:
        raise GeometryError(f"{name} must be one number or a (y, x) pair, got {value!r}")
    out = []
    for v in pair:
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) or not np.isfinite(v):
            raise GeometryError(f"{name} must hold finite numbers, got {value!r}")
        if integer and float(v) != int(v):
            raise GeometryError(f"{name} must hold whole numbers, got {value!r}")
        if positive and v <= 0:
            raise GeometryError(f"{name} must be positive, got {value!r}")
        out.append(int(v) if integer else float(v))
    return tuple(out)


@dataclass(frozen=True)
class AxisGeometry:
    """The geometry of one position axis, the same for every item.

    Args:
        kind: one of :data:`KINDS`.
        directed: ``graph``: whether edges have a direction (an undirected edge is stored once).
        pooled_from: ``graph``: the name of the finer graph axis whose nodes this axis's nodes pool
            (a coarsening level); every item then gives a pooling map (:class:`GraphGeometry`).
        stride: ``image``: input pixels between neighbouring positions, (y, x).
        receptive_field: ``image``: input pixels one position sees, (y, x).
        offset: ``image``: the input-pixel centre of position (0, 0), (y, x).
        members: ``set``: the member names (a position's member is an index into them).
    """

    kind: str = "tokens"
    directed: bool = False
    pooled_from: str | None = None
    stride: tuple[int, int] | None = None
    receptive_field: tuple[int, int] | None = None
    offset: tuple[float, float] | None = None
    members: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise GeometryError(f"unknown position geometry {self.kind!r}; choose one of {', '.join(KINDS)}")
        if self.kind != "graph" and (self.directed or self.pooled_from):
            raise GeometryError(f"only a graph axis can be directed or pooled, not a {self.kind} axis")
        if self.pooled_from is not None and (not isinstance(self.pooled_from, str) or not self.pooled_from
                                             or "/" in self.pooled_from):
            raise GeometryError(f"pooled_from must name an axis (a single name without '/'), got {self.pooled_from!r}")
        object.__setattr__(self, "directed", bool(self.directed))
        if self.kind == "image":
            object.__setattr__(self, "stride", _pair(1 if self.stride is None else self.stride, "stride",
                                                     positive=True, integer=True))
            object.__setattr__(self, "receptive_field", _pair(1 if self.receptive_field is None
                                                              else self.receptive_field, "receptive_field",
                                                              positive=True, integer=True))
            object.__setattr__(self, "offset", _pair(0.0 if self.offset is None else self.offset, "offset",
                                                     positive=False, integer=False))
        elif self.stride is not None or self.receptive_field is not None or self.offset is not None:
            raise GeometryError(f"stride, receptive_field and offset describe image axes, not a {self.kind} axis")
        if self.kind == "set":
            members = tuple(self.members or ())
            if not members:
                raise GeometryError("a set axis needs the names of its members")
            if any(not isinstance(m, str) or not m for m in members):
                raise GeometryError(f"set members must be non-empty names, got {list(members)!r}")
            if len(set(members)) != len(members):
                raise GeometryError(f"set members must be distinct, got {list(members)!r}")
            object.__setattr__(self, "members", members)
        elif self.members is not None:
            raise GeometryError(f"members describe set axes, not a {self.kind} axis")

    @classmethod
    def of(cls, value: "AxisGeometry | str | None") -> "AxisGeometry":
        """``value`` as an :class:`AxisGeometry` (a kind name gives the defaults; ``None`` is ``tokens``)."""
        if value is None:
            return cls()
        if isinstance(value, AxisGeometry):
            return value
        if isinstance(value, str):
            return cls(kind=value)
        raise GeometryError(f"expected a position geometry (a kind name or an AxisGeometry), got {type(value).__name__}")

    @property
    def needs_item_geometry(self) -> bool:
        """Whether every item must give its geometry on this axis (graph, image, set)."""
        return self.kind in ("graph", "image", "set")


def _int_array(values: Any, what: str, shape_text: str, ndim: int) -> np.ndarray:
    array = np.asarray(values)
    if array.size == 0:
        return np.zeros((0, 2) if ndim == 2 else 0, dtype=np.int64)
    if array.dtype.kind == "f":
        if not np.all(np.isfinite(array)) or not np.all(array == np.round(array)):
            raise GeometryError(f"{what} must be whole numbers, got non-integer values")
    elif array.dtype.kind not in "iu" or array.dtype == np.bool_:
        raise GeometryError(f"{what} must be integers, got {array.dtype}")
    if array.ndim != ndim or (ndim == 2 and array.shape[1] != 2):
        raise GeometryError(f"{what} must have the shape {shape_text}, got {array.shape}")
    return array.astype(np.int64)


@dataclass(frozen=True, eq=False)
class GraphGeometry:
    """One item's graph on a ``graph`` axis. Build it with :meth:`from_edges`, which checks and normalises.

    Attributes:
        num_nodes: the item's rows on the axis (>= 1).
        edges: int64 ``[E, 2]``, item-local node indices in ``0 .. num_nodes-1``; an undirected edge once.
        weights: float32 ``[E]`` or ``None`` (every edge weight 1).
        coordinates: float32 ``[num_nodes, 2]`` (x, y) of a fixed layout, or ``None`` (views lay it out).
        node_names: one name per node, or ``None`` (views show the index).
        filler: bool ``[num_nodes]``: positions that are no node of the input (e.g. Graclus's fake
            nodes, added so that pooling is 1-D), or ``None`` (none). Views hide them, probes skip them.
        pooling_map: on an axis that is ``pooled_from`` a finer one: int64 ``[nodes of the item on the
            finer axis]``, the node here each finer node pools into (-1: none); else ``None``.
    """

    num_nodes: int
    edges: np.ndarray
    weights: np.ndarray | None = None
    coordinates: np.ndarray | None = None
    node_names: tuple[str, ...] | None = None
    filler: np.ndarray | None = None
    pooling_map: np.ndarray | None = None

    @classmethod
    def from_edges(cls, num_nodes: int, edges: Any = (), *, weights: Any = None, coordinates: Any = None,
                   node_names: Sequence[str] | None = None, filler: Any = None, pooling_map: Any = None,
                   directed: bool = False, finer_nodes: int | None = None) -> "GraphGeometry":
        """A checked graph; see the module docstring for what is accepted.

        ``edges`` may be ``[E, 2]`` pairs or PyG's ``[2, E]`` ``edge_index``. ``finer_nodes``: the item's
        node count on the finer axis, to check ``pooling_map`` against.
        """
        if isinstance(num_nodes, bool) or not isinstance(num_nodes, (int, np.integer)):
            raise GeometryError(f"the number of nodes must be an integer, got {num_nodes!r}")
        n = int(num_nodes)
        if n < 1:
            raise GeometryError("a graph with no nodes has no positions to record; leave it out of the data")
        pairs = np.asarray(edges)
        if pairs.ndim == 2 and pairs.shape[0] == 2 and pairs.shape[1] != 2:
            pairs = pairs.T  # PyG edge_index [2, E]
        pairs = _int_array(pairs, "edges", "[E, 2] (pairs of node indices)", 2)
        w = None
        if weights is not None:
            w = np.asarray(weights, dtype=np.float64).reshape(-1)
            if len(w) != len(pairs):
                raise GeometryError(f"{len(w)} edge weights for {len(pairs)} edges; give one weight per edge")
            if not np.all(np.isfinite(w)):
                raise GeometryError("edge weights must be finite numbers")
        if len(pairs):
            bad = np.flatnonzero((pairs < 0).any(axis=1) | (pairs >= n).any(axis=1))
            if len(bad):
                a, b = pairs[bad[0]]
                raise GeometryError(f"edge {int(bad[0])} ({int(a)} -> {int(b)}) points outside the graph's {n} "
                                    f"nodes (indices 0 .. {n - 1}); {len(bad)} such edge(s)")
        if not directed and len(pairs):
            pairs, w = _undirected_once(pairs, w)
        coords = None
        if coordinates is not None:
            coords = np.asarray(coordinates, dtype=np.float64)
            if coords.shape != (n, 2):
                raise GeometryError(f"node coordinates must have the shape ({n}, 2), got {coords.shape}")
            if not np.all(np.isfinite(coords)):
                raise GeometryError("node coordinates must be finite numbers")
            coords = coords.astype(np.float32)
        names = None
        if node_names is not None:
            names = tuple(str(s) for s in node_names)
            if len(names) != n:
                raise GeometryError(f"{len(names)} node names for {n} nodes; give one name per node")
        fill = None
        if filler is not None:
            fill = np.asarray(filler).astype(bool).reshape(-1)
            if len(fill) != n:
                raise GeometryError(f"the filler mask has {len(fill)} entries for {n} nodes")
            if fill.all():
                raise GeometryError("every node of the graph is marked as filler; at least one must be a real node")
        pmap = None
        if pooling_map is not None:
            pmap = _int_array(pooling_map, "the pooling map", "[nodes of the finer level]", 1)
            if finer_nodes is not None and len(pmap) != finer_nodes:
                raise GeometryError(f"the pooling map has {len(pmap)} entries for {finer_nodes} nodes of the finer level")
            if len(pmap) and (pmap.min() < -1 or pmap.max() >= n):
                raise GeometryError(f"the pooling map names nodes outside 0 .. {n - 1} (or -1 for none)")
        return cls(n, pairs, None if w is None else w.astype(np.float32), coords, names, fill, pmap)

    def adjacency(self, *, directed: bool = False):
        """The ``scipy.sparse`` CSR adjacency (weights, default 1; symmetric unless ``directed``)."""
        from scipy import sparse

        w = np.ones(len(self.edges)) if self.weights is None else self.weights.astype(np.float64)
        a, b = self.edges[:, 0], self.edges[:, 1]
        if not directed:
            loops = a == b
            a, b, w = np.concatenate([a, b[~loops]]), np.concatenate([b, a[~loops]]), np.concatenate([w, w[~loops]])
        return sparse.csr_matrix((w, (a, b)), shape=(self.num_nodes, self.num_nodes))

    def hops_from(self, nodes: Sequence[int] | int, *, directed: bool = False) -> np.ndarray:
        """Hop distance of every node from the nearest of ``nodes`` (int64; -1 where unreachable)."""
        from scipy.sparse.csgraph import shortest_path

        sources = np.atleast_1d(np.asarray(nodes, dtype=np.int64))
        if len(sources) == 0 or sources.min() < 0 or sources.max() >= self.num_nodes:
            raise GeometryError(f"hop distances need start nodes in 0 .. {self.num_nodes - 1}, got {list(sources)}")
        adjacency = self.adjacency(directed=directed)
        adjacency.data[:] = 1.0
        d = shortest_path(adjacency, directed=directed, unweighted=True, indices=sources)
        d = np.atleast_2d(d).min(axis=0)
        return np.where(np.isfinite(d), d, -1).astype(np.int64)


def _undirected_once(pairs: np.ndarray, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray | None]:
    """Each undirected edge once (its first occurrence); refuses one pair given with two weights."""
    lo, hi = np.minimum(pairs[:, 0], pairs[:, 1]), np.maximum(pairs[:, 0], pairs[:, 1])
    key = lo * (int(hi.max()) + 1) + hi
    _, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    if len(first) == len(pairs):
        return pairs, weights
    if weights is not None and not np.allclose(weights, weights[first][inverse]):
        raise GeometryError("an undirected edge is given more than once with different weights; give each edge once")
    keep = np.sort(first)
    return pairs[keep], None if weights is None else weights[keep]


@dataclass(frozen=True)
class ImageGeometry:
    """One item's feature map on an ``image`` axis: ``height * width`` positions in raster order (y, then x)."""

    height: int
    width: int

    def __post_init__(self) -> None:
        for name in ("height", "width"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise GeometryError(f"an image's {name} must be a positive integer, got {v!r}")
            object.__setattr__(self, name, int(v))

    @property
    def num_positions(self) -> int:
        return self.height * self.width


@dataclass(frozen=True, eq=False)
class SetGeometry:
    """One item's positions on a ``set`` axis: ``member[p]`` indexes the axis's member names."""

    member: np.ndarray

    @classmethod
    def of(cls, member: Any, members: Sequence[str]) -> "SetGeometry":
        ids = _int_array(member, "set members", "[positions]", 1)
        if len(ids) == 0:
            raise GeometryError("a set item needs at least one member")
        if ids.min() < 0 or ids.max() >= len(members):
            raise GeometryError(f"set member ids must be in 0 .. {len(members) - 1} ({', '.join(members)})")
        return cls(ids)


ItemGeometry = GraphGeometry | ImageGeometry | SetGeometry


def item_positions(axis: AxisGeometry, item: ItemGeometry | None) -> int | None:
    """How many positions ``item`` declares on an axis of geometry ``axis`` (``None``: any number)."""
    if axis.kind == "scalar":
        return 1
    if axis.kind == "tokens":
        return None
    expected = {"graph": GraphGeometry, "image": ImageGeometry, "set": SetGeometry}[axis.kind]
    if not isinstance(item, expected):
        raise GeometryError(f"every item needs its {axis.kind} geometry ({expected.__name__}) on this axis, "
                            f"got {type(item).__name__}")
    if isinstance(item, GraphGeometry):
        return item.num_nodes
    if isinstance(item, ImageGeometry):
        return item.num_positions
    return len(item.member)


__all__ = ["KINDS", "AxisGeometry", "GeometryError", "GraphGeometry", "ImageGeometry", "ItemGeometry",
           "SetGeometry", "item_positions"]
