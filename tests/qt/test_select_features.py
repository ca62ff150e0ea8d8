"""Z-scores, token search, saved workspaces and selection exports, through the real window."""

import csv
import json

import numpy as np
import pytest
from conftest import PLANTED_BRUSH
from PySide6 import QtCore

from lstmviz.recording import open_recording


def _selected(pane):
    return [] if pane.selection is None else pane.selection.pairs()


def test_zscore_shows_raw_values_until_the_statistics_are_computed(planted, qtbot, planted_path):
    ws = planted.workspace
    pane = ws.active_pane
    strip = planted.state_plot.strips[0]
    pane.set_brush(*PLANTED_BRUSH)
    with qtbot.waitSignal(ws.tap_stats.ready, timeout=30000):
        strip.transform_combo.activated.emit(strip.transform_combo.findData("zscore"))
        assert pane.transform == "zscore" and pane.effective_transform == "raw"  # raw until ready
        assert "computed" in planted.state_plot.pane_plots[0].titleLabel.text
    assert pane.effective_transform == "zscore"
    with open_recording(planted_path) as rec:
        everything = rec.states("layer0/c").astype(np.float64)
        start, stop = ws.window_range()
        window = rec.states("layer0/c", start, stop).astype(np.float64)
    expected = (window - everything.mean(axis=0)) / everything.std(axis=0)
    np.testing.assert_allclose(pane.values(), expected, rtol=1e-4, atol=1e-5)
    _, y = planted.state_plot.pane_plots[0].curve.getData()
    np.testing.assert_allclose(y.reshape(16, -1)[:, :-1], expected.T, rtol=1e-4, atol=1e-5)
    # the selection is made again on z-scores: at 0.3 standard deviations the range noise counts too
    z = (everything - everything.mean(axis=0)) / everything.std(axis=0)
    on = z[10:15] >= 0.3
    off = z[9] < 0.3
    assert _selected(pane) == [(int(u), 1) for u in np.flatnonzero(on.all(axis=0) & off)]
    assert pane.state().transform == "zscore"


def test_find_a_phrase_and_jump_to_a_hit(planted, qtbot):
    ws = planted.workspace
    planted.show_find()
    panel = planted.panels["find"]
    assert planted.docks["find"].isVisible()
    panel.set_query("( ( )")
    with qtbot.waitSignal(panel.results_ready, timeout=10000):
        qtbot.keyClick(panel.edit, QtCore.Qt.Key.Key_Return)
    assert [h.start for h in panel.hits] == [0, 7, 14, 21, 28, 35]  # item 0 repeats "( ( ) 0 1 2 )"
    assert panel.hits[2].text == "( ( )" and panel.hits[2].before.endswith("2 )")
    assert "6 hits" in panel.status.text()
    ws.set_window_start(80)
    item = panel.results.item(3)
    with qtbot.waitSignal(ws.window_changed):
        panel.results.itemClicked.emit(item)
    assert ws.window_start == 21 - 3


def test_find_a_regular_expression_and_report_a_bad_one_in_words(planted, qtbot):
    panel = planted.panels["find"]
    panel.set_query(r"\) 2 a", mode="regex")
    with qtbot.waitSignal(panel.results_ready, timeout=10000):
        panel.find_button.click()
    starts = [h.start for h in panel.hits]
    assert starts and all(s >= 40 for s in starts)  # only items 1 and 2 have "a b" tokens
    assert all(h.stop - h.start == 3 for h in panel.hits)  # ")", "2", "a b"
    panel.set_query("((", mode="regex")
    with qtbot.waitSignal(panel.results_ready, timeout=10000):
        panel.find()
    assert panel.hits == [] and "invalid regular expression" in panel.status.text()
    assert "Traceback" not in panel.status.text()


def _configure_two_panes(window):
    ws = window.workspace
    first = ws.active_pane
    first.set_brush(*PLANTED_BRUSH)
    first.set_padding(1, 2)
    first.set_threshold(0.25)
    first.add_unit(5, 1)
    first.remove_unit(3, 1)
    second = ws.add_pane("layer1/c")
    second.set_transform("tanh")
    second.set_brush(30, 33)
    second.set_direction("both")
    ws.set_window_width(60)
    ws.set_window_start(5)
    ws.set_visible_annotations(["score"])
    from lstmviz.qt.match.state import MatchSettings

    ws.set_panel_state("match", MatchSettings(mode="scored", limit=50, min_length=2))
    ws.set_active_pane(0)
    return first, second


