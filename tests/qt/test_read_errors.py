"""A read of the recording that fails while the window shows it (issue 10.12): a sentence in the pane,
one notification, blanks where the data could not be read, and a window that goes on working."""

import threading

import numpy as np
import pytest
from conftest import drag_tokens, write_recording
from damaged_recordings import damage_first_chunk
from PySide6 import QtCore

from lstmviz.workspace.guarded_recording import BLANK_TOKEN, GuardedRecording
from lstmviz.qt.match.table_model import MatchTableModel
from lstmviz.recording import RecordingError, RecordingWriter, open_recording


def test_a_damaged_chunk_is_a_sentence_in_the_pane_and_one_notification(qtbot, window, tmp_path, captured_errors):
    path = damage_first_chunk(write_recording(tmp_path / "small.h5"), "layer0/h")  # rows 0-59: item 0
    assert window.open_file(path)
    ws = window.workspace
    plot = window.state_plot.active_plot
    assert ws.tap == "layer0/h"  # the tap the window opens on
    assert plot.problem_label.isVisible()
    assert "cannot read tap 'layer0/h' rows 0..100" in plot.problem_label.toPlainText()  # the window
    assert ws.values().shape == (100, 48) and np.isnan(ws.values()).all()  # blanks, not made-up numbers
    qtbot.waitUntil(lambda: len(captured_errors) == 1)  # queued: the read happened inside a redraw
    title, message = captured_errors[0]
    assert title == "Cannot read part of the recording" and str(path) in message and "damaged" in message

    # the window goes on: brush and hover over the blanks, then look at what can be read
    drag_tokens(window, 10, 14)
    assert ws.active_pane.brush == (10, 15) and not ws.active_pane.selection
    ws.set_hover(12, 0.5)
    assert ws.hover is not None and ws.hover.unit is None
    ws.go_to_item(2)
    assert not plot.problem_label.isVisible() and np.isfinite(ws.values()).all()
    ws.go_to_item(0)
    assert plot.problem_label.isVisible()
    ws.set_tap("layer1/c")
    assert not plot.problem_label.isVisible() and np.isfinite(ws.values()).all()
    QtCore.QCoreApplication.processEvents()
    assert len(captured_errors) == 1  # once per tap, not once per scroll step


@pytest.fixture
def recording(tmp_path):
    path = tmp_path / "rec.h5"
    with RecordingWriter(path, vocab=["a", "b"]) as w:
        w.add_tap("layer0/c", 4)
        w.add_annotation("depth", kind="categorical", labels=["0", "1"])
        w.add_annotation("score", kind="numeric")
        w.add_annotation("kind", kind="categorical", level="item", labels=["x", "y"])
        for _ in range(2):
            w.append_item(np.array([0, 1, 0, 1, 0]), {"layer0/c": np.ones((5, 4), np.float32)},
                          annotations={"depth": np.array([0, 1, 0, 1, 0]), "score": np.arange(5.0)},
                          item_annotations={"kind": 1})
    rec = open_recording(path)
    yield rec
    rec.close()


def _broken(rec, monkeypatch, *methods):
    def fail(*args, **kwargs):
        raise RecordingError(rec.path, "cannot read it: the file is damaged")

    for method in methods:
        monkeypatch.setattr(rec, method, fail)


