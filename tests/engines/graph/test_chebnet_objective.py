"""The graph family's objective and data description, exercised with chebnet (and a toy model with its own loss)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from lstmviz.engines import build_engine, families
from lstmviz.engines.checkpoint import load_checkpoint
from lstmviz.engines.families.graph import GraphData, SampleGraphs, describe_checkpoint, describe_dataset
from lstmviz.engines.families.graph.objective import GraphObjective
from lstmviz.engines.training import train

SETTINGS = {"batch_size": 2, "seed": 0}


def objective_for(train_data, valid_data=None, **settings):
    objective = GraphObjective()
    objective.prepare(train_data, valid_data, {**SETTINGS, **settings}, torch.device("cpu"))
    return objective


def test_the_family_is_registered_and_describes_graph_data():
    family = families.get("graph")
    assert family.data_fields() == ("num_features", "num_classes", "task")
    data = SampleGraphs(GraphData(5, 3, "node"))
    assert describe_dataset(data) == GraphData(5, 3, "node")
    with pytest.raises(ValueError, match="records its data description"):
        describe_checkpoint({"vocab": ["a"]})
    with pytest.raises(ValueError, match="expected task to be one of node, graph"):
        GraphData(5, 3, "edge")


def test_node_loss_is_cross_entropy_over_the_labelled_nodes_only():
    data = SampleGraphs(GraphData(5, 3, "node"), graphs=2, nodes=6, seed=1)
    for item in data:
        item.node_target[::2] = -1  # half the nodes carry no target
    objective = objective_for(data, batch_size=2)
    torch.manual_seed(0)
    model = build_engine("chebnet", GraphData(5, 3, "node"), hidden_size=4).double().eval()
    loss, count = objective.train_step(model)
    logits = [model(model.prepare(item)) for item in data]
    targets = [torch.from_numpy(item.node_target) for item in data]
    chosen = torch.cat([lg[t >= 0] for lg, t in zip(logits, targets)])
    wanted = torch.cat([t[t >= 0] for t in targets])
    assert count == len(wanted) == sum(int((it.node_target >= 0).sum()) for it in data)
    torch.testing.assert_close(loss, F.cross_entropy(chosen, wanted), rtol=0, atol=1e-12)


def test_graph_batches_cover_every_graph_once_per_epoch_and_prepare_is_cached(monkeypatch):
    data = SampleGraphs(GraphData(5, 3, "graph"), graphs=5, nodes=6, seed=2)
    objective = objective_for(data, batch_size=2)
    model = build_engine("chebnet", GraphData(5, 3, "graph"), hidden_size=4)
    calls = []
    original = model.prepare
    monkeypatch.setattr(model, "prepare", lambda item: calls.append(id(item)) or original(item))
    seen = []
    for _ in range(5):  # 10 graphs drawn = two epochs of 5
        seen.extend(objective._next_batch())
    assert sorted(seen[:5]) == [0, 1, 2, 3, 4] and sorted(seen[5:]) == [0, 1, 2, 3, 4]
    for _ in range(6):
        loss, count = objective.train_step(model)
        assert count == 2 and loss.requires_grad
    assert len(calls) == len(set(calls)) == 5  # each graph prepared once, then served from the cache


def test_a_model_with_its_own_loss_is_trained_by_it():
    data = SampleGraphs(GraphData(5, 3, "graph"), graphs=3, nodes=5, seed=3)

    class OwnLoss(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(()))
            self.seen = []

        def prepare(self, item):
            return len(item)

        def loss(self, prepared, items):
            self.seen.append(list(prepared))
            return self.w * sum(prepared), 7

    model = OwnLoss()
    objective = objective_for(data, data, batch_size=3)
    loss, count = objective.train_step(model)
    assert count == 7 and sorted(model.seen[-1]) == sorted(len(it) for it in data)
    assert objective.evaluate(model) == pytest.approx(sum(len(it) for it in data))


def test_training_reports_validation_accuracy_and_the_checkpoint_rebuilds(tmp_path):
    data = GraphData(5, 3, "node")
    train_data = SampleGraphs(data, graphs=3, nodes=6, seed=4)
    valid_data = SampleGraphs(data, graphs=2, nodes=6, seed=5, split="valid")
    metrics = train("chebnet", train_data, valid_data, out=tmp_path / "c.pt", steps=5, eval_every=0,
                    config={"hidden_size": 4})
    assert metrics["nodes"] > 0 and 0.0 <= metrics["valid_accuracy"] <= 1.0
    model, meta = load_checkpoint(tmp_path / "c.pt")
    assert meta["data"] == {"num_features": 5, "num_classes": 3, "task": "node"} and model.num_classes == 3
    objective = objective_for(train_data, valid_data)
    objective.evaluate(model)
    assert objective.metrics()["valid_accuracy"] == metrics["valid_accuracy"]


def test_bad_training_data_is_refused_in_words():
    data = SampleGraphs(GraphData(5, 3, "node"), graphs=2, nodes=5, seed=6)
    for item in data:
        item.node_target[:] = -1
    with pytest.raises(ValueError, match="no node has a target"):
        objective_for(data)
    other = SampleGraphs(GraphData(4, 3, "node"), graphs=2, nodes=5, seed=6)
    good = SampleGraphs(GraphData(5, 3, "node"), graphs=2, nodes=5, seed=7)
    with pytest.raises(ValueError, match="validation data: expected GraphData"):
        objective_for(good, other)
    good[0].node_target[0] = 9
    with pytest.raises(ValueError, match="class ids in 0 .. 2"):
        objective_for(good)
    assert np.all(good[1].node_target < 3)
