"""The Image panel's "Random direction": each click draws the next seeded direction, ranks the images along
it like numpy and shows them in the top-images grid; a tap with one row per image works too."""

import os

import numpy as np
import pytest

from lstmviz.analysis.image_directions import random_directions
from qt_image_recordings import CONV0, write_image_recording


@pytest.fixture
def image_window(window, tmp_path):
    assert window.open_file(write_image_recording(tmp_path / "images.h5"))
    window.show_panel("image")
    return window


def projections(recording, tap, v):
    return [recording.item_states(tap, i).astype(np.float64) @ v for i in range(recording.n_items)]


def test_random_direction_ranks_like_numpy_and_draws_a_new_one_each_time(qtbot, image_window, tmp_path):
    panel = image_window.panels["image"]
    box = panel.direction_box
    recording = image_window.workspace.recording
    assert box.tap() == "conv0"
    with qtbot.waitSignal(box.ready, timeout=20000) as blocker:
        assert box.draw()
    top = blocker.args[0]
    v = random_directions(8, 1, seed=1)[0]
    np.testing.assert_allclose(top.direction, v)
    cell_scores = projections(recording, "conv0", v)
    peaks = [s.max() for s in cell_scores]
    order = sorted(range(recording.n_items), key=lambda i: (-peaks[i], i))
    assert list(top.items) == order and panel.top is top
    assert list(top.cells) == [int(np.argmax(cell_scores[i])) for i in order]
    assert len(panel.top_grid.thumbnails) == recording.n_items
    first = panel.top_grid.thumbnails[0]
    heat, rect = first.heat
    assert (heat.height(), heat.width()) == (6, 6) and rect == (0.0, 0.0, 12, 12)
    cy, cx = divmod(int(top.cells[0]), CONV0.size.width)
    assert first.box == pytest.approx((2 * cy + 1 - 2, 2 * cx + 1 - 2, 2 * cy + 1 + 2, 2 * cx + 1 + 2))
    assert "random direction 1 of conv0" in panel.status_text()
    if os.environ.get("LSTMVIZ_SHOT"):  # a look at it: LSTMVIZ_SHOT=dir pytest ...
        from PySide6 import QtWidgets

        image_window.resize(1300, 900)
        image_window.show()
        QtWidgets.QApplication.processEvents()
        image_window.grab().save(os.path.join(os.environ["LSTMVIZ_SHOT"], "random_direction.png"))
    # the next click is the next seed: another direction, another ranking
    with qtbot.waitSignal(box.ready, timeout=20000) as blocker:
        assert box.draw()
    second = blocker.args[0]
    np.testing.assert_allclose(second.direction, random_directions(8, 1, seed=2)[0])
    assert not np.allclose(second.direction, v)
    # a thumbnail's click goes to its image and marks the peak cell
    with qtbot.waitSignal(panel.image_shown):
        panel.top_grid.thumbnails[0].clicked.emit(0)
    assert panel.item == int(second.items[0]) and panel.clicked_cell == int(second.cells[0])


def test_a_tap_with_one_row_per_image(qtbot, image_window):
    panel = image_window.panels["image"]
    box = panel.direction_box
    recording = image_window.workspace.recording
    box.tap_combo.setCurrentIndex(box.tap_combo.findData("fc"))
    with qtbot.waitSignal(box.ready, timeout=20000) as blocker:
        assert box.draw()
    top = blocker.args[0]
    v = random_directions(5, 1, seed=1)[0]
    scores = [float(s[0]) for s in projections(recording, "fc", v)]
    assert list(top.items) == sorted(range(recording.n_items), key=lambda i: (-scores[i], i))
    assert all(t.box is None and t.heat is None for t in panel.top_grid.thumbnails)
    assert set(panel.top.cells.tolist()) == {-1}  # nothing to mark on the feature map
    with qtbot.waitSignal(panel.image_shown):
        panel.top_grid.thumbnails[1].clicked.emit(1)
    assert panel.item == int(top.items[1]) and panel.clicked_cell == -1


def test_a_new_recording_restarts_the_seeds(qtbot, image_window, tmp_path):
    panel = image_window.panels["image"]
    box = panel.direction_box
    with qtbot.waitSignal(box.ready, timeout=20000):
        box.draw()
    assert box.seed == 1
    assert image_window.open_file(write_image_recording(tmp_path / "other.h5", n_items=4))
    assert box.seed == 0 and box.result is None
    assert [box.tap_combo.itemData(i) for i in range(box.tap_combo.count())] == [None, "fc"]
