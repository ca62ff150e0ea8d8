"""Graph match: connected node sets where the selected units are on together, scored and ranked."""

import networkx as nx
import numpy as np
import pytest

from lstmviz.analysis.bitindex import BitIndex
from lstmviz.analysis.graph_match import GraphCorpus, GraphMatchQuery, graph_match, on_nodes
from lstmviz.tasks import Cancelled, Task


def random_corpus(seed, n_items=30, units=6, p_on=0.5, filler_rate=0.0):
    """Random small graphs (isolated nodes, several components, self-loops) and random on-bits."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 15, n_items)
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    edges, graphs = [], []
    for i, n in enumerate(sizes):
        g = nx.gnp_random_graph(int(n), 0.25, seed=int(rng.integers(1 << 30)))
        if n > 2:
            g.add_edge(0, 0)
        graphs.append(g)
        edges += [(a + offsets[i], b + offsets[i]) for a, b in g.edges()]
    n = int(offsets[-1])
    on_pos = rng.random((n, units)) < p_on
    on_neg = rng.random((n, units)) < p_on
    filler = rng.random(n) < filler_rate
    return graphs, offsets, np.array(edges, np.int64).reshape(-1, 2), on_pos, on_neg, filler


def brute_force(graphs, offsets, on_pos, on_neg, filler, units, signs, ring, min_size=1, max_size=None):
    """(item, nodes, size, score) of every component, by networkx, one graph at a time."""
    out = []
    cols = [(on_pos if s > 0 else on_neg)[:, u] for u, s in zip(units, signs)]
    count = np.sum(cols, axis=0)
    k = len(units)
    for i, g in enumerate(graphs):
        base = offsets[i]
        real = [v for v in g if not filler[base + v]]
        h = g.subgraph(real)
        on = [v for v in real if count[base + v] == k]
        for comp in nx.connected_components(h.subgraph(on)):
            if len(comp) < min_size or (max_size is not None and len(comp) > max_size):
                continue
            within = set()
            for v in comp:
                within |= set(nx.single_source_shortest_path_length(h, v, cutoff=ring))
            ring_nodes = within - comp
            score = len(comp) - sum(count[base + r] for r in ring_nodes) / k
            out.append((i, tuple(sorted(comp)), len(comp), score))
    out.sort(key=lambda m: (-m[3], -m[2], m[0], m[1][0]))
    return out


def as_list(res):
    return [(int(res.items[i]), tuple(int(v) for v in res.match_nodes(i)), int(res.sizes[i]), float(res.score[i]))
            for i in range(len(res))]


@pytest.mark.parametrize("seed,units,signs,ring,filler_rate", [
    (0, (0,), (1,), 1, 0.0), (1, (0, 2), (1, 1), 1, 0.0), (2, (1, 3), (1, -1), 2, 0.0),
    (3, (0, 1), (1, 1), 0, 0.0), (4, (2,), (-1,), 1, 0.2), (5, (0, 4, 5), (1, 1, -1), 3, 0.1),
    (6, (0,), (1,), 20, 0.1),  # a ring wider than any graph: every other node of the item
])
def test_equals_brute_force(seed, units, signs, ring, filler_rate):
    graphs, offsets, edges, on_pos, on_neg, filler = random_corpus(seed, filler_rate=filler_rate)
    index = BitIndex.from_bool(on_pos, on_neg, offsets)
    corpus = GraphCorpus(edges, offsets, filler)
    res = graph_match(index, corpus, GraphMatchQuery(units, signs, ring=ring, limit=None, candidate_cap=None))
    expected = brute_force(graphs, offsets, on_pos, on_neg, filler, units, signs, ring)
    assert len(expected) > 5
    got = as_list(res)
    assert got == expected  # scores too, exactly: the ring count is summed, then divided by k
    assert res.n_components == len(expected) and res.exact


def test_size_bounds_limit_and_positions():
    graphs, offsets, edges, on_pos, on_neg, filler = random_corpus(7, p_on=0.7)
    index = BitIndex.from_bool(on_pos, on_neg, offsets)
    corpus = GraphCorpus(edges, offsets)
    q = GraphMatchQuery((0,), min_size=2, max_size=4, limit=5, candidate_cap=None)
    res = graph_match(index, corpus, q)
    expected = brute_force(graphs, offsets, on_pos, on_neg, filler, (0,), (1,), 1, 2, 4)
    assert [m[:3] for m in as_list(res)] == [m[:3] for m in expected[:5]]
    assert len(res) == 5 and all(2 <= s <= 4 for s in res.sizes)
    for i in range(len(res)):
        assert np.all(on_pos[res.positions(i), 0])
        assert np.all(res.positions(i) >= offsets[res.items[i]]) and np.all(res.positions(i) < offsets[res.items[i] + 1])


def test_score_counts_ring_nodes_where_units_are_on():
    """A path 0-1-2-3-4, units 0 and 1 on at 2; unit 0 also on at 1 and 3 (1 hop), both at 0 (2 hops)."""
    on = np.zeros((5, 2), bool)
    on[2] = True
    on[[1, 3], 0] = True
    on[0] = True
    index = BitIndex.from_bool(on, None, [0, 5])
    corpus = GraphCorpus([(0, 1), (1, 2), (2, 3), (3, 4)], [0, 5])
    one = graph_match(index, corpus, GraphMatchQuery((0, 1), ring=1))
    # node 0: ring {1} (one of two units on) -> 1 - ½; node 2: ring {1, 3} -> 1 - ½ - ½
    assert as_list(one) == [(0, (0,), 1, 0.5), (0, (2,), 1, 0.0)]
    two = graph_match(index, corpus, GraphMatchQuery((0, 1), ring=2))
    top = {m[1]: m[3] for m in as_list(two)}
    assert top[(2,)] == pytest.approx(1 - 0.5 - 0.5 - 1.0)  # ring {1, 3} at ½ each, {0, 4}: 1 + 0
    assert top[(0,)] == pytest.approx(1 - 0.5 - 1.0)  # ring {1, 2}
    assert graph_match(index, corpus, GraphMatchQuery((0, 1), ring=0)).score.tolist() == [1.0, 1.0]


def test_candidate_cap_reports_exactness():
    graphs, offsets, edges, on_pos, on_neg, filler = random_corpus(8, n_items=60, p_on=0.6)
    index = BitIndex.from_bool(on_pos, on_neg, offsets)
    corpus = GraphCorpus(edges, offsets)
    full = graph_match(index, corpus, GraphMatchQuery((0,), limit=3, candidate_cap=None))
    capped = graph_match(index, corpus, GraphMatchQuery((0,), limit=3, candidate_cap=20))
    assert capped.n_candidates <= 20
    if capped.exact:
        np.testing.assert_allclose(capped.score, full.score)
    tiny = graph_match(index, corpus, GraphMatchQuery((0,), limit=10, candidate_cap=1))
    assert not tiny.exact and tiny.n_candidates == 1
    everything = graph_match(index, corpus, GraphMatchQuery((0,), limit=None, candidate_cap=20))
    assert not everything.exact and everything.n_candidates == len(everything) == 20


def ranked_within_cap(expected, offsets, limit, cap):
    """The brute force's ranking of the first ``cap`` candidates in (size descending, first node) order."""
    pool = sorted(expected, key=lambda m: (-m[2], offsets[m[0]] + m[1][0]))[:cap]
    pool.sort(key=lambda m: (-m[3], -m[2], m[0], m[1][0]))
    return pool[:limit]


