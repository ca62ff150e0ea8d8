"""The Select rule on node sets: on inside the brushed set, off on its ring; ring, tolerance, filler."""

import networkx as nx
import numpy as np
import pytest

from lstmviz.analysis.graph_selection import (
    NodeSetSpec,
    boundary_ring,
    k_hop_ball,
    lasso_nodes,
    select_node_units,
)
from lstmviz.geometry import GraphGeometry


def path_graph(n=8, filler=None):
    """0 - 1 - 2 - ... - n-1."""
    return GraphGeometry.from_edges(n, [(i, i + 1) for i in range(n - 1)], filler=filler)


def planted_values(n=8, units=6):
    """S = {3, 4}: unit 0 on at S only; unit 1 on at S and at 2 (1 hop); unit 2 on at S and at 1 (2 hops);
    unit 3 on at 3 only (tolerance); unit 4 <= -1 at S only (negative); unit 5 on everywhere."""
    v = np.zeros((n, units), np.float32)
    v[[3, 4], 0] = 1
    v[[2, 3, 4], 1] = 1
    v[[1, 3, 4], 2] = 1
    v[3, 3] = 1
    v[[3, 4], 4] = -1
    v[:, 5] = 1
    return v


def test_ring_one_excludes_units_on_next_to_the_set():
    sel = select_node_units(planted_values(), path_graph(), NodeSetSpec((3, 4), threshold=0.5, ring=1))
    assert sel.pairs() == [(0, 1), (2, 1)]
    assert list(sel.extra["ring"]) == [2, 5]


def test_wider_ring_and_no_ring():
    g, v = path_graph(), planted_values()
    assert select_node_units(v, g, NodeSetSpec((3, 4), threshold=0.5, ring=2)).pairs() == [(0, 1)]
    assert select_node_units(v, g, NodeSetSpec((3, 4), threshold=0.5, ring=0)).pairs() == [(0, 1), (1, 1), (2, 1), (5, 1)]


def test_tolerance_direction_added_removed():
    g, v = path_graph(), planted_values()
    half = NodeSetSpec((3, 4), threshold=0.5, tolerance=0.5)
    assert (3, 1) in select_node_units(v, g, half).pairs()
    both = NodeSetSpec((3, 4), threshold=0.5, direction="both", added=[(5, 1)], removed=[(0, 1)])
    assert select_node_units(v, g, both).pairs() == [(2, 1), (4, -1), (5, 1)]


def test_threshold_follows_the_one_on_rule():
    g = path_graph(3)
    v = np.zeros((3, 1), np.float32)
    v[1, 0] = np.float32(0.7)
    assert select_node_units(v, g, NodeSetSpec((1,), threshold=0.7)).pairs() == [(0, 1)]
    v[0, 0] = np.nan  # NaN on the ring is off
    assert select_node_units(v, g, NodeSetSpec((1,), threshold=0.7)).pairs() == [(0, 1)]


def test_filler_nodes_never_count():
    filler = np.zeros(8, bool)
    filler[5] = True  # a fake node right of the set: its value would otherwise exclude unit 0
    v = planted_values()
    v[5, 0] = 1
    g = path_graph(filler=filler)
    sel = select_node_units(v, g, NodeSetSpec((3, 4, 5), threshold=0.5))
    assert list(sel.extra["nodes"]) == [3, 4] and list(sel.extra["ring"]) == [2]
    assert (0, 1) in sel.pairs()
    with pytest.raises(ValueError, match="filler"):
        select_node_units(v, g, NodeSetSpec((5,), threshold=0.5))
    # the ring does not pass through a filler node
    assert list(boundary_ring(g, [4], 2)) == [2, 3]


def test_ring_and_ball_agree_with_networkx():
    nxg = nx.karate_club_graph()
    g = GraphGeometry.from_edges(34, list(nxg.edges()))
    for node, k in [(0, 1), (33, 2), (16, 3)]:
        expected = sorted(nx.single_source_shortest_path_length(nxg, node, cutoff=k))
        assert list(k_hop_ball(g, node, k)) == expected
    s = [0, 1, 2]
    within = set()
    for node in s:
        within |= set(nx.single_source_shortest_path_length(nxg, node, cutoff=2))
    assert list(boundary_ring(g, s, 2)) == sorted(within - set(s))


def test_directed_edges_count_both_ways_for_the_ring():
    g = GraphGeometry.from_edges(3, [(0, 1), (2, 1)], directed=True)
    assert list(boundary_ring(g, [1], 1)) == [0, 2]


def test_lasso_even_odd_and_filler():
    coords = np.array([[0, 0], [1, 1], [2, 2], [0.5, 1.5], [5, 5]], float)
    square = [(-0.5, -0.5), (2.5, -0.5), (2.5, 2.5), (-0.5, 2.5)]
    assert list(lasso_nodes(coords, square)) == [0, 1, 2, 3]
    triangle = [(-1, -1), (3, -1), (3, 3)]  # below the diagonal x = y: (0.5, 1.5) is outside
    assert 3 not in lasso_nodes(coords, triangle) and 4 not in lasso_nodes(coords, triangle)
    assert list(lasso_nodes(coords, square, filler=[False, True, False, False, False])) == [0, 2, 3]
    assert lasso_nodes(coords, square[:2]).size == 0


def test_bad_input_is_a_sentence():
    g = path_graph(4)
    with pytest.raises(ValueError, match="no nodes are brushed"):
        NodeSetSpec(())
    with pytest.raises(ValueError, match="not in this graph"):
        select_node_units(np.zeros((4, 2)), g, NodeSetSpec((9,)))
    with pytest.raises(ValueError, match=r"\[nodes, units\]"):
        select_node_units(np.zeros((5, 2)), g, NodeSetSpec((1,)))
    with pytest.raises(ValueError, match="ring"):
        NodeSetSpec((1,), ring=-1)


def test_isolated_node_and_self_loop():
    g = GraphGeometry.from_edges(3, [(0, 0), (0, 1)])  # node 2 isolated, a self-loop on 0
    v = np.array([[1.0], [0.0], [1.0]], np.float32)
    assert select_node_units(v, g, NodeSetSpec((2,), threshold=0.5)).pairs() == [(0, 1)]
    assert select_node_units(v, g, NodeSetSpec((0,), threshold=0.5)).pairs() == [(0, 1)]
    assert list(k_hop_ball(g, 2, 3)) == [2]