def test_a_saved_workspace_restores_panes_and_selections_in_a_new_window(planted, qtbot, tmp_path):
    from lstmviz.qt.main_window import MainWindow

    first, second = _configure_two_panes(planted)
    state = planted.workspace.state()
    path = tmp_path / "session.lstmviz.json"
    assert planted.save_workspace(path)
    assert json.loads(path.read_text())["panes"][1]["tap"] == "layer1/c"

    other = MainWindow(settings=None)
    qtbot.addWidget(other)
    other.resize(1200, 760)
    other.show()
    with qtbot.waitSignal(other.workspace.panes_changed):
        assert other.open_workspace(path)
    ws = other.workspace
    assert ws.state() == state
    assert [p.tap for p in ws.panes] == ["layer0/c", "layer1/c"] and ws.active_pane is ws.panes[0]
    assert _selected(ws.panes[0]) == _selected(first) and (5, 1) in _selected(ws.panes[0])
    assert (3, 1) not in _selected(ws.panes[0])
    assert _selected(ws.panes[1]) == _selected(second) == [(2, 1), (4, 1)]
    assert (ws.window_start, ws.window_width) == (5, 60)
    assert [t.name for t in other.state_plot.tracks] == ["score"]
    assert len(other.state_plot.pane_plots) == 2
    assert other.state_plot.pane_plots[1].bands.bands()[0] == (30, 33)
    assert other.state_plot.strips[1].threshold_spin.value() == pytest.approx(second.threshold)


def test_a_workspace_that_does_not_fit_restores_the_rest_and_says_what_was_dropped(planted, tmp_path,
                                                                                   captured_errors):
    _configure_two_panes(planted)
    path = tmp_path / "session.lstmviz.json"
    planted.save_workspace(path)
    data = json.loads(path.read_text())
    data["panes"][1]["tap"] = "layer7/c"
    data["annotations"] = ["score", "sentiment"]
    path.write_text(json.dumps(data))
    assert planted.open_workspace(path)
    ws = planted.workspace
    assert [p.tap for p in ws.panes] == ["layer0/c"] and ws.panes[0].brush == PLANTED_BRUSH
    _, message = captured_errors[-1]
    assert "layer7/c" in message and "sentiment" in message
    path.write_text("{not json")
    assert not planted.open_workspace(path)
    assert "not valid JSON" in captured_errors[-1][1]
    assert [p.tap for p in ws.panes] == ["layer0/c"]  # nothing changed


def test_export_selection_data_as_csv_and_npy(planted, tmp_path, captured_errors):
    pane = planted.workspace.active_pane
    assert not planted.export_selection_data(tmp_path / "nothing.csv")  # no brush yet: said in a dialog
    assert "brush" in captured_errors[-1][1]
    pane.set_brush(*PLANTED_BRUSH)
    path = tmp_path / "selection.csv"
    assert planted.export_selection_data(path)
    with path.open() as f:
        rows = list(csv.DictReader(f))
    assert [(int(r["unit"]), int(r["sign"])) for r in rows] == [(3, 1), (7, 1), (9, 1), (12, 1)]
    assert all(float(r["margin"]) > 0 and float(r["on_fraction_range"]) == 1.0 for r in rows)
    with (tmp_path / "selection-candidates.csv").open() as f:
        candidates = list(csv.DictReader(f))
    assert len(candidates) == 16 and [int(r["rank"]) for r in candidates] == list(range(1, 17))
    assert {int(r["unit"]) for r in candidates[:5]} >= {3, 7}
    npy = tmp_path / "selection.npy"
    assert planted.export_selection_data(npy)
    table = np.load(npy)
    assert table["unit"].tolist() == [3, 7, 9, 12]


def test_export_plot_draws_every_pane(planted, tmp_path):
    import xml.etree.ElementTree as ET

    planted.workspace.active_pane.set_brush(*PLANTED_BRUSH)
    planted.workspace.add_pane("layer1/c")
    path = tmp_path / "view.svg"
    assert planted.export_plot(path)
    text = path.read_text()
    ET.fromstring(text)
    assert "layer0/c" in text and "layer1/c" in text  # both panes' titles


def test_zscore_statistics_that_fail_are_said_in_words_and_the_pane_shows_raw_values(planted, qtbot, monkeypatch,
                                                                                      captured_errors):
    from lstmviz.analysis import transforms

    def broken(recording, tap, task=None, cache=True):
        raise OSError("the disk is gone")

    monkeypatch.setattr(transforms, "tap_stats", broken)
    ws = planted.workspace
    pane = ws.active_pane
    with qtbot.waitSignal(ws.tap_stats.failed, timeout=10000):
        pane.set_transform("zscore")
    assert pane.transform == "raw" and pane.effective_transform == "raw"
    _, message = captured_errors[-1]
    assert "z-score" in message and "the disk is gone" in message and "layer0/c" in message
    planted.state_plot.redraw()  # drawing again does not start (and fail) the computation again
    assert not ws.tap_stats.busy and len(captured_errors) == 1
