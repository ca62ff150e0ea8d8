"""The Match panel: Match runs index + search on workers, the rows are matching.match's result, a click
shows the match, settings live in the workspace, newer requests win, errors are reported in words."""

import threading

import numpy as np
import pytest
from PySide6 import QtCore, QtWidgets
from test_match_helpers import (
    PLANTED,
    TAP,
    THRESHOLD,
    FakeWorkspace,
    index_for,
    write_planted_recording,
)

from lstmviz.analysis.aggregate import aggregate, describe_enrichment, top_enrichments
from lstmviz.analysis.bitindex import IndexKey
from lstmviz.analysis.matching import match
from lstmviz.qt.match.state import MatchSettings
from lstmviz.qt.match import panel as match_panel
from lstmviz.qt.match.panel import MatchPanel
from lstmviz.qt.token_text import display_token
from lstmviz.qt.workers import TaskRunner
from lstmviz.recording import open_recording

TIMEOUT = 60000  # ms: the first match compiles the numba kernels


@pytest.fixture
def planted(tmp_path):
    path, runs = write_planted_recording(tmp_path / "planted.h5")
    recording = open_recording(path)
    yield recording, runs
    recording.close()


@pytest.fixture
def runner(qtbot):
    r = TaskRunner()
    yield r
    assert r.shutdown()


@pytest.fixture
def workspace(planted, runner):
    return FakeWorkspace(planted[0], runner)


@pytest.fixture
def panel(qtbot, workspace):
    p = MatchPanel(workspace)
    qtbot.addWidget(p)
    p.resize(1400, 800)
    p.show()
    qtbot.waitExposed(p)
    yield p
    p.shutdown()


@pytest.fixture
def reported(workspace):
    """Errors the panel reports (through the workspace's one notifications path)."""
    seen = []
    workspace.error_occurred.connect(lambda title, message: seen.append((title, message)))
    return seen


def run_match(qtbot, panel):
    """Press Match and wait for the results and their aggregation."""
    with qtbot.waitSignals([panel.results_changed, panel.aggregate_changed], timeout=TIMEOUT):
        qtbot.mouseClick(panel.match_button, QtCore.Qt.MouseButton.LeftButton)
    assert not panel.busy
    return panel.results


def expected_results(recording, panel):
    pane = panel.workspace.active_pane
    index = index_for(recording, IndexKey(pane.tap, pane.transform, pane.threshold))
    return match(index, panel.build_query())


def test_rows_are_matching_result(qtbot, panel, workspace, planted):
    recording, runs = planted
    workspace.active_pane.select(PLANTED, brush=(10, 13))
    results = run_match(qtbot, panel)
    query = results.query
    assert query.units == PLANTED and query.pad_left == 1 and query.pad_right == 0
    assert query.selection_length == 3 and query.mode == "lstmvis" and query.limit == 1000
    expected = expected_results(recording, panel)
    for name in ("starts", "lengths", "items", "intersection", "union"):
        np.testing.assert_array_equal(getattr(results, name), getattr(expected, name), err_msg=name)
    # the planted runs, where exactly the three units are on, rank first
    assert set(zip(results.starts[: len(runs)].tolist(), results.lengths[: len(runs)].tolist())) == set(runs)
    assert (results.intersection[: len(runs)] == 3).all() and (results.union[: len(runs)] == 3).all()

    model = panel.model
    assert model.rowCount() == len(expected)
    assert model.columnCount() == model.n_fixed + 24  # -3 .. +20 as LSTMVis
    position_column = model.fixed_keys().index("position")
    for row in range(len(expected)):
        start = int(expected.starts[row])
        token = model.data(model.index(row, model.column_of_offset(0)))
        assert token == display_token(recording.tokens(start, start + 1)[0])
        assert model.data(model.index(row, position_column)) == f"{start:,}"
    assert f"{len(expected)} matches in" in panel.status_text()
    assert "index" in panel.status_text()


