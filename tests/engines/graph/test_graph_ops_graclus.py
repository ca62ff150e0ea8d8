"""Graclus coarsening and the binary-tree ordering with filler nodes."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from lstmviz.engines.graph import graclus
from lstmviz.engines.graph.ops import adjacency
from lstmviz.geometry import GraphGeometry


def karate_W():
    g = nx.karate_club_graph()
    return adjacency(34, np.array(g.edges()))


def test_every_coarse_node_has_one_or_two_children_that_are_neighbours():
    W = karate_W()
    parent, count = graclus.graclus_level(W, np.random.default_rng(0))
    assert parent.min() == 0 and parent.max() == count - 1
    sizes = np.bincount(parent)
    assert set(sizes) <= {1, 2} and 17 <= count < 34
    dense = W.toarray()
    for c in np.flatnonzero(sizes == 2):
        a, b = np.flatnonzero(parent == c)
        assert dense[a, b] > 0  # only neighbours are matched


def test_the_matched_neighbour_maximises_the_local_normalised_cut():
    # star with weighted spokes: the centre (visited first when it is the only choice) prefers the
    # leaf with the largest W_ij (1/d_i + 1/d_j); leaf 2 has degree 1 but the heaviest spoke
    edges = [(0, 1), (0, 2), (0, 3), (3, 4)]
    W = adjacency(5, edges, [1.0, 3.0, 2.0, 10.0])
    d = np.asarray(W.sum(axis=1)).ravel()

    class Order:
        def permutation(self, n):
            return np.array([0, 1, 2, 3, 4])

    parent, _ = graclus.graclus_level(W, Order())
    scores = {j: W[0, j] * (1 / d[0] + 1 / d[j]) for j in (1, 2, 3)}
    best = max(scores, key=scores.get)
    assert best == 2 and parent[0] == parent[2]
    assert parent[3] == parent[4]  # then 3 pairs with its remaining neighbour


def test_coarse_weights_are_sums_over_the_clusters():
    W = karate_W()
    c = graclus.coarsen(W, 2, seed=3)
    for k in range(2):
        P = np.zeros((c.sizes[k], c.sizes[k + 1]))
        P[np.arange(c.sizes[k]), c.parents[k]] = 1
        np.testing.assert_allclose(c.graphs[k + 1].toarray(), P.T @ c.graphs[k].toarray() @ P)
    assert c.graphs[1].sum() == pytest.approx(W.sum())


def test_seeded_visit_order_is_reproducible():
    W = karate_W()
    a, b = graclus.coarsen(W, 2, seed=5), graclus.coarsen(W, 2, seed=5)
    assert all(np.array_equal(x, y) for x, y in zip(a.parents, b.parents))


def test_tree_order_is_a_bijection_with_fillers_and_pair_pooling_equals_parent_pooling():
    g = nx.karate_club_graph()
    geometry = GraphGeometry.from_edges(34, np.array(g.edges()), node_names=[str(v) for v in g.nodes])
    levels = graclus.graph_levels(geometry, 2, seed=1)
    assert [lv.axis for lv in levels] == ["positions", "level1", "level2"]
    c = graclus.coarsen(adjacency(34, geometry.edges), 2, seed=1)
    orders = graclus.tree_orders(c)
    n2 = c.sizes[2]
    assert [len(o) for o in orders] == [4 * n2, 2 * n2, n2]
    for k, order in enumerate(orders):
        real = order[order >= 0]
        assert sorted(real) == list(range(c.sizes[k]))  # every node exactly once
        assert np.array_equal(levels[k].geometry.filler if levels[k].geometry.filler is not None
                              else np.zeros(len(order), bool), order < 0)
    source = levels[0].source_node
    assert np.array_equal(source, orders[0])
    assert levels[0].geometry.node_names[int(np.flatnonzero(source < 0)[0])] == graclus.FILLER_NAME

    rng = np.random.default_rng(0)
    x = rng.random(34) + 0.1  # non-negative, like a ReLU output; fillers hold 0
    ordered = np.where(source >= 0, x[np.maximum(source, 0)], 0.0)
    for k in (1, 2):
        pooled_pairs = ordered.reshape(-1, 2).max(axis=1)
        pmap = levels[k].geometry.pooling_map
        assert np.array_equal(pmap, np.arange(len(ordered)) // 2)
        # pooling over the Graclus parent map, in each level's own node numbering
        by_parent = np.zeros(c.sizes[k])
        finer_nodes = orders[k - 1]
        real = finer_nodes >= 0
        np.maximum.at(by_parent, c.parents[k - 1][finer_nodes[real]], ordered[real])
        coarse_order = orders[k]
        np.testing.assert_array_equal(pooled_pairs[coarse_order >= 0], by_parent[coarse_order[coarse_order >= 0]])
        assert not pooled_pairs[coarse_order < 0].any()
        ordered = pooled_pairs


def test_level_edges_follow_the_positions_and_fillers_are_isolated():
    g = nx.karate_club_graph()
    geometry = GraphGeometry.from_edges(34, np.array(g.edges()))
    levels = graclus.graph_levels(geometry, 1, seed=0)
    source = levels[0].source_node
    got = {tuple(sorted(int(source[p]) for p in e)) for e in levels[0].geometry.edges}
    assert got == {tuple(sorted(e)) for e in g.edges()}
    for level in levels:
        fill = level.geometry.filler
        touched = np.unique(level.geometry.edges)
        assert not fill[touched].any()
    coarse = graclus.coarsen(adjacency(34, geometry.edges), 1, seed=0)
    assert len(levels[1].geometry.edges) == (coarse.graphs[1].nnz - np.count_nonzero(coarse.graphs[1].diagonal())) // 2


def test_no_levels_keeps_the_input_positions_and_odd_graphs_work():
    geometry = GraphGeometry.from_edges(3, [(0, 1)])
    (level,) = graclus.graph_levels(geometry, 0)
    assert level.geometry is geometry and level.source_node is None
    lone = graclus.graph_levels(GraphGeometry.from_edges(1, []), 2)  # one node, no edge: 3 fillers
    assert len(lone[0].source_node) == 4 and (lone[0].source_node >= 0).sum() == 1
    loops = graclus.graph_levels(GraphGeometry.from_edges(4, [(0, 0), (0, 1), (2, 3)]), 1)
    assert (loops[0].source_node >= 0).sum() == 4
