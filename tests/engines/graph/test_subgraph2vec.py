"""subgraph2vec (engines/graph/subgraph2vec.py): taps, radial skip-gram loss, readout, vocabulary, deep WL kernel."""

from __future__ import annotations

import io

import networkx as nx
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lstmviz.datasets.graph_base import GraphItem
from lstmviz.engines.graph.subgraph2vec import SPEC, Subgraph2Vec, deep_wl_kernel, graph_counts
from lstmviz.engines.graph.wl import UNSEEN, WLVocabulary, initial_labels, radial_context, wl_kernel
from lstmviz.geometry import GraphGeometry
from lstmviz.hooks import Edit, HookScope, find_taps, intervene


def item_of(graph: nx.Graph, *, graph_target: int | None = 0, node_target=None) -> GraphItem:
    graph = nx.convert_node_labels_to_integers(graph)
    n = graph.number_of_nodes()
    edges = np.array(list(graph.edges), dtype=np.int64).reshape(-1, 2)
    return GraphItem(geometry=GraphGeometry.from_edges(n, edges), features=np.ones((n, 1), dtype=np.float32),
                     tokens=np.zeros(n, dtype=np.int64), graph_target=graph_target,
                     node_target=None if node_target is None else np.asarray(node_target, dtype=np.int64))


def build(**config) -> Subgraph2Vec:
    torch.manual_seed(0)
    settings = {"num_features": 1, "num_classes": 2, "task": "graph", **config}
    return Subgraph2Vec(**settings)


def fitted(model: Subgraph2Vec, items) -> list:
    """Prepared graphs of ``items`` after the vocabulary grew by them (as a training step does)."""
    prepared = [model.prepare(item) for item in items]
    model.train()
    model.loss(prepared, items)
    return prepared


def corpus(count: int = 6, seed: int = 0) -> list[GraphItem]:
    rng = np.random.default_rng(seed)
    items = []
    for i in range(count):
        if i % 2:
            g = nx.watts_strogatz_graph(14, 4, 0.1, seed=int(rng.integers(1 << 30)))
        else:
            g = nx.gnm_random_graph(14, 28, seed=int(rng.integers(1 << 30)))
        items.append(item_of(g, graph_target=i % 2))
    return items


def test_taps_are_the_embeddings_of_the_wl_ids_and_their_mean():
    model = build(depth=3, dim=8)
    assert list(find_taps(model)) == ["wl0/embedding", "wl1/embedding", "wl2/embedding", "wl3/embedding",
                                      "readout/node"]
    assert list(find_taps(build())) == list(SPEC.taps)
    item = item_of(nx.karate_club_graph())
    prepared = fitted(model, [item])[0]
    model.eval()
    seen = {}
    with HookScope() as scope:
        for name, tap in find_taps(model).items():
            scope.read(tap, lambda _m, _a, _k, out, name=name: seen.__setitem__(name, out.detach().clone()))
        logits = model(prepared)
    ids = torch.from_numpy(model.wl_ids(item))
    assert ids.shape == (4, 34) and (ids != UNSEEN).all()
    for d in range(4):
        assert seen[f"wl{d}/embedding"].shape == (1, 34, 8)
        assert torch.equal(seen[f"wl{d}/embedding"][0], model.phi.weight[ids[d]].detach())
    mean = torch.stack([model.phi.weight[ids[d]] for d in range(4)]).mean(0).detach()
    assert torch.allclose(seen["readout/node"][0], mean)
    assert torch.allclose(logits, model.readout(mean.mean(0, keepdim=True)).detach())
    assert all(tap.axis == "positions" and tap.layout.geometry == "graph" for tap in find_taps(model).values())


def test_logits_shapes_of_the_node_and_graph_tasks():
    item = item_of(nx.karate_club_graph())
    assert build(task="graph", num_classes=3)(build(task="graph").prepare(item)).shape == (1, 3)
    node_model = build(task="node", num_classes=2)
    assert node_model(node_model.prepare(item)).shape == (34, 2)


def test_an_edit_of_an_embedding_tap_reaches_the_logits():
    model = build(task="node")
    prepared = fitted(model, [item_of(nx.karate_club_graph())])[0]
    torch.nn.init.normal_(model.readout.weight)
    clean = model(prepared).detach()
    with intervene(model, [Edit("wl1/embedding", "replace", 0.0, positions=[0])]):
        edited = model(prepared).detach()
    changed = (edited - clean).abs().sum(1) > 0
    assert changed.tolist() == [True] + [False] * 33  # per node: only node 0's state was edited


