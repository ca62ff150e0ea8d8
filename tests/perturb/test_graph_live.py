"""The live model of a graph recording (CLI-trained chebnet on karate): rebuilt, checked, perturbed."""

from __future__ import annotations

import numpy as np
import pytest

from lstmviz.cli import main
from lstmviz.hooks import Edit
from lstmviz.perturb import CheckpointProblem, PerturbError
from lstmviz.perturb.graph_live import check_item, load_graph_model, perturb_recorded, reproduces
from lstmviz.recording import open_recording


@pytest.fixture(scope="module")
def karate_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("karate")
    ckpt, out = folder / "k.pt", folder / "k.h5"
    assert main(["train", "chebnet", "--dataset", "karate", "--steps", "20", "-o", str(ckpt)]) == 0
    assert main(["record", str(ckpt), "-o", str(out), "--dtype", "float32"]) == 0
    return ckpt, out


def test_the_live_model_reproduces_the_recorded_states(karate_run):
    _, out = karate_run
    with open_recording(out) as rec:
        live = load_graph_model(rec)
        errors = reproduces(live, rec, 0)
        assert errors and max(errors.values()) < 1e-5


def test_an_edit_of_one_node_spreads_at_most_k_minus_1_hops_per_layer(karate_run):
    _, out = karate_run
    with open_recording(out) as rec:
        live = load_graph_model(rec)
        effect = perturb_recorded(live, rec, 0, [Edit("layer0/h", "add", 3.0, positions=[5])])
        bound = effect.bounds["layer1/h"]
        assert bound == live.model.K - 1
        assert 0 <= effect.reach("layer1/h") <= bound


def test_a_changed_dataset_or_missing_checkpoint_is_refused_in_words(karate_run, tmp_path):
    ckpt, out = karate_run
    with open_recording(out) as rec:
        live = load_graph_model(rec)
        with pytest.raises(PerturbError, match="does not exist"):
            check_item(live, rec, 5)
        original = live.dataset
        live.dataset = type("Reversed", (), {"__getitem__": lambda s, i: _reversed(original[i]),
                                             "__len__": lambda s: 1})()
        live._prepared.clear()
        with pytest.raises(PerturbError, match="differs from the recording"):
            check_item(live, rec, 0)
        with pytest.raises(CheckpointProblem, match="not found"):
            load_graph_model(rec, tmp_path / "nowhere.pt")


def _reversed(item):
    import dataclasses

    return dataclasses.replace(item, tokens=np.ascontiguousarray(item.tokens[::-1]))


def test_cli_perturb_on_a_graph_recording_writes_the_change_per_hop(karate_run, tmp_path, capsys):
    import csv

    _, out = karate_run
    table = tmp_path / "t.csv"
    assert main(["perturb", str(out), "--tap", "layer0/h", "--positions", "0", "--action", "clamp", "--value", "4",
                 "--items", "0", "--out", str(table), "--quiet"]) == 0
    rows = list(csv.DictReader(table.open()))
    layer1 = [r for r in rows if r["tap"] == "layer1/h"]
    assert [int(r["hops"]) for r in layer1] == list(range(len(layer1)))
    bound = int(layer1[0]["bound"])
    assert bound >= 1 and all(int(r["changed"]) == 0 for r in layer1 if int(r["hops"]) > bound)
    assert sum(int(r["positions"]) for r in layer1) == 34  # karate: every node is within reach of node 0
    assert "farthest change" in capsys.readouterr().out
    assert main(["perturb", str(out), "--tap", "layer0/h", "--action", "ablate", "--out", str(table)]) == 2
    assert "name the nodes" in capsys.readouterr().err
