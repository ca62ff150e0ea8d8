"""The views' details: token labels, hover read-out, item boundaries, transforms, shortcuts, recent files."""

import numpy as np
import pytest
from PySide6 import QtCore

from lstmviz.qt.palette import is_ordinal, label_colors
from lstmviz.qt.state_plot import unit_lines
from lstmviz.qt.token_text import display_token
from lstmviz.recording import open_recording


def test_whitespace_tokens_are_visible_glyphs():
    assert display_token("\n") == "⏎"
    assert display_token(" ") == "·"
    assert display_token("\t") == "⇥"
    assert display_token("a b") == "a·b"
    assert display_token("") == "∅"
    assert display_token("\x07") == "�"
    assert display_token("word") == "word"


def test_unit_lines_put_a_nan_after_every_unit():
    values = np.arange(12, dtype=np.float32).reshape(4, 3)  # 4 positions, 3 units
    x, y = unit_lines(10, values)
    assert x.shape == y.shape == (3 * 5,)
    x, y = x.reshape(3, 5), y.reshape(3, 5)
    assert np.isnan(x[:, 4]).all() and np.isnan(y[:, 4]).all()
    np.testing.assert_array_equal(x[:, :4], np.tile(np.arange(10, 14), (3, 1)))
    np.testing.assert_array_equal(y[:, :4], values.T)


def test_integer_labels_get_an_ordered_ramp_and_names_a_qualitative_palette():
    assert is_ordinal(["0", "1", "2"]) and not is_ordinal(["open", "close"])
    ramp = label_colors(["0", "1", "2", "3"])
    darkness = [sum(c) for c in ramp]
    assert darkness == sorted(darkness, reverse=True)  # deeper = darker
    assert len(set(label_colors(["open", "close", "digit"]))) == 3


def test_token_axis_writes_characters_upright_and_long_words_vertically(window, recording_path):
    window.open_file(recording_path)
    axis = window.state_plot.token_axis
    scale = axis._pixels_per_position()
    assert scale > 0
    axis.set_tokens(0, list("the zen of python, by tim peters") * 4)
    vertical, stride, _ = axis._label_mode(scale)
    assert not vertical and stride == 1
    short_height = axis.fixedHeight
    axis.set_tokens(0, ["internationalisation"] * 100)
    vertical, _, _ = axis._label_mode(scale)
    assert vertical and axis.fixedHeight > short_height
    assert axis._label_mode(2.0)[1] > 1  # columns narrower than a line: every k-th label


def test_hover_reports_the_nearest_unit_and_highlights_it(window, recording_path, qtbot):
    window.open_file(recording_path)
    ws = window.workspace
    ws.set_transform("raw")  # chosen: the file's values whatever the tap
    ws.set_tap("layer1/c")  # unit 0 of layer1/c is 2 * depth
    start, stop = ws.window_range()
    with open_recording(recording_path) as rec:
        states = rec.states("layer1/c", start, stop)
        depth = rec.annotation("depth", start, stop)
    position = start + 7
    target = float(states[7].max()) + 100.0  # far above every line: the top unit is the nearest
    with qtbot.waitSignal(ws.hover_changed) as blocker:
        ws.set_hover(position, target)
    hover = blocker.args[0]
    assert hover.position == position and hover.unit == int(states[7].argmax())
    assert hover.value == pytest.approx(float(states[7].max()))
    assert hover.labels == {"depth": str(int(depth[7]))}
    _, y = window.state_plot.highlight_curve.getData()
    np.testing.assert_allclose(y, states[:, hover.unit], rtol=1e-6)
    assert f"unit {hover.unit}" in window.statusBar().hover_label.text().replace("<b>", "").replace("</b>", "")
    assert window.state_plot.hover_label.isVisible()
    with qtbot.waitSignal(ws.hover_changed):
        ws.set_hover(None)
    assert not window.state_plot.hover_label.isVisible()


