"""Image match: across every image of a recording, the connected cell regions of a feature map where the
selected units are on together, scored and ranked — the image analogue of LSTMVis's matched runs.

An image's cell grid is a graph (8-neighbour grid, ``image_regions.grid_graph``), so this is the graph
match (``graph_match``) run on the corpus of every item's grid, built once per axis
(:class:`ImageCorpus`), with its definitions unchanged:

- **On cells.** A cell is on when at least ``need = ceil(tolerance · k)`` of the k selected signed units
  are on there (``transforms.is_on`` read from the tap's packed-bit match index, ``bitindex``); with
  ``tolerance = 1`` (the default) every selected unit, the AND of their bit rows.
- **Regions.** The 8-connected components of the on cells, within one item (the grids of two items are
  never joined), kept when ``min_cells <= |C| <= max_cells``.
- **Ring.** R(C): the cells at Chebyshev distance 1 .. ``ring`` from C, not in C, clipped at the map's
  edge (8-neighbour hops = Chebyshev distance) — the ring of the Select rule (``image_regions``).
- **Score.** ``|C| − Σ_{r ∈ R(C)} c(r) / k`` with ``c(r)`` the selected units on at r: a region is worth
  its size, less one cell for every ring cell where the selected units are also on (LSTMVis's boundary
  sharpness, summed over cells). Ranked by score, then size (both descending), then item, then first cell;
  the top ``limit`` is exact (see ``graph_match`` for the early stop and ``candidate_cap``).

Per match: the item, its cells (item-local raster indices, sorted), size, score, and its bounding box in
input pixels through the axis geometry (box coordinates of ``cell_box``: pixel ``i`` spans ``[i, i+1)``):
``boxes`` bounds the cells' receptive fields (what they see, may reach outside the input), ``tiles``
bounds their stride tiles (the part of the input they stand for; what a view outlines).

Aggregate (:func:`aggregate_cells`): a per-pixel annotation of the main axis (the input's pixels,
format v3 ``positions``) over the matched cells against the whole corpus. A cell is mapped to input
pixels either by its **centre** (``pixels="centre"``, the default: the pixel under the cell's centre,
or the 2 / 4 pixels that share it when the centre falls on a pixel edge, as after a 2×2 pool) or by
its **receptive field** (``pixels="receptive_field"``: every input pixel the cell sees), clipped to the
input; the union of the matched cells' pixels is counted once.

Bad input, one sentence each (``ValueError``): a tap that is not on an image axis, an empty selection,
an item whose map size does not fill its rows.
"""

from __future__ import annotations

import math
import time
import weakref
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

from lstmviz.analysis.bitindex import BitIndex, IndexKey, open_index
from lstmviz.analysis.graph_match import GraphCorpus, GraphMatchQuery, GraphMatchResults, count_on, graph_match
from lstmviz.analysis.image_regions import check_image_axis, grid_graph
from lstmviz.geometry import AxisGeometry
from lstmviz.tasks import ensure_task

__all__ = ["ImageCorpus", "ImageMatchQuery", "ImageMatchResults", "aggregate_cells", "cell_pixels",
           "image_match", "image_match_index"]

_TOLERANCE_EPS = 1e-9  # as in selection.required_on


@dataclass(frozen=True)
class ImageMatchQuery:
    """A whole-recording search for cell regions where the selected signed units are on together.

    ``units`` / ``signs`` (empty: all +1) the selection; ``threshold`` and ``transform`` the on rule of the
    match index (``IndexKey``); ``ring`` the Chebyshev width of the off-ring in cells; ``min_cells`` /
    ``max_cells`` the region size bounds; ``tolerance``: a cell is on when ``ceil(tolerance · k)`` of
    the k units are; ``limit`` / ``candidate_cap`` as ``GraphMatchQuery``.
    """

    units: tuple[int, ...]
    signs: tuple[int, ...] = ()
    threshold: float = 0.3
    transform: str = "raw"
    ring: int = 1
    min_cells: int = 1
    max_cells: int | None = None
    tolerance: float = 1.0
    limit: int | None = 100
    candidate_cap: int | None = 10000

    def __post_init__(self):
        units = tuple(int(u) for u in self.units)
        if not units:
            raise ValueError("select at least one unit to match")
        if not 0.0 < self.tolerance <= 1.0:
            raise ValueError("tolerance must be in (0, 1]")
        object.__setattr__(self, "units", units)
        object.__setattr__(self, "signs", tuple(int(s) for s in self.signs) or tuple(1 for _ in units))
        self.graph_query()  # the graph query's checks: signs, duplicates, ring, sizes, limit, cap

    @property
    def k(self) -> int:
        return len(self.units)

    @property
    def need(self) -> int:
        """Selected units that must be on at a cell: ``ceil(tolerance · k)``, at least 1."""
        return max(1, math.ceil(self.tolerance * self.k - _TOLERANCE_EPS))

    def graph_query(self) -> GraphMatchQuery:
        return GraphMatchQuery(self.units, self.signs, ring=self.ring, min_size=self.min_cells,
                               max_size=self.max_cells, limit=self.limit, candidate_cap=self.candidate_cap)

    @classmethod
    def from_selection(cls, selection, **kwargs) -> "ImageMatchQuery":
        """The query of a ``Selection`` (``select_box_units``'s result); ``kwargs`` the other fields."""
        if not len(selection):
            raise ValueError("the selection is empty: no unit is on over the box and off on its ring; "
                             "lower the threshold, shrink the ring or add units by hand")
        return cls(tuple(int(u) for u in selection.units), tuple(int(s) for s in selection.signs), **kwargs)