def test_scored_mode_rows_and_columns(qtbot, panel, workspace, planted):
    recording, _ = planted
    workspace.active_pane.select(PLANTED, brush=(10, 13))
    panel.mode_combo.setCurrentIndex(panel.mode_combo.findData("scored"))
    assert workspace.panel_state("match").mode == "scored"
    assert panel.weight_spin.isEnabled()
    results = run_match(qtbot, panel)
    assert results.query.mode == "scored" and results.query.length_weight == workspace.panel_state("match").length_weight
    expected = expected_results(recording, panel)
    np.testing.assert_array_equal(results.starts, expected.starts)
    np.testing.assert_allclose(results.score, expected.score)
    assert panel.model.fixed_keys()[:4] == ["rank", "score", "jaccard", "length_factor"]
    # exact length 3 scores the best: the planted run of item 0 (length 3) or 3 (length 3)
    assert int(results.lengths[0]) == 3 and float(results.score[0]) == pytest.approx(1.0)


def test_click_and_enter_show_the_match(qtbot, panel, workspace):
    workspace.active_pane.select(PLANTED, brush=(10, 13))
    results = run_match(qtbot, panel)
    view = panel.view
    index = panel.model.index(1, panel.model.column_of_offset(0))
    view.scrollTo(index)
    with qtbot.waitSignal(panel.result_activated) as blocker:
        qtbot.mouseClick(view.viewport(), QtCore.Qt.MouseButton.LeftButton, pos=view.visualRect(index).center())
    expected = (int(results.starts[1]), int(results.lengths[1]))
    assert tuple(blocker.args) == expected
    assert workspace.shown == [expected]
    view.entered.emit(index)  # hovering a token names its position, labels and count
    assert f"position {expected[0]:,}" in panel.hover_label.text()
    assert "match count: 3 of 3 units on" in panel.hover_label.text() and "depth: 3" in panel.hover_label.text()

    view.setFocus()
    view.setCurrentIndex(panel.model.index(2, 0))
    with qtbot.waitSignal(panel.result_activated):
        qtbot.keyClick(view, QtCore.Qt.Key.Key_Return)
    assert workspace.shown[-1] == (int(results.starts[2]), int(results.lengths[2]))


def test_empty_selection_is_a_message_not_an_error(qtbot, panel, workspace, reported):
    assert not panel.match()
    assert "no units" in panel.status_text().lower()
    workspace.active_pane.select(PLANTED)
    workspace.active_pane.clear()
    with qtbot.assertNotEmitted(panel.busy_changed):
        assert not panel.match()
    assert not panel.busy and panel.results is None
    assert reported == []


def test_settings_are_the_workspaces(qtbot, panel, workspace):
    panel.limit_spin.setValue(0)
    assert workspace.panel_state("match").limit is None  # "all"
    assert panel.limit_spin.text() == "all"
    panel.cap_spin.setValue(0)
    assert workspace.panel_state("match").candidate_cap is None
    panel.min_length_spin.setValue(4)
    assert workspace.panel_state("match").min_length == 4

    # a restored workspace sets the controls (and the token columns)
    workspace.set_panel_state("match", MatchSettings(mode="lstmvis", limit=5, min_length=2, left=2, right=6))
    assert panel.limit_spin.value() == 5 and panel.min_length_spin.value() == 2
    assert panel.left_spin.value() == 2 and panel.right_spin.value() == 6
    assert not panel.weight_spin.isEnabled()
    assert list(panel.model.offsets) == list(range(-2, 7))
    workspace.active_pane.select(PLANTED, brush=(10, 13))
    results = run_match(qtbot, panel)
    assert results.query.limit == 5 and results.query.min_length == 2 and len(results) == 5
    assert "the best 5" in panel.status_text()
    assert panel.match_action.shortcut().toString() == "Ctrl+M"


def test_newer_request_wins(qtbot, panel, workspace):
    got = []
    panel.results_changed.connect(got.append)
    workspace.active_pane.select(PLANTED, brush=(10, 13))
    assert panel.match()
    workspace.active_pane.select((3, 5), brush=(40, 44))
    with qtbot.waitSignal(panel.results_changed, timeout=TIMEOUT):
        panel.match_action.trigger()
    qtbot.wait_until(lambda: not any(panel.runner.is_busy(c) for c in ("index", "match", "aggregate")),
                     timeout=TIMEOUT)
    assert len(got) == 1 and got[0].query.units == (3, 5)
    assert not panel.busy


