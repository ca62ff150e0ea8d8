"""spectral-gcn's locally connected variant: neighbourhood-local outputs, parameter count, cluster pooling;
the engine's levels, taps and settings."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch

from lstmviz.datasets.graph_base import GraphItem
from lstmviz.engines.graph.locally_connected import (LocallyConnected, cluster_hierarchy,
                                                     locally_connected_parameters, neighbour_slots, pool_clusters)
from lstmviz.engines.graph.spectral_gcn import SPEC, SpectralGCN
from lstmviz.geometry import GraphGeometry
from lstmviz.hooks import HookScope, find_taps


def _grid_item(side=8, features=1, seed=0, target=0):
    g = nx.grid_2d_graph(side, side)
    nodes = sorted(g.nodes())
    index = {v: i for i, v in enumerate(nodes)}
    edges = np.array([(index[a], index[b]) for a, b in g.edges()])
    geo = GraphGeometry.from_edges(len(nodes), edges, coordinates=np.array(nodes, dtype=float))
    x = np.random.default_rng(seed).normal(size=(len(nodes), features)).astype(np.float32)
    return GraphItem(geo, x, np.zeros(len(nodes), dtype=np.int64), graph_target=target)


def _karate_item():
    g = nx.karate_club_graph()
    geo = GraphGeometry.from_edges(34, np.array(g.edges()))
    target = np.array([0 if g.nodes[v]["club"] == "Mr. Hi" else 1 for v in g.nodes()])
    return GraphItem(geo, np.eye(34, dtype=np.float32), np.zeros(34, dtype=np.int64), node_target=target)


def test_output_at_a_node_depends_only_on_its_neighbourhood():
    w = nx.to_numpy_array(nx.karate_club_graph(), weight=None)
    slots = neighbour_slots(w, 5)
    torch.manual_seed(0)
    layer = LocallyConnected(34, 5, 3, 2).double()
    x = torch.randn(34, 3, dtype=torch.float64)
    with torch.no_grad():
        y = layer(x, torch.as_tensor(slots))
        for j in (0, 11, 33):
            inside = set(slots[j][slots[j] >= 0].tolist())
            assert inside <= {j, *np.flatnonzero(w[:, j]).tolist()} and j in inside
            outside = [i for i in range(34) if i not in inside]
            noisy = x.clone()
            noisy[outside] += 100 * torch.randn(len(outside), 3, dtype=torch.float64)
            assert torch.equal(layer(noisy, torch.as_tensor(slots))[j], y[j])
            for i in inside:
                bumped = x.clone()
                bumped[i] += 1.0
                assert not torch.allclose(layer(bumped, torch.as_tensor(slots))[j], y[j])


def test_neighbour_slots_keep_the_node_then_the_strongest_neighbours_above_the_threshold():
    w = np.array([[0, 0.5, 2.0, 0.1], [0.5, 0, 0, 0], [2.0, 0, 0, 3.0], [0.1, 0, 3.0, 0]])
    assert neighbour_slots(w, 3).tolist() == [[0, 2, 1], [1, 0, -1], [2, 3, 0], [3, 2, 0]]
    assert neighbour_slots(w, 4, threshold=0.2).tolist()[0] == [0, 2, 1, -1]


def test_parameter_count_is_positions_times_slots_times_channels():
    model = SpectralGCN(3, 5, "graph", variant="local", hidden_size=4, num_layers=2, levels=2, num_nodes=64,
                        pool_ratio=4, max_neighbours=9, readout="flatten")
    assert model.level_sizes == [64, 16, 4]
    counts = [sum(p.numel() for p in layer.parameters()) for layer in model.layers]
    assert counts == [locally_connected_parameters(64, 9, 3, 4), locally_connected_parameters(16, 9, 4, 4)]
    assert counts[0] == 64 * 9 * 3 * 4 + 4
    assert sum(p.numel() for p in model.head.parameters()) == 4 * 4 * 5 + 5  # 4 clusters x 4 channels


def test_cluster_hierarchy_nests_and_orders_every_cluster_contiguously():
    item = _grid_item(8)
    w = item.geometry.adjacency().toarray()
    h = cluster_hierarchy(w, item.geometry.coordinates, [16, 4])
    assert h.sizes == (64, 16, 4)
    assert sorted(h.order.tolist()) == list(range(64))
    assert np.array_equal(h.weights[0], w[np.ix_(h.order, h.order)])
    for parents in h.parents:
        assert (np.diff(parents) >= 0).all()  # contiguous: parents non-decreasing along positions
        assert sorted(set(parents.tolist())) == list(range(parents.max() + 1))
    # coarse weights are the cluster sums: W_1 = P^T W_0 P off the diagonal
    member = np.eye(16)[h.parents[0]]
    coarse = member.T @ h.weights[0] @ member
    np.fill_diagonal(coarse, 0)
    assert np.allclose(h.weights[1], coarse)
    # on a grid, Ward clusters are compact: every level-1 cluster is 4 pixels within one 2x2 block's reach
    coords = item.geometry.coordinates[h.order]
    for c in range(16):
        members = coords[h.parents[0] == c]
        assert len(members) == 4 and np.ptp(members, axis=0).max() <= 1


def test_pooling_takes_the_max_or_mean_of_each_cluster():
    x = torch.tensor([[1.0, -1], [3, 0], [2, 5], [-4, 2], [0, 0]])
    parents = torch.tensor([0, 0, 1, 1, 2])
    assert pool_clusters(x, parents, 3, "max").tolist() == [[3, 0], [2, 5], [0, 0]]
    assert pool_clusters(x, parents, 3, "mean").tolist() == [[2, -0.5], [-1, 3.5], [0, 0]]


@pytest.mark.parametrize("variant", ["spectral-full", "spectral-spline", "local"])
def test_levels_and_taps_describe_where_each_state_lives(variant):
    torch.manual_seed(0)
    model = SpectralGCN(1, 3, "graph", variant=variant, hidden_size=4, num_layers=3, levels=2, num_nodes=64,
                        readout="flatten", tap_spectrum=True)
    item = _grid_item(8)
    prepared = model.prepare(item)
    assert [level.axis for level in prepared.levels] == ["positions", "level1", "level2"]
    sizes = [level.geometry.num_nodes for level in prepared.levels]
    assert sizes == [64, 16, 4]
    assert np.array_equal(np.sort(prepared.levels[0].source_node), np.arange(64))
    for k in (1, 2):
        pmap = prepared.levels[k].geometry.pooling_map
        assert len(pmap) == sizes[k - 1] and (np.diff(pmap) >= 0).all()
        assert prepared.levels[k].geometry.coordinates is not None
    # level 0's graph is the input graph renumbered by source_node
    src = prepared.levels[0].source_node
    relabelled = {tuple(sorted((int(src[a]), int(src[b])))) for a, b in prepared.levels[0].geometry.edges}
    assert relabelled == {tuple(sorted(map(int, e))) for e in item.geometry.edges}
    taps = find_taps(model)
    rows = {level.axis: level.geometry.num_nodes for level in prepared.levels}
    rows.update({"spectrum": 64, "spectrum1": 16, "spectrum2": 4})
    seen = {}
    with torch.no_grad(), HookScope() as hooks:
        for tap in taps.values():
            hooks.read(tap, lambda module, args, kwargs, out: seen.__setitem__(module.name, out))
        logits = model(prepared)
    assert logits.shape == (1, 3)
    assert set(seen) == {"layer0/h", "layer0/spectrum", "layer0/pool", "layer1/h", "layer1/spectrum",
                         "layer1/pool", "layer2/h", "layer2/spectrum"}
    for name, value in seen.items():
        assert value.shape == (1, rows[taps[name].axis], 4), name
    assert taps["layer1/h"].axis == "level1" and taps["layer2/spectrum"].axis == "spectrum2"
    assert taps["layer0/pool"].axis == "level1"
    # the pooled state is the cluster max of the layer's output (flowed through U U^T: rounding only)
    parents = torch.as_tensor(prepared.levels[1].geometry.pooling_map)
    assert torch.allclose(seen["layer0/pool"][0], pool_clusters(seen["layer0/h"][0], parents, 16), atol=1e-5)


def test_graph_logits_do_not_depend_on_the_input_node_numbering():
    torch.manual_seed(0)
    model = SpectralGCN(1, 3, "graph", variant="local", hidden_size=4, num_layers=2, levels=2, readout="flatten")
    item = _grid_item(8)
    perm = np.random.default_rng(0).permutation(64)
    inverse = np.argsort(perm)
    geo = item.geometry
    shuffled = GraphItem(GraphGeometry.from_edges(64, inverse[geo.edges], coordinates=geo.coordinates[perm]),
                         item.features[perm], item.tokens, graph_target=0)
    with torch.no_grad():
        assert torch.allclose(model(model.prepare(item)), model(model.prepare(shuffled)), atol=1e-5)


@pytest.mark.parametrize("variant", ["spectral-full", "spectral-spline", "local"])
def test_a_few_steps_fit_karate_factions(variant):
    torch.manual_seed(0)
    model = SpectralGCN(34, 2, "node", variant=variant, hidden_size=8, num_layers=2, num_nodes=34)
    item = _karate_item()
    prepared = model.prepare(item)
    target = torch.as_tensor(item.node_target)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
    losses = []
    for _ in range(30):
        loss = torch.nn.functional.cross_entropy(model(prepared), target)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
    assert model(prepared).shape == (34, 2)
    assert losses[-1] < 0.5 * losses[0]


def test_spec_names_the_paper_and_its_taps_cover_every_configuration():
    assert SPEC.name == "spectral-gcn" and SPEC.family == "graph" and SPEC.paper.arxiv == "1312.6203"
    declared = {p.format(layer=layer) for p in SPEC.taps for layer in range(3)}
    default = SPEC.build(num_features=2, num_classes=3, task="node", **SPEC.default_config)
    assert set(find_taps(default)) == {"layer0/h", "layer1/h"}
    full = SPEC.build(num_features=2, num_classes=3, task="graph", **{**SPEC.default_config, "num_layers": 3,
                                                                      "levels": 2, "tap_spectrum": True})
    assert set(find_taps(full)) == declared - {"layer2/pool"}


@pytest.mark.parametrize("config, words", [
    ({"variant": "chebyshev"}, "variant"),
    ({"levels": 3}, "levels"),
    ({"spline_knots": 3}, "spline_knots"),
    ({"hidden_size": 0}, "hidden_size"),
    ({"pooling": "sum"}, "pooling"),
    ({"readout": "attention"}, "readout"),
    ({"eigenvectors": 0}, "eigenvectors"),
    ({"neighbour_threshold": float("nan")}, "neighbour_threshold"),
    ({"tap_spectrum": 1}, "tap_spectrum"),
])
def test_bad_settings_are_one_sentence(config, words):
    with pytest.raises(ValueError, match=words) as info:
        SpectralGCN(2, 3, "graph", **config)
    assert "\n" not in str(info.value)


def test_bad_graphs_are_one_sentence():
    with pytest.raises(ValueError, match="levels=0"):
        SpectralGCN(2, 3, "node", levels=1)
    with pytest.raises(ValueError, match="num_nodes"):
        SpectralGCN(1, 3, "graph", variant="local", num_nodes=16).prepare(_grid_item(8))
    with pytest.raises(ValueError, match="features"):
        SpectralGCN(2, 3, "graph").prepare(_grid_item(8, features=1))
    geo = GraphGeometry.from_edges(3, [[0, 1], [1, 2]], weights=[1.0, -2.0])
    item = GraphItem(geo, np.zeros((3, 1), dtype=np.float32), np.zeros(3, dtype=np.int64))
    with pytest.raises(ValueError, match="non-negative"):
        SpectralGCN(1, 3, "node").prepare(item)


def test_isolated_nodes_self_loops_and_a_single_node_graph_run():
    geo = GraphGeometry.from_edges(5, [[0, 1], [1, 2], [2, 2]])  # a self-loop; 3 and 4 isolated
    item = GraphItem(geo, np.ones((5, 1), dtype=np.float32), np.zeros(5, dtype=np.int64))
    for variant in ("spectral-full", "spectral-spline", "local"):
        model = SpectralGCN(1, 2, "graph", variant=variant, num_layers=2, levels=1, num_nodes=8)
        assert torch.isfinite(model(model.prepare(item))).all()
        single = GraphItem(GraphGeometry.from_edges(1, []), np.ones((1, 1), dtype=np.float32), np.zeros(1, np.int64))
        assert torch.isfinite(model(model.prepare(single))).all()
