"""The main window driven through real widgets: open, draw, navigate, bad files, drag-and-drop."""

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from lstmviz.recording import open_recording


def _lines(curve, n):
    """A curve's data as [lines, n] x and y arrays; every line must end in a NaN separator."""
    x, y = curve.getData()
    x, y = x.reshape(-1, n + 1), y.reshape(-1, n + 1)
    assert np.isnan(x[:, n]).all() and np.isnan(y[:, n]).all()
    return x[:, :n], y[:, :n]


def _curve_matrix(window):
    """The drawn curve as [units, positions] y values, and its x positions."""
    start, stop = window.workspace.window_range()
    return _lines(window.state_plot.curve, stop - start)


def _ink_pixels(widget) -> int:
    image = widget.grab().toImage().convertToFormat(QtGui.QImage.Format.Format_RGB32)
    arr = np.frombuffer(image.constBits(), dtype=np.uint8).reshape(image.height(), image.bytesPerLine() // 4, 4)
    background = np.median(arr[..., :3].reshape(-1, 3), axis=0)
    return int((np.abs(arr[..., :3].astype(int) - background).sum(axis=-1) > 60).sum())


def test_opens_a_recording_and_draws_every_unit_of_the_tap(window, recording_path, qtbot):
    with qtbot.waitSignal(window.workspace.view_changed):
        assert window.open_file(recording_path)
    ws = window.workspace
    xs, ys = _curve_matrix(window)
    with open_recording(recording_path) as rec:
        start, stop = ws.window_range()
        expected = rec.states(ws.tap, start, stop)
    assert ys.shape == (expected.shape[1], stop - start)  # one curve item holds every unit
    np.testing.assert_allclose(ys, expected.T, rtol=1e-6)
    np.testing.assert_array_equal(xs[0], np.arange(start, stop))
    assert _ink_pixels(window.state_plot) > 5000


def test_an_empty_window_invites_to_open(window):
    assert window.pages.currentWidget() is window.empty_label
    assert "Open" in window.empty_label.text()


def test_changing_the_tap_redraws_it(window, recording_path, qtbot):
    window.open_file(recording_path)
    window.workspace.set_transform("raw")  # chosen: the file's values whatever the tap
    combo = window.state_plot.strips[0].tap_combo  # the (active) pane's control strip
    index = combo.findData("layer1/c")
    assert index >= 0
    with qtbot.waitSignal(window.workspace.tap_changed):
        combo.setCurrentIndex(index)
        combo.activated.emit(index)
    _, ys = _curve_matrix(window)
    start, stop = window.workspace.window_range()
    with open_recording(recording_path) as rec:
        np.testing.assert_allclose(ys, rec.states("layer1/c", start, stop).T, rtol=1e-6)
    assert ys.shape[0] == 64


def test_moving_through_items_and_positions(window, recording_path, qtbot):
    window.open_file(recording_path)
    ws = window.workspace
    with qtbot.waitSignal(ws.item_changed):
        qtbot.mouseClick(window.navigation.next_item, QtCore.Qt.MouseButton.LeftButton)
    assert ws.item == 1
    with open_recording(recording_path) as rec:
        first = rec.item_range(1)[0]
    assert ws.window_range()[0] == first
    xs, _ = _curve_matrix(window)
    assert xs[0, 0] == first

    with qtbot.waitSignal(ws.window_changed):
        window.navigation.jump_edit.setText("130")
        qtbot.keyClick(window.navigation.jump_edit, QtCore.Qt.Key.Key_Return)
    start, stop = ws.window_range()
    assert start <= 130 < stop
    assert ws.item == 2  # position 130 lies in the third item of 60 positions each

    before = ws.window_start
    with qtbot.waitSignal(ws.window_changed):
        ws.scroll_by(5)
    assert ws.window_start == before + 5
    xs, _ = _curve_matrix(window)
    assert xs[0, 0] == before + 5


def test_tokens_of_the_window_are_shown_under_the_plot(window, recording_path):
    window.open_file(recording_path)
    ws = window.workspace
    start, stop = ws.window_range()
    with open_recording(recording_path) as rec:
        assert ws.tokens() == rec.tokens(start, stop)


def test_bad_file_shows_a_dialog_and_keeps_the_open_recording(window, recording_path, tmp_path, captured_errors):
    window.open_file(recording_path)
    bad = tmp_path / "garbage.h5"
    bad.write_bytes(b"\x00\x01not an hdf5 file" * 100)
    assert not window.open_file(bad)
    assert len(captured_errors) == 1
    _, message = captured_errors[0]
    assert "garbage.h5" in message and "Traceback" not in message
    assert str(window.workspace.recording.path).endswith("small.h5")
    assert window.pages.currentIndex() == 1


def test_drag_and_drop_opens_the_dropped_file(window, recording_path, other_recording_path, qtbot):
    window.open_file(recording_path)
    mime = QtCore.QMimeData()
    mime.setUrls([QtCore.QUrl.fromLocalFile(str(other_recording_path))])
    pos = QtCore.QPointF(window.width() / 2, window.height() / 2)
    actions = QtCore.Qt.DropAction.CopyAction
    enter = QtGui.QDragEnterEvent(pos.toPoint(), actions, mime, QtCore.Qt.MouseButton.LeftButton,
                                  QtCore.Qt.KeyboardModifier.NoModifier)
    window.dragEnterEvent(enter)
    assert enter.isAccepted()
    drop = QtGui.QDropEvent(pos, actions, mime, QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier)
    with qtbot.waitSignal(window.workspace.recording_changed):
        window.dropEvent(drop)
    assert str(window.workspace.recording.path).endswith("other.h5")


def test_a_drop_without_files_is_refused(window):
    mime = QtCore.QMimeData()
    mime.setText("hello")
    enter = QtGui.QDragEnterEvent(QtCore.QPoint(10, 10), QtCore.Qt.DropAction.CopyAction, mime,
                                  QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier)
    window.dragEnterEvent(enter)
    assert not enter.isAccepted()


def test_annotation_track_shows_the_labels_of_the_window(window, recording_path):
    window.open_file(recording_path)
    tracks = window.state_plot.tracks
    assert [t.name for t in tracks] == ["depth"]
    start, stop = window.workspace.window_range()
    with open_recording(recording_path) as rec:
        depth = rec.annotation("depth", start, stop)
    np.testing.assert_array_equal(tracks[0].values, depth)
    from lstmviz.qt.palette import label_colors

    colours = np.array(label_colors(["0", "1", "2", "3"]))
    np.testing.assert_array_equal(tracks[0].rgba()[:, :3], colours[depth])
    assert (tracks[0].rgba()[:, 3] == 255).all()  # nothing selected: no masking


def test_the_info_panel_describes_the_recording(window, recording_path):
    window.open_file(recording_path)
    text = window.panels["info"].toPlainText()
    for expected in ("small.h5", "layer1/c", "depth", "synthetic"):
        assert expected in text


def test_screenshot_writes_a_non_blank_png(recording_path, tmp_path, qapp):
    from lstmviz.qt.app import screenshot

    png = tmp_path / "shot.png"
    screenshot(str(png), str(recording_path), size=(1000, 700))
    image = QtGui.QImage(str(png))
    assert (image.width(), image.height()) == (1000, 700)
    colours = {image.pixel(x, y) for x in range(0, 1000, 9) for y in range(0, 700, 9)}
    assert len(colours) > 20


def test_unexpected_errors_become_a_readable_notification(window, monkeypatch):
    from lstmviz.qt import errors

    shown = []
    monkeypatch.setattr(errors, "show_error", lambda parent, title, message, details="": shown.append((message, details)))
    reporter = errors.ErrorReporter(window)
    try:
        raise RuntimeError("the tap has no values")
    except RuntimeError as exc:
        reporter.handle(type(exc), exc, exc.__traceback__)
    QtWidgets.QApplication.processEvents()
    assert shown and "the tap has no values" in shown[0][0] and "Traceback" in shown[0][1]


def test_highlighted_units_are_drawn_in_colour(window, recording_path, qtbot, captured_errors):
    window.open_file(recording_path)
    ws = window.workspace
    with qtbot.waitSignal(ws.units_changed):
        assert window.highlight_units("0, 2-3")
    assert ws.highlighted_units == [0, 2, 3]
    start, stop = ws.window_range()
    _, y = _lines(window.state_plot.units_curve, stop - start)
    with open_recording(recording_path) as rec:
        expected = rec.states(ws.tap, start, stop, units=[0, 2, 3])
    np.testing.assert_allclose(y, expected.T, rtol=1e-6)

    assert not window.highlight_units("7, x")
    assert not window.highlight_units("999")
    assert "999" in captured_errors[-1][1] and ws.highlighted_units == [0, 2, 3]

    with qtbot.waitSignal(ws.view_changed):
        ws.set_tap("layer1/c")
    assert _lines(window.state_plot.units_curve, stop - start)[1].shape == (3, stop - start)


def test_highlight_units_refuses_a_huge_range_in_a_sentence_without_building_it(window, recording_path, monkeypatch,
                                                                                 captured_errors):
    """View > Highlight Units… checks a range against the tap's width before expanding it."""
    window.open_file(recording_path)
    ws = window.workspace
    assert window.highlight_units("1, 3-4")
    answers = iter([("0-999999999", True), ("0-99999", True), ("-3", True), ("", True)])
    monkeypatch.setattr(QtWidgets.QInputDialog, "getText", lambda *args, **kwargs: next(answers))
    window.choose_units()  # the dialog's path: refused in one sentence naming the tap and its width
    assert captured_errors[-1] == ("Cannot highlight units",
                                   "unit 999,999,999 is beyond layer0/h, which has 48 units (0-47)")
    window.choose_units()  # a range the old parser expanded into a list of every missing unit
    assert captured_errors[-1][1] == "unit 99,999 is beyond layer0/h, which has 48 units (0-47)"
    window.choose_units()
    assert "'-3'" in captured_errors[-1][1] and len(captured_errors) == 3
    assert ws.highlighted_units == [1, 3, 4]  # what was highlighted stays
    window.choose_units()  # an emptied list: nothing highlighted
    assert ws.highlighted_units == [] and len(captured_errors) == 3