def test_cancel(qtbot, panel, workspace, monkeypatch):
    started = threading.Event()

    def endless(recording, key, task):
        started.set()
        while True:
            task.check()
            threading.Event().wait(0.005)

    monkeypatch.setattr(match_panel, "_open_index", endless)
    workspace.active_pane.select(PLANTED)
    assert panel.match()
    assert panel.busy and panel.cancel_button.isVisible() and panel.progress.isVisible()
    assert started.wait(10)
    with qtbot.waitSignal(panel.busy_changed, timeout=TIMEOUT) as blocker:
        qtbot.mouseClick(panel.cancel_button, QtCore.Qt.MouseButton.LeftButton)
    assert blocker.args == [False]
    assert "cancelled" in panel.status_text().lower()
    assert not panel.busy and not panel.cancel_button.isVisible()


def test_worker_errors_are_reported_in_words(qtbot, panel, workspace, reported, monkeypatch):
    def broken(index, query, task):
        raise ValueError("the index does not fit this recording")

    monkeypatch.setattr(match_panel, "_match", broken)
    workspace.active_pane.select(PLANTED)
    with qtbot.waitSignal(workspace.error_occurred, timeout=TIMEOUT):
        panel.match()
    assert reported == [("Cannot match", "the index does not fit this recording")]
    assert "the index does not fit" in panel.status_text() and not panel.busy

    def crash(index, query, task):
        raise RuntimeError("kernel exploded")

    monkeypatch.setattr(match_panel, "_match", crash)
    with qtbot.waitSignal(workspace.error_occurred, timeout=TIMEOUT):
        panel.match()
    assert reported[-1][0] == "Cannot match" and "Something went wrong: kernel exploded" in reported[-1][1]


def test_aggregate_equals_analysis(qtbot, panel, workspace, planted):
    recording, runs = planted
    workspace.active_pane.select(PLANTED, brush=(10, 13))
    results = run_match(qtbot, panel)
    assert panel.aggregate_view.annotation() == "depth"
    expected = aggregate(recording, "depth", results.starts, offsets=range(-3, 21))
    table = panel.aggregate_table
    np.testing.assert_array_equal(table.offsets, expected.offsets)
    np.testing.assert_array_equal(table.counts, expected.counts)
    np.testing.assert_allclose(table.baseline, expected.baseline)
    model = panel.aggregate_view.model
    assert model.rowCount() == 1 + 24 and model.columnCount() == 1 + 4
    row0 = 1 + list(expected.offsets).index(0)
    label3 = 1 + expected.labels.index("3")
    fraction = expected.fraction[row0 - 1, label3 - 1]
    assert fraction == pytest.approx(len(runs) / len(results))  # every planted run starts on depth 3
    assert model.data(model.index(row0, label3)) == f"{100 * fraction:.0f}%"
    assert model.data(model.index(row0, 0)) == str(len(results))
    assert model.headerData(0, QtCore.Qt.Orientation.Vertical) == "corpus"
    # enriched cells are red, the corpus row grey
    red = model.data(model.index(row0, label3), QtCore.Qt.ItemDataRole.BackgroundRole).color()
    assert red.red() > 150 and red.blue() < 80
    sentences = [describe_enrichment(r, recording.annotations["depth"]) for r in top_enrichments(expected, limit=12)]
    assert panel.aggregate_view.sentences() == sentences
    assert 'start on a position labelled "3"' in sentences[0]

    # another annotation: numeric, saved in the workspace
    with qtbot.waitSignal(panel.aggregate_changed, timeout=TIMEOUT):
        panel.aggregate_view.set_annotation("signal")
    assert workspace.panel_state("match").aggregate_annotation == "signal"
    numeric = aggregate(recording, "signal", results.starts, offsets=range(-3, 21))
    np.testing.assert_allclose(panel.aggregate_table.mean, numeric.mean, equal_nan=True)
    assert panel.aggregate_view.model.columnCount() == 3  # n, mean, std


def test_end_alignment_aggregates_at_last_tokens(qtbot, panel, workspace, planted):
    recording, _ = planted
    workspace.active_pane.select(PLANTED, brush=(10, 13))
    results = run_match(qtbot, panel)
    with qtbot.waitSignal(panel.aggregate_changed, timeout=TIMEOUT):
        panel.align_combo.setCurrentIndex(panel.align_combo.findData("end"))
    ends = results.starts + results.lengths - 1
    expected = aggregate(recording, "depth", ends, offsets=range(-3, 21))
    np.testing.assert_array_equal(panel.aggregate_table.counts, expected.counts)
    start, length = panel.model.match(0)
    assert panel.model.row_data(0).anchor == start + length - 1
    assert all("start" not in s.split(" of ")[0] for s in panel.aggregate_view.sentences())


