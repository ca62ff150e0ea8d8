"""Graph match: across every graph of a recording, the connected node sets where the selected units are
on together, scored and ranked — the graph analogue of LSTMVis's matched runs.

Definitions (S = the selected signed units, k = |S|; a signed unit is on at a node by the one rule of
``transforms.is_on``, read from the packed bits of the tap's match index, ``bitindex.BitIndex``):

- **On nodes.** ``on[v]``: every unit of S is on at node v (the AND of the unit-major bit rows of S),
  and v is not a filler node.
- **Candidates.** The connected components of the subgraph induced by the on nodes (edges taken both
  ways; an isolated on node is a component of size 1) — the analogue of the maximal runs at level k.
  Edges never join two items, so a component lies in one graph. Kept when ``min_size <= |C| <=
  max_size``.
- **Ring.** R(C): the non-filler nodes within ``ring`` hops of C (1 .. ring), not in C, in the graph
  without filler nodes (as the Select rule's ring, ``graph_selection``). With ``ring = 1`` no ring node
  has every unit of S on (C is maximal); farther ring nodes may.
- **Score.** ``score(C) = |C| − (Σ_{r ∈ R(C)} c(r)) / k``, where ``c(r)`` = the units of S on at r (the
  integer sum divided once, so equal scores are equal floats and ties fall to the ranking's next keys).
  A component is worth its size, less one node for every ring node where the selected units are also on
  (fractionally: a ring node where half of S is on costs ½). It is LSTMVis's boundary sharpness
  ``h − c[s−1] − c[e]`` (the level minus the units still on next to the run) summed over nodes: a
  component whose units switch off sharply at its boundary scores its full size; one that fades out
  through its neighbourhood scores less. ``ring = 0``: score = size.
- **Ranking.** By score (descending), then size (descending), then item, then first node. Candidates are
  scored the largest first (then by first node), at most ``candidate_cap`` of them, in growing batches
  (``limit`` first, then three times as many as scored so far), and the search stops as soon as the
  ``limit``-th score so far is >= the size of the next candidate: since score <= size, a later candidate
  can at best tie with it in score and then ranks below it (no larger, later first node), so the top
  ``limit`` is exact. ``exact`` is False only when the cap stops the search before that holds (against
  the largest candidate the cap leaves out); ``n_candidates`` counts the candidates scored.
  ``limit=None`` scores every candidate (up to the cap).

Cost: the AND reads k bit rows of N/8 bytes; the components are one breadth-first search over the on
nodes that reads only their rows of the corpus adjacency (built once per corpus, cached in
:class:`GraphCorpus`; ``graph_kernels.components``), so it grows with the on nodes and their edges,
not with the corpus; scoring a candidate expands its ring breadth first from its nodes (listed by that
search), reading only its own neighbourhood and the row-major bits of its ring nodes
(``graph_kernels.score_candidates``), so a top-``limit`` query scores about ``limit`` neighbourhoods
(a few times more when ring nodes have units on), however many components there are.

Aggregate: :func:`aggregate_nodes` is ``aggregate.aggregate`` at offset 0 over the matched nodes: the
label distribution (or mean) of a node annotation on the matched nodes against the whole corpus.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse

from lstmviz.analysis import graph_kernels as _K
from lstmviz.analysis.bitindex import BitIndex
from lstmviz.tasks import ensure_task

__all__ = ["GraphCorpus", "GraphMatchQuery", "GraphMatchResults", "aggregate_nodes", "count_on", "graph_match",
           "on_nodes"]


@dataclass(frozen=True)
class GraphMatchQuery:
    """A whole-corpus search for connected node sets where the selected signed units are on together."""

    units: tuple[int, ...]
    signs: tuple[int, ...] = ()  # empty = all +1
    ring: int = 1
    min_size: int = 1
    max_size: int | None = None
    limit: int | None = 100
    candidate_cap: int | None = 10000

    def __post_init__(self):
        if not self.signs:
            object.__setattr__(self, "signs", tuple(1 for _ in self.units))
        object.__setattr__(self, "units", tuple(int(u) for u in self.units))
        object.__setattr__(self, "signs", tuple(int(s) for s in self.signs))
        if not self.units:
            raise ValueError("select at least one unit to match")
        if len(self.signs) != len(self.units):
            raise ValueError(f"{len(self.units)} units but {len(self.signs)} signs")
        if any(s not in (1, -1) for s in self.signs):
            raise ValueError("signs must be +1 or -1")
        if len(set(zip(self.units, self.signs))) != len(self.units):
            raise ValueError("a (unit, sign) pair appears twice in the selection")
        if self.ring < 0:
            raise ValueError("the off-ring must be >= 0 hops")
        if self.min_size < 1:
            raise ValueError("the smallest match must have at least 1 node")
        if self.max_size is not None and self.max_size < self.min_size:
            raise ValueError("the largest match size must be >= the smallest")
        if self.limit is not None and self.limit < 1:
            raise ValueError("limit must be >= 1 or None")
        if self.candidate_cap is not None and self.candidate_cap < 1:
            raise ValueError("candidate_cap must be >= 1 or None")

    @property
    def k(self) -> int:
        return len(self.units)


@dataclass(frozen=True)
class GraphMatchResults:
    """Ranked matches, best first; match i has the item-local nodes ``nodes[node_offsets[i]:node_offsets[i+1]]``
    (sorted) of item ``items[i]``, whose absolute rows are ``positions(i)``."""

    query: GraphMatchQuery
    items: np.ndarray  # int64 [m]
    node_offsets: np.ndarray  # int64 [m + 1]
    nodes: np.ndarray  # int64: item-local node indices, match after match
    item_starts: np.ndarray  # int64 [m]: the first row of each match's item on the axis
    sizes: np.ndarray  # int64 [m]: |C|
    ring_sizes: np.ndarray  # int64 [m]: |R(C)|
    ring_on: np.ndarray  # float64 [m]: Σ_{r ∈ R} c(r) / k
    score: np.ndarray  # float64 [m]: sizes - ring_on
    n_on: int = 0  # nodes where every selected unit is on
    n_components: int = 0  # connected components of the on nodes (before the size bounds)
    n_candidates: int = 0  # candidates scored
    exact: bool = True
    elapsed_s: float = 0.0
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.items)

    def match_nodes(self, i: int) -> np.ndarray:
        """The item-local nodes of match ``i``."""
        return self.nodes[self.node_offsets[i]:self.node_offsets[i + 1]]

    def positions(self, i: int) -> np.ndarray:
        """The absolute rows (on the graph axis) of match ``i``'s nodes."""
        return self.match_nodes(i) + self.item_starts[i]

    def all_positions(self) -> np.ndarray:
        """The absolute rows of every matched node, match after match."""
        return self.nodes + np.repeat(self.item_starts, np.diff(self.node_offsets))