def test_skipgram_loss_is_the_negative_sampling_objective_on_the_radial_pairs():
    model = build(dim=6, negatives=3, readout_weight=0.0)
    torch.nn.init.normal_(model.psi.weight, std=0.3)
    items = corpus(3)
    prepared = fitted(model, items)
    pairs = [radial_context(item.geometry, model.wl_ids(item)) for item in items]
    targets = torch.cat([torch.from_numpy(t) for t, _ in pairs])
    contexts = torch.cat([torch.from_numpy(c) for _, c in pairs])
    assert torch.equal(targets, torch.cat([model.pairs(p)[0] for p in prepared]))
    model.eval()  # the vocabulary stays as it is: the same counts as below
    torch.manual_seed(7)
    loss, count = model.loss(prepared, items)
    assert count == 3 and (targets != UNSEEN).all()
    counts = model.vocab_count.double()
    noise = counts ** 0.75
    noise[UNSEEN] = 0
    torch.manual_seed(7)
    drawn = torch.multinomial(noise, len(targets) * 3, replacement=True).view(-1, 3)
    phi, psi = model.phi.weight, model.psi.weight
    expected = -(F.logsigmoid((phi[targets] * psi[contexts]).sum(-1))
                 + F.logsigmoid(-(phi[targets, None] * psi[drawn]).sum(-1)).sum(-1)).mean()
    assert torch.allclose(loss, expected)
    assert (drawn != UNSEEN).all()


def test_the_readout_learns_on_detached_embeddings():
    model = build(dim=6)
    items = corpus(4)
    prepared = fitted(model, items)
    model.zero_grad()
    readout = model.readout_loss(prepared, items)
    readout.backward()
    assert model.phi.weight.grad is None or not model.phi.weight.grad.any()
    assert model.readout.weight.grad.abs().sum() > 0
    model.zero_grad()
    with_readout, _ = model.loss(prepared, items)
    model.readout_weight = 0.0
    torch.manual_seed(0)
    without, _ = model.loss(prepared, items)
    assert not torch.allclose(with_readout, without)


def test_node_task_readout_uses_only_nodes_with_a_target():
    model = build(task="node", dim=4)
    target = np.full(34, -1)
    target[[0, 33]] = [0, 1]
    item = item_of(nx.karate_club_graph(), graph_target=None, node_target=target)
    prepared = fitted(model, [item])[0]
    h = model.node_states(prepared, taps=False).detach()
    assert h.abs().sum() > 0
    expected = F.cross_entropy(model.readout(h[[0, 33]]), torch.tensor([0, 1]))
    assert torch.allclose(model.readout_loss([prepared], [item]), expected)


def test_training_separates_true_contexts_from_noise():
    torch.set_num_threads(2)
    model = build(dim=16, negatives=5, readout_weight=0.0)
    items = corpus(6)
    prepared = [model.prepare(item) for item in items]
    model.train()
    optimiser = torch.optim.Adam(model.parameters(), lr=0.05)
    first = None
    for _ in range(150):
        loss, _ = model.loss(prepared, items)
        first = float(loss.detach()) if first is None else first
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    assert float(loss.detach()) < 0.7 * first
    targets = torch.cat([model.pairs(p)[0] for p in prepared])
    contexts = torch.cat([model.pairs(p)[1] for p in prepared])
    with torch.no_grad():
        true = (model.phi.weight[targets] * model.psi.weight[contexts]).sum(-1)
        shuffled = (model.phi.weight[targets] * model.psi.weight[contexts[torch.randperm(len(contexts))]]).sum(-1)
    assert true.mean() > shuffled.mean() + 1.0
    assert not model.phi.weight[UNSEEN].any()