class ImageCorpus(GraphCorpus):
    """Every item's feature map on one image axis as one graph corpus: item ``i`` is a ``heights[i] ×
    widths[i]`` grid of 8-neighbour cells at rows ``item_offsets[i] ..`` of the axis. The symmetric CSR
    adjacency is tiled from one ``grid_graph`` per distinct map size (no edge list is kept)."""

    def __init__(self, heights, widths, geometry: AxisGeometry, item_offsets=None):
        self.geometry = check_image_axis(geometry)
        self.heights = np.asarray(heights, dtype=np.int64).reshape(-1)
        self.widths = np.asarray(widths, dtype=np.int64).reshape(-1)
        if self.heights.shape != self.widths.shape:
            raise ValueError(f"{len(self.heights)} heights for {len(self.widths)} widths")
        if len(self.heights) and (self.heights.min() < 1 or self.widths.min() < 1):
            raise ValueError("every feature map needs a height and width of at least 1 cell")
        cells = self.heights * self.widths
        offsets = np.concatenate([[0], np.cumsum(cells)]).astype(np.int64)
        if item_offsets is not None:
            item_offsets = np.asarray(item_offsets, dtype=np.int64).reshape(-1)
            if len(item_offsets) != len(offsets) or np.any(item_offsets != offsets):
                bad = int(np.flatnonzero(np.diff(item_offsets) != cells)[0]) if len(item_offsets) == len(offsets) else -1
                raise ValueError("the feature-map sizes do not fill the axis's rows" +
                                 (f" (item {bad}: {self.heights[bad]}x{self.widths[bad]} cells, "
                                  f"{item_offsets[bad + 1] - item_offsets[bad]} rows)" if bad >= 0 else ""))
        super().__init__(np.zeros((0, 2), np.int64), offsets)

    @classmethod
    def from_recording(cls, recording, axis: str) -> "ImageCorpus":
        """The corpus of a v3 recording's image axis (map sizes from ``item_geometry``; nothing is read)."""
        g = recording.axis_geometry(axis)
        check_image_axis(g, f"axis {axis!r}")
        sizes = [recording.item_geometry(i, axis) for i in range(recording.n_items)]
        return cls([s.height for s in sizes], [s.width for s in sizes], g, recording.axis_offsets(axis))

    def adjacency(self) -> sparse.csr_matrix:
        if self._adjacency is None:
            self._adjacency = _tiled_grid_adjacency(self.heights, self.widths, self.item_offsets)
        return self._adjacency

    def item_size(self, item: int) -> tuple[int, int]:
        return int(self.heights[item]), int(self.widths[item])


def _tiled_grid_adjacency(heights, widths, offsets) -> sparse.csr_matrix:
    n = int(offsets[-1])
    local = {}
    degrees = np.zeros(n, np.int64)
    keys = heights * (int(widths.max()) + 1 if len(widths) else 1) + widths
    for key in np.unique(keys):
        items = np.flatnonzero(keys == key)
        h, w = int(heights[items[0]]), int(widths[items[0]])
        a = grid_graph(h, w).adjacency()
        a.sort_indices()
        local[int(key)] = a
        rows = offsets[items][:, None] + np.arange(h * w)[None, :]
        degrees[rows.ravel()] = np.tile(np.diff(a.indptr), len(items))
    indptr = np.zeros(n + 1, np.int64)
    np.cumsum(degrees, out=indptr[1:])
    dtype = np.int32 if n < 2**31 else np.int64
    indices = np.empty(int(indptr[-1]), dtype)
    for key, a in local.items():
        items = np.flatnonzero(keys == key)
        starts = indptr[offsets[items]]  # each item's first entry
        where = (starts[:, None] + np.arange(a.nnz)[None, :]).ravel()
        indices[where] = (offsets[items][:, None] + a.indices[None, :]).ravel()
    data = np.ones(len(indices), np.int8)
    m = sparse.csr_matrix((data, indices, indptr.astype(dtype)), shape=(n, n))
    m.has_sorted_indices = True
    return m


