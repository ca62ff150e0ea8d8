"""The Image panel: opens on an image recording only, draws the heatmap of the selected units over the
input at the right pixels with a fixed colour scale, brushes a box into the box Select rule, ranks the
top-activating images like numpy, and moves between images. Recordings: tests/qt/qt_image_recordings.py."""

import numpy as np
import pytest

from window_helpers import send_mouse, write_recording
from qt_image_recordings import CONV0, PEAK, PLANTED_BOX, write_image_recording


@pytest.fixture
def image_window(window, tmp_path):
    assert window.open_file(write_image_recording(tmp_path / "images.h5"))
    window.show_panel("image")
    return window


def panel_of(window):
    return window.panels["image"]


def planted_pixel_box():
    """The input-pixel box holding exactly the centres of PLANTED_BOX's cells (stride 2, offset 0.5)."""
    y0, x0, y1, x1 = PLANTED_BOX
    return (2.0 * y0 + 0.5, 2.0 * x0 + 0.5, 2.0 * y1 + 0.5, 2.0 * x1 + 0.5)


def test_the_image_dock_opens_for_an_image_recording_only(window, tmp_path):
    assert window.open_file(write_recording(tmp_path / "tokens.h5", n_items=2, item_length=20))
    panel = panel_of(window)
    assert not window.docks["image"].isVisible()
    assert panel.stack.currentIndex() == 0 and "has no images" in panel.message_label.text()
    assert not panel.find_top()
    assert window.open_file(write_image_recording(tmp_path / "images.h5"))
    assert window.docks["image"].isVisible() and panel.stack.currentIndex() == 1
    assert [panel.tap_combo.itemData(i) for i in range(panel.tap_combo.count())] == ["conv0"]  # not input, not fc
    assert panel.scalar_combo.currentData() == "fc"


def test_box_selects_the_planted_units_and_the_overlay_is_their_mean_at_the_right_pixels(image_window):
    from PySide6 import QtCore

    panel = panel_of(image_window)
    recording = image_window.workspace.recording
    panel.set_box(planted_pixel_box())
    assert panel.selection.pairs() == [(2, 1), (3, 1)]  # 5 is on on the ring too
    block = recording.item_states("conv0", 0)
    expected = block[:, [2, 3]].mean(1).reshape(CONV0.size.height, CONV0.size.width)
    image = panel.canvas.overlay_image()
    assert image.shape == expected.shape and np.allclose(image, expected, atol=1e-6)
    # every cell is drawn over the stride square around the pixel it is centred on
    g = CONV0.geometry
    for i in range(CONV0.size.height):
        for j in range(CONV0.size.width):
            for dy, dx in ((0.0, 0.0), (-0.9, -0.9), (0.9, 0.9)):
                y = g.offset[0] + i * g.stride[0] + 0.5 + dy
                x = g.offset[1] + j * g.stride[1] + 0.5 + dx
                p = panel.canvas.overlay.mapFromParent(QtCore.QPointF(x, y))
                assert (int(np.floor(p.y())), int(np.floor(p.x()))) == (i, j)
    # the input is drawn over the image's own pixels, its values those of the input tap
    pixels = recording.item_states("input", 0).reshape(12, 12, 3)
    assert np.allclose(panel.canvas.input_item.image, pixels)
    # the box's units stay on the overlay in the next image (the box itself is dropped)
    panel.next_button.click()
    assert panel.item == 1 and panel.box is None
    assert np.allclose(panel.canvas.overlay_image().reshape(-1), recording.item_states("conv0", 1)[:, [2, 3]].mean(1))
    assert "mean of units 2, 3" in panel.legend_label.text()


def test_one_unit_and_norm_modes(image_window):
    panel = panel_of(image_window)
    block = image_window.workspace.recording.item_states("conv0", 0)
    panel.mode_combo.setCurrentIndex(panel.mode_combo.findData("unit"))
    panel.unit_spin.setValue(6)
    assert image_window.workspace.panel_state("image").mode == "unit"
    assert np.array_equal(panel.canvas.overlay_image().reshape(-1), block[:, 6])
    panel.mode_combo.setCurrentIndex(panel.mode_combo.findData("norm"))
    assert np.allclose(panel.canvas.overlay_image().reshape(-1), np.linalg.norm(block, axis=1), rtol=1e-5)
    assert "L2 norm over the 8 channels" in panel.legend_label.text()


def test_the_colour_scale_is_fixed_per_tap(qtbot, image_window):
    from lstmviz.analysis.transforms import tap_stats

    panel = panel_of(image_window)
    panel.mode_combo.setCurrentIndex(panel.mode_combo.findData("unit"))
    panel.unit_spin.setValue(6)
    qtbot.waitUntil(lambda: panel._scale_fixed, timeout=20000)
    stats = tap_stats(image_window.workspace.recording, "conv0", cache=False)
    band = (max(stats.minimum[6], stats.mean[6] - 3 * stats.std[6]), min(stats.maximum[6], stats.mean[6] + 3 * stats.std[6]))
    assert panel.canvas.levels == pytest.approx(band)
    assert "fixed for this tap" in panel.legend_label.text()
    levels = panel.canvas.levels
    with qtbot.waitSignal(panel.image_shown):
        panel.next_button.click()
    assert panel.item == 1 and panel.canvas.levels == levels  # not this image's own range
    assert panel.canvas.overlay_image().max() == pytest.approx(PEAK[1])


