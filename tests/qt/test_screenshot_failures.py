"""``lstmviz --screenshot`` writes a picture only when it shows what was asked for (issue 10.13, 10.11):
a bad target is one line before any window exists; a notification, an exception in a slot or a failed
read while rendering is one line, exit status 1, and no file; never a dialog."""

import os

import pytest
from conftest import write_recording
from damaged_recordings import damage_first_chunk
from PySide6 import QtWidgets

from lstmviz.cli import main
from lstmviz.qt import app
from lstmviz.qt.app import ScreenshotError, screenshot


@pytest.fixture(autouse=True)
def no_dialogs(monkeypatch):
    def refuse(box):
        raise AssertionError(f"a modal dialog was opened: {box.text()}")

    monkeypatch.setattr(QtWidgets.QMessageBox, "exec", refuse)


def _one_error_line(capsys) -> str:
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err and captured.out == ""
    return lines[0]


def test_a_failed_read_while_rendering_is_one_line_exit_1_and_no_file(qapp, tmp_path, capsys):
    path = damage_first_chunk(write_recording(tmp_path / "small.h5"), "layer0/h")
    png = tmp_path / "shot.png"
    assert main(["--screenshot", str(png), str(path)]) == 1
    line = _one_error_line(capsys)
    assert line.startswith("lstmviz: error: the window did not show what was asked for, so no screenshot was written")
    assert "Cannot read part of the recording" in line and "cannot read tap 'layer0/h'" in line
    assert sorted(os.listdir(tmp_path)) == ["small.h5"]  # neither the picture nor a temporary file


def test_an_exception_in_a_slot_while_rendering_fails_the_screenshot(qapp, tmp_path, monkeypatch, recording_path):
    from lstmviz.qt import pane_plot

    def broken(self):
        raise RuntimeError("the title cannot be drawn")

    monkeypatch.setattr(pane_plot.PanePlot, "_update_title", broken)
    png = tmp_path / "shot.png"
    with pytest.raises(ScreenshotError, match="RuntimeError: the title cannot be drawn"):
        screenshot(str(png), str(recording_path), size=(900, 600))
    assert not png.exists()


def test_a_good_screenshot_replaces_the_old_picture(qapp, tmp_path, recording_path):
    png = tmp_path / "shot.png"
    png.write_bytes(b"old")
    assert screenshot(str(png), str(recording_path), size=(900, 600)) == []
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(os.listdir(tmp_path)) == sorted(["shot.png", recording_path.name])


def test_a_target_that_cannot_be_written_is_one_line_before_any_window(qapp, tmp_path, monkeypatch, capsys,
                                                                      recording_path):
    from lstmviz.qt import main_window

    def no_window(*args, **kwargs):
        raise AssertionError("a window was built for a screenshot that cannot be written")

    monkeypatch.setattr(main_window, "MainWindow", no_window)
    (tmp_path / "folder.png").mkdir()
    (tmp_path / "file").write_text("x")
    os.mkfifo(tmp_path / "fifo.png")
    cases = {
        tmp_path / "folder.png": "is a folder",
        tmp_path / "shot.gif": "a screenshot is a .png, .jpg, .jpeg, .bmp file",
        tmp_path / "shot": "a screenshot is a .png",
        tmp_path / "fifo.png": "exists and is not a regular file",
        tmp_path / "file" / "shot.png": "cannot be written",
    }
    for target, said in cases.items():
        with pytest.raises(ScreenshotError, match=said):
            screenshot(str(target), str(recording_path))
        assert main(["--screenshot", str(target), str(recording_path)]) == 1
        assert said in _one_error_line(capsys)
    assert os.path.exists(tmp_path / "fifo.png") and os.path.isdir(tmp_path / "folder.png")
    assert sorted(os.listdir(tmp_path)) == sorted(["folder.png", "file", "fifo.png", recording_path.name])


def test_qt_notes_of_the_offscreen_platform_are_left_out_and_others_passed_on(qapp, qtlog):
    from PySide6 import QtCore

    with app._quiet_qt_messages():
        QtCore.qInfo("This plugin does not support propagateSizeHints()")
        QtCore.qInfo("something else")
    messages = [record.message for record in qtlog.records]
    assert "something else" in messages and not any("propagateSizeHints" in m for m in messages)


def test_the_screenshot_gets_the_permissions_of_a_new_file(qapp, tmp_path, recording_path):
    """It was written to a private temporary file and renamed, so it stayed readable by its owner only."""
    png = tmp_path / "shot.png"
    previous = os.umask(0o022)
    try:
        screenshot(str(png), str(recording_path), size=(900, 600))
    finally:
        os.umask(previous)
    assert png.stat().st_mode & 0o777 == 0o644
