"""treenn (engines/graph/treenn.py): the defining properties of Zaremba, Kurach & Fergus's TNN (§17 (c)).

- order sensitivity: ``x - y`` and ``y - x`` (and ``x * y`` vs ``y * x``) get different root vectors;
- identity init: a chain of unary operators maps the leaf vector ``a`` to about ``ReLU(a)``, a binary
  node to about ``ReLU(u * w)``; random init does not;
- the tree read by ``prepare`` is the expression tree (pre-order, left child first);
- trained briefly, held-out trees are classified above chance.
"""

from __future__ import annotations

import numpy as np
import torch

from lstmviz.datasets.graphs import expressions as E
from lstmviz.engines.graph.treenn import TreeNN, tree_plan
from lstmviz.hooks import HookScope, find_taps

X, Y = ("x",), ("y",)


def model(init="identity", noise=0.0, dim=8, classes=3, seed=0) -> TreeNN:
    torch.manual_seed(seed)
    return TreeNN(len(E.SYMBOLS), classes, "graph", dim=dim, init=init, init_noise=noise).double().eval()


def root(m: TreeNN, tree) -> torch.Tensor:
    with torch.no_grad():
        return m.embed(m.prepare(E.tree_item(0, tree)))


def test_order_matters_for_non_commutative_operators():
    m = model(noise=0.1)
    assert not torch.allclose(root(m, ("-", X, Y)), root(m, ("-", Y, X)), atol=1e-3)
    assert not torch.allclose(root(m, ("*", X, Y)), root(m, ("*", Y, X)), atol=1e-3)  # a learned T_* is not symmetric
    # ... while one tree always maps to the same vector
    assert torch.equal(root(m, ("-", X, Y)), root(m, ("-", X, Y)))


def test_identity_init_unary_chain_is_relu_of_the_leaf():
    m = model(noise=0.001)
    a = m.leaf[E.SYMBOLS.index("x")].detach()
    chain = X
    for _ in range(4):
        chain = ("neg", chain)
    got = root(m, chain)
    assert torch.allclose(got, torch.relu(a), atol=0.02), (got, torch.relu(a))
    assert (torch.relu(a) > 0.1).any()  # not trivially zero
    b = m.leaf[E.SYMBOLS.index("y")].detach()
    assert torch.allclose(root(m, ("*", X, Y)), torch.relu(a * b), atol=0.02)
    # random init: the chain's output is not ReLU(a)
    r = model(init="random")
    ar = r.leaf[E.SYMBOLS.index("x")].detach()
    assert not torch.allclose(root(r, chain), torch.relu(ar), atol=0.1)


def test_exact_identity_init_equations():
    """With no noise, phi follows the equations exactly: neg(x) -> ReLU(a_x), x - y -> ReLU(a_x * a_y)."""
    m = model(noise=0.0)
    a, b = (m.leaf[E.SYMBOLS.index(s)].detach() for s in ("x", "y"))
    assert torch.equal(root(m, ("neg", X)), torch.relu(a))
    assert torch.allclose(root(m, ("-", X, Y)), torch.relu(a * b), atol=1e-12)


def test_prepare_reads_the_expression_tree():
    tree = ("-", ("*", X, ("neg", Y)), ("+", X, ("1",)))
    item = E.tree_item(0, tree)
    plan = tree_plan(len(item), item.geometry.edges, item.features.argmax(1))
    symbols, edges, _, _ = E.preorder(tree)
    expected = np.full(len(symbols), -1)
    for a, b in edges:
        expected[b] = a
    assert plan["parent"].tolist() == expected.tolist()
    assert plan["height"].tolist() == [3, 2, 0, 1, 0, 1, 0, 0]
    # the binary step at the root reads its children left to right
    arity, nodes, children, ops = plan["steps"][-1]
    assert arity == 2 and nodes.tolist() == [0] and children.tolist() == [[1, 5]]


def test_taps_hold_phi_pre_and_subtree_logits():
    m = model(noise=0.05)
    item = E.tree_item(0, ("+", ("*", X, Y), Y))
    prepared = m.prepare(item)
    got = {}
    taps = find_taps(m)
    with HookScope() as hooks:
        for name, tap in taps.items():
            hooks.read(tap, lambda module, args, kwargs, out: got.__setitem__(module.name, out.detach()))
        with torch.no_grad():
            logits = m(prepared)
    phi, pre = m.node_states(prepared)
    assert torch.allclose(got["node/phi"][0], phi) and torch.allclose(got["node/pre"][0], pre)
    assert torch.allclose(got["node/logits"][0, :1], logits)
    # inner nodes: phi = ReLU(pre)
    inner = [0, 1]
    assert torch.allclose(got["node/phi"][0, inner], torch.relu(got["node/pre"][0, inner]))


def test_trained_briefly_it_classifies_held_out_trees_above_chance():
    """120 Adam steps on the 2-operator trees: held-out trees (never trained on) are classified well above
    chance, so the root vector carries the class of an unseen expression (the embedding-distance claim on
    the full data is measured by benchmarks/treenn_claims.py)."""
    opts = {"max_ops": 2, "min_class_size": 8, "per_class": 20}
    train, test = E.build("train", **opts), E.build("test", **opts)
    torch.manual_seed(0)
    m = TreeNN(train.num_features, train.num_classes, "graph", dim=12).double()
    opt = torch.optim.Adam(m.parameters(), lr=0.01)
    prepared = [(m.prepare(it), it.graph_target) for it in train]
    held_out = [(m.prepare(it), it.graph_target) for it in test]
    rng = np.random.default_rng(0)
    for _ in range(120):
        batch = rng.choice(len(prepared), size=16, replace=False)
        loss = sum(torch.nn.functional.cross_entropy(m(prepared[i][0]), torch.tensor([prepared[i][1]]))
                   for i in batch) / len(batch)
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        accuracy = np.mean([int(m(p).argmax()) == y for p, y in held_out])
    chance = 1 / train.num_classes
    assert accuracy > 2.5 * chance, (accuracy, chance)


def test_recording_holds_trees_with_symbol_names_and_the_forward_states(tmp_path):
    from lstmviz.recording import open_recording
    from lstmviz.recording.graph_recorder import record_graph

    data = E.build("test", max_ops=2, min_class_size=8, per_class=20)
    m = TreeNN(data.num_features, data.num_classes, "graph", dim=6).eval()
    out = record_graph(m, data, tmp_path / "trees.h5", max_items=4)
    with open_recording(out) as rec:
        assert rec.n_items == 4 and rec.axis_geometry("positions").kind == "graph"
        for i in range(4):
            item = data[i]
            g = rec.item_geometry(i)
            assert list(g.node_names) == [E.SYMBOLS[t] for t in item.tokens]
            assert {tuple(e) for e in g.edges.tolist()} == {tuple(e) for e in item.geometry.edges.tolist()}
            np.testing.assert_allclose(np.asarray(g.coordinates), np.asarray(item.geometry.coordinates))
            with torch.no_grad():
                phi, _ = m.node_states(m.prepare(item))
            np.testing.assert_allclose(rec.item_states("node/phi", i), phi.numpy(), rtol=1e-6, atol=1e-6)
