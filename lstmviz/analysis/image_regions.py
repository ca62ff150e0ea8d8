"""Hypothesis selection on an image feature map: which units are on over a brushed box and off on its ring.

An image axis (format v3, docs/format.md "Position geometry") gives every item a feature map of
``ImageGeometry(height, width)`` cells in raster order, and the axis an ``AxisGeometry(kind="image",
stride, receptive_field, offset)``: cell ``(y, x)`` is centred on input pixel ``offset + (y, x) · stride``
and sees ``receptive_field`` pixels (``lstmviz.engines.families.image.api.cell_box``). In the
*box coordinates* of ``cell_box`` (pixel ``i`` spans ``[i, i + 1)``) that centre is at
``offset + (y, x) · stride + 0.5``; every box here is in those coordinates, ``(y0, x0, y1, x1)``
half-open.

An image's cell grid is a graph: the 8-neighbour grid (:func:`grid_graph`), on which the hop distance
from a cell set is the Chebyshev distance. The Select rule is therefore the graph one
(``graph_selection.select_node_units``) on that graph, used as it is:

- the **brushed set** S: the cells whose centre lies in the box (:func:`cells_in_box`); along a
  dimension where the box holds no centre (thinner than the stride, or between centres) the one row /
  column whose stride tile holds the box centre — every cell owns the ``stride``-sized tile around its
  centre, and the tiles of a map cover ``[offset + 0.5 - stride/2, offset + 0.5 + (n - 1/2) · stride)``
  per dimension — so a box smaller than a cell selects the cell nearest its centre;
- the **ring** R: the cells at Chebyshev distance 1 .. ``ring`` from S (clipped at the map's edge; a
  box at the edge has a ring on its inner sides only); ``ring = 0``: nothing must be off — the image
  analogue of LSTMVis's off-padding;
- a signed unit is selected when it is on (``transforms.is_on``; NaN never on) at no fewer than
  ``ceil(tolerance · |S|)`` cells of S and at no cell of R; ``direction``, ``removed`` and ``added`` as in
  ``SelectionSpec``.

Bad input, one sentence each (``ValueError``): a tap / axis that is not an image axis, a box outside
the map's tiles (or empty, or not finite), values of the wrong shape, an empty brush. Nothing here
imports Qt or torch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from lstmviz.analysis.graph_selection import NodeSetSpec, select_node_units
from lstmviz.analysis.selection_types import DIRECTIONS, Selection
from lstmviz.geometry import AxisGeometry, GraphGeometry, ImageGeometry

__all__ = ["BoxSpec", "box_of_cells", "cell_boxes", "cell_centres", "cell_tiles", "cells_in_box",
           "check_image_axis", "grid_edges", "grid_graph", "select_box_units", "select_cell_units"]


# --- the grid as a graph ------------------------------------------------------------------------------

def grid_edges(height: int, width: int, *, diagonal: bool = True) -> np.ndarray:
    """int64 ``[E, 2]``: every undirected edge of the ``height × width`` grid once, cells in raster order
    (right, down and, with ``diagonal``, down-right and down-left neighbours), sorted by first cell."""
    h, w = int(height), int(width)
    cell = np.arange(h * w, dtype=np.int64).reshape(h, w)
    parts = [(cell[:, :-1], cell[:, 1:]), (cell[:-1, :], cell[1:, :])]
    if diagonal:
        parts += [(cell[:-1, :-1], cell[1:, 1:]), (cell[:-1, 1:], cell[1:, :-1])]
    a = np.concatenate([p[0].ravel() for p in parts])
    b = np.concatenate([p[1].ravel() for p in parts])
    order = np.lexsort((b, a))
    return np.stack([a[order], b[order]], axis=1)


class _GridGraph(GraphGeometry):
    """A grid graph whose undirected adjacency is built once (a copy is handed out: callers may write it)."""

    def adjacency(self, *, directed: bool = False):
        if directed:
            return super().adjacency(directed=True)
        cached = self.__dict__.get("_adjacency")
        if cached is None:
            cached = super().adjacency()
            cached.sort_indices()
            object.__setattr__(self, "_adjacency", cached)
        return cached.copy()


@lru_cache(maxsize=32)
def _grid_graph(height: int, width: int, diagonal: bool) -> GraphGeometry:
    edges = grid_edges(height, width, diagonal=diagonal)
    edges.setflags(write=False)
    return _GridGraph(height * width, edges)


def grid_graph(height: int, width: int, *, diagonal: bool = True) -> GraphGeometry:
    """The grid of a ``height × width`` feature map as a graph: cells are nodes in raster order, edges
    join 8-neighbours (4-neighbours without ``diagonal``). Cached per size (the same read-only object)."""
    size = ImageGeometry(height, width)  # checks: positive integers
    return _grid_graph(size.height, size.width, bool(diagonal))


# --- cells and input pixels ----------------------------------------------------------------------------

def check_image_axis(axis_geometry, what: str = "this axis") -> AxisGeometry:
    """``axis_geometry`` if it is an image axis, else a ``ValueError`` that says so."""
    if not isinstance(axis_geometry, AxisGeometry) or axis_geometry.kind != "image":
        kind = getattr(axis_geometry, "kind", type(axis_geometry).__name__)
        raise ValueError(f"{what} is not on an image axis (its positions are {kind}); image regions need a "
                         "feature-map tap")
    return axis_geometry


def _size(size) -> ImageGeometry:
    if isinstance(size, ImageGeometry):
        return size
    h, w = size
    return ImageGeometry(int(h), int(w))


def _check_cells(size: ImageGeometry, cells) -> np.ndarray:
    cells = np.asarray(cells, dtype=np.int64).reshape(-1)
    n = size.num_positions
    if cells.size and (cells.min() < 0 or cells.max() >= n):
        bad = cells.min() if cells.min() < 0 else cells.max()
        raise ValueError(f"cell {int(bad)} is not in this {size.height}x{size.width} feature map "
                         f"(cells 0 .. {n - 1})")
    return cells


def cell_centres(axis_geometry: AxisGeometry, size: ImageGeometry, cells) -> np.ndarray:
    """float64 ``[n, 2]``: the (y, x) centre of each cell in box coordinates (``offset + yx · stride + 0.5``)."""
    g = check_image_axis(axis_geometry)
    size = _size(size)
    cells = _check_cells(size, cells)
    y, x = np.divmod(cells, size.width)
    return np.stack([g.offset[0] + y * g.stride[0] + 0.5, g.offset[1] + x * g.stride[1] + 0.5], axis=1)


def cell_boxes(axis_geometry: AxisGeometry, size: ImageGeometry, cells) -> np.ndarray:
    """float64 ``[n, 4]``: the input-pixel box ``(y0, x0, y1, x1)`` each cell sees (its receptive field,
    half-open, possibly reaching outside the input), exactly ``cell_box`` of the image family's API."""
    g = axis_geometry
    c = cell_centres(g, size, cells)
    half = np.array([g.receptive_field[0] / 2, g.receptive_field[1] / 2])
    return np.concatenate([c - half, c + half], axis=1)


