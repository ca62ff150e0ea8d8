"""Recording a graph engine into a v3 file: taps equal a direct forward, geometry round trip, filler hidden."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lstmviz.engines import build_engine, registry
from lstmviz.engines.families.graph import GraphData, SampleGraphs
from lstmviz.hooks import HookScope, find_taps
from lstmviz.recording import open_recording
from lstmviz.recording.graph_recorder import FILLER_TOKEN, TARGET, estimate_graph_bytes, record_graph
from lstmviz.tasks import Cancelled, Task


def chebnet(task: str, seed: int = 0, **config):
    torch.manual_seed(seed)
    return build_engine("chebnet", GraphData(5, 3, task), hidden_size=4, **config).eval()


def direct_states(model, item) -> dict:
    seen = {}
    with torch.no_grad(), HookScope() as hooks:
        for name, tap in find_taps(model).items():
            hooks.read(tap, lambda m, a, k, out: seen.__setitem__(m.name, out[0].numpy().copy()))
        prepared = model.prepare(item)
        model(prepared)
    return seen, prepared


def test_node_task_recording_holds_the_forward_states_in_input_order(tmp_path):
    data = SampleGraphs(GraphData(5, 3, "node"), graphs=3, nodes=6, seed=1, split="valid")
    model = chebnet("node")
    out = record_graph(model, data, tmp_path / "node.h5", provenance={"engine": "chebnet", "config": {"K": 3}})
    with open_recording(out) as rec:
        assert rec.n_items == 3
        assert rec.axis_geometry("positions").kind == "graph"
        assert FILLER_TOKEN not in rec.vocab  # no reordering: no filler token
        assert rec.provenance["engine"] == "chebnet" and rec.provenance["dataset"] == "sample-graphs"
        for i in range(3):
            item = data[i]
            states, _ = direct_states(model, item)
            start, stop = rec.item_range(i)
            for name in ("layer0/h", "layer1/h"):
                np.testing.assert_array_equal(rec.item_states(name, i), states[name])
            np.testing.assert_array_equal(rec.token_ids(start, stop), item.tokens)
            g = rec.item_geometry(i)
            assert g.num_nodes == len(item)
            assert {tuple(e) for e in g.edges.tolist()} == {tuple(e) for e in item.geometry.edges.tolist()}
            assert list(g.node_names) == list(item.geometry.node_names)
            target = rec.annotation(TARGET, start, stop)
            np.testing.assert_array_equal(target, item.node_target)
            np.testing.assert_array_equal(rec.annotation("degree", start, stop), item.annotations["degree"])


def test_graph_task_recording_stores_levels_pooling_maps_and_hides_fillers(tmp_path):
    data = SampleGraphs(GraphData(5, 3, "graph"), graphs=3, nodes=7, seed=2)
    model = chebnet("graph", pool_levels=2)
    out = record_graph(model, data, tmp_path / "graph.h5")
    with open_recording(out) as rec:
        assert list(rec.axes)[0] == "positions" and {"level1", "level2"} <= set(rec.axes)
        assert rec.axis_geometry("level1").pooled_from == "positions"
        assert rec.axis_geometry("level2").pooled_from == "level1"
        filler_id = rec.vocab.index(FILLER_TOKEN)
        filler = rec.filler("positions")
        for i in range(3):
            item = data[i]
            states, prepared = direct_states(model, item)
            source = prepared.levels[0].source_node
            start, stop = rec.item_range(i)
            np.testing.assert_array_equal(rec.item_states("layer0/h", i), states["layer0/h"])
            np.testing.assert_array_equal(filler[start:stop], source < 0)
            tokens = rec.token_ids(start, stop)
            assert (tokens[source < 0] == filler_id).all()
            np.testing.assert_array_equal(tokens[source >= 0], item.tokens[source[source >= 0]])
            degree = rec.annotation("degree", start, stop)
            assert np.isnan(degree[source < 0]).all()  # filler: missing
            np.testing.assert_array_equal(degree[source >= 0], item.annotations["degree"][source[source >= 0]])
            for k in (1, 2):
                g = rec.item_geometry(i, f"level{k}")
                np.testing.assert_array_equal(g.pooling_map, prepared.levels[k].geometry.pooling_map)
                np.testing.assert_array_equal(rec.item_states(f"layer{k - 1}/pool", i), states[f"layer{k - 1}/pool"])
                assert rec.taps[f"layer{k - 1}/pool"].axis == f"level{k}"
        assert rec.annotation(TARGET).tolist() == [data[i].graph_target for i in range(3)]


def test_only_the_recorded_levels_become_axes_with_composed_pooling_maps(tmp_path):
    data = SampleGraphs(GraphData(5, 3, "graph"), graphs=2, nodes=9, seed=3)
    model = chebnet("graph", pool_levels=2)
    out = record_graph(model, data, tmp_path / "sub.h5", signals=["layer0/h", "layer1/pool"])
    with open_recording(out) as rec:
        assert set(rec.axes) == {"positions", "level2"}
        assert rec.axis_geometry("level2").pooled_from == "positions"
        _, prepared = direct_states(model, data[0])
        g = rec.item_geometry(0, "level2")
        np.testing.assert_array_equal(g.pooling_map, np.arange(prepared.levels[0].geometry.num_nodes) // 4)


def test_bad_input_is_refused_in_words_and_leaves_no_file(tmp_path):
    data = SampleGraphs(GraphData(5, 3, "node"), graphs=2, nodes=5, seed=4)
    with pytest.raises(ValueError, match="not a graph model"):
        record_graph(torch.nn.Linear(2, 2), data, tmp_path / "x.h5")
    with pytest.raises(ValueError, match="expected a graph dataset"):
        record_graph(chebnet("node"), [1, 2], tmp_path / "x.h5")
    task = Task()
    task.cancel()
    with pytest.raises(Cancelled):
        record_graph(chebnet("node"), data, tmp_path / "x.h5", task=task)
    assert not (tmp_path / "x.h5").exists()
    assert estimate_graph_bytes(chebnet("node"), data) > 0


def test_cli_trains_and_records_chebnet_on_karate(tmp_path, capsys):
    from lstmviz.cli import main
    from lstmviz.engines.checkpoint import load_checkpoint

    ckpt, out = tmp_path / "k.pt", tmp_path / "k.h5"
    assert main(["train", "chebnet", "--dataset", "karate", "--steps", "30", "-o", str(ckpt), "--quiet"]) == 0
    model, meta = load_checkpoint(ckpt)
    assert meta["family"] == "graph" and meta["data"] == {"num_features": 34, "num_classes": 2, "task": "node"}
    assert meta["metrics"]["valid_accuracy"] is not None
    assert main(["record", str(ckpt), "--dataset", "karate", "-o", str(out), "--dtype", "float32", "--quiet"]) == 0
    from lstmviz.datasets import load_dataset

    test = load_dataset("karate", "test")
    states, _ = direct_states(model, test[0])
    with open_recording(out) as rec:
        assert rec.provenance["engine"] == "chebnet" and rec.provenance["sha256"] == meta["sha256"]
        assert rec.n_positions == 34 and rec.axis_geometry().kind == "graph"
        np.testing.assert_array_equal(rec.item_states("layer1/h", 0), states["layer1/h"])
        communities = rec.annotation("community")
        assert sorted(set(communities.tolist())) == [0, 1]
    assert "wrote" in capsys.readouterr().out


GRAPH_ENGINES = sorted(name for name, spec in registry.all().items() if spec.family == "graph")


@pytest.mark.parametrize("engine", GRAPH_ENGINES)
def test_every_graph_engine_records_what_its_forward_computes(engine, tmp_path):
    """Every registered graph engine, for each task it builds for: the file holds the forward's taps."""
    from lstmviz.engines.families.graph.contract import supported_tasks, tiny_model

    spec = registry.get(engine)
    for task in supported_tasks(spec):
        model, _ = tiny_model(spec, task)
        data = SampleGraphs(GraphData(5, 3, task), graphs=2, nodes=7, seed=8)
        out = record_graph(model, data, tmp_path / f"{engine}-{task}.h5", dtype="float32")
        with open_recording(out) as rec:
            assert rec.n_items == 2 and rec.axis_geometry().kind == "graph"
            for i in range(2):
                states, prepared = direct_states(model, data[i])
                assert rec.item_range(i)[1] - rec.item_range(i)[0] == prepared.levels[0].geometry.num_nodes
                for name, value in states.items():
                    np.testing.assert_allclose(rec.item_states(name, i), value, rtol=1e-6, atol=1e-6)