class GraphCorpus:
    """Every graph of one graph axis: absolute edges ``[E, 2]`` (rows of the axis), the axis's item
    offsets ``[I + 1]`` and the filler mask ``[rows]`` (None: no filler). From ``Recording.graph_edges``,
    ``axis_offsets`` and ``filler``; the symmetric adjacency without filler nodes is built once, when
    first needed."""

    def __init__(self, edges, item_offsets, filler=None):
        self.item_offsets = np.asarray(item_offsets, dtype=np.int64).reshape(-1)
        self.n = int(self.item_offsets[-1]) if len(self.item_offsets) else 0
        edges = np.asarray(edges).reshape(-1, 2)
        dtype = np.int32 if self.n < 2**31 else np.int64
        self.edges = np.ascontiguousarray(edges, dtype=dtype)
        if len(self.edges) and (self.edges.min() < 0 or self.edges.max() >= self.n):
            raise ValueError(f"the graph edges name rows outside the axis's {self.n} rows")
        self.filler = None if filler is None else np.asarray(filler, dtype=bool).reshape(-1)
        if self.filler is not None and len(self.filler) != self.n:
            raise ValueError(f"the filler mask has {len(self.filler)} entries for {self.n} rows")
        if self.filler is not None and not self.filler.any():
            self.filler = None
        #: the most nodes of one item
        self.max_item = int(np.diff(self.item_offsets).max()) if len(self.item_offsets) > 1 else 0
        self._adjacency: sparse.csr_matrix | None = None

    @classmethod
    def from_recording(cls, recording, axis: str = "positions") -> "GraphCorpus":
        """The corpus of a v3 recording's graph axis (one read of its edges)."""
        edges, _ = recording.graph_edges(axis)
        return cls(edges, recording.axis_offsets(axis), recording.filler(axis))

    @property
    def n_items(self) -> int:
        return len(self.item_offsets) - 1

    def adjacency(self) -> sparse.csr_matrix:
        """The symmetric CSR adjacency (pattern only) of the corpus without filler nodes. Raises
        ValueError when an edge joins two items (the match's searches never leave an item)."""
        if self._adjacency is None:
            a, b = self.edges[:, 0], self.edges[:, 1]
            if len(a):
                item_of = np.repeat(np.arange(self.n_items, dtype=np.int32), np.diff(self.item_offsets))
                crossing = np.flatnonzero(item_of[a] != item_of[b])
                if crossing.size:
                    e = crossing[0]
                    raise ValueError(f"{crossing.size} graph edges join two items (the first: rows {a[e]} and "
                                     f"{b[e]}, items {item_of[a[e]]} and {item_of[b[e]]})")
            if self.filler is not None:
                keep = ~(self.filler[a] | self.filler[b])
                a, b = a[keep], b[keep]
            rows, cols = np.concatenate([a, b]), np.concatenate([b, a])
            data = np.ones(len(rows), dtype=np.int8)
            m = sparse.csr_matrix((data, (rows, cols)), shape=(self.n, self.n))
            m.sum_duplicates()
            self._adjacency = m
        return self._adjacency