def cell_tiles(axis_geometry: AxisGeometry, size: ImageGeometry, cells) -> np.ndarray:
    """float64 ``[n, 4]``: the ``stride``-sized tile around each cell's centre (the tiles of a map do not
    overlap and cover it; what a view draws to show a cell)."""
    g = axis_geometry
    c = cell_centres(g, size, cells)
    half = np.array([g.stride[0] / 2, g.stride[1] / 2])
    return np.concatenate([c - half, c + half], axis=1)


def box_of_cells(axis_geometry: AxisGeometry, size: ImageGeometry, cells, *, extent: str = "receptive_field"
                 ) -> tuple[float, float, float, float]:
    """The bounding box ``(y0, x0, y1, x1)`` of ``cells``: of their receptive fields (``extent=
    "receptive_field"``, :func:`cell_boxes`) or of their stride tiles (``extent="tile"``)."""
    if extent not in ("receptive_field", "tile"):
        raise ValueError(f"unknown extent {extent!r}; choose receptive_field or tile")
    cells = np.asarray(cells, dtype=np.int64).reshape(-1)
    if not cells.size:
        raise ValueError("no cells to bound; the region is empty")
    boxes = (cell_boxes if extent == "receptive_field" else cell_tiles)(axis_geometry, size, cells)
    return (float(boxes[:, 0].min()), float(boxes[:, 1].min()), float(boxes[:, 2].max()), float(boxes[:, 3].max()))