def test_the_vocabulary_grows_in_the_training_loss_only_and_unseen_subgraphs_embed_to_zero():
    model = build(depth=2)
    star, path = item_of(nx.star_graph(4)), item_of(nx.path_graph(5))
    prepared_star, prepared_path = model.prepare(star), model.prepare(path)
    assert len(model.vocabulary) == 1  # prepare depends on the graph only
    model.train()
    model(prepared_star)
    assert len(model.vocabulary) == 1  # so does forward
    model.loss([prepared_star], [star])
    size = len(model.vocabulary)
    assert int(model.vocab_size) == size == 1 + 2 + 2 + 2  # centre and leaves at depths 0, 1, 2
    model.eval()
    model.loss([prepared_path], [path])
    assert len(model.vocabulary) == size
    ids = model.wl_ids(path)
    assert ids[0].tolist() == [ids[0, 0], 0, 0, 0, ids[0, 0]] and ids[0, 0] != UNSEEN and (ids[1:] == UNSEEN).all()
    node = model.node_states(prepared_path)
    assert not node[1:4].any() and node[0].any()
    targets, contexts = model.pairs(prepared_path)
    assert len(targets) == 8 * 7 and ((targets == UNSEEN) | (contexts == UNSEEN)).all()
    model.train()
    model.loss([prepared_path], [path])
    assert len(model.vocabulary) > size


def test_an_unseen_pair_scores_log_sigma_0_so_validation_counts_what_was_never_met():
    model = build(depth=1, negatives=2, readout_weight=0.0)
    model.eval()
    item = item_of(nx.path_graph(4))
    loss, count = model.loss([model.prepare(item)], [item])
    assert count == 1 and torch.allclose(loss, torch.tensor(3 * np.log(2.0), dtype=loss.dtype))


def test_the_vocabulary_travels_in_the_state_dict():
    model = build(depth=3)
    items = corpus(4)
    fitted(model, items)
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    again = build(depth=3, dim=32)
    again.load_state_dict(state)
    again.eval()
    model.eval()
    probe = corpus(2, seed=9)  # graphs neither model grew on
    for item in items + probe:
        assert np.array_equal(again.wl_ids(item), model.wl_ids(item))
        assert torch.equal(again(again.prepare(item)), model(model.prepare(item)))
    assert np.array_equal(again.vocabulary.count, model.vocabulary.count)


def test_capacity_full_gives_unseen_ids():
    model = build(depth=2, max_subgraphs=4)
    ids = torch.from_numpy(model.wl_ids(item_of(nx.karate_club_graph()), grow=True))
    assert len(model.vocabulary) == 4 and model.vocabulary.overflow > 0
    assert set(ids.unique().tolist()) <= {0, 1, 2, 3} and (ids == UNSEEN).any()


def test_deep_wl_kernel_is_phi_m_phi_and_the_identity_embedding_gives_the_wl_kernel():
    model = build(depth=2, dim=5)
    items = corpus(5)
    fitted(model, items)
    counts = graph_counts(model, items)
    phi = model.subgraph_embeddings()
    m = phi @ phi.T
    kernel = deep_wl_kernel(counts, phi)
    assert np.allclose(kernel, counts @ m @ counts.T)
    assert np.allclose(kernel, kernel.T)
    assert np.allclose(deep_wl_kernel(counts, np.eye(counts.shape[1])), wl_kernel(counts))
    assert np.allclose(deep_wl_kernel(counts[:2], phi, counts[2:]), kernel[:2, 2:])
    # the vocabulary as the model's: the same counts as a WL vocabulary fitted the same way
    vocabulary = WLVocabulary()
    ids = [vocabulary.relabel(i.geometry, initial_labels(i.geometry, degree_cap=8), 2, grow=True) for i in items]
    assert np.allclose(wl_kernel(counts), wl_kernel(np.stack([np.bincount(x.ravel(), minlength=len(vocabulary))
                                                              for x in ids]) * (np.arange(len(vocabulary)) > 0)))


@pytest.mark.parametrize(("config", "words"), [
    ({"depth": 4}, "WL depth"), ({"label": "colour"}, "label must be one of"), ({"dim": 0}, "dim must be"),
    ({"task": "edge"}, "task must be"), ({"max_subgraphs": 1}, "max_subgraphs must be"),
    ({"readout_weight": -1.0}, "readout_weight must be"),
])
def test_bad_settings_are_refused_in_one_sentence(config, words):
    with pytest.raises(ValueError, match=words):
        build(**config)


def test_a_graph_without_edges_has_no_pairs_and_a_zero_skipgram_loss():
    model = build(readout_weight=0.0)
    item = item_of(nx.empty_graph(3))
    prepared = model.prepare(item)
    loss, count = model.loss([prepared], [item])
    assert count == 1 and float(loss.detach()) == 0.0
    assert model(prepared).shape == (1, 2)