@dataclass(frozen=True)
class ImageMatchResults:
    """Ranked regions, best first. Match i: item ``items[i]``, cells ``match_cells(i)`` (item-local,
    sorted raster indices of a ``heights[i] × widths[i]`` map), ``boxes[i]`` / ``tiles[i]`` the input-pixel
    bounding boxes ``(y0, x0, y1, x1)`` of its cells' receptive fields / stride tiles."""

    query: ImageMatchQuery
    graph: GraphMatchResults  # the same matches as the graph match gives them (nodes = cells)
    geometry: AxisGeometry
    heights: np.ndarray  # int64 [m]: the map height of each match's item
    widths: np.ndarray  # int64 [m]
    boxes: np.ndarray  # float64 [m, 4]
    tiles: np.ndarray  # float64 [m, 4]
    axis: str = ""
    tap: str = ""
    elapsed_s: float = 0.0
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.graph)

    @property
    def items(self) -> np.ndarray:
        return self.graph.items

    @property
    def sizes(self) -> np.ndarray:
        return self.graph.sizes

    @property
    def score(self) -> np.ndarray:
        return self.graph.score

    @property
    def ring_on(self) -> np.ndarray:
        return self.graph.ring_on

    @property
    def ring_sizes(self) -> np.ndarray:
        return self.graph.ring_sizes

    @property
    def exact(self) -> bool:
        return self.graph.exact

    def match_cells(self, i: int) -> np.ndarray:
        """The item-local cells (raster order) of match ``i``."""
        return self.graph.match_nodes(i)

    def match_yx(self, i: int) -> np.ndarray:
        """int64 ``[n, 2]``: the (y, x) of match ``i``'s cells."""
        y, x = np.divmod(self.match_cells(i), self.widths[i])
        return np.stack([y, x], axis=1)

    def positions(self, i: int) -> np.ndarray:
        """The absolute rows (on the tap's axis) of match ``i``'s cells."""
        return self.graph.positions(i)

    def all_positions(self) -> np.ndarray:
        return self.graph.all_positions()


def _bounding_boxes(geometry: AxisGeometry, results: GraphMatchResults, widths: np.ndarray, half) -> np.ndarray:
    m = len(results)
    if not m:
        return np.zeros((0, 4), np.float64)
    counts = np.diff(results.node_offsets)
    y, x = np.divmod(results.nodes, np.repeat(widths, counts))
    starts = results.node_offsets[:-1]
    cy = geometry.offset[0] + 0.5 + geometry.stride[0] * np.stack([np.minimum.reduceat(y, starts),
                                                                     np.maximum.reduceat(y, starts)], 1)
    cx = geometry.offset[1] + 0.5 + geometry.stride[1] * np.stack([np.minimum.reduceat(x, starts),
                                                                     np.maximum.reduceat(x, starts)], 1)
    return np.stack([cy[:, 0] - half[0], cx[:, 0] - half[1], cy[:, 1] + half[0], cx[:, 1] + half[1]], axis=1)


def image_match_index(index: BitIndex, corpus: ImageCorpus, query: ImageMatchQuery, *, task=None
                      ) -> ImageMatchResults:
    """The match (module docstring) from a tap's match index and the corpus of its image axis."""
    t0 = time.perf_counter()
    gq = query.graph_query()
    on = None
    if query.need < query.k:
        on = count_on(index, query.units, query.signs) >= query.need
    res = graph_match(index, corpus, gq, task=task, on=on)
    g = corpus.geometry
    heights, widths = corpus.heights[res.items], corpus.widths[res.items]
    boxes = _bounding_boxes(g, res, widths, (g.receptive_field[0] / 2, g.receptive_field[1] / 2))
    tiles = _bounding_boxes(g, res, widths, (g.stride[0] / 2, g.stride[1] / 2))
    return ImageMatchResults(query, res, g, heights, widths, boxes, tiles, elapsed_s=time.perf_counter() - t0,
                             extra={"need": query.need})


_CORPORA: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def image_corpus(recording, axis: str) -> ImageCorpus:
    """The :class:`ImageCorpus` of ``axis``, built once per open recording (and axis) and kept with it."""
    per = _CORPORA.setdefault(recording, {})
    if axis not in per:
        per[axis] = ImageCorpus.from_recording(recording, axis)
    return per[axis]