def test_strips_follow_the_workspace_and_the_menu(qtbot, panel, workspace):
    assert panel.strips == ["depth"]
    workspace.active_pane.select(PLANTED, brush=(10, 13))
    run_match(qtbot, panel)
    assert [s.name for s in panel.model.strips] == ["match count", "depth"]
    workspace.set_visible_annotations(["signal"])
    assert [s.name for s in panel.model.strips] == ["match count", "signal"]
    menu = {a.data(): a for a in panel.strips_menu.actions()}
    menu["kind"].setChecked(True)  # an item-level annotation
    assert [s.name for s in panel.model.strips] == ["match count", "signal", "kind"]
    panel.set_paint_strip("kind")
    assert panel.view.paint_strip == "kind"
    assert "token backgrounds: <b>kind</b>" in panel.legend_label.text()
    with pytest.raises(ValueError, match="no strip"):
        panel.set_paint_strip("depth")


def test_selection_change_marks_results_stale_and_recording_change_clears(qtbot, panel, workspace, planted, tmp_path):
    workspace.active_pane.select(PLANTED, brush=(10, 13))
    run_match(qtbot, panel)
    assert "units <b>3, 5, 7</b> of <b>layer0/c</b>" in panel.selection_label.text()
    workspace.active_pane.select((3, 5))
    assert "selection changed" in panel.status_text()
    workspace.active_pane.select(PLANTED, brush=(90, 94))  # the same units again: the results still fit
    assert "selection changed" not in panel.status_text() and "matches in" in panel.status_text()
    other, _ = write_planted_recording(tmp_path / "other.h5", n_items=2)
    with open_recording(other) as rec:
        with qtbot.waitSignal(panel.results_changed) as blocker:
            workspace.set_recording(rec)
        assert blocker.args == [None]
        assert panel.model.rowCount() == 0 and panel.aggregate_table is None


def test_with_the_real_workspace(qtbot, tmp_path):
    """The panel on lstmviz.qt.workspace.Workspace: a real pane's selection, show_match moves the window."""
    from lstmviz.qt.workspace import Workspace

    path, runs = write_planted_recording(tmp_path / "real.h5")
    owner = QtWidgets.QWidget()  # the workspace lives and dies with a widget, as in the main window
    qtbot.addWidget(owner)
    ws = Workspace(parent=owner)
    try:
        ws.open(path)
        pane = ws.active_pane
        assert pane.tap == "layer0/h"  # the hidden state opens; the planted units are in the cell state
        ws.set_tap(TAP)
        assert pane.transform == "tanh"  # nobody chose raw for the hidden state: the cell state's default
        pane.set_threshold(THRESHOLD)
        pane.set_brush(10, 13)
        assert sorted(pane.selection.units.tolist()) == list(PLANTED)
        panel = MatchPanel(ws)
        qtbot.addWidget(panel)
        panel.resize(1200, 700)
        panel.show()
        results = run_match(qtbot, panel)
        assert set(zip(results.starts[:6].tolist(), results.lengths[:6].tolist())) == set(runs)
        row = 3
        start, length = int(results.starts[row]), int(results.lengths[row])
        index = panel.model.index(row, panel.model.column_of_offset(1))
        with qtbot.waitSignal(panel.result_activated):
            qtbot.mouseClick(panel.view.viewport(), QtCore.Qt.MouseButton.LeftButton,
                             pos=panel.view.visualRect(index).center())
        assert ws.window_start <= start < ws.window_start + ws.window_width
        assert pane.brush == (start, start + length)
        panel.shutdown()
    finally:
        ws.shutdown()
        ws.close()



def test_status_says_how_the_index_was_got(qtbot, panel, workspace, runner):
    workspace.active_pane.select(PLANTED, brush=(10, 13))
    progress = []
    runner.progress.connect(lambda channel, rid, done, total, message: progress.append(channel))
    run_match(qtbot, panel)
    assert "index built in" in panel.status_text() and "index" in progress
    run_match(qtbot, panel)
    assert "index in memory" in panel.status_text()
    other = MatchPanel(workspace)  # a fresh panel finds the index in the cache file
    qtbot.addWidget(other)
    run_match(qtbot, other)
    assert "index loaded in" in other.status_text()
    np.testing.assert_array_equal(other.results.starts, panel.results.starts)
    other.shutdown()
