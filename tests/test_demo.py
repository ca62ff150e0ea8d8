"""The bundled demo recording: present, small, valid, and showing what it is meant to show."""

from importlib.resources import files
from pathlib import Path

import numpy as np

from lstmviz.recording import open_recording

DEMO = Path(str(files("lstmviz.assets") / "demo" / "parens-lstm.h5"))


def test_demo_is_bundled_and_small():
    assert DEMO.exists()
    assert DEMO.stat().st_size < 20 * 1024**2


def test_demo_is_a_trained_two_layer_lstm_on_parens():
    with open_recording(DEMO) as rec:
        assert rec.provenance["engine"] == "lstm"
        assert rec.provenance["config"]["num_layers"] == 2
        assert rec.provenance["trained_on"] == "parens"
        assert rec.provenance["checkpoint_step"] > 0
        assert {"layer0/c", "layer1/c", "layer0/h", "layer1/h", "layer1/gates/f"} <= set(rec.taps)
        assert "depth" in rec.annotations


def test_some_demo_units_track_nesting_depth():
    """The LSTMVis nesting hypothesis holds in the demo: cell states rise with bracket depth."""
    with open_recording(DEMO) as rec:
        depth = rec.annotation("depth").astype(np.float64)
        cells = rec.states("layer0/c").astype(np.float64)
    cells -= cells.mean(axis=0)
    depth -= depth.mean()
    corr = np.abs(cells.T @ depth) / (np.linalg.norm(cells, axis=0) * np.linalg.norm(depth) + 1e-12)
    assert corr.max() > 0.9
    assert (corr > 0.8).sum() >= 3

    # the best unit's mean value is monotone in depth (rising or falling)
    with open_recording(DEMO) as rec:
        raw_depth = rec.annotation("depth")
        unit = rec.states("layer0/c", units=[int(np.argmax(corr))])[:, 0]
    means = np.array([unit[raw_depth == d].mean() for d in range(5)])
    steps = np.sign(np.diff(means))
    assert abs(steps.sum()) == 4