def image_match(recording, tap: str, query: ImageMatchQuery, *, task=None, index: BitIndex | None = None
                ) -> ImageMatchResults:
    """Every connected cell region of ``tap``'s feature maps over the whole recording where the selected
    units are on together, ranked (module docstring). The match index of ``(tap, query.transform,
    query.threshold)`` is opened (built and cached on first use) unless ``index`` is given; the corpus of
    the tap's axis is built once per open recording. Progress and ``task.cancel()`` as ``graph_match``
    (after the index's own progress when it is built). Raises ``ValueError`` for a tap that is not on an
    image axis or a unit outside the tap."""
    task = ensure_task(task)
    t0 = time.perf_counter()
    info = recording.taps.get(tap)
    if info is None:
        raise ValueError(f"the recording has no tap {tap!r} (taps: {', '.join(recording.taps) or 'none'})")
    check_image_axis(recording.axis_geometry(info.axis), f"tap {tap!r} (axis {info.axis!r})")
    bad = [u for u in query.units if not 0 <= u < info.units]
    if bad:
        raise ValueError(f"unit {bad[0]} is outside tap {tap!r}'s units 0..{info.units - 1}")
    corpus = image_corpus(recording, info.axis)
    if index is None:
        index = open_index(recording, IndexKey(tap, query.transform, query.threshold), task=task)
    res = image_match_index(index, corpus, query, task=task)
    return ImageMatchResults(res.query, res.graph, res.geometry, res.heights, res.widths, res.boxes, res.tiles,
                             axis=info.axis, tap=tap, elapsed_s=time.perf_counter() - t0, extra=res.extra)


# --- annotations at input resolution ---------------------------------------------------------------------

PIXEL_RULES = ("centre", "receptive_field")


def _pixel_span(lo: np.ndarray, hi: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The pixels ``i`` (``[i, i+1)``) that overlap ``[lo, hi)`` with positive length, clipped to ``0 .. n-1``:
    ``(first, stop)``."""
    first = np.clip(np.floor(lo).astype(np.int64), 0, n)
    stop = np.clip(np.ceil(hi).astype(np.int64), 0, n)
    return first, np.maximum(first, stop)


def cell_pixels(geometry: AxisGeometry, size, cells, input_size, *, pixels: str = "centre") -> np.ndarray:
    """int64, sorted, unique: the input pixels (raster indices of the ``input_size`` ``(H, W)`` image)
    that ``cells`` of a ``size`` map stand for: ``"centre"`` the pixel(s) under each cell's centre (the
    unit box around the centre: 1 pixel, or 2 / 4 when the centre is on a pixel edge), ``"receptive_field"``
    every pixel each cell sees; clipped to the input (a cell centred in the padding gives none)."""
    if pixels not in PIXEL_RULES:
        raise ValueError(f"unknown pixel rule {pixels!r}; choose one of {', '.join(PIXEL_RULES)}")
    g = check_image_axis(geometry)
    H, W = (input_size.height, input_size.width) if hasattr(input_size, "height") else input_size
    width = size.width if hasattr(size, "width") else size[1]
    cells = np.asarray(cells, dtype=np.int64).reshape(-1)
    y, x = np.divmod(cells, width)
    cy, cx = g.offset[0] + y * g.stride[0] + 0.5, g.offset[1] + x * g.stride[1] + 0.5
    hy, hx = (0.5, 0.5) if pixels == "centre" else (g.receptive_field[0] / 2, g.receptive_field[1] / 2)
    y0, y1 = _pixel_span(cy - hy, cy + hy, H)
    x0, x1 = _pixel_span(cx - hx, cx + hx, W)
    out = []
    for a, b, c, d in zip(y0, y1, x0, x1):
        if a < b and c < d:
            out.append((np.arange(a, b)[:, None] * W + np.arange(c, d)[None, :]).ravel())
    return np.unique(np.concatenate(out)) if out else np.zeros(0, np.int64)


def aggregate_cells(recording, annotation: str, results: ImageMatchResults, *, pixels: str = "centre",
                    task=None):
    """A per-pixel annotation over the input pixels of every matched cell (``cell_pixels`` with
    ``pixels``; the union, each pixel once) against the whole corpus: ``aggregate.aggregate`` at offset
    0 (a ``LabelTable`` or ``NumericTable``). The recording's main axis must be the input's pixels (an
    image axis)."""
    from lstmviz.analysis.aggregate import aggregate

    check_image_axis(recording.axis_geometry(), "the main axis")
    main = recording.axis_offsets()
    anchors = []
    for item in np.unique(results.items):
        rows = np.flatnonzero(results.items == item)
        cells = np.concatenate([results.match_cells(i) for i in rows])
        size = (int(results.heights[rows[0]]), int(results.widths[rows[0]]))
        px = cell_pixels(results.geometry, size, cells, recording.item_geometry(int(item)), pixels=pixels)
        anchors.append(px + main[item])
    anchors = np.concatenate(anchors) if anchors else np.zeros(0, np.int64)
    return aggregate(recording, annotation, anchors, offsets=[0], task=task)
