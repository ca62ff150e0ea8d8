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
- **Score.** ``score(C) = |C| − Σ_{r ∈ R(C)} c(r) / k``, where ``c(r)`` = the units of S on at r. A
  component is worth its size, less one node for every ring node where the selected units are also on
  (fractionally: a ring node where half of S is on costs ½). It is LSTMVis's boundary sharpness
  ``h − c[s−1] − c[e]`` (the level minus the units still on next to the run) summed over nodes: a
  component whose units switch off sharply at its boundary scores its full size; one that fades out
  through its neighbourhood scores less. ``ring = 0``: score = size.
- **Ranking.** By score (descending), then size (descending), then item, then first node. At most
  ``candidate_cap`` candidates are scored, the largest first; since score <= size, the top ``limit`` is
  exact (``exact``) when every unscored candidate is smaller than the ``limit``-th score.

Cost: the AND reads k bit rows of N/8 bytes; the edge filter is two gathers over the corpus edge array;
``scipy.sparse.csgraph.connected_components`` runs on the on nodes only; the ring is a breadth-first
expansion of the scored candidates over the corpus adjacency (built once per corpus, cached in
:class:`GraphCorpus`).

Aggregate: :func:`aggregate_nodes` is ``aggregate.aggregate`` at offset 0 over the matched nodes: the
label distribution (or mean) of a node annotation on the matched nodes against the whole corpus.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from lstmviz.analysis import graph_kernels as _K
from lstmviz.analysis.bitindex import BitIndex
from lstmviz.tasks import ensure_task