def _check_box(box) -> tuple[float, float, float, float]:
    try:
        y0, x0, y1, x1 = (float(v) for v in box)
    except (TypeError, ValueError):
        raise ValueError(f"a box is four numbers (y0, x0, y1, x1), got {box!r}") from None
    if not all(math.isfinite(v) for v in (y0, x0, y1, x1)):
        raise ValueError(f"a box must hold finite numbers, got {box!r}")
    if not (y1 > y0 and x1 > x0):
        raise ValueError(f"the box {box!r} is empty (it needs y1 > y0 and x1 > x0)")
    return y0, x0, y1, x1


def _axis_range(lo: float, hi: float, offset: float, stride: int, n: int) -> tuple[int, int]:
    """The cells ``i`` in ``0 .. n-1`` whose centre ``offset + i·stride + 0.5`` lies in ``[lo, hi)``."""
    c0 = offset + 0.5
    first = max(0, math.ceil((lo - c0) / stride))
    stop = min(n, math.ceil((hi - c0) / stride))
    # float rounding at the edges: fix with the exact test on the two candidates
    while first > 0 and c0 + (first - 1) * stride >= lo:
        first -= 1
    while first < n and c0 + first * stride < lo:
        first += 1
    while stop < n and c0 + stop * stride < hi:
        stop += 1
    while stop > 0 and c0 + (stop - 1) * stride >= hi:
        stop -= 1
    return first, max(first, stop)


def cells_in_box(axis_geometry: AxisGeometry, size: ImageGeometry, box) -> np.ndarray:
    """int64, sorted: the cells whose centre lies in the input-pixel box ``(y0, x0, y1, x1)`` (half-open,
    box coordinates as ``cell_box``). Along a dimension where the box holds no centre (a box thinner
    than the stride) it takes the one row / column whose stride tile holds the box centre (clipped to
    the map), so a box smaller than a cell selects the cell nearest its centre. Raises ``ValueError``
    for an empty or non-finite box and for a box outside the map's tiles."""
    g = check_image_axis(axis_geometry)
    size = _size(size)
    y0, x0, y1, x1 = _check_box(box)
    tiles = []
    for lo, hi, off, s, n in ((y0, y1, g.offset[0], g.stride[0], size.height),
                              (x0, x1, g.offset[1], g.stride[1], size.width)):
        t0, t1 = off + 0.5 - s / 2, off + 0.5 + (n - 0.5) * s
        if hi <= t0 or lo >= t1:
            raise ValueError(f"the box ({y0:g}, {x0:g}, {y1:g}, {x1:g}) lies outside the image: this "
                             f"{size.height}x{size.width} map covers input pixels ({g.offset[0] + 0.5 - g.stride[0] / 2:g}, "
                             f"{g.offset[1] + 0.5 - g.stride[1] / 2:g}) .. ({g.offset[0] + 0.5 + (size.height - 0.5) * g.stride[0]:g}, "
                             f"{g.offset[1] + 0.5 + (size.width - 0.5) * g.stride[1]:g})")
        tiles.append((lo, hi, off, s, n))
    ranges = []
    for lo, hi, off, s, n in tiles:
        a, b = _axis_range(lo, hi, off, s, n)
        if a >= b:  # no centre in [lo, hi) along this dimension: the cell whose tile holds the box centre
            a = int(min(n - 1, max(0, math.floor(((lo + hi) / 2 - (off + 0.5) + s / 2) / s))))
            b = a + 1
        ranges.append(np.arange(a, b, dtype=np.int64))
    ys, xs = ranges
    return (ys[:, None] * size.width + xs[None, :]).ravel()


