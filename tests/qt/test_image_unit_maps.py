"""The Image panel's Unit maps tab: the maps of every unit of one signal's taps, a row per tap ordered by layer, on one
colour scale; a recording of an iterative model (Tagger: group masks per iteration) opens with the tab in front, and
the maps follow the image shown. Recording: a tiny untrained ``tagger`` over the ``shapes`` dataset."""

import numpy as np
import torch

from lstmviz.datasets.images.shapes import build
from lstmviz.engines.vision.tagger import Tagger
from lstmviz.qt.image import data
from lstmviz.recording.image_recorder import record_images
from qt_image_recordings import write_image_recording

ITERATIONS = 2


def tagger_recording(tmp_path):
    torch.manual_seed(0)
    model = Tagger(1, 20, 20, 4, iterations=ITERATIONS, hidden_size=8, top_size=4).eval()
    return record_images(model, build("test", images=15), tmp_path / "tagger.h5")


def test_an_iterative_recording_opens_on_the_masks_of_every_iteration_unit_by_unit(window, tmp_path, qtbot):
    path = tagger_recording(tmp_path)
    with qtbot.waitSignal(window.panels["image"].maps_shown) as blocker:
        assert window.open_file(path)
    panel = window.panels["image"]
    assert blocker.args == [0, "mask"]
    assert panel.tabs.currentIndex() == panel.maps_tab and panel.tabs.isTabEnabled(panel.maps_tab)
    signals = [panel.maps_combo.itemData(i) for i in range(panel.maps_combo.count())]
    assert signals[:2] == ["mask", "z"] and "top" not in signals  # a set tap is no map
    view = panel.maps_view
    rec = window.workspace.recording
    assert len(view.cells) == ITERATIONS + 1 and all(len(row) == 4 for row in view.cells)  # iterations x groups
    for t, row in enumerate(view.cells):
        block = rec.item_states(f"iter{t}/mask", 0)  # [pixels, groups]
        for k, cell in enumerate(row):
            assert np.array_equal(cell.values, block[:, k].reshape(20, 20))
    every = np.concatenate([rec.item_states(f"iter{t}/mask", 0).ravel() for t in range(ITERATIONS + 1)])
    assert view.levels == (float(every.min()), float(every.max()))  # one scale for the whole grid
    with qtbot.waitSignal(panel.maps_shown) as blocker:
        panel.next_button.click()
    assert blocker.args == [1, "mask"]
    assert np.array_equal(view.cells[ITERATIONS][3].values, rec.item_states(f"iter{ITERATIONS}/mask", 1)[:, 3]
                          .reshape(20, 20))
    with qtbot.waitSignal(panel.maps_shown) as blocker:
        panel.show_unit_maps("dz")
    assert blocker.args == [1, "dz"] and len(view.cells) == ITERATIONS  # dz: read by the T iterations only


def test_the_taps_of_a_signal_are_ordered_by_layer():
    class Info:
        def __init__(self, signal, layer, units=4):
            self.signal, self.layer, self.units, self.axis = signal, layer, units, "positions"

    class Rec:
        taps = {"b/mask": Info("mask", 2), "a/mask": Info("mask", 10), "c/mask": Info("mask", 0),
                "wide": Info("wide", 0, units=64)}

        def axis_geometry(self, axis):
            return type("G", (), {"kind": "image"})()

    signals = data.map_signals(Rec())
    assert signals == {"mask": ["c/mask", "b/mask", "a/mask"]}  # 64 units is no grid of maps
    assert data.iterative_signal(Rec()) == "mask"


def test_a_recording_without_layered_maps_keeps_the_first_tab(window, tmp_path):
    assert window.open_file(write_image_recording(tmp_path / "plain.h5"))
    panel = window.panels["image"]
    assert panel.tabs.currentIndex() != panel.maps_tab