__all__ = ["GraphCorpus", "GraphMatchQuery", "GraphMatchResults", "aggregate_nodes", "graph_match",
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
        if len(self.edges) > 1 and np.any(np.diff(self.edges[:, 0]) < 0):
            self.edges = self.edges[np.argsort(self.edges[:, 0], kind="stable")]  # by first end, once
        #: the two ends as contiguous columns (gathers over them are the cost of a dense query)
        self.first, self.second = np.ascontiguousarray(self.edges[:, 0]), np.ascontiguousarray(self.edges[:, 1])
        if len(self.edges) and (self.edges.min() < 0 or self.edges.max() >= self.n):
            raise ValueError(f"the graph edges name rows outside the axis's {self.n} rows")
        self.filler = None if filler is None else np.asarray(filler, dtype=bool).reshape(-1)
        if self.filler is not None and len(self.filler) != self.n:
            raise ValueError(f"the filler mask has {len(self.filler)} entries for {self.n} rows")
        if self.filler is not None and not self.filler.any():
            self.filler = None
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
        """The symmetric CSR adjacency (pattern only) of the corpus without filler nodes."""
        if self._adjacency is None:
            a, b = self.edges[:, 0], self.edges[:, 1]
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


def _neighbours(adjacency: sparse.csr_matrix, owners: np.ndarray, nodes: np.ndarray):
    """Every (owner, neighbour) pair for the (owner, node) pairs given, in one gather."""
    indptr, indices = adjacency.indptr, adjacency.indices
    starts, stops = indptr[nodes], indptr[nodes + 1]
    counts = (stops - starts).astype(np.int64)
    total = int(counts.sum())
    if not total:
        return owners[:0], nodes[:0]
    offsets = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(total)
    return np.repeat(owners, counts), indices[offsets].astype(np.int64)


def _split_edges(corpus: GraphCorpus, on: np.ndarray, idx: np.ndarray):
    """The edges between on nodes ``(src, dst)`` (each both ways), sorted by ``src``, and the edges from an
    on node to an off node ``(inside, outside)`` (absolute rows), from the on nodes' rows of the
    filler-free adjacency (the path of a query with few on nodes)."""
    adjacency = corpus.adjacency()
    starts = adjacency.indptr[idx]
    counts = (adjacency.indptr[idx + 1] - starts).astype(np.int64)
    total = int(counts.sum())
    offsets = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(total)
    src = np.repeat(idx, counts)
    dst = adjacency.indices[offsets].astype(np.int64)
    inner = on[dst]
    return src[inner], dst[inner], src[~inner], dst[~inner]


def _first_ring(n: int, inside: np.ndarray, outside: np.ndarray, labels: np.ndarray, local: np.ndarray,
                rank_of: np.ndarray):
    """(candidate, node) of every node one hop from a scored candidate: the off ends of the edges that
    leave it (a component is maximal, so its 1-hop ring is exactly those), each once."""
    owner = rank_of[labels[local[inside]]].astype(np.int64)
    keep = owner >= 0
    keys = np.unique(owner[keep] * n + outside[keep])
    return keys // n, keys % n


def _ring_pairs(adjacency, n: int, owners: np.ndarray, members: np.ndarray, ring: int,
                first_owner: np.ndarray, first_node: np.ndarray):
    """(owner, node) of the ring nodes 2 .. ``ring`` hops from each candidate (not members, not in the
    first ring ``first_owner``, ``first_node``), breadth first over the corpus adjacency."""
    first = first_owner * n + first_node  # unique
    seen = np.union1d(owners * n + members, first)
    frontier_o, frontier_n = first_owner, first_node
    found = []
    for _ in range(ring - 1):
        o, v = _neighbours(adjacency, frontier_o, frontier_n)
        keys = np.unique(o * n + v)
        keys = keys[~np.isin(keys, seen, assume_unique=True)]
        if not keys.size:
            break
        found.append(keys)
        seen = np.union1d(seen, keys)
        frontier_o, frontier_n = keys // n, keys % n
    keys = np.concatenate(found) if found else np.zeros(0, np.int64)
    return keys // n, keys % n


def _unit_counts(index: BitIndex, units: np.ndarray, signs: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """int64 [len(rows)]: how many of the signed units are on at each row (row-major bits)."""
    out = np.zeros(len(rows), np.int64)
    if not len(rows):
        return out
    for sign in (1, -1):
        cols = units[signs == sign]
        if cols.size:
            bits = np.unpackbits(index.rows[sign][rows], axis=1, count=index.n_units, bitorder="little")
            out += bits[:, cols].sum(axis=1, dtype=np.int64)
    return out


def graph_match(index: BitIndex, corpus: GraphCorpus, query: GraphMatchQuery, *, task=None) -> GraphMatchResults:
    """Every connected node set of the corpus where the selected units are on together, ranked (module
    docstring). ``index`` is the tap's match index on the corpus's axis (same rows and items).
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
    on = on_nodes(index, units, signs, corpus.filler)
    idx = np.flatnonzero(on)
    timings["on"] = time.perf_counter() - t0
    task.check()
    task.progress(1, 4, "components")
    adjacency = corpus.adjacency()
    degrees = adjacency.indptr[idx + 1] - adjacency.indptr[idx]
    dense = 5 * int(degrees.sum()) >= 2 * len(corpus.first)  # measured crossover of the two paths
    local = None
    crossing = 0
    inside = outside = np.zeros(0, np.int64)
    labels_all = np.full(corpus.n, -1, np.int32)
    if not idx.size:
        n_comp, labels, first, sizes = 0, np.zeros(0, np.int32), np.zeros(0, np.int64), np.zeros(0, np.int64)
    elif dense:
        # many on nodes: union-find in one pass over the edge columns (graph_kernels)
        labels_all, first, sizes, crossing = _K.on_components(corpus.first, corpus.second, on, corpus.n)
        n_comp, labels = len(first), None
    else:
        # few: the on nodes' adjacency rows; the subgraph relabelled 0 .. n_on - 1 (monotone, so the
        # edges stay sorted by their first end and the CSR is built without a sort)
        src, dst, inside, outside = _split_edges(corpus, on, idx)
        local = np.full(corpus.n, -1, corpus.edges.dtype)
        local[idx] = np.arange(idx.size, dtype=local.dtype)
        a, b = local[src], local[dst]
        indptr = np.zeros(idx.size + 1, np.int64)
        np.cumsum(np.bincount(a, minlength=idx.size), out=indptr[1:])
        graph = sparse.csr_matrix((np.ones(len(b), np.int8), b, indptr), shape=(idx.size, idx.size))
        n_comp, labels = connected_components(graph, directed=True, connection="weak")
        labels = labels.astype(np.int32)
        labels_all[idx] = labels
        first = np.full(n_comp, np.iinfo(np.int64).max, np.int64)
        np.minimum.at(first, labels, idx)
        sizes = np.bincount(labels, minlength=n_comp).astype(np.int64)
    timings["components"] = time.perf_counter() - t0 - sum(timings.values())
    ok = sizes >= query.min_size
    if query.max_size is not None:
        ok &= sizes <= query.max_size
    # candidates: the largest first (score <= size), then by first node
    cand = np.flatnonzero(ok)
    cand = cand[np.lexsort((first[cand], -sizes[cand]))]
    n_candidates_all = cand.size
    cap = query.candidate_cap
    cut = cap is not None and cand.size > cap
    unscored_max = int(sizes[cand[cap]]) if cut else 0
    if cut:
        cand = cand[:cap]
    task.check()
    task.progress(2, 4, "ring")
    rank_of = np.full(n_comp, -1, np.int64)
    rank_of[cand] = np.arange(cand.size)
    ring_sizes = np.zeros(cand.size, np.int64)
    ring_on = np.zeros(cand.size, np.float64)
    if query.ring > 0 and cand.size:
        if dense:
            r_owner, r_node = _K.first_ring(adjacency.indptr, adjacency.indices, on, labels_all, rank_of, crossing)
        else:
            r_owner, r_node = _first_ring(corpus.n, inside, outside, labels, local, rank_of)
        if query.ring > 1:
            member_rank = rank_of[labels_all[idx]]
            in_cand = member_rank >= 0
            more_o, more_n = _ring_pairs(adjacency, corpus.n, member_rank[in_cand], idx[in_cand], query.ring,
                                         r_owner, r_node)
            r_owner, r_node = np.concatenate([r_owner, more_o]), np.concatenate([r_node, more_n])
        ring_sizes = np.bincount(r_owner, minlength=cand.size).astype(np.int64)
        uniq, inverse = np.unique(r_node, return_inverse=True)
        c = _unit_counts(index, units, signs, uniq)[inverse]
        ring_on = np.bincount(r_owner, weights=c / k, minlength=cand.size)
    timings["ring"] = time.perf_counter() - t0 - sum(timings.values())
    task.check()
    task.progress(3, 4, "rank")
    c_sizes = sizes[cand]
    score = c_sizes - ring_on
    c_first = first[cand]
    c_items = (np.searchsorted(corpus.item_offsets, c_first, side="right") - 1).astype(np.int64)
    order = np.lexsort((c_first, c_items, -c_sizes, -score))
    if query.limit is not None:
        order = order[:query.limit]
    exact = True
    if cut:
        kth = score[order[-1]] if query.limit is not None and len(order) >= query.limit else -np.inf
        exact = bool(kth > unscored_max)
    # the matched nodes, match after match (sorted inside a match), each searched in its item's rows
    chosen = order
    items = c_items[chosen]
    item_starts = corpus.item_offsets[items]
    rows, node_offsets = _K.component_nodes(labels_all, c_first[chosen], corpus.item_offsets[items + 1],
                                            cand[chosen].astype(np.int32))
    nodes = rows - np.repeat(item_starts, np.diff(node_offsets))
    timings["rank"] = time.perf_counter() - t0 - sum(timings.values())
    task.progress(4, 4, "done")
    return GraphMatchResults(query, items, node_offsets, nodes, item_starts, c_sizes[chosen], ring_sizes[chosen],
                             ring_on[chosen], score[chosen], int(idx.size), int(n_comp), int(cand.size), exact,
                             time.perf_counter() - t0,
                             {"timings": timings, "candidates_in_bounds": int(n_candidates_all)})


def aggregate_nodes(recording, annotation: str, results: GraphMatchResults, *, task=None):
    """A node annotation over every matched node against the whole corpus: ``aggregate.aggregate`` with
    the matched nodes as anchors and the one offset 0 (a ``LabelTable`` or ``NumericTable``; the
    recording's main axis must be the graph axis)."""
    from lstmviz.analysis.aggregate import aggregate

    return aggregate(recording, annotation, results.all_positions(), offsets=[0], task=task)
