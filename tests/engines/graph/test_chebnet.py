"""ChebNet's defining properties: exact (K-1)-hop locality, the recursion equals the spectral filter, PyG's math."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
import torch

from lstmviz.datasets.graph_base import GraphItem
from lstmviz.engines import build_engine
from lstmviz.engines.families.graph import GraphData
from lstmviz.engines.graph.chebnet import ChebNet
from lstmviz.engines.graph.ops import laplacian_of, to_torch_sparse
from lstmviz.geometry import GraphGeometry
from lstmviz.hooks import HookScope, find_taps


def item_of(graph: nx.Graph, features: np.ndarray) -> GraphItem:
    n = graph.number_of_nodes()
    geometry = GraphGeometry.from_edges(n, np.array(graph.edges(), dtype=np.int64).reshape(-1, 2))
    return GraphItem(geometry=geometry, features=features, tokens=np.zeros(n, np.int64))


def model64(features=4, classes=3, task="node", seed=0, **config) -> ChebNet:
    torch.manual_seed(seed)
    return build_engine("chebnet", GraphData(features, classes, task), **config).double().eval()


def run(model, graph, features):
    prepared = model.prepare(item_of(graph, features.astype(np.float32)))
    prepared.features = torch.from_numpy(features)  # float64 features (prepare keeps the dataset's float32)
    with torch.no_grad():
        return model(prepared)


def test_one_layer_with_K3_sees_exactly_two_hops_on_karate():
    g = nx.karate_club_graph()
    hops = nx.single_source_shortest_path_length(g, 0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(34, 4))
    model = model64(num_layers=1, K=3)
    base = run(model, g, x)
    far = [v for v in g if hops[v] > 2]
    assert far  # karate has nodes 3 hops from node 0
    noisy = x.copy()
    noisy[far] += 100 * rng.normal(size=(len(far), 4))
    out = run(model, g, noisy)
    assert torch.equal(out[0], base[0])  # bit-identical, not merely close
    two_hop = next(v for v in g if hops[v] == 2)
    nudged = x.copy()
    nudged[two_hop] += 1.0
    assert not torch.allclose(run(model, g, nudged)[0], base[0])


def test_layers_compound_the_receptive_field_l_times_k_minus_one():
    g = nx.path_graph(14)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(14, 4))
    model = model64(num_layers=2, K=3)  # 2 layers x 2 hops = 4 hops
    base = run(model, g, x)
    far = x.copy()
    far[5:] += 50.0
    assert torch.equal(run(model, g, far)[0], base[0])
    near = x.copy()
    near[4] += 1.0
    assert not torch.allclose(run(model, g, near)[0], base[0])


def test_the_recursion_equals_the_spectral_filter_from_eigh():
    g = nx.gnm_random_graph(12, 22, seed=3)
    Lt, lmax = laplacian_of(12, np.array(g.edges()))
    values, U = np.linalg.eigh(Lt.toarray())
    model = model64(features=3, num_layers=1, K=4)
    conv = model.convs[0]
    x = np.random.default_rng(2).normal(size=(12, 3))
    with torch.no_grad():
        y, _ = conv(to_torch_sparse(Lt), torch.from_numpy(x))
    theta = conv.theta.detach().numpy()  # [K, in, out]
    Tk = np.stack([np.cos(k * np.arccos(np.clip(values, -1, 1))) for k in range(4)])  # T_k(lambda~)
    expected = np.zeros((12, theta.shape[2]))
    for j in range(theta.shape[2]):
        for i in range(3):
            response = (theta[:, i, j, None] * Tk).sum(axis=0)
            expected[:, j] += U @ (response * (U.T @ x[:, i]))
    expected += conv.bias.detach().numpy()
    np.testing.assert_allclose(y.numpy(), expected, atol=1e-10)


def test_lambda_max_two_reproduces_pyg_chebconv_math():
    """PyG ChebConv (normalization='sym', lambda_max=2, self-loops removed) re-derived with dense numpy:
    L~ = 2L/2 - I = -D^-1/2 A D^-1/2; Tx_0 = x, Tx_1 = L~ x, Tx_k = 2 L~ Tx_{k-1} - Tx_{k-2}; out = sum_k Tx_k W_k + b."""
    g = nx.gnm_random_graph(10, 14, seed=4)
    g.add_edge(2, 2)  # a self-loop (dropped) and an isolated node (no edges)
    g.add_node(10)
    n = 11
    edges = np.array(g.edges())
    A = np.zeros((n, n))
    for a, b in edges:
        if a != b:
            A[a, b] = A[b, a] = 1
    d = A.sum(axis=1)
    s = np.where(d > 0, 1 / np.sqrt(np.where(d > 0, d, 1)), 0.0)
    Lt = -(s[:, None] * A * s[None, :])
    x = np.random.default_rng(5).normal(size=(n, 4))
    model = model64(features=4, num_layers=1, K=3, lambda_max=2.0)
    conv = model.convs[0]
    W, b = conv.theta.detach().numpy(), conv.bias.detach().numpy()
    Tx = [x, Lt @ x]
    Tx.append(2 * Lt @ Tx[1] - Tx[0])
    expected = sum(Tx[k] @ W[k] for k in range(3)) + b
    geometry = GraphGeometry.from_edges(n, edges)
    item = GraphItem(geometry=geometry, features=x.astype(np.float32), tokens=np.zeros(n, np.int64))
    prepared = model.prepare(item)
    assert prepared.tensors["lambda_max"] == [2.0]
    with torch.no_grad():
        y, _ = conv(prepared.tensors["laplacians"][0], torch.from_numpy(x))
    np.testing.assert_allclose(y.numpy(), expected, atol=1e-12)


def test_graph_task_pools_pairs_in_tree_order_and_fillers_stay_zero():
    g = nx.karate_club_graph()
    x = np.random.default_rng(6).normal(size=(34, 4)).astype(np.float32)
    model = model64(task="graph", num_layers=2, K=3, pool_levels=2, hidden_size=5)
    prepared = model.prepare(item_of(g, x))
    assert [lv.axis for lv in prepared.levels] == ["positions", "level1", "level2"]
    seen = {}
    taps = find_taps(model)
    assert sorted(taps) == ["layer0/h", "layer0/pool", "layer1/h", "layer1/pool"]
    with torch.no_grad(), HookScope() as hooks:
        for name, tap in taps.items():
            hooks.read(tap, lambda m, a, k, out: seen.__setitem__(m.name, out[0].clone()))
        logits = model(prepared)
    for l in range(2):
        h, pooled = seen[f"layer{l}/h"], seen[f"layer{l}/pool"]
        filler = prepared.levels[l].geometry.filler
        assert filler.any() and not h[torch.from_numpy(filler)].any()  # fillers are 0 after ReLU and mask
        assert torch.equal(pooled, h.reshape(-1, 2, h.shape[1]).amax(dim=1))
        # neutral: each pooled value is the max over the real nodes of its pair only
        pmap = prepared.levels[l + 1].geometry.pooling_map
        for p in range(len(pooled)):
            real = [q for q in np.flatnonzero(pmap == p) if not filler[q]]
            if real:
                assert torch.equal(pooled[p], h[real].amax(dim=0))
    last = seen["layer1/pool"]
    mask = torch.from_numpy(~prepared.levels[2].geometry.filler)
    expected = model.head(last[mask].mean(dim=0, keepdim=True))
    assert torch.equal(logits, expected)


def test_node_outputs_follow_a_relabelling_of_the_input_nodes():
    g = nx.karate_club_graph()
    rng = np.random.default_rng(7)
    x = rng.normal(size=(34, 4))
    perm = rng.permutation(34)  # new label of old node v is perm[v]
    h = nx.relabel_nodes(g, {v: int(perm[v]) for v in g})
    px = np.empty_like(x)
    px[perm] = x
    model = model64(num_layers=2, K=3)
    torch.testing.assert_close(run(model, h, px)[perm], run(model, g, x), rtol=0, atol=1e-12)


def test_settings_are_checked_in_words():
    with pytest.raises(ValueError, match="node task needs an output per node"):
        model64(pool_levels=1)
    with pytest.raises(ValueError, match="lambda_max to be 'exact' or a positive number"):
        model64(lambda_max="max")
    with pytest.raises(ValueError, match="pool_levels to be an int in 0 .. num_layers=2"):
        model64(task="graph", pool_levels=3)
    with pytest.raises(ValueError, match="K \\(the number of Chebyshev terms\\) to be a positive int"):
        model64(K=0)


def test_chebyshev_term_taps_carry_each_hop_order():
    g = nx.karate_club_graph()
    x = np.random.default_rng(8).normal(size=(34, 4)).astype(np.float32)
    model = model64(num_layers=1, K=3, tap_terms=True)
    prepared = model.prepare(item_of(g, x))
    seen = {}
    with torch.no_grad(), HookScope() as hooks:
        for name, tap in find_taps(model).items():
            hooks.read(tap, lambda m, a, k, out: seen.__setitem__(m.name, out[0].clone()))
        model(prepared)
    Lt = prepared.tensors["laplacians"][0].to_dense()
    x64 = torch.from_numpy(x).double()
    torch.testing.assert_close(seen["layer0/T0"], x64)
    torch.testing.assert_close(seen["layer0/T2"], 2 * Lt @ (Lt @ x64) - x64)


def test_an_edit_of_one_node_state_spreads_exactly_k_minus_one_hops_per_layer():
    """The perturbation panel's promise: editing layer0/h at node v changes layer1/h exactly on the
    (K-1)-hop ball around v (intervene() on a graph tap, positions = nodes)."""
    from lstmviz.hooks import Edit, intervene

    g = nx.karate_club_graph()
    x = np.random.default_rng(9).normal(size=(34, 4)).astype(np.float32)
    model = model64(num_layers=2, K=3, hidden_size=6)
    prepared = model.prepare(item_of(g, x))

    def layer1_h():
        seen = {}
        with torch.no_grad(), HookScope() as hooks:
            hooks.read(find_taps(model)["layer1/h"], lambda m, a, k, out: seen.setdefault("h", out[0].clone()))
            model(prepared)
        return seen["h"]

    base = layer1_h()
    v = 16  # a node on the graph's edge: its 2-hop ball is a small part of the graph
    with intervene(model, Edit("layer0/h", "add", 5.0, positions=[v])):
        edited = layer1_h()
    changed = set(np.flatnonzero((edited != base).any(dim=1).numpy()).tolist())
    hops = nx.single_source_shortest_path_length(g, v)
    ball = {u for u, d in hops.items() if d <= 2}
    assert changed <= ball and v in changed and len(changed) >= 3
    assert len(ball) < 34


@pytest.mark.parametrize("edges, n", [([], 1), ([], 3), ([(0, 0)], 2), ([(0, 1), (2, 3), (4, 4)], 6)],
                         ids=["one-node", "no-edges", "self-loop-only", "components-and-loop"])
def test_odd_graphs_give_finite_outputs_in_both_tasks(edges, n):
    geometry = GraphGeometry.from_edges(n, np.array(edges, dtype=np.int64).reshape(-1, 2))
    x = np.random.default_rng(10).normal(size=(n, 4)).astype(np.float32)
    item = GraphItem(geometry=geometry, features=x, tokens=np.zeros(n, np.int64))
    for task in ("node", "graph"):
        model = model64(task=task, num_layers=2, K=3)
        with torch.no_grad():
            out = model(model.prepare(item))
        assert out.shape == ((n, 3) if task == "node" else (1, 3)) and torch.isfinite(out).all()
