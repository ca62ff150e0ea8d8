"""The bundled graph demo (ChebNet on Zachary's karate club): present, small, a graph recording whose
checkpoint beside it re-runs to the recorded states, and showing the faction split it was trained on."""

from importlib.resources import files
from pathlib import Path

import numpy as np

from lstmviz.recording import open_recording

DEMO = Path(str(files("lstmviz.assets") / "demo" / "karate-chebnet.h5"))


def test_graph_demo_is_bundled_with_its_checkpoint():
    assert DEMO.exists() and DEMO.stat().st_size < 1024**2
    assert DEMO.with_suffix(".pt").exists()


def test_graph_demo_is_a_chebnet_on_the_karate_graph():
    import networkx as nx

    with open_recording(DEMO) as rec:
        assert rec.provenance["engine"] == "chebnet"
        assert rec.n_items == 1 and rec.n_positions == 34
        geometry = rec.item_geometry(0)
        assert rec.axis_geometry("positions").kind == "graph"
        karate = nx.karate_club_graph()
        recorded = {tuple(sorted(map(int, e))) for e in geometry.edges}
        assert recorded == {tuple(sorted(e)) for e in karate.edges}
        assert {"community", "degree", "wl", "hops"} <= set(rec.annotations)


def test_graph_demo_checkpoint_reproduces_the_recorded_states():
    from lstmviz.perturb.graph_live import load_graph_model, reproduces

    with open_recording(DEMO) as rec:
        live = load_graph_model(rec)  # found beside the recording by name, its sha256 checked
        errors = reproduces(live, rec, 0)
    assert set(errors) == {"layer0/h", "layer1/h"}
    assert max(errors.values()) < 1e-2  # float16 rounding of values of order 1


def test_graph_demo_last_layer_separates_the_two_factions():
    """A linear read-out of layer 1 recovers the club's split on most nodes (what it was trained on,
    from two labelled nodes per faction)."""
    with open_recording(DEMO) as rec:
        h = rec.states("layer1/h").astype(np.float64)
        faction = rec.annotation("community").astype(int)
    means = np.stack([h[faction == c].mean(0) for c in (0, 1)])
    nearest = np.argmin(((h[:, None, :] - means[None]) ** 2).sum(-1), axis=1)
    assert np.mean(nearest == faction) > 0.8