def on_nodes(index: BitIndex, units, signs, filler=None) -> np.ndarray:
    """bool ``[rows]``: every signed unit ``(units[i], signs[i])`` is on (and the row is not filler):
    the AND of the selected units' unit-major bit rows."""
    units = np.asarray(units, dtype=np.int64).reshape(-1)
    signs = np.asarray(signs, dtype=np.int64).reshape(-1)
    if units.size and (units.min() < 0 or units.max() >= index.n_units):
        bad = units.min() if units.min() < 0 else units.max()
        raise ValueError(f"unit {bad} is outside 0..{index.n_units - 1} ({index.n_units} units)")
    packed = None
    for sign in (1, -1):
        chosen = np.sort(units[signs == sign])
        if not chosen.size:
            continue
        if sign not in index.units:
            raise ValueError(f"the index has no bits for sign {sign:+d}")
        rows = index.units[sign]
        part = np.bitwise_and.reduce(rows[chosen], axis=0) if chosen.size > 1 else np.array(rows[chosen[0]])
        packed = part if packed is None else packed & part
    if packed is None:
        return np.zeros(index.n_positions, dtype=bool)
    on = np.unpackbits(packed, count=index.n_positions, bitorder="little").view(bool)
    if filler is not None:
        on &= ~np.asarray(filler, dtype=bool)
    return on


def count_on(index: BitIndex, units, signs) -> np.ndarray:
    """uint16 ``[rows]``: how many of the signed units ``(units[i], signs[i])`` are on at each row (the sum
    of their unit-major bit rows)."""
    units = np.asarray(units, dtype=np.int64).reshape(-1)
    signs = np.asarray(signs, dtype=np.int64).reshape(-1)
    if units.size and (units.min() < 0 or units.max() >= index.n_units):
        bad = units.min() if units.min() < 0 else units.max()
        raise ValueError(f"unit {bad} is outside 0..{index.n_units - 1} ({index.n_units} units)")
    count = np.zeros(index.n_positions, np.uint16)
    for u, s in zip(units, signs):
        count += np.unpackbits(index.units[int(s)][u], count=index.n_positions, bitorder="little")
    return count


def _unit_bits(index: BitIndex, units: np.ndarray, signs: np.ndarray):
    """Per sign (+1, then -1): the row-major bits and, per selected unit, its byte and bit mask in a row
    (``graph_kernels.score_candidates`` counts the selected units on at a row from them)."""
    out = []
    for sign in (1, -1):
        cols = units[signs == sign]
        rows = index.rows[sign] if cols.size else np.zeros((1, 1), np.uint8)
        out += [rows, (cols >> 3).astype(np.int64), (1 << (cols & 7)).astype(np.uint8)]
    return out


