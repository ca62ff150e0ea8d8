"""Weisfeiler-Lehman relabelling (engines/graph/wl.py): agreement with networkx, locality, invariance, contexts."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest

from lstmviz.engines.graph.wl import (
    UNSEEN,
    WLVocabulary,
    initial_labels,
    radial_context,
    subgraph_counts,
    wl_kernel,
)
from lstmviz.geometry import GraphGeometry


def geometry_of(graph: nx.Graph, *, directed: bool = False) -> GraphGeometry:
    nodes = list(graph.nodes)
    index = {v: i for i, v in enumerate(nodes)}
    edges = np.array([(index[a], index[b]) for a, b in graph.edges], dtype=np.int64).reshape(-1, 2)
    return GraphGeometry.from_edges(len(nodes), edges, directed=directed)


def partition(labels) -> set[frozenset[int]]:
    groups: dict = {}
    for node, label in enumerate(labels):
        groups.setdefault(label, set()).add(node)
    return {frozenset(g) for g in groups.values()}


GRAPHS = {
    "karate": nx.karate_club_graph(),
    "lesmis": nx.convert_node_labels_to_integers(nx.les_miserables_graph()),
    "florentine": nx.convert_node_labels_to_integers(nx.florentine_families_graph()),
    "ws": nx.watts_strogatz_graph(30, 4, 0.3, seed=1),
    "er_disconnected": nx.gnp_random_graph(25, 0.08, seed=3),
    "self_loops": nx.Graph([(0, 0), (0, 1), (1, 2), (2, 2), (2, 3), (3, 0), (4, 4)]),
}


@pytest.mark.parametrize("name", sorted(GRAPHS))
@pytest.mark.parametrize("scheme", ["degree", "random"])
def test_partition_by_our_labels_equals_networkx_hashes_at_every_iteration(name, scheme):
    graph = nx.convert_node_labels_to_integers(GRAPHS[name])
    geometry = geometry_of(graph)
    if scheme == "degree":
        labels0 = initial_labels(geometry, "degree", degree_cap=4)
    else:
        labels0 = np.random.default_rng(0).integers(0, 3, size=geometry.num_nodes)
    # node_attr set explicitly: networkx 3.5+ changed the hashing of attribute-less graphs
    nx.set_node_attributes(graph, {v: str(int(labels0[v])) for v in graph.nodes}, "label")
    hashes = nx.weisfeiler_lehman_subgraph_hashes(graph, node_attr="label", iterations=3, digest_size=16)
    ids = WLVocabulary().relabel(geometry, labels0, 3, grow=True)
    assert partition(ids[0]) == partition(labels0.tolist())
    for d in range(1, 4):
        theirs = [hashes[v][d - 1] for v in range(geometry.num_nodes)]
        assert partition(ids[d]) == partition(theirs), f"iteration {d}"
    if name == "karate":  # the test has teeth: the partitions refine and are not trivial
        assert len(partition(ids[1])) > len(partition(ids[0])) > 1


def test_locality_on_karate_an_edge_three_hops_away_leaves_node_0_unchanged():
    graph = nx.karate_club_graph()
    hops = nx.single_source_shortest_path_length(graph, 0)
    far = sorted(v for v, h in hops.items() if h >= 3)
    pair = next((a, b) for a in far for b in far if a < b and not graph.has_edge(a, b))
    toggled = graph.copy()
    toggled.add_edge(*pair)
    labels0 = initial_labels(geometry_of(graph), "degree", degree_cap=20)  # labels kept as before the toggle
    vocabulary = WLVocabulary()
    before = vocabulary.relabel(geometry_of(graph), labels0, 3, grow=True)
    after = vocabulary.relabel(geometry_of(toggled), labels0, 3, grow=True)
    assert np.array_equal(before[:, 0], after[:, 0])
    # the endpoints themselves did change at depth 1, so a difference would have been seen
    assert before[1, pair[0]] != after[1, pair[0]]
    # and an edge within reach (2 hops) does change node 0's depth-3 label
    near = sorted(v for v, h in hops.items() if h == 2)
    close = next((a, b) for a in near for b in far if not graph.has_edge(a, b))
    moved = graph.copy()
    moved.add_edge(*close)
    assert vocabulary.relabel(geometry_of(moved), labels0, 3, grow=True)[3, 0] != before[3, 0]


def test_isomorphic_graphs_have_the_same_multiset_of_ids():
    graph = nx.convert_node_labels_to_integers(GRAPHS["lesmis"])
    geometry = geometry_of(graph)
    vocabulary = WLVocabulary()
    ids = vocabulary.relabel(geometry, initial_labels(geometry), 3, grow=True)
    perm = np.random.default_rng(4).permutation(geometry.num_nodes)
    shuffled = nx.relabel_nodes(graph, {v: int(perm[v]) for v in graph.nodes})
    shuffled_geometry = GraphGeometry.from_edges(
        geometry.num_nodes, np.array(list(shuffled.edges), dtype=np.int64))
    frozen = vocabulary.relabel(shuffled_geometry, initial_labels(shuffled_geometry), 3, grow=False)
    assert (frozen != UNSEEN).all()
    for d in range(4):
        assert sorted(frozen[d].tolist()) == sorted(ids[d].tolist())
        assert np.array_equal(frozen[d][perm], ids[d])  # node v became perm[v]
    # a non-isomorphic graph of the same size and degree sequence differs somewhere
    other = nx.double_edge_swap(graph.copy(), nswap=20, max_tries=1000, seed=5)
    other_ids = vocabulary.relabel(geometry_of(other), initial_labels(geometry_of(other)), 3, grow=True)
    assert sorted(other_ids[3].tolist()) != sorted(ids[3].tolist())


def test_radial_context_on_p5_is_the_neighbours_ids_one_depth_below_at_and_above():
    geometry = geometry_of(nx.path_graph(5))
    ids = WLVocabulary().relabel(geometry, initial_labels(geometry), 2, grow=True)
    targets, contexts = radial_context(geometry, ids)
    middle = 2
    for d in range(3):
        mine = sorted(contexts[targets == ids[d, middle]].tolist())
        # node 2's label at depth d is shared by no other node of P5 at depth >= 1; at depth 0 nodes 1..3 share it
        owners = [n for n in range(5) if ids[d, n] == ids[d, middle]]
        expected = sorted(int(ids[d2, m]) for n in owners for m in (n - 1, n + 1) if 0 <= m < 5
                          for d2 in (d - 1, d, d + 1) if 0 <= d2 <= 2)
        assert mine == expected
    # the middle node at depth 1: exactly its two neighbours (1 and 3) at depths 0, 1 and 2, nothing else
    mask = targets == ids[1, middle]
    assert sorted(contexts[mask].tolist()) == sorted(int(ids[d2, m]) for m in (1, 3) for d2 in (0, 1, 2))
    assert ids[1, middle] not in contexts[mask].tolist()  # no self-context
    assert len(targets) == 4 * 2 * (2 + 3 + 2)  # 8 directed edges x (2 + 3 + 2) depth pairs, no window


def test_a_self_loop_is_no_self_context():
    geometry = GraphGeometry.from_edges(2, [(0, 0), (0, 1)])
    ids = WLVocabulary().relabel(geometry, [5, 6], 1, grow=True)
    targets, contexts = radial_context(geometry, ids)
    assert sorted(zip(targets.tolist(), contexts.tolist())) == sorted(
        [(ids[0, 0], ids[0, 1]), (ids[0, 0], ids[1, 1]), (ids[1, 0], ids[0, 1]), (ids[1, 0], ids[1, 1]),
         (ids[0, 1], ids[0, 0]), (ids[0, 1], ids[1, 0]), (ids[1, 1], ids[0, 0]), (ids[1, 1], ids[1, 0])])


def test_a_frozen_vocabulary_maps_new_subgraphs_to_unseen_and_their_descendants_too():
    vocabulary = WLVocabulary()
    star = geometry_of(nx.star_graph(3))
    vocabulary.relabel(star, initial_labels(star), 2, grow=True)
    size = len(vocabulary)
    path = geometry_of(nx.path_graph(4))  # degrees 1, 2, 2, 1: label 2 never met in the star
    ids = vocabulary.relabel(path, initial_labels(path), 2, grow=False)
    assert len(vocabulary) == size
    assert ids[0].tolist() == [ids[0, 0], UNSEEN, UNSEEN, ids[0, 0]] and ids[0, 0] != UNSEEN
    assert (ids[1:] == UNSEEN).all()  # every rooted subgraph of depth >= 1 contains a degree-2 node


def test_capacity_overflow_is_unseen_and_counted():
    vocabulary = WLVocabulary(capacity=3)
    geometry = geometry_of(nx.path_graph(4))
    ids = vocabulary.relabel(geometry, initial_labels(geometry), 1, grow=True)
    assert len(vocabulary) == 3 and vocabulary.overflow > 0
    assert set(ids[0].tolist()) == {1, 2} and (ids[1] == UNSEEN).all()


def test_vocabulary_round_trips_through_arrays():
    geometry = geometry_of(GRAPHS["ws"])
    vocabulary = WLVocabulary()
    ids = vocabulary.relabel(geometry, initial_labels(geometry), 3, grow=True)
    again = WLVocabulary.from_arrays(**vocabulary.to_arrays())
    assert np.array_equal(again.relabel(geometry, initial_labels(geometry), 3, grow=False), ids)
    assert np.array_equal(again.count, vocabulary.count) and vocabulary.count[1:].sum() == ids.size


def test_a_directed_graph_is_collapsed_to_undirected():
    edges = np.array([(0, 1), (2, 1), (3, 2), (3, 0), (4, 3)])
    directed = GraphGeometry.from_edges(5, edges, directed=True)
    undirected = GraphGeometry.from_edges(5, edges[:, ::-1])
    vocabulary = WLVocabulary()
    a = vocabulary.relabel(directed, initial_labels(directed), 2, grow=True)
    b = vocabulary.relabel(undirected, initial_labels(undirected), 2, grow=False)
    assert np.array_equal(a, b)


def test_wl_kernel_counts_pairs_of_equal_rooted_subgraphs():
    vocabulary = WLVocabulary()
    graphs = [geometry_of(GRAPHS[k]) for k in ("karate", "ws", "florentine")]
    ids = [vocabulary.relabel(g, initial_labels(g), 2, grow=True) for g in graphs]
    kernel = wl_kernel(subgraph_counts(ids, len(vocabulary)))
    for i in range(3):
        for j in range(3):
            brute = sum(int(a == b) for a in ids[i].ravel() for b in ids[j].ravel())
            assert kernel[i, j] == brute


@pytest.mark.parametrize("bad", [-1, 4, 1.5, True])
def test_depth_outside_0_to_3_is_refused_in_words(bad):
    with pytest.raises(ValueError, match="WL depth"):
        WLVocabulary().relabel(geometry_of(nx.path_graph(3)), [0, 0, 0], bad)


def test_token_labels_must_fit_the_graph():
    geometry = geometry_of(nx.path_graph(3))
    assert initial_labels(geometry, "tokens", tokens=np.array([7, 8, 7])).tolist() == [7, 8, 7]
    with pytest.raises(ValueError, match="one integer label per node"):
        initial_labels(geometry, "tokens", tokens=np.array([1, 2]))
    with pytest.raises(ValueError, match="unknown initial label scheme"):
        initial_labels(geometry, "colour")