@pytest.mark.parametrize("seed,units,signs,ring", [
    (20, (0,), (1,), 0), (21, (0,), (1,), 1), (22, (0, 2, 3), (1, 1, -1), 1), (23, (1, 4, 5), (1, -1, 1), 2),
])
def test_top_limit_scores_only_what_it_needs_and_equals_the_brute_force(seed, units, signs, ring):
    """The top ``limit`` is the brute force's, score for score (exactly: ties in score, common with ring 0
    or k = 3, are broken by size, item and first node), with fewer candidates scored than there are; under
    a cap it is the brute force's ranking of the largest ``cap`` candidates, and ``exact`` only when that
    equals the uncapped top ``limit``."""
    graphs, offsets, edges, on_pos, on_neg, filler = random_corpus(seed, n_items=150, p_on=0.7, filler_rate=0.05)
    index = BitIndex.from_bool(on_pos, on_neg, offsets)
    corpus = GraphCorpus(edges, offsets, filler)
    expected = brute_force(graphs, offsets, on_pos, on_neg, filler, units, signs, ring)
    assert len(expected) > 100
    full = graph_match(index, corpus, GraphMatchQuery(units, signs, ring=ring, limit=None, candidate_cap=None))
    assert as_list(full) == expected and full.n_candidates == len(expected)
    early = 0
    for limit in (1, 5, 20):
        for cap in (None, 3, 10, 40):
            res = graph_match(index, corpus, GraphMatchQuery(units, signs, ring=ring, limit=limit, candidate_cap=cap))
            assert as_list(res) == ranked_within_cap(expected, offsets, limit, cap)
            assert res.n_candidates <= (len(expected) if cap is None else cap)
            if cap is None:
                assert res.exact
                early += res.n_candidates < len(expected)
            if res.exact:
                assert as_list(res) == expected[:limit]
            if cap is not None and cap < limit:
                assert not res.exact
    assert early == 3  # every uncapped top-limit query stopped before scoring every candidate


