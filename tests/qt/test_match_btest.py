"""The Match panel's B-test row: the badge tests the matches against the background on a worker,
refreshed when the matches change; Test classes… tests two annotation classes; Cancel stops a test."""

import threading

import numpy as np
import pytest
from PySide6 import QtCore, QtWidgets
from test_match_helpers import VOCAB, FakeWorkspace, FakePane

from lstmviz.analysis.btest_groups import annotation_groups, compare_groups, match_groups
from lstmviz.qt.match import btest_row
from lstmviz.qt.match.panel import MatchPanel
from lstmviz.qt.workers import TaskRunner
from lstmviz.recording import RecordingWriter, open_recording

TIMEOUT = 60000  # ms: the first match compiles the numba kernels
TAP = "layer0/c"
PLANTED = (3, 5, 7)


def write_recording(path, n_items=60, length=20, seed=0):
    """Units 3, 5, 7 of layer0/c are on (1.0 to 1.2) over [5, 9) of every even item, else |noise| < 0.3;
    position annotation ``planted`` (no/yes), item annotation ``kind`` (even/odd)."""
    rng = np.random.default_rng(seed)
    with RecordingWriter(path, vocab=VOCAB) as w:
        w.add_tap(TAP, 16)
        w.add_tap("layer0/h", 4)
        w.add_annotation("planted", kind="categorical", labels=["no", "yes"])
        w.add_annotation("kind", kind="categorical", level="item", labels=["even", "odd"])
        for i in range(n_items):
            s = rng.uniform(-0.3, 0.3, size=(length, 16)).astype(np.float32)
            planted = np.zeros(length, np.int64)
            if i % 2 == 0:
                s[5:9, list(PLANTED)] = rng.uniform(1.0, 1.2, size=(4, 3))
                planted[5:9] = 1
            w.append_item(rng.integers(1, len(VOCAB), length), {TAP: s, "layer0/h": rng.normal(size=(length, 4))},
                          annotations={"planted": planted}, item_annotations={"kind": i % 2})
    return path


@pytest.fixture
def recording(tmp_path):
    r = open_recording(write_recording(tmp_path / "planted.h5"))
    yield r
    r.close()


@pytest.fixture
def runner(qtbot):
    r = TaskRunner()
    yield r
    assert r.shutdown()


@pytest.fixture
def workspace(recording, runner):
    return FakeWorkspace(recording, runner, pane=FakePane(tap=TAP, threshold=0.5), visible=("planted",))


@pytest.fixture
def panel(qtbot, workspace):
    p = MatchPanel(workspace)
    qtbot.addWidget(p)
    p.resize(1400, 700)
    p.show()
    qtbot.waitExposed(p)
    yield p
    p.shutdown()


@pytest.fixture
def reported(workspace):
    seen = []
    workspace.error_occurred.connect(lambda title, message: seen.append((title, message)))
    return seen


def match_and_test(qtbot, panel):
    with qtbot.waitSignals([panel.results_changed, panel.btest_row.badge_changed], timeout=TIMEOUT):
        qtbot.mouseClick(panel.match_button, QtCore.Qt.MouseButton.LeftButton)
    return panel.results, panel.btest_row.comparison


def test_badge_is_the_b_test_of_the_matches_against_the_background(qtbot, panel, workspace, recording, reported,
                                                                    tmp_path):
    workspace.active_pane.select(PLANTED, brush=(5, 9))
    results, comparison = match_and_test(qtbot, panel)
    assert len(results) == 30  # the planted run of every even item
    want = compare_groups(recording, [TAP], match_groups(recording, results), units=list(PLANTED))
    got, expected = comparison.tests[0], want.tests[0]
    assert got.result == expected.result and comparison.units == PLANTED
    assert got.result.reject and got.items_a == 30 and got.items_b == 30
    text = panel.btest_row.badge.text()
    assert got.result.p_value < 1e-6
    assert text.startswith("B-test vs background: p < 1e-06 (") and f"({got.result.n} items a side, B = " in text
    assert "— differ" in text
    assert "one random row per item" in panel.btest_row.badge.toolTip()
    assert not reported
    panel.grab().save(str(tmp_path / "match_btest.png"))