def test_moving_the_mouse_over_the_plot_hovers(window, recording_path, qtbot):
    window.open_file(recording_path)
    plot = window.state_plot
    scene_point = plot.view_box.mapViewToScene(QtCore.QPointF(window.workspace.window_start + 3, 0.0))
    with qtbot.waitSignal(window.workspace.hover_changed) as blocker:
        plot.scene().sigMouseMoved.emit(scene_point)
    assert blocker.args[0].position == window.workspace.window_start + 3


def test_a_window_across_items_marks_the_boundaries(window, recording_path):
    window.open_file(recording_path)
    ws = window.workspace
    with open_recording(recording_path) as rec:
        boundary = rec.item_range(1)[0]
    ws.set_window_start(boundary - 10)
    assert ws.item == 0 and boundary in ws.item_starts()
    x, _ = window.state_plot.boundary_lines.getData()
    assert boundary - 0.5 in set(x.tolist())
    assert window.state_plot.token_axis._item_starts == ws.item_starts()


def test_tanh_transform_draws_tanh_of_the_file_values(window, recording_path):
    window.open_file(recording_path)
    ws = window.workspace
    window.state_plot.strips[0].transform_combo.activated.emit(1)
    assert ws.transform == "tanh" and window.transform_actions["tanh"].isChecked()
    start, stop = ws.window_range()
    _, y = window.state_plot.curve.getData()
    y = y.reshape(-1, stop - start + 1)[:, :-1]
    with open_recording(recording_path) as rec:
        np.testing.assert_allclose(y, np.tanh(rec.states(ws.tap, start, stop)).T, rtol=1e-5)
    assert ws.value_range() == (-1.0, 1.0)


def test_y_range_is_symmetric_when_values_are_negative(window, recording_path):
    window.open_file(recording_path)
    low, high = window.workspace.value_range()
    assert low == -high and high >= np.abs(window.workspace.values()).max()


def test_keyboard_moves_through_positions_and_items(window, recording_path, qtbot):
    window.open_file(recording_path)
    ws = window.workspace
    window.state_plot.setFocus()
    with qtbot.waitSignal(ws.window_changed):
        qtbot.keyClick(window.state_plot, QtCore.Qt.Key.Key_Right)
    assert ws.window_start == 1
    with qtbot.waitSignal(ws.item_changed):
        qtbot.keyClick(window.state_plot, QtCore.Qt.Key.Key_PageDown)
    assert ws.item == 1
    with qtbot.waitSignal(ws.item_changed):
        qtbot.keyClick(window.state_plot, QtCore.Qt.Key.Key_PageUp)
    assert ws.item == 0 and ws.window_start == 0


def test_window_width_and_scroll_bar_follow_the_workspace(window, recording_path, qtbot):
    window.open_file(recording_path)
    ws = window.workspace
    with qtbot.waitSignal(ws.window_changed):
        window.navigation.width_spin.setValue(40)
    assert ws.window_width == 40 and window.scroller.pageStep() == 40
    _, y = window.state_plot.curve.getData()
    assert y.size == 48 * 41  # 48 units of layer0/c, 40 positions and a separator each
    with qtbot.waitSignal(ws.window_changed):
        window.scroller.setValue(17)
    assert ws.window_start == 17


def test_recent_files_are_remembered(qtbot, recording_path, tmp_path):
    from lstmviz.qt.main_window import MainWindow

    settings = QtCore.QSettings(str(tmp_path / "settings.ini"), QtCore.QSettings.Format.IniFormat)
    win = MainWindow(settings=settings)
    qtbot.addWidget(win)
    assert win.open_file(recording_path)
    win._fill_recent_menu()
    names = [a.text() for a in win.recent_menu.actions()]
    assert "small.h5" in names
    again = QtCore.QSettings(str(tmp_path / "settings.ini"), QtCore.QSettings.Format.IniFormat)
    reopened = MainWindow(settings=again)
    qtbot.addWidget(reopened)
    assert str(recording_path.resolve()) in reopened.recent_files.paths()