def test_a_capped_search_is_exact_when_the_next_candidate_cannot_beat_the_last_match():
    """Ring 0 (score = size): isolated on nodes of graphs whose other nodes are off. Every candidate scores
    1; the one left out by the cap ties with the last match and ranks below it (later first node)."""
    on = np.zeros((12, 1), bool)
    on[::2] = True
    index = BitIndex.from_bool(on, None, [0, 4, 8, 12])
    corpus = GraphCorpus([(0, 1), (1, 2), (2, 3), (4, 5), (8, 9)], [0, 4, 8, 12])
    res = graph_match(index, corpus, GraphMatchQuery((0,), ring=0, limit=2, candidate_cap=2))
    assert res.exact and res.n_candidates == 2
    assert as_list(res) == [(0, (0,), 1, 1.0), (0, (2,), 1, 1.0)]
    assert not graph_match(index, corpus, GraphMatchQuery((0,), ring=0, limit=3, candidate_cap=2)).exact


def test_on_nodes_is_the_and_of_the_bits():
    rng = np.random.default_rng(1)
    on_pos, on_neg = rng.random((100, 20)) < 0.6, rng.random((100, 20)) < 0.6
    index = BitIndex.from_bool(on_pos, on_neg)
    got = on_nodes(index, [3, 7, 12], [1, -1, 1])
    np.testing.assert_array_equal(got, on_pos[:, 3] & on_neg[:, 7] & on_pos[:, 12])


def test_nothing_on_and_bad_queries():
    index = BitIndex.from_bool(np.zeros((4, 2), bool), None, [0, 4])
    corpus = GraphCorpus([(0, 1)], [0, 4])
    assert len(graph_match(index, corpus, GraphMatchQuery((0,)))) == 0
    with pytest.raises(ValueError, match="select at least one unit"):
        GraphMatchQuery(())
    with pytest.raises(ValueError, match="outside"):
        graph_match(index, corpus, GraphMatchQuery((5,)))
    with pytest.raises(ValueError, match="rows"):
        graph_match(index, GraphCorpus([(0, 1)], [0, 3]), GraphMatchQuery((0,)))
    with pytest.raises(ValueError, match="outside the axis"):
        GraphCorpus([(0, 9)], [0, 4])
    with pytest.raises(ValueError, match="1 graph edges join two items .*rows 1 and 2, items 0 and 1"):
        graph_match(index, GraphCorpus([(0, 1), (1, 2)], [0, 2, 4]), GraphMatchQuery((0,)))


def test_cancel_stops_it():
    index = BitIndex.from_bool(np.ones((4, 2), bool), None, [0, 4])
    task = Task()
    task.cancel()
    with pytest.raises(Cancelled):
        graph_match(index, GraphCorpus([(0, 1)], [0, 4]), GraphMatchQuery((0,)), task=task)


@pytest.mark.parametrize("p_on", [0.05, 0.95])
@pytest.mark.parametrize("ring", [1, 2])
def test_sparse_and_dense_queries_take_either_edge_path_alike(p_on, ring):
    """Few on nodes read the adjacency rows, many run union-find over the edge columns; both with filler
    nodes and wider rings."""
    graphs, offsets, edges, on_pos, on_neg, filler = random_corpus(11, n_items=40, p_on=p_on, filler_rate=0.15)
    index = BitIndex.from_bool(on_pos, on_neg, offsets)
    res = graph_match(index, GraphCorpus(edges, offsets, filler), GraphMatchQuery((1,), ring=ring, limit=None,
                                                                                 candidate_cap=None))
    expected = brute_force(graphs, offsets, on_pos, on_neg, filler, (1,), (1,), ring)
    assert len(expected) > 3
    assert [m[:3] for m in as_list(res)] == [m[:3] for m in expected]
    np.testing.assert_allclose(res.score, [m[3] for m in expected])


def test_graphs_without_edges_match_single_nodes():
    on = np.array([[1], [0], [1], [1]], bool)
    index = BitIndex.from_bool(on, None, [0, 2, 4])
    res = graph_match(index, GraphCorpus(np.zeros((0, 2), np.int64), [0, 2, 4]), GraphMatchQuery((0,)))
    assert as_list(res) == [(0, (0,), 1, 1.0), (1, (0,), 1, 1.0), (1, (1,), 1, 1.0)]