def test_badge_refreshes_when_the_matches_change(qtbot, panel, workspace):
    workspace.active_pane.select(PLANTED, brush=(5, 9))
    _, first = match_and_test(qtbot, panel)
    workspace.active_pane.select((3, 5), brush=(5, 9))
    _, second = match_and_test(qtbot, panel)
    assert second is not first and second.units == (3, 5)
    # cleared with the results (another recording)
    with qtbot.waitSignal(panel.btest_row.badge_changed, timeout=5000) as blocker:
        workspace.set_recording(None)
    assert blocker.args == [None] and panel.btest_row.badge.text() == btest_row.BADGE_IDLE


def test_too_few_items_is_said_in_the_badge(qtbot, tmp_path, runner, reported):
    rec = open_recording(write_recording(tmp_path / "few.h5", n_items=6))
    try:
        ws = FakeWorkspace(rec, runner, pane=FakePane(tap=TAP, threshold=0.5))
        p = MatchPanel(ws)
        qtbot.addWidget(p)
        ws.error_occurred.connect(lambda title, message: reported.append((title, message)))
        ws.active_pane.select(PLANTED, brush=(5, 9))
        with qtbot.waitSignal(p.btest_row.badge_changed, timeout=TIMEOUT) as blocker:
            p.match()
        assert blocker.args == [None]
        assert "too few items" in p.btest_row.badge.text()
        assert not reported  # an expected problem, not an error dialog
        p.shutdown()
    finally:
        rec.close()


def test_cancel_stops_a_running_test(qtbot, panel, workspace, monkeypatch):
    started = threading.Event()

    def slow_job(recording, tap, results, units, task):
        started.set()
        while True:  # until cancelled
            task.check()
            threading.Event().wait(0.005)

    monkeypatch.setattr(btest_row, "_match_job", slow_job)
    workspace.active_pane.select(PLANTED, brush=(5, 9))
    with qtbot.waitSignal(panel.results_changed, timeout=TIMEOUT):
        panel.match()
    assert panel.btest_row.busy and panel.btest_row.cancel_button.isVisibleTo(panel)
    assert started.wait(10)
    with qtbot.waitSignal(panel.btest_row.badge_changed, timeout=5000) as blocker:
        qtbot.mouseClick(panel.btest_row.cancel_button, QtCore.Qt.MouseButton.LeftButton)
    assert blocker.args == [None]
    assert panel.btest_row.badge.text() == "B-test cancelled." and not panel.btest_row.busy
    assert not panel.btest_row.cancel_button.isVisibleTo(panel)


def test_classes_dialog_tests_two_classes_on_the_panes_tap(qtbot, panel, workspace, recording, tmp_path):
    workspace.active_pane.select(PLANTED, brush=(5, 9))
    dialog = panel.btest_row.open_classes_dialog()
    assert dialog is not None and dialog.isVisible()
    names = [dialog.annotation_combo.itemData(i) for i in range(dialog.annotation_combo.count())]
    assert names == ["planted", "kind"]
    dialog.annotation_combo.setCurrentIndex(0)
    assert dialog.a_combo.currentText() == "no" and dialog.b_combo.currentText() == "yes"
    assert dialog.selected_check.isChecked()
    with qtbot.waitSignal(panel.btest_row.classes_changed, timeout=TIMEOUT) as blocker:
        qtbot.mouseClick(dialog.buttons.button(QtWidgets.QDialogButtonBox.StandardButton.Ok),
                         QtCore.Qt.MouseButton.LeftButton)
    got = blocker.args[0]
    want = compare_groups(recording, [TAP], annotation_groups(recording, "planted", "no", "yes"),
                          units=list(PLANTED))
    assert got.tests[0].result == want.tests[0].result and got.tests[0].result.reject
    assert panel.btest_row.classes_label.text().startswith("planted=no vs yes: p")
    panel.grab().save(str(tmp_path / "classes_btest.png"))
    # the item classes on all units of the other tap: no signal there
    workspace.active_pane.tap = "layer0/h"
    workspace.active_pane.clear()
    dialog = panel.btest_row.open_classes_dialog()
    dialog.annotation_combo.setCurrentIndex(1)
    assert not dialog.selected_check.isEnabled()
    with qtbot.waitSignal(panel.btest_row.classes_changed, timeout=TIMEOUT) as blocker:
        dialog.accept()
    assert blocker.args[0].tests[0].tap == "layer0/h" and blocker.args[0].units is None
    assert "kind=even vs odd" in panel.btest_row.classes_label.text()