def test_dragging_a_box_selects_by_the_box_rule(qtbot, image_window):
    import pyqtgraph as pg

    from lstmviz.analysis.image_regions import BoxSpec, select_box_units

    panel = panel_of(image_window)
    panel.ring_spin.setValue(0)
    qtbot.waitUntil(lambda: panel.canvas.plot.isVisible() and panel.canvas.plot.height() > 150)
    panel.canvas.fit()
    viewport = panel.canvas.plot.viewport()
    start, end = panel.canvas.view_point(2.2, 2.2), panel.canvas.view_point(5.8, 7.8)
    limit = pg.getConfigOption("mouseRateLimit")
    pg.setConfigOption("mouseRateLimit", -1)
    try:
        with qtbot.waitSignal(panel.selection_changed):
            send_mouse(viewport, "press", start)
            send_mouse(viewport, "move", (start + end) / 2)
            send_mouse(viewport, "move", end)
            send_mouse(viewport, "release", end)
    finally:
        pg.setConfigOption("mouseRateLimit", limit)
    y0, x0, y1, x1 = panel.box
    assert y0 == pytest.approx(2.2, abs=0.1) and x1 == pytest.approx(7.8, abs=0.1)
    values = image_window.workspace.recording.item_states("conv0", 0)
    expected = select_box_units(values, CONV0.geometry, CONV0.size, BoxSpec(panel.box, threshold=0.3, ring=0))
    assert panel.selection.pairs() == expected.pairs() == [(2, 1), (3, 1), (5, 1)]
    assert list(panel.selection.extra["cells"]) == list(expected.extra["cells"])
    panel.ring_spin.setValue(1)  # the ring setting reruns the rule: unit 5 is on on the ring
    assert panel.selection.pairs() == [(2, 1), (3, 1)]


def test_click_lists_the_cell_top_units(qtbot, image_window):
    panel = panel_of(image_window)
    with qtbot.waitSignal(panel.cell_clicked) as blocker:
        panel.canvas.clicked.emit(3.0, 7.0)  # pixel (3, 7): cell (1, 3)
    assert blocker.args == [1 * 6 + 3]
    assert panel.cell_label.text().startswith("Cell (1, 3) top units: 2: 1, 3: 1, 5: 1")


def test_top_activating_images_follow_numpy_and_a_thumbnail_goes_there(qtbot, image_window):
    panel = panel_of(image_window)
    recording = image_window.workspace.recording
    panel.mode_combo.setCurrentIndex(panel.mode_combo.findData("unit"))
    panel.unit_spin.setValue(6)
    with qtbot.waitSignal(panel.top_ready, timeout=20000):
        assert panel.find_top()
    peaks = [recording.item_states("conv0", i)[:, 6].max() for i in range(recording.n_items)]
    assert list(panel.top.items) == sorted(range(recording.n_items), key=lambda i: (-peaks[i], i))
    assert len(panel.top_grid.thumbnails) == recording.n_items
    first = panel.top_grid.thumbnails[0]
    heat, rect = first.heat  # the unit's heatmap over the thumbnail, the map's cells over the image
    assert (heat.height(), heat.width()) == (6, 6) and rect == (0.0, 0.0, 12, 12)
    assert heat.pixelColor(3, 3).alpha() > heat.pixelColor(0, 0).alpha()  # cell 21 = (3, 3) is the peak
    assert first.box == pytest.approx((2 * 3 + 1 - 2, 2 * 3 + 1 - 2, 2 * 3 + 1 + 2, 2 * 3 + 1 + 2))  # item 3, cell 21
    with qtbot.waitSignal(panel.image_shown):
        first.clicked.emit(0)
    assert panel.item == 3 and image_window.workspace.item == 3 and panel.clicked_cell == 21


def test_top_images_without_units_say_so(image_window):
    panel = panel_of(image_window)
    assert not panel.find_top()
    assert "Select units first" in panel.status_text()


def test_a_running_top_search_can_be_cancelled(qtbot, image_window, monkeypatch):
    from lstmviz.analysis import image_top

    def held(*args, task=None, **kwargs):
        task._cancel.wait(20)
        task.check()

    monkeypatch.setattr(image_top, "top_activating", held)
    panel = panel_of(image_window)
    panel.set_box(planted_pixel_box())
    assert panel.find_top() and panel.busy
    with qtbot.waitSignal(panel.busy_changed, timeout=20000) as blocker:
        panel.cancel()
    assert blocker.args == [False] and panel.status_text() == "Top-images search cancelled."


