"""record_strokes: one position per pen point, every per-step tap, the drawing rebuilt from the file."""

from __future__ import annotations

import numpy as np
import torch

from lstmviz.engines import registry
from lstmviz.engines.families.strokes import SampleStrokes, StrokeData
from lstmviz.engines.families.strokes.objective import pad_steps
from lstmviz.recording.reader import open_recording
from lstmviz.recording.strokes_recorder import record_strokes, steps_from_recording


def test_record_strokes_matches_a_direct_forward(tmp_path):
    torch.manual_seed(0)
    data = StrokeData(num_classes=3)
    model = registry.get("char-rnn-mdn").build_model(data, hidden_size=8, recogniser_hidden=5, components=2,
                                                     embedding_dim=3)
    items = SampleStrokes(data, items=7, seed=1)
    path = record_strokes(model, items, tmp_path / "s.h5", batch_size=3)
    with open_recording(path) as rec:
        assert rec.axis_length() == sum(len(it) for it in items)
        assert set(rec.taps) == set(registry.get("char-rnn-mdn").taps)
        for i in (0, 4):
            item = items[i]
            np.testing.assert_array_equal(steps_from_recording(rec, i), item.steps)
            assert rec.tokens(*rec.item_range(i)) == ["↑" if s else "·" for s in item.steps[:, 2]]
            x, mask, c = pad_steps([item])
            with torch.no_grad():
                raw = model(x, c, mask)[1][0]
            pi = np.exp(torch.log_softmax(raw[:, 1:3], -1).numpy())
            np.testing.assert_allclose(rec.item_states("generator/mdn/pi", i), pi, atol=1e-6)
            assert rec.item_states("recogniser/class_prob", i).shape == (len(item), 3)


def test_the_trajectory_is_the_graph_of_the_main_axis(tmp_path):
    data = StrokeData(num_classes=2)
    torch.manual_seed(1)
    model = registry.get("char-rnn-mdn").build_model(data, hidden_size=4, recogniser_hidden=3, components=1,
                                                     embedding_dim=2)
    items = SampleStrokes(data, items=3, seed=2)
    path = record_strokes(model, items, tmp_path / "g.h5")
    with open_recording(path) as rec:
        assert rec.axis_geometry().kind == "graph"
        for i, item in enumerate(items):
            g = rec.item_geometry(i)
            np.testing.assert_allclose(g.coordinates, np.cumsum(item.steps[:, :2], 0), atol=1e-5)
            down = {(t, t + 1) for t in range(len(item) - 1) if item.steps[t, 2] < 0.5}
            assert {tuple(map(int, e)) for e in g.edges} == down  # the pen lifts: no edge to the next point
    plain = record_strokes(model, items, tmp_path / "p.h5", drawing=False)
    with open_recording(plain) as rec:
        assert rec.axis_geometry().kind == "tokens"


def test_lstmviz_train_and_record_a_strokes_engine(tmp_path):
    import pytest

    pytest.importorskip("HersheyFonts")
    from lstmviz.cli import main

    ckpt, out = tmp_path / "m.pt", tmp_path / "m.h5"
    assert main(["train", "char-rnn-mdn", "--dataset", "hershey-strokes", "--out", str(ckpt), "--steps", "2",
                 "--set", "hidden_size=8", "--set", "recogniser_hidden=4", "--set", "components=2",
                 "--dataset-option", "per_font=1", "--quiet"]) == 0
    assert main(["record", str(ckpt), "--split", "test", "--max-items", "5", "--out", str(out), "--quiet"]) == 0
    with open_recording(out) as rec:
        assert rec.axis_geometry().kind == "graph" and rec.tokens(0, 3) == ["·", "·", "·"]
        assert "generator/mdn/pi" in rec.taps
