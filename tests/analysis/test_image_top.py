"""Top-activating images against a brute-force numpy ranking over every item."""

import numpy as np
import pytest

from lstmviz.analysis import image_top
from lstmviz.analysis.image_top import item_reduce, rank, top_activating
from lstmviz.geometry import AxisGeometry, ImageGeometry
from lstmviz.recording import RecordingWriter, open_recording
from lstmviz.tasks import Cancelled, Task


def write_maps(path, maps):
    with RecordingWriter(path, vocab=["p"]) as writer:
        writer.set_geometry("positions", "image")
        writer.add_axis("conv", geometry=AxisGeometry(kind="image", stride=2, receptive_field=3, offset=0.5))
        writer.add_tap("conv", maps[0].shape[-1], axis="conv")
        for m in maps:
            h, w, _ = m.shape
            writer.append_item(np.zeros(4 * h * w, np.int64), {"conv": m.reshape(h * w, -1)},
                               geometry={"positions": ImageGeometry(2 * h, 2 * w), "conv": ImageGeometry(h, w)})
    return open_recording(path)


def brute(maps, units, signs, reduce):
    scores, cells = [], []
    for m in maps:
        s = (m.reshape(-1, m.shape[-1])[:, units] * np.asarray(signs)).mean(1)
        cells.append(int(np.argmax(s)))
        scores.append(s.max() if reduce == "max" else s.mean())
    scores = np.array(scores)
    order = sorted(range(len(maps)), key=lambda i: (-scores[i], i))
    return order, scores, np.array(cells)


@pytest.fixture
def maps():
    rng = np.random.default_rng(0)
    sizes = [(3, 4), (5, 5), (2, 2), (4, 3), (6, 2), (1, 1)] * 5
    out = [rng.normal(size=(h, w, 16)).astype(np.float32) for h, w in sizes]
    out[7][:] = out[3].max()  # a tie in the max is broken by the first cell, and between items by index
    return out


@pytest.mark.parametrize("reduce", ["max", "mean"])
@pytest.mark.parametrize("units,signs", [([4], [1]), ([1, 7, 9], [1, -1, 1]), ([0, 15], [-1, -1])])
def test_ranking_equals_numpy(tmp_path, maps, monkeypatch, reduce, units, signs):
    monkeypatch.setattr(image_top, "SLAB_ROWS", 17)  # many slabs of whole items
    rec = write_maps(tmp_path / "m.h5", maps)
    top = top_activating(rec, "conv", units, signs, limit=10, reduce=reduce)
    order, scores, cells = brute(maps, units, signs, reduce)
    assert list(top.items) == order[:10]
    assert np.allclose(top.scores, scores[order[:10]])
    assert list(top.cells) == list(cells[order[:10]])


def test_progress_reaches_every_row_and_cancel_stops(tmp_path, maps, monkeypatch):
    monkeypatch.setattr(image_top, "SLAB_ROWS", 10)
    rec = write_maps(tmp_path / "m.h5", maps)
    seen = []
    top_activating(rec, "conv", [1], task=Task(on_progress=lambda d, t, m: seen.append((d, t))))
    assert seen[-1] == (rec.axis_length("conv"),) * 2 and len(seen) > 3
    task = Task(on_progress=lambda d, t, m: task.cancel() if d > 0 else None)
    with pytest.raises(Cancelled):
        top_activating(rec, "conv", [1], task=task)


def test_nan_cells_and_empty_items():
    scores = np.array([np.nan, 1.0, np.nan, np.nan, 3.0, 3.0])
    s, c, p = item_reduce(scores, [0, 2, 4, 4, 6], "max")
    assert np.allclose(s[[0, 3]], [1.0, 3.0]) and np.isnan(s[1]) and np.isnan(s[2])
    assert list(c) == [1, -1, -1, 0]
    s, _, _ = item_reduce(scores, [0, 2, 4, 4, 6], "mean")
    assert s[0] == 1.0 and s[3] == 3.0
    assert list(rank(np.array([np.nan, 2.0, 2.0, 5.0]))) == [3, 1, 2]


def test_bad_requests_are_sentences(tmp_path, maps):
    rec = write_maps(tmp_path / "m.h5", maps)
    with pytest.raises(ValueError, match="Select units first"):
        top_activating(rec, "conv", [])
    with pytest.raises(ValueError, match="no unit 16"):
        top_activating(rec, "conv", [16])
    with pytest.raises(ValueError, match="reduce"):
        top_activating(rec, "conv", [1], reduce="median")
