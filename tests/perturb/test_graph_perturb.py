"""Graph perturbation (lstmviz.perturb.graph): Δ per tap, hop distances, reach within a polynomial filter's bound.

The model here is a small polynomial graph filter written in the test (two layers of Σ_k θ_k L^k x, a
max-pool into a coarser level), so these tests do not depend on any engine; ChebNet's own bound is
tested with the engine.
"""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch
from torch import nn

from lstmviz.engines.families.graph.api import GraphLevel, PreparedGraph
from lstmviz.geometry import GraphGeometry
from lstmviz.hooks import GRAPH, Edit, Tap
from lstmviz.perturb import PerturbError
from lstmviz.perturb.graph import perturb_graph


class PolyFilter(nn.Module):
    """Two layers h_{l+1} = relu(Σ_{k<K} L^k h_l W_k); then pairs of positions max-pooled into level1."""

    def __init__(self, features: int, hidden: int, K: int):
        super().__init__()
        torch.manual_seed(0)
        self.K = K
        self.w = nn.ParameterList([nn.Parameter(torch.randn(K, features if l == 0 else hidden, hidden,
                                                            dtype=torch.float64)) for l in range(2)])
        self.taps = nn.ModuleList([Tap(f"layer{l}/h", layout=GRAPH) for l in range(2)])
        self.pooled = Tap("layer1/pooled", layout=GRAPH, axis="level1")

    def forward(self, prepared):
        L = prepared.tensors["L"]
        h = prepared.features
        for l in range(2):
            terms, t = [], h
            for k in range(self.K):
                terms.append(t @ self.w[l][k])
                t = L @ t
            h = self.taps[l](torch.relu(sum(terms)).unsqueeze(0))[0]
        pairs = h.reshape(-1, 2, h.shape[1]).amax(dim=1)
        return self.pooled(pairs.unsqueeze(0))[0].sum(dim=0, keepdim=True)

    def hop_bound(self, edited_tap, tap):
        if tap.startswith("layer") and tap.endswith("/h"):
            return (int(tap[5]) - int(edited_tap[5])) * (self.K - 1)
        return None


def _prepared(graph: nx.Graph) -> PreparedGraph:
    n = graph.number_of_nodes()
    n += n % 2
    geometry = GraphGeometry.from_edges(n, list(graph.edges()))
    adjacency = geometry.adjacency().toarray()
    degree = adjacency.sum(axis=1)
    inv = np.where(degree > 0, 1 / np.sqrt(np.maximum(degree, 1e-300)), 0.0)
    laplacian = np.eye(n) - inv[:, None] * adjacency * inv[None, :]
    coarse = GraphGeometry.from_edges(n // 2, [], pooling_map=np.arange(n) // 2, finer_nodes=n)
    levels = (GraphLevel("positions", geometry), GraphLevel("level1", coarse))
    features = torch.from_numpy(np.random.default_rng(1).normal(size=(n, 3)))
    return PreparedGraph(levels, features, n, {"L": torch.from_numpy(laplacian)})


@pytest.fixture
def karate():
    return _prepared(nx.karate_club_graph())


def test_changes_stay_within_the_filters_hop_bound_and_reach_it(karate):
    model = PolyFilter(3, 8, K=3)
    effect = perturb_graph(model, karate, [Edit("layer0/h", "add", 5.0, positions=[0])])
    assert effect.edited_axis == "positions"
    assert effect.reach("layer0/h") == 0  # the edit itself, nothing else
    assert effect.bounds["layer1/h"] == 2
    reach = effect.reach("layer1/h")
    assert 0 < reach <= 2
    # every position more than 2 hops away is bit-identical
    far = effect.hops["layer1/h"] > 2
    assert far.any() and np.array_equal(effect.edited["layer1/h"][far], effect.clean["layer1/h"][far])


def test_hop_profile_counts_positions_per_distance(karate):
    model = PolyFilter(3, 8, K=3)
    effect = perturb_graph(model, karate, [Edit("layer0/h", "replace", 0.0, positions=[0, 33])])
    profile = effect.hop_profile("layer1/h")
    graph = nx.karate_club_graph()
    from_0, from_33 = (nx.single_source_shortest_path_length(graph, s) for s in (0, 33))
    expected = np.bincount([min(from_0[v], from_33[v]) for v in graph])
    assert np.array_equal(profile["positions"], expected)
    assert (profile["changed"] <= profile["positions"]).all()
    assert profile["max_norm"][3:].max(initial=0.0) == 0.0


def test_coarser_levels_get_hops_through_the_pooling_map(karate):
    model = PolyFilter(3, 8, K=2)
    effect = perturb_graph(model, karate, [Edit("layer1/h", "add", 1.0, positions=[4])])
    hops = effect.hops["layer1/pooled"]
    assert hops[2] == 0  # position 4 pools into coarse node 2
    assert (hops[np.arange(len(hops)) != 2] == -1).all()  # the coarse level has no edges
    assert effect.changed("layer1/pooled")[2]
    assert effect.hops["layer0/h"] is not None  # layer0 is on the edited level, so it has hops (and no change)
    assert effect.reach("layer0/h") == -1


def test_bad_edits_are_refused_in_one_sentence(karate):
    model = PolyFilter(3, 8, K=2)
    with pytest.raises(PerturbError, match="no tap"):
        perturb_graph(model, karate, [Edit("layer9/h", "add", 1.0, positions=[0])])
    with pytest.raises(PerturbError, match="names no nodes"):
        perturb_graph(model, karate, [Edit("layer0/h", "add", 1.0)])
    with pytest.raises(PerturbError, match="does not exist"):
        perturb_graph(model, karate, [Edit("layer0/h", "add", 1.0, positions=[99])])
    with pytest.raises(PerturbError, match="different levels"):
        perturb_graph(model, karate, [Edit("layer0/h", "add", 1.0, positions=[0]),
                                      Edit("layer1/pooled", "add", 1.0, positions=[0])])
    with pytest.raises(PerturbError, match="no edit"):
        perturb_graph(model, karate, [])
