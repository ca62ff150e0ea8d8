"""Graph match: time per query over 10,000 graphs x 100 nodes x 64 units, against a numpy brute force.

Synthetic corpus (arrays; the v3 writer is not needed): --graphs random geometric graphs of --nodes
nodes each (about --degree neighbours per node, so components and boundaries look like real
neighbourhoods), a tap of --units units whose values are smooth over each graph (a random field
averaged over neighbours twice) so that a unit is on over connected patches, and the packed-bit match
index built once from them (``BitIndex.from_bool``, not timed per query). Queries: k = 1, 3, 8 units
picked the way a user would — the units on over a brushed k-hop ball of a random graph and off on its
ring (``select_node_units``), padded with random units to k.

Per query it prints the median over --repeats of ``graph_match`` with the panel's defaults (top 100,
at most 10,000 candidates scored, fewer when the top 100 is proven sooner) and with every component
scored (limit and cap None), the corpus adjacency built once beforehand (reported separately); and
the time of a plain numpy/scipy brute force from the float values (``is_on`` over the selected
columns, then one graph at a time: mask, edges, ``connected_components``, the ring by BFS), the ratio,
whether both find the same components with the same scores (every component, and the top 100 exact),
and the goal (<= 100 ms per query, top 100); under each row, the top-100 query's phases and how many
candidates it scored. Measured numbers only.

With --file PATH the corpus is written once as a v3 recording (``RecordingWriter`` with a graph axis,
reused when it exists) and the query runs as the Graph panel runs it: the index from the file
(``open_index``, built once, not timed per query) and the corpus from ``Recording.graph_edges``.

    python benchmarks/graph_match.py                    # 10,000 x 100 x 64, arrays
    python benchmarks/graph_match.py --file /tmp/graphs.h5   # the same through a v3 recording
    python benchmarks/graph_match.py --graphs 1000      # quicker
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from lstmviz.analysis.bitindex import BitIndex
from lstmviz.analysis.graph_match import GraphCorpus, GraphMatchQuery, graph_match
from lstmviz.analysis.graph_selection import NodeSetSpec, k_hop_ball, select_node_units
from lstmviz.analysis.transforms import is_on
from lstmviz.geometry import GraphGeometry

THRESHOLD = 0.5


def make_corpus(graphs: int, nodes: int, units: int, degree: float, seed: int):
    """(edges [E, 2] absolute, offsets [I + 1], values float32 [N, units])."""
    rng = np.random.default_rng(seed)
    radius = np.sqrt(degree / (np.pi * nodes))
    edges = []
    for i in range(graphs):
        xy = rng.random((nodes, 2))
        d2 = ((xy[:, None, :] - xy[None, :, :]) ** 2).sum(-1)
        a, b = np.nonzero(np.triu(d2 < radius * radius, 1))
        edges.append(np.stack([a, b], 1) + i * nodes)
    edges = np.concatenate(edges).astype(np.int64)
    n = graphs * nodes
    offsets = np.arange(graphs + 1, dtype=np.int64) * nodes
    adj = sparse.csr_matrix((np.ones(2 * len(edges), np.float32), (np.r_[edges[:, 0], edges[:, 1]],
                                                                   np.r_[edges[:, 1], edges[:, 0]])), shape=(n, n))
    adj = adj + sparse.identity(n, np.float32, format="csr")
    deg = np.asarray(adj.sum(1)).ravel()
    values = rng.normal(size=(n, units)).astype(np.float32) + rng.normal(0.0, 0.3, units).astype(np.float32)
    for _ in range(2):  # smooth over neighbourhoods: on over connected patches
        values = (adj @ values) / deg[:, None]
    values = (values / values.std(0)).astype(np.float32) * 0.6
    return edges, offsets, values


def brute_force(values, edges, offsets, units, signs, ring):
    """{(item, first node): (size, score)} from the float values, one graph at a time."""
    k = len(units)
    count = np.zeros(len(values), np.int64)
    for u, s in zip(units, signs):
        count += is_on(values[:, u], s, THRESHOLD)
    on = count == k
    e_item = np.searchsorted(offsets, edges[:, 0], side="right") - 1
    e_bounds = np.searchsorted(e_item, np.arange(len(offsets)))
    out = {}
    for i in range(len(offsets) - 1):
        a, b = offsets[i], offsets[i + 1]
        n = b - a
        if not on[a:b].any():
            continue
        e = edges[e_bounds[i]:e_bounds[i + 1]] - a
        g = sparse.csr_matrix((np.ones(2 * len(e)), (np.r_[e[:, 0], e[:, 1]], np.r_[e[:, 1], e[:, 0]])), shape=(n, n))
        mask = on[a:b]
        keep = mask[e[:, 0]] & mask[e[:, 1]]
        sub = sparse.csr_matrix((np.ones(keep.sum()), (e[keep, 0], e[keep, 1])), shape=(n, n))
        _, labels = connected_components(sub, directed=False)
        for lab in np.unique(labels[mask]):
            comp = np.flatnonzero((labels == lab) & mask)
            reach = np.zeros(n, bool)
            reach[comp] = True
            frontier = reach.copy()
            for _ in range(ring):
                frontier = (g @ frontier.astype(float) > 0) & ~reach
                reach |= frontier
            ring_nodes = reach.copy()
            ring_nodes[comp] = False
            out[(i, int(comp[0]))] = (len(comp), len(comp) - count[a:b][ring_nodes].sum() / k)
    return out


def pick_units(values, edges, offsets, k, rng):
    """Units on over a brushed ball and off on its ring in a random graph, padded with random units."""
    for _ in range(200):
        i = int(rng.integers(len(offsets) - 1))
        a, b = offsets[i], offsets[i + 1]
        inside = (edges[:, 0] >= a) & (edges[:, 0] < b)
        g = GraphGeometry.from_edges(int(b - a), edges[inside] - a)
        ball = k_hop_ball(g, int(rng.integers(b - a)), 1)
        sel = select_node_units(values[a:b], g, NodeSetSpec(tuple(ball), threshold=THRESHOLD, ring=1))
        if len(sel):
            units = list(sel.units[:k])
            others = [u for u in rng.permutation(values.shape[1]) if u not in units]
            return tuple(int(u) for u in units + others[:k - len(units)])
    return tuple(int(u) for u in rng.permutation(values.shape[1])[:k])


def from_file(path, edges, offsets, values):
    """The index and corpus read from a v3 recording of the corpus (written first if it is missing)."""
    from pathlib import Path

    from lstmviz.analysis.bitindex import IndexKey, open_index
    from lstmviz.geometry import GraphGeometry
    from lstmviz.recording import RecordingWriter, open_recording

    path = Path(path)
    if not path.exists():
        t = time.perf_counter()
        e_item = np.searchsorted(offsets, edges[:, 0], side="right") - 1
        bounds = np.searchsorted(e_item, np.arange(len(offsets)))
        tmp = path.with_name(path.name + ".part")
        with RecordingWriter(tmp, vocab=["<pad>", "node"], provenance={"engine": "benchmark"}) as writer:
            writer.set_geometry("positions", "graph")
            writer.add_tap("layer0/h", values.shape[1], layer=0, signal="h")
            for i in range(len(offsets) - 1):
                a, b = offsets[i], offsets[i + 1]
                g = GraphGeometry.from_edges(int(b - a), edges[bounds[i]:bounds[i + 1]] - a)
                writer.append_item(np.ones(b - a, np.int64), {"layer0/h": values[a:b]}, geometry={"positions": g})
        tmp.rename(path)
        print(f"wrote {path} ({path.stat().st_size / 2**20:,.0f} MiB) in {time.perf_counter() - t:.1f} s")
    recording = open_recording(path)
    index = open_index(recording, IndexKey("layer0/h", "raw", THRESHOLD), cache=False)
    corpus = GraphCorpus.from_recording(recording)
    return index, corpus


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--graphs", type=int, default=10_000)
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--units", type=int, default=64)
    parser.add_argument("--degree", type=float, default=6.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--ring", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--file", help="write (once) and read the corpus as a v3 recording at this path")
    args = parser.parse_args()

    t = time.perf_counter()
    edges, offsets, values = make_corpus(args.graphs, args.nodes, args.units, args.degree, args.seed)
    print(f"corpus: {args.graphs:,} graphs x {args.nodes} nodes x {args.units} units, {len(edges):,} edges "
          f"({time.perf_counter() - t:.1f} s to make)")
    t = time.perf_counter()
    if args.file:
        index, corpus = from_file(args.file, edges, offsets, values)
    else:
        index = BitIndex.from_bool(is_on(values, 1, THRESHOLD), is_on(values, -1, THRESHOLD), offsets)
        corpus = GraphCorpus(edges, offsets)
    print(f"index ({'from the v3 file' if args.file else 'in memory, from the on/off bits'}): "
          f"{time.perf_counter() - t:.2f} s; unit sparsity {index.row_counts[1].mean() / args.units:.1%} on")
    t = time.perf_counter()
    corpus.adjacency()
    print(f"corpus adjacency (once per recording): {1000 * (time.perf_counter() - t):.0f} ms")
    rng = np.random.default_rng(args.seed + 1)
    print(f"{'k':>3} {'on nodes':>9} {'compon.':>8} {'top-100 ms':>11} {'all ms':>8} {'brute force ms':>15} "
          f"{'ratio':>6}  same  goal<=100ms")
    for k in (1, 3, 8):
        units = pick_units(values, edges, offsets, k, rng)
        signs = (1,) * k
        top_query = GraphMatchQuery(units, signs, ring=args.ring)  # the panel's defaults: limit 100, cap 10,000
        all_query = GraphMatchQuery(units, signs, ring=args.ring, limit=None, candidate_cap=None)
        timed = {}
        for name, query in (("top", top_query), ("all", all_query)):
            times = []
            for _ in range(args.repeats):
                t = time.perf_counter()
                res = graph_match(index, corpus, query)
                times.append(time.perf_counter() - t)
            timed[name] = (statistics.median(times), res)
        (ours, top), (ours_all, res) = timed["top"], timed["all"]
        t = time.perf_counter()
        expected = brute_force(values, edges, offsets, units, signs, args.ring)
        theirs = time.perf_counter() - t
        got = {(int(res.items[i]), int(res.match_nodes(i)[0])): (int(res.sizes[i]), float(res.score[i]))
               for i in range(len(res))}
        same = got.keys() == expected.keys() and all(
            got[key][0] == expected[key][0] and abs(got[key][1] - expected[key][1]) < 1e-9 for key in got)
        best = sorted(expected.values(), key=lambda v: -v[1])[:len(top)]
        same &= top.exact and np.allclose(sorted(top.score, reverse=True), [v[1] for v in best])
        print(f"{k:>3} {res.n_on:>9,} {res.n_components:>8,} {1000 * ours:>11.1f} {1000 * ours_all:>8.1f} "
              f"{1000 * theirs:>15.0f} {theirs / ours:>5.0f}x  {'yes' if same else 'NO'}   "
              f"{'met' if ours <= 0.1 else 'MISSED'}")
        print("    phases of top-100 (ms): " + ", ".join(f"{name} {1000 * s:.1f}"
                                                    for name, s in top.extra["timings"].items())
              + f"; {top.n_candidates:,} of {top.extra['candidates_in_bounds']:,} candidates scored")

if __name__ == "__main__":
    main()