def graph_match(index: BitIndex, corpus: GraphCorpus, query: GraphMatchQuery, *, task=None,
                on: np.ndarray | None = None) -> GraphMatchResults:
    """Every connected node set of the corpus where the selected units are on together, ranked (module
    docstring). ``index`` is the tap's match index on the corpus's axis (same rows and items).
    ``on``: bool ``[rows]``, the on nodes to use instead of the AND of the selected units (e.g. at least
    m of them on, ``count_on``); filler rows are taken out of it; the ring and score are unchanged.
    Progress: 4 steps (on nodes, components, ring, rank); ``task.cancel()`` stops between them."""
    task = ensure_task(task)
    t0 = time.perf_counter()
    timings = {}
    if index.n_positions != corpus.n:
        raise ValueError(f"the match index has {index.n_positions} rows but the graph axis {corpus.n}; "
                         "index the tap that lives on this axis")
    units = np.asarray(query.units, np.int64)
    signs = np.asarray(query.signs, np.int64)
    k = query.k
    task.progress(0, 4, "on nodes")
    if on is None:
        on = on_nodes(index, units, signs, corpus.filler)
    else:
        on = np.asarray(on, dtype=bool).reshape(-1)
        if on.shape[0] != corpus.n:
            raise ValueError(f"the on mask has {on.shape[0]} entries for the axis's {corpus.n} rows")
        if corpus.filler is not None:
            on = on & ~corpus.filler
    idx = np.flatnonzero(on)
    timings["on"] = time.perf_counter() - t0
    task.check()
    task.progress(1, 4, "components")
    adjacency = corpus.adjacency()
    first, sizes, queue = _K.components(adjacency.indptr, adjacency.indices, on, idx)  # by first node
    n_comp = len(first)
    timings["components"] = time.perf_counter() - t0 - sum(timings.values())
    ok = sizes >= query.min_size
    if query.max_size is not None:
        ok &= sizes <= query.max_size
    # candidates: the largest first (score <= size), then by first node (a stable sort: they come by it)
    cand = np.flatnonzero(ok)
    key = -sizes[cand]
    if cand.size and sizes[cand].max() < 2**15:
        key = key.astype(np.int16)  # numpy sorts 16-bit keys stably by radix
    cand = cand[np.argsort(key, kind="stable")]
    n_candidates_all = cand.size
    cap, limit = query.candidate_cap, query.limit
    cut = cap is not None and cand.size > cap
    pool = cand[:cap] if cut else cand
    task.check()
    task.progress(2, 4, "ring")
    # score the pool in order, in growing batches, until nothing unscored can enter the top `limit`: the
    # limit-th score so far >= the size of the next candidate (score <= size; on a tie in score that
    # candidate is no larger and comes later by first node, so it ranks below)
    mark = np.full(corpus.n, -1, np.int32) if pool.size else None
    bits = _unit_bits(index, units, signs)
    starts = np.zeros(n_comp, np.int64)  # component c's nodes: queue[starts[c]:starts[c] + sizes[c]]
    np.cumsum(sizes[:-1], out=starts[1:])
    parts = []  # (candidates, ring sizes, ring counts), by first node in a batch
    done = 0
    proved = False
    batch = pool.size if limit is None else min(pool.size, limit)
    while done < pool.size:
        chunk = np.sort(pool[done:done + batch])  # by first node: the corpus is read in order
        parts.append((chunk,) + _K.score_candidates(adjacency.indptr, adjacency.indices, queue, starts[chunk],
                                                    sizes[chunk], query.ring, mark, done, corpus.max_item, *bits))
        done += chunk.size
        task.check()
        if limit is not None and done < pool.size and done >= limit:
            score = np.concatenate([sizes[p[0]] - p[2] / k for p in parts])
            if np.partition(score, done - limit)[done - limit] >= sizes[pool[done]]:
                proved = True
                break
        batch = 3 * done
    timings["ring"] = time.perf_counter() - t0 - sum(timings.values())
    task.check()
    task.progress(3, 4, "rank")
    if parts:
        scored = np.concatenate([p[0] for p in parts])
        ring_sizes = np.concatenate([p[1] for p in parts])
        ring_on = np.concatenate([p[2] for p in parts]) / k
    else:
        scored = ring_sizes = np.zeros(0, np.int64)
        ring_on = np.zeros(0, np.float64)
    c_sizes = sizes[scored]
    score = c_sizes - ring_on
    c_first = first[scored]
    c_items = (np.searchsorted(corpus.item_offsets, c_first, side="right") - 1).astype(np.int64)
    order = np.lexsort((c_first, c_items, -c_sizes, -score))
    if limit is not None:
        order = order[:limit]
    if proved or not cut:
        exact = True
    else:  # the cap stopped the scoring: the same test against the largest unscored candidate
        exact = limit is not None and len(order) >= limit and bool(score[order[-1]] >= sizes[cand[cap]])
    # the matched nodes, match after match (sorted inside a match)
    items = c_items[order]
    item_starts = corpus.item_offsets[items]
    many = 8 * int(c_sizes[order].sum()) >= idx.size  # sort every component's nodes at once, in one pass
    if many:
        queue = _K.by_component(queue, sizes, idx, corpus.n)
    rows, node_offsets = _K.gather_sorted(queue, starts[scored[order]], c_sizes[order], many)
    nodes = rows - np.repeat(item_starts, c_sizes[order])
    timings["rank"] = time.perf_counter() - t0 - sum(timings.values())
    task.progress(4, 4, "done")
    return GraphMatchResults(query, items, node_offsets, nodes, item_starts, c_sizes[order], ring_sizes[order],
                             ring_on[order], score[order], int(idx.size), int(n_comp), int(done), exact,
                             time.perf_counter() - t0,
                             {"timings": timings, "candidates_in_bounds": int(n_candidates_all)})


def aggregate_nodes(recording, annotation: str, results: GraphMatchResults, *, task=None):
    """A node annotation over every matched node against the whole corpus: ``aggregate.aggregate`` with
    the matched nodes as anchors and the one offset 0 (a ``LabelTable`` or ``NumericTable``; the
    recording's main axis must be the graph axis)."""
    from lstmviz.analysis.aggregate import aggregate

    return aggregate(recording, annotation, results.all_positions(), offsets=[0], task=task)