def test_guarded_reads_give_blanks_of_the_asked_shape_and_say_why_once_per_read(recording, monkeypatch):
    said = []
    guarded = GuardedRecording(recording, lambda key, sentence: said.append(key))
    assert guarded.tokens(0, 3) == ["a", "b", "a"] and guarded.n_positions == 10  # everything else passes through
    _broken(recording, monkeypatch, "tokens", "states", "annotation")
    assert guarded.tokens(2, 5) == [BLANK_TOKEN] * 3
    states = guarded.states("layer0/c", 1, 4)
    assert states.shape == (3, 4) and states.dtype == np.float32 and np.isnan(states).all()
    assert guarded.states("layer0/c", 0, 2, units=[1, 3]).shape == (2, 2)
    assert guarded.states("layer0/c", units=slice(0, 3)).shape == (10, 3)
    assert guarded.item_states("layer0/c", 1).shape == (5, 4)
    depth = guarded.annotation("depth", 0, 4)
    assert depth.tolist() == [-1] * 4 and depth.dtype == np.int32
    assert np.isnan(guarded.annotation("score", 3, 5)).all() and guarded.annotation("kind").tolist() == [-1, -1]
    assert said == ["tokens", "tap:layer0/c", "tap:layer0/c", "tap:layer0/c", "tap:layer0/c",
                    "annotation:depth", "annotation:score", "annotation:kind"]
    assert set(guarded.problems) == {"tokens", "tap:layer0/c", "annotation:depth", "annotation:score",
                                     "annotation:kind"}
    assert "the file is damaged" in guarded.problems["tokens"]

    # a worker thread gets the error itself (its failure path states it; nothing is computed on blanks)
    raised = []
    thread = threading.Thread(target=lambda: raised.append(_raises(lambda: guarded.states("layer0/c", 0, 2))))
    thread.start()
    thread.join()
    assert raised == [True]
    # a read that works again clears its problem; a wrong argument is not a damaged file
    monkeypatch.undo()
    assert guarded.tokens(0, 2) == ["a", "b"] and "tokens" not in guarded.problems
    with pytest.raises(IndexError):
        guarded.tokens(0, 99)


def _raises(read) -> bool:
    try:
        read()
    except RecordingError:
        return True
    return False


def test_a_model_reset_that_fails_still_ends(recording, monkeypatch):
    """A strip's colour range is read inside the reset; when that read fails, the reset still ends
    (else Qt warns "beginResetModel called ... without calling endResetModel first", which fails the test)."""
    model = MatchTableModel()
    model.set_results(None, recording)
    _broken(recording, monkeypatch, "annotation")
    with pytest.raises(RecordingError):
        model.set_annotations(["score"])
    model.set_context(5, 5)
    assert model.left == 5


def test_a_recording_without_position_taps_shows_a_sentence(qtbot, window, tmp_path, captured_errors):
    path = tmp_path / "grid.h5"
    with RecordingWriter(path, vocab=["a", "b"]) as w:
        w.add_axis("grid", description="a coarser axis")
        w.add_tap("conv/x", 4, axis="grid")
        w.add_annotation("depth", kind="categorical", labels=["0", "1"])
        for _ in range(2):
            w.append_item(np.array([0, 1, 0, 1]), {"conv/x": np.zeros((2, 4), np.float32)},
                          annotations={"depth": np.array([0, 1, 0, 1])})
    assert window.open_file(path)
    ws = window.workspace
    assert ws.panes == [] and window.state_plot.pane_plots == []
    texts = [item.text for item in window.state_plot.ci.items if hasattr(item, "text")]
    assert any("has no tap over its positions" in t for t in texts)
    assert "no tap over its positions" in window.panels["selection"].header.text()
    assert ws.add_pane() is None
    assert captured_errors == [("Cannot add a pane", "This recording has no tap over its positions to show.")]
    window.navigation.add_pane_button.click()  # the button says the same, no exception
    assert len(captured_errors) == 2 and ws.panes == []


def test_an_export_that_meets_a_damaged_part_is_refused_not_filled_with_blanks(qtbot, planted, tmp_path,
                                                                               monkeypatch):
    from PySide6 import QtWidgets

    from lstmviz.qt import widget_export

    ws = planted.workspace
    with qtbot.waitSignal(ws.active_pane.selection_changed):
        drag_tokens(planted, 10, 14)
    panel = planted.panels["match"]
    with qtbot.waitSignals([panel.results_changed, panel.aggregate_changed], timeout=60000):
        panel.match_action.trigger()
    _broken(ws.recording.unguarded, monkeypatch, "tokens")  # the tokens around the matches cannot be read
    said = []
    monkeypatch.setattr(widget_export, "show_error", lambda parent, title, message, details="": said.append(message))
    target = tmp_path / "matches.csv"
    monkeypatch.setattr(QtWidgets.QFileDialog, "getSaveFileName",
                        lambda *a, **k: (str(target), "Matches, CSV table (*.csv)"))
    assert not panel.choose_and_export_data()
    assert len(said) == 1 and "the file is damaged" in said[0]
    assert not target.exists()