# --- Select on a box -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class BoxSpec:
    """A brushed input-pixel box of one item and how to select units on it (module docstring).

    ``box``: ``(y0, x0, y1, x1)`` in box coordinates (pixel ``i`` spans ``[i, i + 1)``); ``ring``: the
    Chebyshev width of the off-ring in cells (>= 0); ``threshold``, ``tolerance``, ``direction``,
    ``added``, ``removed`` as in ``SelectionSpec``.
    """

    box: tuple[float, float, float, float]
    threshold: float = 0.3
    ring: int = 1
    tolerance: float = 1.0
    direction: str = "positive"
    removed: tuple[tuple[int, int], ...] = ()
    added: tuple[tuple[int, int], ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "box", _check_box(self.box))
        if int(self.ring) != self.ring or int(self.ring) < 0:
            raise ValueError("the off-ring must be a whole number of cells >= 0")
        object.__setattr__(self, "ring", int(self.ring))
        if not 0.0 < self.tolerance <= 1.0:
            raise ValueError("tolerance must be in (0, 1]")
        if self.direction not in DIRECTIONS:
            raise ValueError(f"unknown direction {self.direction!r}; choose one of {', '.join(DIRECTIONS)}")
        object.__setattr__(self, "added", tuple((int(u), int(s)) for u, s in self.added))
        object.__setattr__(self, "removed", tuple((int(u), int(s)) for u, s in self.removed))


def _check_values(values, size: ImageGeometry) -> np.ndarray:
    values = np.asarray(values)
    if values.ndim != 2 or values.shape[0] != size.num_positions:
        raise ValueError(f"values must be [cells, units] with {size.num_positions} cells "
                         f"({size.height}x{size.width}), got shape {values.shape}")
    return values


def select_cell_units(values, size: ImageGeometry, cells, *, threshold: float = 0.3, ring: int = 1,
                      tolerance: float = 1.0, direction: str = "positive", removed=(), added=()) -> Selection:
    """The Select rule on any brushed cell set (a lasso, a click): ``graph_selection.select_node_units``
    on the 8-neighbour :func:`grid_graph`, so the ring is the Chebyshev ring clipped at the map's edge.
    ``extra``: ``cells`` (S, sorted), ``ring`` (R), ``required_on``."""
    size = _size(size)
    values = _check_values(values, size)
    cells = _check_cells(size, cells)
    if not cells.size:
        raise ValueError("no cells are brushed; drag a box or pick cells first")
    spec = NodeSetSpec(tuple(int(c) for c in np.unique(cells)), threshold=threshold, ring=ring,
                       tolerance=tolerance, direction=direction, added=tuple(added), removed=tuple(removed))
    sel = select_node_units(values, grid_graph(size.height, size.width), spec)
    extra = {"cells": sel.extra["nodes"], "ring": sel.extra["ring"], "required_on": sel.extra["required_on"]}
    return Selection(sel.units, sel.signs, None, extra)


def select_box_units(values, axis_geometry: AxisGeometry, size: ImageGeometry, spec: BoxSpec) -> Selection:
    """The signed units ``spec`` selects on one item's feature map (module docstring), sorted by
    (unit, -sign). ``values``: transformed float ``[cells, units]`` of the item on an image axis of
    geometry ``axis_geometry`` and map size ``size``. ``extra`` holds ``cells`` (S), ``ring`` (R),
    ``required_on`` and ``box``. Raises ``ValueError`` (a sentence) for a non-image axis, values of the
    wrong shape, a box outside the image and an added unit outside the tap."""
    check_image_axis(axis_geometry)
    size = _size(size)
    _check_values(values, size)
    cells = cells_in_box(axis_geometry, size, spec.box)
    sel = select_cell_units(values, size, cells, threshold=spec.threshold, ring=spec.ring,
                            tolerance=spec.tolerance, direction=spec.direction, removed=spec.removed,
                            added=spec.added)
    sel.extra["box"] = spec.box
    return sel