def test_item_navigation(qtbot, image_window):
    panel = panel_of(image_window)
    with qtbot.waitSignal(panel.image_shown):
        image_window.workspace.go_to_item(3)
    assert panel.item == 3 and panel.item_spin.value() == 3
    with qtbot.waitSignal(panel.image_shown):
        panel.next_button.click()
    assert panel.item == 4 and image_window.workspace.item == 4
    with qtbot.waitSignal(panel.image_shown):
        panel.prev_button.click()
    with qtbot.waitSignal(panel.image_shown):
        panel.item_spin.setValue(1)
    assert image_window.workspace.item == 1
    # the vector taps' table shows item 1's fc units (i + j / 10), largest first
    table = panel.scalar_table
    assert table.rowCount() == 5
    assert [table.item(r, 0).data(0) for r in range(5)] == [4, 3, 2, 1, 0]
    assert table.item(0, 1).data(0) == pytest.approx(1.4)


def test_match_tab_says_when_image_match_is_missing(image_window, monkeypatch):
    from lstmviz.qt.image import panel as panel_module

    monkeypatch.setattr(panel_module, "has_image_match", lambda: False)
    panel = panel_of(image_window)
    panel._show_match_hook()
    assert not panel.match_button.isEnabled() and "image_match" in panel.match_label.text()
    assert not panel.match()


def test_match_finds_the_planted_region_and_a_thumbnail_goes_there(qtbot, image_window):
    panel = panel_of(image_window)
    panel.set_box(planted_pixel_box())
    assert panel.match_button.isEnabled()
    with qtbot.waitSignal(panel.matches_ready, timeout=20000):
        assert panel.match()
    res = panel.results
    y0, x0, y1, x1 = PLANTED_BOX
    planted = [y * 6 + x for y in range(y0, y1) for x in range(x0, x1)]
    assert len(res) == 1 and int(res.items[0]) == 0 and list(res.match_cells(0)) == planted
    thumb = panel.match_grid.thumbnails[0]
    assert thumb.box == pytest.approx((2.0, 2.0, 6.0, 8.0))  # the stride tiles of the region's cells
    with qtbot.waitSignal(panel.image_shown):
        panel.item_spin.setValue(3)  # another image: the click goes back to image 0
    assert panel.box is None
    with qtbot.waitSignal(panel.selection_changed):
        thumb.clicked.emit(0)
    assert panel.item == 0 and image_window.workspace.item == 0
    assert panel.box == pytest.approx((2.0, 2.0, 6.0, 8.0)) and panel.selection.pairs() == [(2, 1), (3, 1)]


def test_hover_outlines_the_receptive_field_of_the_cell(image_window):
    panel = panel_of(image_window)
    panel.canvas.hovered.emit(3.0, 7.0)  # cell (1, 3): centred on pixel point (3, 7), field 4
    xs, ys = panel.canvas.field.getData()
    assert (min(ys), min(xs), max(ys), max(xs)) == (1.0, 5.0, 5.0, 9.0)
    assert panel.hover_label.text().startswith("pixel (3, 7) · cell (1, 3)")
    panel.field_check.setChecked(False)
    panel.canvas.hovered.emit(3.0, 7.0)
    assert panel.canvas.field.getData()[0] is None or len(panel.canvas.field.getData()[0]) == 0
    panel.canvas.hovered.emit(float("nan"), float("nan"))
    assert panel.hover_label.text().strip() == ""


def test_without_an_input_tap_the_token_ids_are_the_image(window, tmp_path):
    assert window.open_file(write_image_recording(tmp_path / "noinput.h5", with_input=False))
    panel = panel_of(window)
    recording = window.workspace.recording
    ids = recording.token_ids(*recording.item_range(0)).reshape(12, 12).astype(np.float32)
    assert np.allclose(panel.canvas.input_item.image, (ids - ids.min()) / (ids.max() - ids.min()))
    assert "token ids" in panel.input_what
    # a main-axis tap other than the input is a map of stride 1 like any other
    assert [panel.tap_combo.itemData(i) for i in range(panel.tap_combo.count())] == ["edges", "conv0"]


def test_the_panel_settings_go_in_the_workspace_file(image_window):
    from lstmviz.qt.image.state import IMAGE_STATE, ImageSettings

    panel = panel_of(image_window)
    panel.ring_spin.setValue(2)
    panel.reduce_combo.setCurrentIndex(panel.reduce_combo.findData("mean"))
    state = image_window.workspace.panel_state("image")
    assert (state.ring, state.reduce, state.tap) == (2, "mean", "conv0")
    assert IMAGE_STATE.from_values(IMAGE_STATE.to_values(state)) == state
    image_window.workspace.set_panel_state("image", ImageSettings(tap="conv0", mode="norm", ring=3))
    assert panel.mode_combo.currentData() == "norm" and panel.ring_spin.value() == 3
